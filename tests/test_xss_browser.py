"""Model output, tool calls, thinking and API error text never run as script in JupyterLab.

JupyterLab renders outputs of executed cells as *trusted* HTML (scripts re-run, handlers fire) and page
JavaScript can drive the kernel, so an XSS here is code execution. The corpus in
``fixtures/xss_payloads.json`` holds HTML / Markdown / URL / MathJax / template injection payloads; each
one, if it ever ran, appends its number to ``window.__xss``, loads ``http://attacker.example/...``, or
navigates. The emulator serves them through the real SDK as answer text, thinking, tool calls, HTTP
error messages, 429 retry notices and the user's own prompt.

- Fast tests (no browser): every payload through ``render_markdown``, ``block_html``, ``answer_bundle``
  and ``IncrementalView``, then the real magic and panel in this process with the emulator; every
  published HTML bundle / widget value is parsed and checked against an allow-list (tags, attributes,
  URL schemes, style values).
- Browser tests: the same payloads in real JupyterLab + Chromium, once as ``%%claude`` cells (live
  display, the kernel default) plus ``%claude history``, once through the ChatPanel (live, then redrawn
  from history). A MutationObserver checks every element that ever enters an output area; at the end
  the DOM, ``window.__xss``, the title, the URL, dialogs and network requests are checked.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest
from harness.lab import JupyterLab, LabNotebook, write_notebook

from claude_magic import ChatPanel
from claude_magic.core.history import STORE
from claude_magic.core.turn import Block, ErrorInfo, TurnState
from claude_magic.emulator import Emulator
from claude_magic.render.panel_html import PANEL_CSS, assistant_history_html, user_html
from claude_magic.render.view import IncrementalView, answer_bundle, block_html
from claude_magic.surfaces.history_view import HistoryView

CORPUS_PATH = Path(__file__).parent / "fixtures" / "xss_payloads.json"
CORPUS: list[dict[str, Any]] = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))["payloads"]
BY_ID = {p["id"]: p for p in CORPUS}
WHERE = ("text", "thinking", "tool_input", "tool_name", "tool_result", "error", "retry_notice", "prompt")

# Pace: fast, but one token per event so live frames (every 100 ms by default) really happen.
PACE = {"tokens_per_second": 1500, "chunk_tokens": 2}
RETRY_AFTER = 0.4  # seconds the 429 notice stays on screen


# ---------------------------------------------------------------------------------------------------------
# The corpus as emulator turns and prompts
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ask:
    """One question: the conversation it goes to, its prompt, whether the turn ends in an error."""

    group: str
    prompt: str
    fails: bool = False

    @property
    def conversation(self) -> str:
        return f"xss-{self.group}"


def _of(group: str) -> list[dict[str, Any]]:
    return [p for p in CORPUS if p["group"] == group]


def text_groups() -> list[str]:
    return list(dict.fromkeys(p["group"] for p in CORPUS if p["where"] == "text"))


def answer_text(payloads: list[dict[str, Any]]) -> str:
    """One Markdown answer carrying several payloads, each after a label paragraph."""
    return "".join(f"**{p['id']}**\n\n{p['payload']}\n\n" for p in payloads) + "End of payloads."


def asks() -> list[Ask]:
    """Every question, in an order one conversation can take (a tool_use turn must be the last)."""
    prompt_payload = _of("prompt")[0]["payload"]
    return [
        *(Ask(group, f"xss-{group}: show the payloads") for group in text_groups()),
        Ask("thinking", "xss-thinking: think first"),
        Ask("prompt", f"xss-prompt {prompt_payload}"),
        Ask("error", "xss-error: fail with HTML", fails=True),
        Ask("retry", "xss-retry: rate limited once"),
        Ask("tool", "xss-tool: call tools"),
    ]


# A real tool run: tools with fine names, defined in the kernel, whose input (written by Claude) and result
# (what the function returns, e.g. a web page it read) carry the payloads. One call succeeds, one raises.
TOOL_RUN_PROMPT = "xss-toolrun: call the notebook's tools"
TOOL_RUN_MARK = "xss-toolrun-result"  # in the result, so the continuation's turn matches it
ALL_PAYLOADS = "\n".join(p["payload"] for p in CORPUS)
TOOL_RESULT = f"{TOOL_RUN_MARK}\n{BY_ID['tool-result-breakout']['payload']}\n{ALL_PAYLOADS}"
TOOL_FUNCTIONS = f'''
def fetch_page(query: str, page: str = "") -> str:
    """Fetch a web page: what it returns is hostile, and it echoes its input."""
    return {TOOL_RESULT!r} + "\\n" + query + "\\n" + page

def explode(query: str) -> str:
    """Always fails, with the query in its message."""
    raise ValueError(query)
'''
TOOL_RUN_CONTINUATION = "Tool results received."


def tool_run_turns() -> list[dict[str, Any]]:
    return [
        {"match": TOOL_RUN_MARK, "content": TOOL_RUN_CONTINUATION},
        {"match": TOOL_RUN_PROMPT, "content": [
            {"type": "text", "text": "Running the tools."},
            {"type": "tool_use", "name": "fetch_page",
             "input": {"query": BY_ID["tool-input-breakout"]["payload"], "page": ALL_PAYLOADS}},
            {"type": "tool_use", "name": "explode", "input": {"query": BY_ID["tool-result-breakout"]["payload"]}},
        ]},
    ]


def assert_tools_ran(emulator: Emulator) -> None:
    """The continuation request carried both results: the tools really ran (and one raised)."""
    sent = [r.messages[-1]["content"] for r in emulator.requests
            if r.messages and isinstance(r.messages[-1]["content"], list)
            and any(b.get("type") == "tool_result" for b in r.messages[-1]["content"])]
    assert sent, "no tool_result reached the emulator"
    fetched, exploded = sent[-1]
    assert TOOL_RUN_MARK in fetched["content"] and not fetched.get("is_error")
    assert exploded["is_error"] is True and exploded["content"].startswith("ValueError: </pre>")


def emulator_script() -> dict[str, Any]:
    turns: list[dict[str, Any]] = tool_run_turns()  # first: tool results hold every payload's text
    turns += [
        {"match": f"xss-{group}:", "content": [{"type": "text", "text": answer_text(_of(group))}]}
        for group in text_groups()
    ]
    thinking = "\n".join(p["payload"] for p in _of("thinking"))
    turns.append({"match": "xss-thinking:", "content": [
        {"type": "thinking", "thinking": thinking}, {"type": "text", "text": "Thought about it."}]})
    tool_input = BY_ID["tool-input-breakout"]["payload"]
    turns.append({"match": "xss-tool:", "content": [
        {"type": "text", "text": "Calling tools."},
        {"type": "tool_use", "name": "lookup", "input": {"query": tool_input, "nested": {"html": tool_input}}},
        {"type": "tool_use", "name": BY_ID["tool-name-breakout"]["payload"], "input": {"x": 1}},
    ]})
    turns.append({"match": "xss-prompt", "content": "Prompt received."})
    turns.append({"match": "xss-error:", "fault": {"kind": "http", "status": 400,
                                                  "message": BY_ID["error-message-400"]["payload"]}})
    turns.append({"match": "xss-retry:", "times": 1, "fault": {
        "kind": "http", "status": 429, "message": BY_ID["retry-notice-429"]["payload"], "retry_after": RETRY_AFTER}})
    turns.append({"match": "xss-retry:", "content": "Retried fine."})
    return {"pace": PACE, "turns": turns}


# ---------------------------------------------------------------------------------------------------------
# The allow-list checker (Python side): what a browser would build from our HTML
# ---------------------------------------------------------------------------------------------------------

# Deliberately independent of claude_magic.render.markdown's allow-list: loosening that must fail here.
SAFE_TAGS = {
    "a", "b", "blockquote", "br", "code", "del", "details", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "summary", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
SAFE_ATTRIBUTES = {
    "a": {"href", "title", "rel"},
    "ol": {"start"},
    "td": {"style"},
    "th": {"style"},
    "pre": {"style"},
    "code": {"style"},
    "div": {"class", "style"},
    "span": {"class", "style"},
    "details": {"open"},
}
SAFE_SCHEMES = {"http", "https", "mailto"}
# Our own stylesheet(s), the only <style> elements allowed in an output.
KNOWN_CSS = {re.sub(r"</?style>", "", css).strip() for css in (PANEL_CSS,)}
# Values: words, numbers, hex colours, or one of JupyterLab's theme variables with a hex fallback.
_STYLE_OK = re.compile(r"^\s*(?:[a-z-]+\s*:\s*(?:[#\w.%\s-]+|var\(--jp-[a-z0-9-]+, #[0-9a-f]{3,8}\));?\s*)*$")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


def url_scheme(value: str) -> str | None:
    """The scheme a browser sees (WHATWG: trim C0 controls and spaces, drop tabs and newlines)."""
    cleaned = re.sub(r"[\t\n\r]", "", value).strip("".join(chr(c) for c in range(0x21)))
    match = _SCHEME.match(cleaned)
    return match.group(1).lower() if match else None


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        if tag not in SAFE_TAGS and tag != "style":
            self.problems.append(f"<{tag}> element")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}> event handler")
            elif name not in SAFE_ATTRIBUTES.get(tag, set()):
                self.problems.append(f"<{tag} {name}={value!r}> attribute not allowed")
            if name == "href" and (scheme := url_scheme(value)) is not None and scheme not in SAFE_SCHEMES:
                self.problems.append(f"<a href={value!r}>: scheme {scheme}")
            if name == "style" and (not _STYLE_OK.match(value) or re.search(r"url|expression|@", value, re.I)):
                self.problems.append(f"<{tag} style={value!r}>")
        if tag == "a" and "noopener" not in (dict(attrs).get("rel") or ""):
            self.problems.append("<a> without rel=noopener")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self._in_style = False

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            if data.strip() not in KNOWN_CSS:
                self.problems.append(f"<style> with unknown content {data[:80]!r}")
        else:
            self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"comment {data[:40]!r}")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"declaration {decl[:40]!r}")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"processing instruction {data[:40]!r}")


def check_html(markup: str) -> tuple[list[str], str]:
    """(problems, visible text) of an HTML fragment."""
    checker = _Checker()
    checker.feed(markup)
    checker.close()
    return checker.problems, "".join(checker.text)


def assert_inert(markup: str, where: str) -> str:
    problems, text = check_html(markup)
    assert not problems, f"{where}: unsafe HTML: {problems}\n--- html ---\n{markup[:3000]}"
    return text


def test_checker_catches_what_it_must() -> None:
    """The checker itself: each of these must be reported (else the tests below prove nothing)."""
    for bad in ['<img src=x onerror="a()">', "<script>a()</script>", '<a href=" java\tscript:a()">x</a>',
                '<a href="data:text/html,x" rel="noopener">x</a>', '<p style="background:url(x)">x</p>',
                "<style>p{}</style>", "<svg onload=a()>", '<a href="https://e.com">no rel</a>',
                '<div onclick="a()">x</div>', "<details open ontoggle=a()>", "<iframe srcdoc=x>",
                '<p style="color:var(--x, #000)">x</p>', '<p style="color:var(--jp-a, attr(x))">x</p>']:
        assert check_html(bad)[0], bad
    good = (f'{PANEL_CSS}<p><a href="https://e.com/" rel="noopener noreferrer">x</a></p>'
            '<td style="text-align:left">c</td>'
            '<div class="claude-magic-footer" style="color:#777;color:var(--jp-content-font-color2, #777)">f</div>')
    assert check_html(good) == ([], "xc" + "f")


# ---------------------------------------------------------------------------------------------------------
# Fast: pure rendering of every payload
# ---------------------------------------------------------------------------------------------------------


def test_corpus_is_broad_and_well_formed() -> None:
    assert len(CORPUS) >= 30
    assert len(BY_ID) == len(CORPUS) and [p["n"] for p in CORPUS] == list(range(1, len(CORPUS) + 1))
    assert {p["where"] for p in CORPUS} == set(WHERE)
    for p in CORPUS:
        assert p["payload"] and p["note"], p["id"]


def _state(*blocks: Block, status: str = "complete", error: ErrorInfo | None = None) -> TurnState:
    state = TurnState(model="claude-test", prompt="p", started_at=0.0, status=status)  # type: ignore[arg-type]
    state.blocks = list(blocks)
    state.error = error
    state.finished_at = 1.0 if status != "streaming" else None
    return state


def _streamed(payload: str, kind: str, step: int = 5, **block: Any) -> Iterator[str]:
    """Every HTML piece IncrementalView hands out while `payload` streams into one block."""
    live = Block(kind, **block)
    state = _state(live, status="streaming")
    view = IncrementalView()
    for start in range(0, len(payload), step):
        live.parts.append(payload[start : start + step])
        frozen, tail = view.advance(state)
        if frozen is not None:
            yield frozen.html
        yield tail.html
    live.complete = True


@pytest.mark.parametrize("payload", CORPUS, ids=[p["id"] for p in CORPUS])
def test_payload_renders_inert(payload: dict[str, Any]) -> None:
    where, text = payload["where"], payload["payload"]
    if where == "text":
        whole = answer_bundle(_state(Block("text", [text], complete=True)))["text/html"]
        visible = assert_inert(whole, "answer_bundle")
        assert_inert(assistant_history_html(text), "panel history")
        assert_inert(HistoryView(_conversation_with(text))._repr_mimebundle_()["text/html"], "%claude history")
        for piece in _streamed(text, "text"):
            assert_inert(piece, "live frame")
        if "shows_text" in payload:
            assert payload["shows_text"] in visible, f"code must stay visible as text:\n{whole}"
    elif where == "thinking":
        for live in (True, False):
            shown = assert_inert(block_html(Block("thinking", [text], complete=True), live=live), "thinking")
            assert text in shown  # escaped, not dropped
        for piece in _streamed(text, "thinking"):
            assert_inert(piece, "live thinking")
        assert_inert(assistant_history_html([{"type": "thinking", "thinking": text, "signature": "s"}]), "history")
    elif where == "tool_input":
        raw = json.dumps({"query": text})
        for live in (True, False):
            shown = assert_inert(block_html(Block("tool_use", [raw], tool_name="t", complete=True), live=live), "tool")
            assert text in shown  # escaped, not dropped (shown as the call's arguments, parsed)
        for piece in _streamed(raw, "tool_use", tool_name="t"):
            assert_inert(piece, "live tool input")
        assert_inert(assistant_history_html([{"type": "tool_use", "id": "t1", "name": "t", "input": {"q": text}}]),
                     "history")
    elif where == "tool_name":
        for kind in ("tool_use", "server_tool_use"):
            shown = assert_inert(block_html(Block(kind, ["{}"], tool_name=text, complete=True)), "tool name")
            assert text in shown
        assert_inert(assistant_history_html([{"type": "tool_use", "id": "t1", "name": text, "input": {}}]), "history")
    elif where == "tool_result":
        from claude_magic.core.tools import ToolCallView, convert_result, describe_call

        for outcome in (convert_result(text), convert_result({"page": text})):
            call = ToolCallView("t1", text, describe_call(text, {"q": text}), status="done", outcome=outcome)
            shown = assert_inert(block_html(Block("tool_result", call=call, complete=True)), "tool result")
            assert "onerror" in shown  # escaped, not dropped
    elif where in ("error", "retry_notice"):
        failed = _state(Block("text", ["partial"]), status="error", error=ErrorInfo("x", f"Bad request (400): {text}"))
        assert text in assert_inert(answer_bundle(failed)["text/html"], "error footer")
        waiting = _state(status="waiting")
        waiting.notice = f"Rate limited (429): {text}: retrying in 1 s (retry 1 of 2)"
        for piece in (answer_bundle(waiting)["text/html"], IncrementalView().advance(waiting)[1].html):
            assert text in assert_inert(piece, "retry notice")
    elif where == "prompt":
        assert text in assert_inert(user_html(text), "panel user message")
        assert_inert(HistoryView(_conversation_with("answer", prompt=text))._repr_mimebundle_()["text/html"],
                     "%claude history")
    else:  # pragma: no cover - test_corpus_is_broad_and_well_formed guards this
        pytest.fail(f"unknown where {where!r}")


def _conversation_with(answer: str, prompt: str = "q") -> Any:
    from claude_magic.core.history import Conversation

    conversation = Conversation("xss-check")
    conversation.commit(prompt, [{"type": "text", "text": answer}])
    return conversation


def test_whole_answers_render_inert() -> None:
    """The grouped answers the browser tests use (payloads next to each other can interact)."""
    for group in text_groups():
        text = answer_text(_of(group))
        assert_inert(answer_bundle(_state(Block("text", [text], complete=True)))["text/html"], group)
        for step in (1, 13):
            for piece in _streamed(text, "text", step=step):
                assert_inert(piece, f"{group} live frame")


# ---------------------------------------------------------------------------------------------------------
# Fast: the real magic and panel in this process, real SDK against the emulator
# ---------------------------------------------------------------------------------------------------------


class RecordingDisplay:
    """Stands in for IPython's display functions (the magic's DisplayPublisher): keeps every bundle."""

    published: list[dict[str, str]] = []

    def display(self, bundle: dict[str, str], display_id: str | None = None) -> None:
        self.published.append(bundle)

    def update(self, bundle: dict[str, str], display_id: str) -> None:
        self.published.append(bundle)

    def clear(self) -> None:
        pass

    def flush(self) -> None:
        pass


@pytest.fixture
def xss_emulator(emulator: Emulator, api_env: dict[str, str]) -> Emulator:
    emulator.set_script(emulator_script())
    return emulator


@pytest.fixture
def fresh_store() -> Iterator[None]:
    yield
    for name in STORE.names():
        STORE.get(name).reset()


def test_magic_live_frames_and_history_are_inert(
    xss_emulator: Emulator, shell: Any, monkeypatch: pytest.MonkeyPatch, fresh_store: None
) -> None:
    import claude_magic.surfaces.sinks as sinks_module  # where the cell sinks' display comes from

    published: list[dict[str, str]] = []
    monkeypatch.setattr(RecordingDisplay, "published", published)
    monkeypatch.setattr(sinks_module, "IPythonDisplay", RecordingDisplay)
    frames = 0
    for ask in asks():
        before = len(published)
        shell.run_cell_magic("claude", f"-c {ask.conversation} --display live --no-raise", ask.prompt)
        turn = shell.magics_manager.registry["ClaudeMagics"].last_turn
        assert (turn.status == "error") is ask.fails, (ask, turn.error)
        mine = published[before:]
        frames += len(mine)
        for bundle in mine:
            assert_inert(bundle["text/html"], f"{ask.group} frame")
        final = mine[-1]["text/html"]
        # A turn that failed before anything arrived is its warning line alone (no footer of zeros).
        assert ("claude-magic-warning" if ask.fails and not turn.has_content else "claude-magic-footer") in final
        if ask.group == "error":
            assert BY_ID["error-message-400"]["payload"] in check_html(final)[1]
        if ask.group == "retry":
            notices = [b["text/html"] for b in mine if "retrying in" in b["text/html"]]
            assert notices and BY_ID["retry-notice-429"]["payload"] in check_html(notices[0])[1]
        # What `%claude history` displays in a notebook (this shell is not a kernel: there it prints).
        history = HistoryView(STORE.get(ask.conversation))
        assert_inert(history._repr_mimebundle_()["text/html"], f"{ask.group} history")
    assert frames > 3 * len(asks()), "live display must have sent intermediate frames"
    assert [r.status for r in xss_emulator.requests].count(429) == 1


def test_panel_widget_values_are_inert(
    xss_emulator: Emulator, monkeypatch: pytest.MonkeyPatch, fresh_store: None
) -> None:
    values: list[str] = []
    original = widgets.Widget._send

    def record(self: widgets.Widget, msg: dict[str, Any], buffers: Any = None) -> None:
        value = msg.get("state", {}).get("value")
        if isinstance(value, str):
            values.append(value)
        original(self, msg, buffers)

    def constructed(widget: widgets.Widget) -> None:
        if isinstance(widget, widgets.HTML):
            values.append(widget.value)

    monkeypatch.setattr(widgets.Widget, "_send", record)  # updates of existing widgets
    monkeypatch.setattr(widgets.Widget, "_widget_construction_callback", constructed)  # new ones (frozen pieces)
    panel = ChatPanel(conversation="xss-panel")
    try:
        for ask in asks():
            assert panel.send(ask.prompt)
            state = panel.wait(30)
            assert state is not None and (state.status == "error") is ask.fails, ask
        redrawn = ChatPanel(conversation="xss-panel")
        redrawn.close()
    finally:
        panel.close()
        panel.wait(5)
    html_values = [v for v in values if "<" in v]
    assert len(html_values) > 3 * len(asks())
    for value in values:
        assert_inert(value.replace(PANEL_CSS, ""), "panel widget value")
    # The user's payload prompt reached the page only as text.
    prompt = BY_ID["user-prompt"]["payload"]
    assert any(prompt in check_html(v)[1] for v in values)


# ---------------------------------------------------------------------------------------------------------
# Browser: real JupyterLab + Chromium
# ---------------------------------------------------------------------------------------------------------

# Installed in the page before anything runs: checks every element that ever enters an output area
# (a handler on a node that lives for one frame still fires), and the final DOM.
SCANNER_JS = r"""
(knownCss) => {
  const FORBIDDEN = new Set(['script', 'iframe', 'object', 'embed', 'svg', 'img', 'style', 'base', 'meta',
    'form', 'link', 'frame', 'frameset', 'applet', 'video', 'audio', 'source', 'input', 'portal', 'math',
    'image', 'use', 'animate', 'set', 'foreignobject', 'noscript', 'template', 'marquee', 'isindex']);
  const URL_ATTRS = new Set(['href', 'src', 'srcdoc', 'action', 'formaction', 'xlink:href', 'data', 'poster',
    'background', 'srcset', 'ping', 'cite', 'codebase', 'dynsrc', 'lowsrc']);
  const known = new Set(knownCss);
  const check = (el) => {
    const out = [];
    const tag = el.localName;
    if (FORBIDDEN.has(tag)) {
      const ours = tag === 'style' && known.has(el.textContent.trim());
      const mathJax = tag === 'math' && el.closest('mjx-container, mjx-assistive-mml');
      if (!ours && !mathJax) out.push(`<${tag}> element`);
    }
    for (const a of Array.from(el.attributes)) {
      const name = a.name.toLowerCase();
      const value = a.value;
      const plain = value.replace(/[\t\n\r]/g, '').replace(/^[\u0000-\u0020]+/, '').toLowerCase();
      if (name.startsWith('on')) out.push(`<${tag} ${name}> handler`);
      if (URL_ATTRS.has(name) && /^(javascript|data|vbscript|file):/.test(plain)) out.push(`<${tag} ${name}=${value}>`);
      if (name === 'srcdoc') out.push(`<${tag} srcdoc>`);
      if (name === 'style' && /url\s*\(|expression|javascript|@import|behavior|binding/i.test(value)) {
        out.push(`<${tag} style=${value}>`);
      }
    }
    if (tag === 'a' && el.hasAttribute('href') && !['http:', 'https:', 'mailto:'].includes(el.protocol)) {
      out.push(`<a href=${el.getAttribute('href')}> protocol ${el.protocol}`);
    }
    const where = el.closest('[class]');
    return out.map((p) => `${p} in .${where ? String(where.className).split(' ').join('.') : '?'}`);
  };
  const scanTree = (root) => {
    const found = [];
    if (root.nodeType !== 1) return found;
    for (const el of [root, ...root.querySelectorAll('*')]) {
      for (const p of check(el)) found.push(p);
    }
    return found;
  };
  window.__xssScanTree = scanTree;
  window.__xssSeen = [];
  window.__xssMutations = 0;
  const OUTPUT = '.jp-OutputArea-output';
  const note = (problems) => {
    for (const p of problems) if (window.__xssSeen.length < 200) window.__xssSeen.push(p);
  };
  const observer = new MutationObserver((records) => {
    for (const r of records) {
      const target = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      if (!target) continue;
      const nodes = r.type === 'attributes' ? [target] : Array.from(r.addedNodes);
      if (target.closest(OUTPUT)) {
        // Inside an output: check what arrived even if it is already gone again.
        window.__xssMutations += 1;
        for (const node of nodes) note(scanTree(node));
      } else {
        // An output area (or a whole output) being attached: check the outputs in it.
        for (const node of nodes) {
          if (node.nodeType !== 1) continue;
          const outputs = node.matches(OUTPUT) ? [node] : Array.from(node.querySelectorAll(OUTPUT));
          for (const o of outputs) { window.__xssMutations += 1; note(scanTree(o)); }
        }
      }
    }
  });
  observer.observe(document.body, {subtree: true, childList: true, attributes: true});
  window.__xssState = () => {
    const outputs = Array.from(document.querySelectorAll('.jp-OutputArea-output'));
    const problems = [];
    for (const o of outputs) for (const p of scanTree(o)) problems.push(p);
    const hrefs = [];
    for (const o of outputs) for (const a of o.querySelectorAll('a[href]')) hrefs.push(a.href);
    return {
      xss: window.__xss === undefined ? null : window.__xss,
      title: document.title,
      url: location.href,
      outputs: outputs.length,
      problems,
      seen: window.__xssSeen,
      mutations: window.__xssMutations,
      hrefs,
    };
  };
}
"""


@dataclass
class PageWatch:
    """What the page did that a payload could cause: dialogs, navigations, foreign requests."""

    dialogs: list[str]
    navigations: list[str]
    foreign_requests: list[str]


def watch_page(page: Any, lab: JupyterLab) -> PageWatch:
    watch = PageWatch([], [], [])

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_request(request: Any) -> None:
        url = request.url
        if not url.startswith((lab.url, "data:", "blob:")):
            watch.foreign_requests.append(url)

    page.on("dialog", on_dialog)
    page.on("request", on_request)
    page.on("framenavigated", lambda frame: frame == page.main_frame and watch.navigations.append(frame.url))
    return watch


def lab_for_xss(jupyterlab_factory: Callable[..., JupyterLab], api_env: dict[str, str]) -> JupyterLab:
    # windowingMode none: every cell's output is attached and rendered, not just the visible ones.
    return jupyterlab_factory(env=api_env, user_settings={
        "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}})


def open_watched(page: Any, lab: JupyterLab, name: str) -> tuple[LabNotebook, PageWatch, str]:
    nb = LabNotebook(page).open(lab, name)
    page.evaluate(SCANNER_JS, sorted(KNOWN_CSS))
    watch = watch_page(page, lab)
    return nb, watch, page.title()


def assert_dom_inert(outputs: Any, where: str) -> int:
    """The Python allow-list checker over the page's own DOM (what JupyterLab built from our HTML), for
    each element `outputs` matches; returns how many were checked."""
    markups: list[str] = outputs.evaluate_all("els => els.map((e) => e.innerHTML)")
    for index, markup in enumerate(markups):
        assert_inert(markup, f"{where} #{index} (page DOM)")
    return len(markups)


def assert_page_clean(nb: LabNotebook, watch: PageWatch, title: str, url: str) -> dict[str, Any]:
    state: dict[str, Any] = nb.page.evaluate("() => window.__xssState()")
    ran = sorted({BY_ID_N.get(n, str(n)) for n in state["xss"] or []})
    assert state["xss"] is None, f"payloads executed: {ran}"
    assert state["title"] == title, f"title changed to {state['title']!r}"
    assert state["url"] == url and not watch.navigations, f"page navigated: {watch.navigations}"
    assert not watch.dialogs, f"dialogs opened: {watch.dialogs}"
    assert not watch.foreign_requests, f"requests to other origins: {watch.foreign_requests}"
    assert not state["seen"], f"unsafe elements entered an output at some point: {state['seen'][:20]}"
    assert not state["problems"], f"unsafe elements in outputs: {state['problems'][:20]}"
    assert all(h.startswith(("http://", "https://", "mailto:")) for h in state["hrefs"]), state["hrefs"]
    return state


BY_ID_N = {p["n"]: p["id"] for p in CORPUS}


def save_output_screenshots(nb: LabNotebook, artifacts: Path, cells: int, prefix: str) -> None:
    nb.screenshot(artifacts / f"{prefix}-page.png", full_page=True)
    for index in range(cells):
        outputs = nb.output(index)
        if outputs.count():
            outputs.first.scroll_into_view_if_needed()
            nb.page.screenshot(path=str(artifacts / f"{prefix}-cell{index:02d}.png"))


def record_timings(artifacts: Path, **values: float) -> None:
    (artifacts / "timings.json").write_text(json.dumps({k: round(v, 3) for k, v in values.items()}, indent=2))


HISTORY_CELL = (
    "from IPython.display import display\n"
    "for _name in {names!r}:\n"
    "    display(get_ipython().run_line_magic('claude', f'-c {{_name}} history'))"
)


@pytest.mark.browser
def test_magic_cells_run_no_payload_in_jupyterlab(
    jupyterlab_factory: Callable[..., JupyterLab], emulator: Emulator, api_env: dict[str, str],
    lab_page: Any, artifacts: Path,
) -> None:
    t0 = time.monotonic()
    emulator.set_script(emulator_script())
    lab = lab_for_xss(jupyterlab_factory, api_env)
    questions = asks()
    cells = ["%load_ext claude_magic\nfrom claude_magic.settings import current_settings\n"
             f"print(current_settings().display_mode)\n{TOOL_FUNCTIONS}"]
    cells += [f"%%claude -c {a.conversation}{' --no-raise' if a.fails else ''}\n{a.prompt}" for a in questions]
    tool_cell = len(cells)
    cells.append(f"%%claude -c xss-toolrun --tools fetch_page,explode\n{TOOL_RUN_PROMPT}")
    cells.append(HISTORY_CELL.format(names=[a.conversation for a in questions] + ["xss-toolrun"]))
    # Last: a failing turn that raises, so the error line also reaches the page as a ClaudeError.
    cells.append("%%claude -c xss-error-raised\nxss-error: fail with HTML and raise")
    write_notebook(lab.root_dir / "xss_magic.ipynb", cells)
    nb, watch, title = open_watched(lab_page, lab, "xss_magic.ipynb")
    url = lab_page.url
    t_open = time.monotonic()

    nb.run_all(timeout=90)
    # Each question ends in its footer, or (a turn that failed before anything arrived) its warning line.
    for index in range(1, len(questions) + 1):
        nb.wait_output_text(index, re.compile("stop_reason|⚠|ClaudeError"), timeout=30)
    nb.wait_output_text(tool_cell, "stop_reason", timeout=30)
    nb.wait_output_text(len(cells) - 1, "ClaudeError", timeout=30)
    nb.wait_output_text(len(cells) - 2, "Prompt received.", timeout=30)
    t_done = time.monotonic()
    lab_page.wait_for_timeout(500)  # late handlers (image errors, MathJax typesetting) get their chance

    assert nb.output_texts(0)[0].strip() == "auto"  # no CLAUDE_MAGIC_DISPLAY leaked in: live display
    for index, ask in enumerate(questions, start=1):
        text = "\n".join(nb.output_texts(index))
        assert ("⚠" if ask.fails else "stop_reason") in text, (ask, text[:300])
    code = nb.output(1 + text_groups().index("code")).first.inner_text()
    for payload in _of("code"):
        if "shows_text" in payload:
            assert payload["shows_text"] in code, payload["id"]
    error_text = "\n".join(nb.output_texts(1 + [a.group for a in questions].index("error")))
    assert "Bad request (400)" in error_text and BY_ID["error-message-400"]["payload"] in error_text
    assert [r.status for r in emulator.requests].count(429) == 1  # the retry notice was shown
    tool_output = nb.output(tool_cell)
    tool_text = "\n".join(nb.output_texts(tool_cell))
    assert TOOL_RUN_CONTINUATION in tool_text and "1 tool round" in tool_text, tool_text[:500]
    assert "✓ fetch_page(" in tool_text and "raised ValueError: </pre></details>" in tool_text, tool_text[:2000]
    # The result sits in a closed <details>: its text is in the DOM (escaped, not dropped), not on screen.
    assert BY_ID["tool-result-breakout"]["payload"] in (tool_output.first.text_content() or "")
    assert_tools_ran(emulator)
    assert assert_dom_inert(tool_output, "%%claude --tools output") == 1

    state = assert_page_clean(nb, watch, title, url)
    assert state["mutations"] > 10 * len(questions), "live frames must have reached the page"
    save_output_screenshots(nb, artifacts, len(cells), "magic")
    record_timings(artifacts, lab_startup=lab.startup_seconds, open=t_open - t0 - lab.startup_seconds,
                   run_all=t_done - t_open, total=time.monotonic() - t0, mutations=state["mutations"])


PANEL_DRIVE_CELL = (
    "for _prompt in {prompts!r}:\n"
    "    assert panel.send(_prompt), _prompt\n"
    "    _state = panel.wait(60)\n"
    "    assert _state is not None, _prompt\n"
    "    print(_state.status)"
)


@pytest.mark.browser
def test_panel_runs_no_payload_in_jupyterlab(
    jupyterlab_factory: Callable[..., JupyterLab], emulator: Emulator, api_env: dict[str, str],
    lab_page: Any, artifacts: Path,
) -> None:
    t0 = time.monotonic()
    emulator.set_script(emulator_script())
    lab = lab_for_xss(jupyterlab_factory, api_env)
    questions = asks()
    cells = [
        f"%load_ext claude_magic\nfrom claude_magic import ChatPanel\n{TOOL_FUNCTIONS}",
        "panel = ChatPanel(conversation='xss-panel')\npanel",
        PANEL_DRIVE_CELL.format(prompts=[a.prompt for a in questions]),
        "ChatPanel(conversation='xss-panel')",  # the same turns, redrawn from history
        # A real tool run in a panel of its own (tools run in the panel's worker thread), then redrawn.
        "tool_panel = ChatPanel(conversation='xss-panel-tools', tools=[fetch_page, explode])\ntool_panel",
        PANEL_DRIVE_CELL.replace("panel.", "tool_panel.").format(prompts=[TOOL_RUN_PROMPT]),
        "ChatPanel(conversation='xss-panel-tools')",
    ]
    write_notebook(lab.root_dir / "xss_panel.ipynb", cells)
    nb, watch, title = open_watched(lab_page, lab, "xss_panel.ipynb")
    url = lab_page.url
    t_open = time.monotonic()

    nb.run_cell(0, timeout=30)
    nb.run_cell(1, timeout=30)
    live = nb.output(1).locator(".claude-magic-panel")
    live.wait_for(timeout=30_000)  # the widget view exists before the turns stream into it
    nb.run_cell(2, timeout=90)
    expected = ["error" if a.fails else "complete" for a in questions]
    statuses: list[str] = []
    deadline = time.monotonic() + 30  # the prompt can show [n] a moment before the last stream output
    while statuses != expected and time.monotonic() < deadline:
        lab_page.wait_for_timeout(100)
        statuses = "\n".join(nb.output_texts(2)).split()
    assert statuses == expected
    # Every answer ends with its footer, or (failed before anything arrived) its warning line alone.
    finished = ".claude-panel-answer:has(.claude-magic-footer), .claude-panel-answer:has(.claude-magic-warning)"
    live.locator(finished).nth(len(questions) - 1).wait_for(timeout=30_000)
    nb.run_cell(3, timeout=30)
    redrawn = nb.output(3).locator(".claude-magic-panel")
    redrawn.get_by_text("Retried fine.").wait_for(timeout=30_000)
    nb.run_cell(4, timeout=30)
    tool_live = nb.output(4).locator(".claude-magic-panel")
    tool_live.wait_for(timeout=30_000)
    nb.run_cell(5, timeout=90)
    nb.wait_output_text(5, "complete", timeout=30)
    tool_live.get_by_text(TOOL_RUN_CONTINUATION).wait_for(timeout=30_000)
    nb.run_cell(6, timeout=30)
    tool_redrawn = nb.output(6).locator(".claude-magic-panel")
    tool_redrawn.get_by_text(TOOL_RUN_CONTINUATION).wait_for(timeout=30_000)
    t_done = time.monotonic()
    lab_page.wait_for_timeout(500)

    live_text = live.inner_text()
    assert BY_ID["error-message-400"]["payload"] in live_text  # shown, as text
    assert BY_ID["user-prompt"]["payload"] in live_text
    # Offered no tools, the xss-tool turn's calls are shown live but never enter history (the API would
    # reject them there); tool calls redrawn from history are the tool panel's, checked below.
    assert BY_ID["tool-name-breakout"]["payload"] in live_text
    assert BY_ID["tool-name-breakout"]["payload"] not in redrawn.inner_text()
    tool_redrawn.get_by_text("Tool call").first.wait_for(timeout=30_000)
    tool_text = tool_live.inner_text()
    assert "✓ fetch_page(" in tool_text and "raised ValueError: </pre></details>" in tool_text, tool_text[:2000]
    assert BY_ID["tool-result-breakout"]["payload"] in (tool_live.text_content() or "")
    assert_tools_ran(emulator)
    for where, panel_view in (("tool panel", tool_live), ("tool panel from history", tool_redrawn)):
        assert assert_dom_inert(panel_view.locator(".widget-html-content"), where) > 2

    state = assert_page_clean(nb, watch, title, url)
    assert state["mutations"] > 10 * len(questions), "live frames must have reached the page"
    save_output_screenshots(nb, artifacts, len(cells), "panel")
    record_timings(artifacts, lab_startup=lab.startup_seconds, open=t_open - t0 - lab.startup_seconds,
                   run=t_done - t_open, total=time.monotonic() - t0, mutations=state["mutations"])


UNSAFE_RENDERER_CELL = (
    "# Negative control: raw HTML straight through, no sanitizer.\n"
    "import claude_magic.render.view as _view\n"
    "from markdown_it import MarkdownIt\n"
    "_view.render_markdown = MarkdownIt('commonmark', {'html': True}).render"
)


@pytest.mark.browser
def test_browser_check_catches_an_unsafe_renderer(
    jupyterlab_factory: Callable[..., JupyterLab], emulator: Emulator, api_env: dict[str, str],
    lab_page: Any, artifacts: Path,
) -> None:
    """The same checks, with the kernel's renderer swapped for an unsafe one, must see payloads run:
    otherwise the two tests above could pass because payloads never reach the page at all."""
    emulator.set_script(emulator_script())
    lab = lab_for_xss(jupyterlab_factory, api_env)
    cells = ["%load_ext claude_magic", UNSAFE_RENDERER_CELL, "%%claude -c xss-html\nxss-html: show the payloads"]
    write_notebook(lab.root_dir / "xss_control.ipynb", cells)
    nb, watch, _title = open_watched(lab_page, lab, "xss_control.ipynb")
    nb.run_all(timeout=60)
    nb.output(2).locator(".claude-magic-footer").wait_for(timeout=30_000)
    lab_page.wait_for_timeout(500)
    state: dict[str, Any] = lab_page.evaluate("() => window.__xssState()")
    nb.screenshot(artifacts / "control.png")
    ran = {BY_ID_N[n] for n in state["xss"] or []}
    (artifacts / "control.json").write_text(json.dumps({"ran": sorted(ran), "problems": state["problems"],
                                                        "requests": watch.foreign_requests}, indent=2))
    assert {"img-onerror", "script-tag", "details-ontoggle", "iframe-srcdoc"} <= ran
    assert any("<img> element" in p for p in state["problems"]) and state["seen"]
    assert any("attacker.example" in url for url in watch.foreign_requests)
