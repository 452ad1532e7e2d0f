"""What a notebook shows: a real kernel runs %%claude against the emulator; we read IOPub."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from harness.kernel import KernelSession, outputs_text, reconstruct_outputs
from support import after_thinking, largest_block, text_blocks

from claude_magic.emulator import Emulator
from claude_magic.render.markdown import render_markdown
from claude_magic.surfaces.sinks import LiveCellSink

pytestmark = pytest.mark.kernel

ANSWER = (
    "## Caching\n\n"
    "HTTP caching keeps copies of responses close to the client.\n\n"
    "- **Freshness** with `Cache-Control: max-age`\n"
    "- **Validation** with `ETag` and `304 Not Modified`\n\n"
    "That is the gist of it, explained in a few more words so the answer takes a while to stream."
)
USAGE = {"input_tokens": 321, "output_tokens": 45, "cache_read_input_tokens": 300}
SCRIPT = {
    "turns": [
        {"match": "Explain HTTP caching", "content": [{"type": "text", "text": ANSWER}], "usage": USAGE},
        {"match": "follow-up", "content": [{"type": "text", "text": "Yes, **exactly**."}]},
        {"match": "very long answer", "generate": {"tokens": 4000, "seed": 3}},
        {"match": "long answer", "generate": {"tokens": 400, "seed": 3}},
    ]
}
TIMINGS = re.compile(r"first token [\d.]+ s · [\d,.]+ tokens/s")


def html_of(message: dict[str, Any]) -> str:
    return message["content"]["data"].get("text/html", "")


def visible(markup: str) -> str:
    """The words an HTML fragment shows, minus Markdown marks and whitespace: a partly streamed
    `**bold` or code span shows its opening mark literally until it closes."""
    return re.sub(r"[`*▍\s]+", "", html.unescape(re.sub(r"<[^>]+>", "", markup)))


def test_answer_streams_in_growing_updates_then_footer(magic_kernel: KernelSession, emulator: Emulator) -> None:
    emulator.set_script(SCRIPT)
    emulator.set_pace(tokens_per_second=60, chunk_tokens=1)
    result = magic_kernel.execute("%%claude\nExplain HTTP caching in three bullet points.")

    displays = result.displays()
    assert "Waiting for Claude" in html_of(displays[0])
    # What the output area showed after each message, as JupyterLab would apply them.
    # Live frames are HTML only (the final output adds text/plain).
    seen = [outputs_text(reconstruct_outputs(result.messages[: i + 1]), mime="text/html")
            for i in range(len(result.messages))]
    # (the default model's thinking comes first, folded; the answer's growth is what is measured here)
    streaming = [visible(re.sub(r"<details.*?</details>", "", text, flags=re.S)) for text in seen
                 if text and "stop_reason" not in text and "Waiting" not in text]
    # When a block finishes, its segment is finalized and the next segment opens: two messages
    # sent back to back, so between them the tail is briefly absent. Count the new high points.
    growing = [text for i, text in enumerate(streaming) if all(len(text) > len(t) for t in streaming[:i])]
    assert len(growing) >= 5, "the answer must arrive in several growing states, not one blob"
    assert all(visible(render_markdown(ANSWER)).startswith(text) for text in growing)
    # Live frames carry the piece being written; the final output is the whole answer plus footer.
    final = result.final_outputs()
    assert len(final) == 1
    text = after_thinking(final[0]["data"]["text/plain"])
    assert text.startswith(ANSWER)
    footer = text[len(ANSWER):].strip()
    assert TIMINGS.search(footer)
    assert "321 in / 45 out / 300 cache read · stop_reason: end_turn" in footer
    assert "<h2>Caching</h2>" in final[0]["data"]["text/html"]
    assert "claude-magic-footer" in final[0]["data"]["text/html"]


def test_frames_resend_only_the_unfinished_block(magic_kernel: KernelSession, emulator: Emulator) -> None:
    emulator.set_script(SCRIPT)
    emulator.set_pace(tokens_per_second=1000, chunk_tokens=1)
    result = magic_kernel.execute("%%claude\nPlease write a very long answer.")
    final_html = result.final_outputs()[0]["data"]["text/html"]
    live = [html_of(m) for m in result.displays()][:-1]  # the last display is the final rendering
    assert len(live) >= 10
    # A frame re-sends finished blocks not yet sealed (< SEAL_BYTES) and the block being written,
    # whatever the answer's length; re-rendering the whole answer would pass this bound within the
    # first fifth of this one. A block's size is measured, not assumed: highlighted code differs
    # between Pygments releases. The slack covers the cursor and a half-written block's markup.
    bound = LiveCellSink.SEAL_BYTES + largest_block(final_html) + 200
    assert len(final_html) > 5 * bound
    assert max(len(frame) for frame in live) <= bound


def test_follow_up_request_carries_the_first_exchange(magic_kernel: KernelSession, emulator: Emulator) -> None:
    emulator.set_script(SCRIPT)
    magic_kernel.execute("%%claude\nExplain HTTP caching in three bullet points.")
    magic_kernel.execute("%%claude\nIs this a follow-up?")
    messages = emulator.requests[-1].messages
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0] == {"role": "user", "content": "Explain HTTP caching in three bullet points."}
    # The answer goes back exactly as received: the default model's thinking block, then the text.
    assert messages[1]["content"][0]["type"] == "thinking" and messages[1]["content"][0]["signature"]
    assert text_blocks(messages[1]["content"]) == [{"type": "text", "text": ANSWER}]
    assert messages[2] == {"role": "user", "content": "Is this a follow-up?"}


def test_final_mode_sends_once_and_matches_the_live_final_state(
    kernel_factory: Any, api_env: dict[str, str], emulator: Emulator
) -> None:
    emulator.set_script(SCRIPT)
    emulator.set_pace(tokens_per_second=300)
    live = kernel_factory(env=api_env)
    final = kernel_factory(env={**api_env, "CLAUDE_MAGIC_DISPLAY": "final"})
    cell = "%load_ext claude_magic\n%%claude\nExplain HTTP caching in three bullet points."
    results = []
    for kernel in (live, final):
        kernel.execute("%load_ext claude_magic")
        results.append(kernel.execute(cell.split("\n", 1)[1]))
    live_result, final_result = results
    assert [m["header"]["msg_type"] for m in final_result.displays()] == ["display_data"]
    assert final_result.of_type("clear_output") == []

    def masked(result: Any) -> list[Any]:
        return [{mime: TIMINGS.sub("T", value) for mime, value in out["data"].items()}
                for out in result.final_outputs()]

    assert masked(live_result) == masked(final_result)


def test_max_tokens_footer_says_cut_off(magic_kernel: KernelSession, emulator: Emulator) -> None:
    emulator.set_script(SCRIPT)
    result = magic_kernel.execute("%%claude --max-tokens 10\nExplain HTTP caching in three bullet points.")
    text = result.final_text()
    assert "⚠ cut off: the answer reached max_tokens" in text
    assert "stop_reason: max_tokens" in text


def test_no_api_key_is_one_line_without_traceback(kernel_factory: Any, emulator: Emulator) -> None:
    kernel = kernel_factory(env={"ANTHROPIC_BASE_URL": emulator.base_url})
    kernel.execute("%load_ext claude_magic")
    result = kernel.execute("%%claude\nhi", allow_error=True)
    error = result.error()
    assert error is not None and error["ename"] == "ClaudeError"
    assert "set ANTHROPIC_API_KEY" in error["evalue"]
    assert len(result.traceback_text().strip().splitlines()) == 1
    assert emulator.requests == []


def test_interrupt_mid_stream_keeps_partial_and_history_valid(
    magic_kernel: KernelSession, emulator: Emulator
) -> None:
    emulator.set_script(SCRIPT)
    emulator.set_pace(tokens_per_second=40)
    msg_id = magic_kernel.execute_async("%%claude\nPlease write a long answer.")
    magic_kernel.wait_for(lambda m: "▍" in m["content"].get("data", {}).get("text/html", ""),  # text showing
                          msg_id=msg_id, timeout=30)
    magic_kernel.interrupt()
    result = magic_kernel.collect(msg_id, timeout=30)
    assert result.status == "error"
    text, raised = result.final_text(), result.traceback_text()
    assert raised.startswith("ClaudeInterrupted: Interrupted after")
    assert "partial answer kept, not added to history" in raised
    # The partial answer is still shown above the error line, which is said once (raised, not drawn too).
    assert len(text.strip()) > 0 and "stop_reason" in text
    assert "Interrupted after" not in text and "⚠" not in text

    emulator.set_pace(tokens_per_second=0)
    magic_kernel.execute("%%claude\nIs this a follow-up?")
    assert emulator.requests[-1].status == 200
    assert [m["role"] for m in emulator.requests[-1].messages] == ["user"]  # the interrupted turn was not kept
