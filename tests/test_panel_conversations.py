"""The panel on conversations that change: Continue after a cut-off answer, turns replaced or dropped by
cells, a conversation loaded back. In this process (ipywidgets work without a frontend), real SDK, emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_panel import answer_html, fresh_history, transcript_html  # noqa: F401 - fresh_history: autouse

from claude_magic import ChatPanel
from claude_magic.core.history import STORE, Turn
from claude_magic.emulator import Emulator

LONG = "Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu."
SCRIPT = {"turns": [{"match": "greek", "content": LONG}]}


@pytest.fixture
def panel(emulator: Emulator, api_env: dict[str, str]) -> Iterator[ChatPanel]:
    emulator.set_script(SCRIPT)
    made = ChatPanel()
    yield made
    made.close()
    made.wait(5)


def test_continue_appears_for_a_cut_off_answer_and_finishes_it_in_place(panel: ChatPanel,
                                                                          emulator: Emulator) -> None:
    panel.model_picker.value = "claude-haiku-4-5"  # takes a prefill (the later models: test_thinking_client.py)
    panel._settings().max_tokens = 4
    assert panel.continue_button.layout.display == "none"
    assert panel.send("Say the greek letters")
    state = panel.wait(10)
    assert state is not None and state.stop_reason == "max_tokens"
    assert panel.continue_button.layout.display != "none"  # shown: the answer can go on
    panel._settings().max_tokens = 4096
    assert panel.continue_answer()
    state = panel.wait(10)
    assert state is not None and state.stop_reason == "end_turn"
    assert panel.continue_button.layout.display == "none"
    assert emulator.requests[-1].messages[-1] == {"role": "assistant",
                                                  "content": [{"type": "text", "text": "Alpha beta gamma delta"}]}
    # One answer, made of both parts, in the transcript and in history.
    assert transcript_html(panel).count("Alpha beta") == 1 and "lambda mu." in answer_html(panel)
    turns = STORE.get().turns
    assert len(turns) == 1 and turns[0].answer_text == LONG and turns[0].source == "panel"


def test_continue_with_nothing_cut_off_says_so(panel: ChatPanel) -> None:
    assert not panel.continue_answer()
    assert "Nothing to continue" in transcript_html(panel)


def test_turns_replaced_or_dropped_elsewhere_are_redrawn(panel: ChatPanel) -> None:
    conversation = STORE.get()

    def turn(question: str, answer: str, owner: str) -> Turn:
        return Turn([{"role": "user", "content": question},
                     {"role": "assistant", "content": [{"type": "text", "text": answer}]}], owner=owner, source="cell")

    conversation.commit_turn(turn("Question A", "Answer A", "cell-a"))
    conversation.commit_turn(turn("Question B", "Answer B", "cell-b"))
    panel.refresh()
    assert "Answer A" in transcript_html(panel) and "Answer B" in transcript_html(panel)
    old = conversation.owned_by("cell-a")
    assert old is not None
    conversation.commit_turn(turn("Question A, edited", "Answer A, again", "cell-a"), replace=old.id)
    panel.refresh()
    html = transcript_html(panel)
    assert "Answer A, again" in html and "Answer A<" not in html and html.index("again") < html.index("Answer B")
    conversation.drop_owned_by(["cell-b"])
    panel.refresh()
    assert "Answer B" not in transcript_html(panel)
