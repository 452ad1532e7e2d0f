"""The code the benchmark runs: notebook cells (through JupyterLab) and the raw-SDK reference kernel.

Measurement hooks are limited to our own package: `claude_magic.core.stream.reduce_event` is wrapped
to note when the first text delta comes out of the SDK. The SDK itself is never touched.
"""

from __future__ import annotations

from claude_magic.core.models import DEFAULT_MODEL

MAX_TOKENS = 64_000  # above every benchmarked length: no answer is cut off by max_tokens
SETUP_TAG = "BENCH_KERNEL "
REPORT_TAG = "BENCH_REPORT "
RUN_CELL = 2  # notebook layout: 0 setup, 1 panel, 2 the measured cell, 3 bookkeeping
PANEL_CELL = 1
BOOK_CELL = 3

SETUP = f"""\
# claude_magic streaming benchmark: setup. Measurement hooks only; nothing here changes behaviour.
%load_ext claude_magic
%config ClaudeMagic.max_tokens = {MAX_TOKENS}
import gc, json, os, time
import anthropic
from IPython.display import Markdown, display
from ipykernel.connect import get_connection_file
import claude_magic.core.stream as _bench_stream

BENCH = {{}}
_bench_reduce = _bench_stream.reduce_event


def _bench_reduce_event(state, event, now):
    # When our loop receives the first text delta from the SDK (epoch seconds, like the IOPub tap).
    if "first_delta" not in BENCH and event.type == "content_block_delta" and event.delta.type == "text_delta":
        BENCH["first_delta"] = time.time()
    return _bench_reduce(state, event, now)


_bench_stream.reduce_event = _bench_reduce_event
_bench_client = anthropic.Anthropic(max_retries=0)


def bench_naive(prompt):
    # The baseline from the issue: stream with the SDK, re-render the whole answer on every token.
    handle = display(Markdown(""), display_id=True)
    text = ""
    with _bench_client.messages.stream(
        model={DEFAULT_MODEL!r}, max_tokens={MAX_TOKENS}, messages=[{{"role": "user", "content": prompt}}]
    ) as stream:
        for delta in stream.text_stream:
            if not text:
                BENCH["first_delta"] = time.time()
            text += delta
            handle.update(Markdown(text))
    BENCH["naive_status"] = "complete"


def bench_raw(prompt):
    # The reference loop, here in the measured kernel: calibrates the reference kernel against it.
    with _bench_client.messages.stream(
        model={DEFAULT_MODEL!r}, max_tokens={MAX_TOKENS}, messages=[{{"role": "user", "content": prompt}}]
    ) as stream:
        for _ in stream.text_stream:
            pass
    BENCH["raw_status"] = "complete"


def bench_prep():
    BENCH.clear()
    panel = globals().get("bench_panel")
    if panel is not None:
        panel.new_conversation()
    gc.collect()


def bench_report(tag):
    turn = None
    if BENCH.get("surface") == "magic":
        turn = get_ipython().magics_manager.registry["ClaudeMagics"].last_turn
    elif BENCH.get("surface") == "panel":
        turn = bench_panel.last_turn
    if turn is not None:
        BENCH.update(status=turn.status, tokens=turn.tokens_so_far, chars=len(turn.text))
    print({REPORT_TAG!r} + json.dumps({{"tag": tag, **BENCH}}))


print({SETUP_TAG!r} + json.dumps({{"pid": os.getpid(), "connection_file": get_connection_file()}}))
"""

PANEL = """\
from claude_magic import ChatPanel
bench_panel = ChatPanel(conversation="bench")
bench_panel
"""


def prep_cell(tag: str, surface: str) -> str:
    return f"# {tag}\nbench_prep()\nBENCH['surface'] = {surface!r}"


def report_cell(tag: str) -> str:
    return f"bench_report({tag!r})"


def run_cell(surface: str, prompt: str, timeout: float) -> str:
    """The measured cell. `prompt` is unique per run and doubles as the tap's marker."""
    if surface == "magic":
        return f"%%claude --new\n{prompt}"
    if surface == "panel":
        # Like pressing Send; waiting keeps the cell busy so its idle marks the end of the turn.
        return f"assert bench_panel.send({prompt!r})\n_ = bench_panel.wait({timeout:.0f})"
    if surface == "naive":
        return f"bench_naive({prompt!r})"
    if surface == "raw":
        return f"bench_raw({prompt!r})"
    raise ValueError(surface)


RAW_SETUP = f"""\
import os
import anthropic

_raw_client = anthropic.Anthropic(max_retries=0)


def bench_raw(prompt):
    with _raw_client.messages.stream(
        model={DEFAULT_MODEL!r}, max_tokens={MAX_TOKENS}, messages=[{{"role": "user", "content": prompt}}]
    ) as stream:
        for _ in stream.text_stream:
            pass


print(os.getpid())
"""


def raw_cell(prompt: str) -> str:
    return f"bench_raw({prompt!r})"
