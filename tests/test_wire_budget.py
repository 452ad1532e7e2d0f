"""CI guard for the streaming design: what an 8k-token answer sends over IOPub stays a small multiple of
the answer itself.

Timing is left to `benchmarks/streaming.py`; this is the part that does not depend on the machine. A
real kernel streams a generated 8k-token answer from the emulator through the real SDK, and the test
adds up the bytes of what the kernel sent to draw it (display data for the magic, widget comm data
for the panel). The yardstick is the final answer rendered once (its HTML plus its text). A regression
to per-token re-rendering (~2,000× here), or to re-sending the whole answer on every throttled frame
(~13× at this pace), breaks the budget; both counterfactuals are computed for the same answer and
asserted to break it, so the test is known to be able to fail.

The pace is fast (3,000 tokens/s: ~2.7 s of streaming, ~27 frames at the default 0.1 s throttle)
so the test is quick; per-frame costs grow with the number of frames, which the benchmark measures
at 100 and 1,000 tokens/s.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest
from harness.kernel import KernelSession
from support import after_thinking

from claude_magic.emulator import Emulator, generate_markdown, tokenize
from claude_magic.render.markdown import render_markdown

pytestmark = pytest.mark.kernel

@pytest.fixture(autouse=True)
def thinking_as_the_model_sends_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests compare the client's stream with the model's own defaults: thinking display omitted (a
    signature-only thinking block), not the summarized reasoning claude_magic asks for by default. Kernels
    started by the tests inherit it."""
    monkeypatch.setenv("CLAUDE_MAGIC_THINKING_DISPLAY", "omitted")


TOKENS = 8000
SEED = 5
PACE = 3000  # tokens per second
BUDGET = 3.0  # × the final answer's rendered size
PROMPT = "wire budget please"
SCRIPT = {"turns": [{"match": PROMPT, "generate": {"tokens": TOKENS, "seed": SEED}}]}
NAIVE_PLAIN = "<IPython.core.display.Markdown object>"  # text/plain of update_display(Markdown(...))


def utf8(text: str) -> int:
    return len(text.encode())


def bundle_bytes(data: dict[str, Any]) -> int:
    """Bytes of a display message's data: every text mime value."""
    return sum(utf8(value) for value in data.values() if isinstance(value, str))


def naive_bytes(text: str) -> int:
    """What per-token `update_display(Markdown(all_text))` sends: the whole prefix, every token."""
    total = prefix = 0
    for token in tokenize(text):
        prefix += utf8(token)
        total += prefix + utf8(NAIVE_PLAIN)
    return total


def whole_answer_bytes(text: str, frames: int) -> int:
    """What re-sending the whole answer so far (HTML + text) on each of `frames` frames would send."""
    tokens = tokenize(text)
    total = 0
    for frame in range(1, frames + 1):
        prefix = "".join(tokens[: len(tokens) * frame // frames])
        total += utf8(render_markdown(prefix)) + utf8(prefix)
    return total


def check_budget(label: str, sent: int, final: int, frames: int) -> None:
    answer = generate_markdown(TOKENS, seed=SEED)
    naive, whole = naive_bytes(answer), whole_answer_bytes(answer, frames)
    print(f"{label}: sent {sent:,} B in {frames} frames = {sent / final:.2f}× the final answer ({final:,} B); "
          f"per-token re-rendering would send {naive / final:,.0f}×, whole-answer frames {whole / final:.1f}×")
    assert frames >= 10, "too few frames to tell incremental from whole-answer drawing"
    # The budget can fail: both ways of re-rendering the whole answer break it.
    assert naive > BUDGET * final and whole > BUDGET * final
    assert sent <= BUDGET * final, f"{label} sent {sent / final:.2f}× the final answer (budget {BUDGET}×)"


@pytest.fixture
def fast_emulator(emulator: Emulator, magic_kernel: KernelSession) -> Emulator:
    emulator.set_script(SCRIPT)
    emulator.set_pace(tokens_per_second=PACE, chunk_tokens=1)
    magic_kernel.execute(f"%config ClaudeMagic.max_tokens = {2 * TOKENS}")  # the default would cut it short
    return emulator


def test_magic_sends_a_small_multiple_of_the_answer(magic_kernel: KernelSession, fast_emulator: Emulator) -> None:
    result = magic_kernel.execute(f"%%claude\n{PROMPT}", timeout=120)

    final = result.final_outputs()
    assert len(final) == 1 and "claude-magic-footer" in final[0]["data"]["text/html"]
    assert after_thinking(final[0]["data"]["text/plain"]).startswith(generate_markdown(TOKENS, seed=SEED))
    displays = result.displays()
    sent = sum(bundle_bytes(m["content"]["data"]) for m in displays)
    frames = len(result.of_type("update_display_data"))
    check_budget("magic", sent, bundle_bytes(final[0]["data"]), frames)


def test_panel_sends_a_small_multiple_of_the_answer(magic_kernel: KernelSession, fast_emulator: Emulator) -> None:
    if importlib.util.find_spec("claude_magic.surfaces.panel") is None:
        pytest.skip("claude_magic.surfaces.panel does not exist yet")
    magic_kernel.execute("from claude_magic import ChatPanel\npanel = ChatPanel(conversation='wire-budget')")

    start = len(magic_kernel.all_messages())
    result = magic_kernel.execute(
        "import json\n"
        "from claude_magic.render.view import answer_bundle\n"
        f"assert panel.send({PROMPT!r})\n"
        "turn = panel.wait(120)\n"
        "bundle = answer_bundle(turn)\n"
        "print(json.dumps({'status': turn.status, 'stop': turn.stop_reason, 'tokens': turn.tokens_so_far,\n"
        "                  'final': sum(len(v.encode()) for v in bundle.values())}))",
        timeout=150,
    )
    summary = json.loads(result.stdout().strip().splitlines()[-1])
    assert (summary["status"], summary["stop"]) == ("complete", "end_turn")
    # the answer's tokens and the default model's (short) thinking before them
    assert TOKENS < summary["tokens"] < TOKENS + 200
    # The turn's thread sends the widget messages; the last one can trail the cell's idle status.
    magic_kernel.wait_for(lambda m: m["header"]["msg_type"] in ("comm_open", "comm_msg")
                          and "claude-magic-footer" in json.dumps(m["content"]["data"]), timeout=10)
    comms = [m for m in magic_kernel.all_messages()[start:] if m["header"]["msg_type"] in ("comm_open", "comm_msg")]
    sent = sum(utf8(json.dumps(m["content"]["data"], ensure_ascii=False)) for m in comms)
    frames = sum(1 for m in comms if m["header"]["msg_type"] == "comm_msg" and "value" in m["content"]["data"].get(
        "state", {}))
    check_budget("panel", sent, summary["final"], frames)
