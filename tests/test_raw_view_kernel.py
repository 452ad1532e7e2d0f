"""The raw view in a real kernel (jupyter_client, IOPub read as a notebook would): the event lines appear
live in one output area, in wire order with the pings, and end as one clean output with the footer."""

from __future__ import annotations

from typing import Any

import pytest
from harness.kernel import KernelSession, outputs_text, reconstruct_outputs
from test_raw_view import SCRIPT, WORDS, names, wire_event_names

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.kernel


@pytest.fixture(autouse=True)
def thinking_as_the_model_sends_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests compare the client's stream with the model's own defaults: thinking display omitted (a
    signature-only thinking block), not the summarized reasoning claude_magic asks for by default. Kernels
    started by the tests inherit it."""
    monkeypatch.setenv("CLAUDE_MAGIC_THINKING_DISPLAY", "omitted")


def event_lines(text: str) -> list[str]:
    """The event lines of a raw view's text/plain (the footer follows a blank line)."""
    return text.split("\n\n")[0].splitlines()


def test_magic_raw_view_streams_live_then_ends_with_the_footer(magic_kernel: KernelSession,
                                                               emulator: Emulator) -> None:
    emulator.set_script(SCRIPT)
    emulator.set_pace(tokens_per_second=120, chunk_tokens=1)  # 120 tokens: about a second on the wire
    wire = wire_event_names(emulator, "count words")
    result = magic_kernel.execute("%%claude --raw\ncount words")
    assert result.status == "ok"

    # What the output area showed after each message, as JupyterLab applies them.
    seen = [outputs_text(reconstruct_outputs(result.messages[: i + 1]), mime="text/html")
            for i in range(len(result.messages))]
    counts = [html.count("content_block_delta") for html in seen if "claude-magic-footer" not in html]
    growing = [n for i, n in enumerate(counts) if n and all(n > m for m in counts[:i])]
    assert len(growing) >= 4, f"the event lines must arrive in several growing frames, saw {counts}"

    final = result.final_outputs()
    assert len(final) == 1
    text = final[0]["data"]["text/plain"]
    assert names(event_lines(text)) == ["HTTP 200", *wire]
    assert wire.count("ping") >= 3
    assert "stop_reason: end_turn" in text.split("\n\n")[-1]
    html = final[0]["data"]["text/html"]
    assert '<pre class="claude-magic-events"' in html and "claude-magic-footer" in html


def test_final_mode_sends_the_raw_view_once(kernel_factory: Any, api_env: dict[str, str],
                                            emulator: Emulator) -> None:
    emulator.set_script(SCRIPT)
    kernel = kernel_factory(env={**api_env, "CLAUDE_MAGIC_DISPLAY": "final"})
    kernel.execute("%load_ext claude_magic")
    wire = wire_event_names(emulator, "hostile")
    result = kernel.execute("%%claude --raw\nhostile")
    assert [m["header"]["msg_type"] for m in result.displays()] == ["display_data"]
    data = result.displays()[0]["content"]["data"]
    assert names(event_lines(data["text/plain"])) == ["HTTP 200", *wire]
    # Model output is escaped on every line: no tag, no control character, no bidi override reaches the page.
    assert "<img" not in data["text/html"] and "&lt;" in data["text/html"]
    assert "\x1b" not in data["text/plain"] and "\u202e" not in data["text/plain"]
    assert r"\u001b" in data["text/plain"] and r"\u202e" in data["text/plain"]


def test_ask_with_display_events(magic_kernel: KernelSession, emulator: Emulator) -> None:
    emulator.set_script(SCRIPT)
    wire = wire_event_names(emulator, "count words")
    result = magic_kernel.execute('import claude_magic\nreply = claude_magic.ask("count words", display="events")\n'
                                  "print(len(reply.text))")
    assert result.status == "ok"
    assert result.stdout().strip() == str(len(WORDS))
    displays = [out for out in result.final_outputs() if out["output_type"] == "display_data"]
    assert len(displays) == 1
    assert names(event_lines(displays[0]["data"]["text/plain"])) == ["HTTP 200", *wire]
