"""What a person reads, without a browser: no emoji status icons, `%claude history` kept to a readable
size, a turn that failed before anything arrived drawn as its error line alone, `-f text` waiting
visibly, and `%claude tokens` counting turns as `%claude history` does. (The browser measures the same
things on screen in `test_looks_browser.py`.)"""

from __future__ import annotations

import re
from typing import Any

import pytest
from harness.kernel import KernelSession
from support import after_thinking

from claude_magic.core.history import STORE, Conversation, Turn
from claude_magic.core.tools import Outcome, ToolCallView
from claude_magic.core.turn import Block, ErrorInfo, TurnState
from claude_magic.emulator import Emulator
from claude_magic.render.view import answer_bundle, block_html, block_text, status_html
from claude_magic.surfaces.history_view import ANSWER_CHARS, PROMPT_CHARS, HistoryView

# Characters whose default presentation is an emoji (Unicode's Emoji_Presentation=Yes, below U+1F000):
# without an emoji font they are drawn as empty boxes. Every code point from U+1F000 on is one as well.
_EMOJI_PRESENTATION = {
    0x231A, 0x231B, *range(0x23E9, 0x23ED), 0x23F0, 0x23F3, 0x25FD, 0x25FE, 0x2614, 0x2615, *range(0x2648, 0x2654),
    0x267F, 0x2693, 0x26A1, 0x26AA, 0x26AB, 0x26BD, 0x26BE, 0x26C4, 0x26C5, 0x26CE, 0x26D4, 0x26EA, 0x26F2, 0x26F3,
    0x26F5, 0x26FA, 0x26FD, 0x2705, 0x270A, 0x270B, 0x2728, 0x274C, 0x274E, *range(0x2753, 0x2756), 0x2757,
    *range(0x2795, 0x2798), 0x27B0, 0x27BF, 0x2B1B, 0x2B1C, 0x2B50, 0x2B55,
}  # fmt: skip


def emoji_in(text: str) -> list[str]:
    return [ch for ch in text if ord(ch) >= 0x1F000 or ord(ch) in _EMOJI_PRESENTATION]


def _tool_blocks() -> list[Block]:
    use = Block(kind="tool_use", tool_name="get_weather", snapshot={"city": "Paris"}, complete=True)
    cut = Block(kind="tool_use", tool_name="get_weather", snapshot={"city": "Pa"}, cut_off=True)
    results = []
    for status, outcome in (("running", None), ("done", Outcome("Sunny", preview="Sunny", size="5 characters")),
                            ("error", Outcome("ValueError: no", is_error=True, kind="error", preview="ValueError: no")),
                            ("interrupted", None), ("stopped", None)):
        call = ToolCallView(tool_use_id="toolu_1", name="get_weather", call_text="get_weather(city='Paris')",
                            status=status, elapsed=0.5, outcome=outcome)
        results.append(Block(kind="tool_result", call=call))
    return [use, cut, *results]


def test_nothing_drawn_uses_an_emoji_as_an_icon() -> None:
    from claude_magic.core.context import Attachment, summary_line
    from claude_magic.surfaces.context_line import attachment_bundle

    waiting = TurnState(prompt="p", model="m", started_at=0.0)
    drawn = [status_html(waiting), *(block_html(b) + block_text(b) for b in _tool_blocks())]
    attachment = Attachment(name="df", kind="pandas DataFrame", blocks=({"type": "text", "text": "x"},),
                            size="3 rows × 2 columns", tokens=12)
    drawn += [summary_line([attachment]), *attachment_bundle([attachment]).values()]
    assert "Waiting for Claude" in drawn[0] and "get_weather" in drawn[1]
    assert not emoji_in("".join(drawn)), emoji_in("".join(drawn))


def _conversation(turns: list[tuple[str, str]]) -> Conversation:
    conversation = STORE.get("looks-history")
    conversation.reset()
    conversation.load([Turn(messages=[{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                            source="cell", model="claude-sonnet-5-5", usage={"input_tokens": 1, "output_tokens": 2})
                       for prompt, answer in turns])
    return conversation


def test_history_folds_turns_clips_long_text_and_keeps_headings_below_the_turn() -> None:
    huge_prompt = "lorem ipsum " * 17_000  # 204,000 characters
    long_answer = "# A title\n\n## A section\n\n" + "Sentence after sentence. " * 2_000
    bundle = HistoryView(_conversation([(huge_prompt, long_answer), ("short question", "### Short\n\nanswer")]))
    shown = bundle._repr_mimebundle_()
    markup, text = shown["text/html"], shown["text/plain"]
    assert len(huge_prompt) + len(long_answer) > 250_000
    assert len(text) < PROMPT_CHARS + ANSWER_CHARS + 2_000 and len(markup) < 3 * (PROMPT_CHARS + ANSWER_CHARS)
    assert f"{len(huge_prompt) - PROMPT_CHARS:,} more characters" in text
    assert f"{len(long_answer) - ANSWER_CHARS:,} more characters" in markup
    # Folded: one <details> a turn, only the newest open; headings moved below the turn's own label.
    assert markup.count("<details") == 2 and markup.count("<details open") == 1
    assert markup.rindex("<details") == markup.index("<details open")  # the newest turn is the open one
    assert not re.search(r"<h[1-3]>", markup) and "<h4>A title</h4>" in markup and "<h6>Short</h6>" in markup
    assert text.startswith("Conversation 'looks-history' · 2 turns")


def _failed_before_anything(raised: bool) -> TurnState:
    state = TurnState(prompt="hello", model="gpt-4", started_at=0.0, status="error", error_raised=raised)
    state.error = ErrorInfo("not_found", "Claude API error 404 (not_found_error): model: gpt-4")
    return state


def test_a_turn_that_failed_before_anything_arrived_is_its_error_line_alone() -> None:
    shown = answer_bundle(_failed_before_anything(raised=False))
    assert "stop_reason" not in shown["text/plain"] + shown["text/html"]
    assert shown["text/plain"].count("\n") == 0 and "model: gpt-4" in shown["text/plain"]
    assert answer_bundle(_failed_before_anything(raised=True)) == {"text/plain": "", "text/html": ""}


@pytest.mark.kernel
def test_unknown_model_shows_one_line(magic_kernel: KernelSession) -> None:
    failed = magic_kernel.execute("%%claude -m gpt-4\nhello", allow_error=True)
    # What the cell shows: drawn outputs, printed text, and the error (a UsageError prints to stderr;
    # an exception of the package's own is an error output, kept to one line).
    shown = "".join(out.get("text", "") or out.get("data", {}).get("text/plain", "")
                    or "\n".join(out.get("traceback", [])) for out in failed.final_outputs())
    assert "stop_reason" not in shown and "0 in / 0 out" not in shown, shown
    assert "gpt-4" in shown and len(shown.strip().splitlines()) == 1, shown


@pytest.mark.kernel
def test_text_format_shows_the_waiting_line_until_the_answer(magic_kernel: KernelSession, emulator: Emulator) -> None:
    emulator.set_script({"turns": [{"match": "plain please", "content": "Plain *answer*."}]})
    emulator.set_pace(tokens_per_second=20, chunk_tokens=1)
    result = magic_kernel.execute("%%claude -f text\nplain please")
    displays = result.displays()
    assert displays[0]["content"]["data"] == {"text/plain": "Waiting for Claude…"}
    final = result.final_outputs()
    assert len(final) == 1 and after_thinking(final[0]["data"]["text/plain"]).startswith("Plain *answer*.")
    assert "text/html" not in final[0]["data"] and "stop_reason: end_turn" in final[0]["data"]["text/plain"]


def test_tokens_counts_turns_as_history_numbers_them(shell: Any, emulator: Emulator,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_cell("def get_weather(city: str) -> str:\n    'The weather.'\n    return 'Sunny'")
    for cell in ("%%claude --tools get_weather\nWeather in Paris?", "%%claude\nThanks."):
        assert shell.run_cell(cell).success
    capsys.readouterr()
    assert shell.run_cell("%claude tokens").success
    printed = capsys.readouterr().out
    turns = len(STORE.get())
    messages = sum(len(turn.messages) for turn in STORE.get().turns)
    assert turns == 2 and messages > 2 * turns  # the tool round added messages
    assert "(2 turns of history, 1 tool;" in printed, printed


@pytest.mark.kernel
def test_final_display_of_a_raised_failure_leaves_no_empty_output(magic_kernel: KernelSession) -> None:
    """nbval and nbconvert (display final) save what is sent: a raised failure before anything arrived
    sends no empty display, only its error line."""
    failed = magic_kernel.execute("%%claude -m gpt-4 --display final\nhello", allow_error=True)
    assert not [out for out in failed.final_outputs() if out.get("output_type") == "display_data"]
