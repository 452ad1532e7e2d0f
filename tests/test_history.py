"""Turns that belong to cells, saved conversations, export and import: the history model and its files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from claude_magic.core.history import Conversation, ConversationStore, Turn
from claude_magic.core.persist import (
    HistoryFileError,
    HistoryFiles,
    export_json,
    export_markdown,
    read_export,
)
from claude_magic.core.pricing import PriceError, estimate_cost, format_cost, parse_overrides, prices_for
from claude_magic.core.turn import TurnState, Usage
from claude_magic.render.footer import footer_text


def exchange(question: str, answer: str, **facts: Any) -> Turn:
    return Turn([{"role": "user", "content": question}, {"role": "assistant",
                                                          "content": [{"type": "text", "text": answer}]}], **facts)


def texts(conversation: Conversation) -> list[str]:
    return [turn.answer_text for turn in conversation.turns]


def test_a_cells_turn_is_replaced_in_place_and_later_turns_stay() -> None:
    conversation = Conversation("c")
    conversation.commit_turn(exchange("q1", "a1", owner="cell-1"))
    conversation.commit_turn(exchange("q2", "a2", owner="cell-2"))
    conversation.commit_turn(exchange("q3", "a3"))
    first = conversation.owned_by("cell-1")
    assert first is not None
    # What the re-run cell sends: only the turns before its own.
    assert conversation.request_messages("q1 again", before=first.id) == [{"role": "user", "content": "q1 again"}]
    placement = conversation.commit_turn(exchange("q1 again", "a1 again", owner="cell-1"), replace=first.id)
    assert placement is not None and placement.describe() == "replaced turn 1 of 3"
    assert texts(conversation) == ["a1 again", "a2", "a3"]
    assert conversation.turns[0].id == first.id  # the same turn, answered anew


def test_replacing_a_turn_that_is_gone_appends() -> None:
    conversation = Conversation("c")
    placement = conversation.commit_turn(exchange("q", "a"), replace="no-such-turn")
    assert placement is not None and not placement.replaced and placement.describe() == "turn 1 of 1"


def test_turns_of_deleted_cells_are_dropped_with_every_call_of_the_cell() -> None:
    conversation = Conversation("c")
    conversation.commit_turn(exchange("q1", "a1", owner="cell-1"))
    conversation.commit_turn(exchange("q2", "a2", owner="cell-1#1"))  # the cell's second %claude
    conversation.commit_turn(exchange("q3", "a3", owner="cell-2"))
    conversation.commit_turn(exchange("q4", "a4"))
    assert conversation.drop_owned_by(["cell-1"]) == 2
    assert texts(conversation) == ["a3", "a4"]
    assert conversation.drop_owned_by(["unknown"]) == 0


def test_rewrites_count_every_change_but_appends() -> None:
    conversation = Conversation("c")
    conversation.commit_turn(exchange("q", "a", owner="x"))
    assert conversation.rewrites == 0
    conversation.commit_turn(exchange("q", "b", owner="x"), replace=conversation.turns[0].id)
    assert conversation.rewrites == 1
    conversation.reset()
    assert conversation.rewrites == 2 and len(conversation) == 0


def test_tool_definitions_follow_the_turns_that_use_them() -> None:
    conversation = Conversation("c")
    weather = {"name": "weather", "input_schema": {"type": "object"}}
    turn = exchange("q", "a", owner="x", tools={"weather": weather})
    conversation.commit_turn(turn)
    assert conversation.tool_definitions == {"weather": weather}
    conversation.commit_turn(exchange("q", "no tools now", owner="x"), replace=conversation.turns[0].id)
    assert conversation.tool_definitions == {}


def test_an_empty_answer_is_not_committed() -> None:
    conversation = Conversation("c")
    turn = Turn([{"role": "user", "content": "q"}, {"role": "assistant", "content": []}])
    assert conversation.commit_turn(turn) is None and len(conversation) == 0


# -- saved conversations -------------------------------------------------------------------------------


def saver_for(root: Path) -> tuple[ConversationStore, HistoryFiles]:
    store = ConversationStore()
    files = HistoryFiles(lambda: root)
    store.set_listener(files.on_change)
    return store, files


def save_folder(root: Path, conversation: str = "default") -> Path:
    """The one save of `conversation` under `root` (a folder `conversation@time`)."""
    (folder,) = root.glob(f"{conversation}@*")
    return folder


def saved_files(root: Path, name: str = "default") -> list[str]:
    return sorted(path.name for path in (save_folder(root, name) / "turns").iterdir())


def test_every_committed_turn_is_saved_and_loads_back(tmp_path: Path) -> None:
    store, files = saver_for(tmp_path)
    conversation = store.get()
    conversation.commit_turn(exchange("q1", "a1", owner="c1", usage={"input_tokens": 10, "output_tokens": 2}))
    conversation.commit_turn(exchange("q2", "a2"))
    index = json.loads((save_folder(tmp_path) / "index.json").read_text())
    appended = (save_folder(tmp_path) / "appended.txt").read_text().split()
    assert index["turns"] + appended == conversation.turn_ids and index["name"] == "default"
    assert not any(path.name.endswith(".tmp") for path in tmp_path.rglob("*"))  # renamed into place
    loaded = files.load("default")
    assert [turn.to_dict() for turn in loaded] == [turn.to_dict() for turn in conversation.turns]


def test_a_replaced_turn_overwrites_its_file_and_a_dropped_one_is_deleted(tmp_path: Path) -> None:
    store, files = saver_for(tmp_path)
    conversation = store.get()
    conversation.commit_turn(exchange("q1", "a1", owner="c1"))
    conversation.commit_turn(exchange("q2", "a2", owner="c2"))
    first = conversation.turns[0].id
    conversation.commit_turn(exchange("q1", "a1 again", owner="c1"), replace=first)
    assert [turn.answer_text for turn in files.load("default")] == ["a1 again", "a2"]
    conversation.drop_owned_by(["c1"])
    assert saved_files(tmp_path) == [f"{conversation.turns[0].id}.json"]
    assert [turn.answer_text for turn in files.load("default")] == ["a2"]


def test_no_api_key_or_header_is_saved(tmp_path: Path) -> None:
    store, _files = saver_for(tmp_path)
    store.get().commit_turn(exchange("q", "a"))
    saved = "".join(path.read_text() for path in tmp_path.rglob("*.json"))
    assert "sk-ant" not in saved and "x-api-key" not in saved and "authorization" not in saved.lower()


def test_a_new_kernel_saves_apart_instead_of_overwriting_the_earlier_save(tmp_path: Path) -> None:
    store, files = saver_for(tmp_path)
    store.get().commit_turn(exchange("old question", "old answer"))
    old = save_folder(tmp_path).name
    # A restarted kernel: a new store and saver over the same folder, starting clean.
    store2, files2 = saver_for(tmp_path)
    store2.get().commit_turn(exchange("new question", "new answer"))
    saves = files2.saved()
    assert {entry.conversation for entry in saves} == {"default"} and len(saves) == 2
    new = next(entry.name for entry in saves if entry.ours)
    assert new != old and new.startswith("default@")
    assert [turn.answer_text for turn in files2.load(old)] == ["old answer"]
    assert [turn.answer_text for turn in files2.load(new)] == ["new answer"]


def test_reset_keeps_the_save_so_far_aside(tmp_path: Path) -> None:
    store, files = saver_for(tmp_path)
    conversation = store.get()
    conversation.commit_turn(exchange("before the reset", "a"))
    conversation.reset()
    conversation.commit_turn(exchange("after the reset", "b"))
    saves = files.saved()
    assert [(entry.conversation, entry.turns) for entry in saves] == [("default", 1), ("default", 1)]
    (aside,) = [entry.name for entry in saves if not entry.ours]
    assert files.load(aside)[0].prompt_text == "before the reset"
    assert files.load("default")[0].prompt_text == "after the reset"  # a conversation's name: its newest save


def test_saving_does_not_grow_with_the_conversation(tmp_path: Path) -> None:
    store, _files = saver_for(tmp_path)
    conversation = store.get()
    for i in range(30):
        conversation.commit_turn(exchange(f"q{i}", "a" * 200))
    before = {path: path.stat().st_mtime_ns for path in (save_folder(tmp_path) / "turns").iterdir()}
    conversation.commit_turn(exchange("last", "answer"))
    after = {path: path.stat().st_mtime_ns for path in before}
    assert before == after  # the earlier turns' files were not written again


def test_saving_failures_are_one_line_and_keep_the_turn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the history folder should be")
    store, files = saver_for(blocker)
    conversation = store.get()
    conversation.commit_turn(exchange("q", "a"))
    conversation.commit_turn(exchange("q2", "a2"))
    assert len(conversation) == 2
    err = capsys.readouterr().err
    assert err.count("could not save conversation") == 1 and "Traceback" not in err


def test_an_append_a_crash_cut_short_is_left_out(tmp_path: Path) -> None:
    store, files = saver_for(tmp_path)
    conversation = store.get()
    conversation.commit_turn(exchange("q1", "a1"))
    conversation.commit_turn(exchange("q2", "a2"))
    with open(save_folder(tmp_path) / "appended.txt", "a") as appended:
        appended.write("0123456789abcdef")  # a crash in the middle of the next append: no newline yet
    assert [turn.answer_text for turn in files.load("default")] == ["a1", "a2"]


def test_changes_of_order_fold_the_appended_ids_into_the_index(tmp_path: Path) -> None:
    store, files = saver_for(tmp_path)
    conversation = store.get()
    for number in range(3):
        conversation.commit_turn(exchange(f"q{number}", f"a{number}", owner=f"c{number}"))
    conversation.drop_owned_by(["c1"])
    assert not (save_folder(tmp_path) / "appended.txt").exists()
    index = json.loads((save_folder(tmp_path) / "index.json").read_text())
    assert index["turns"] == conversation.turn_ids
    assert [turn.answer_text for turn in files.load("default")] == ["a0", "a2"]


def test_a_corrupt_save_is_one_clear_error(tmp_path: Path) -> None:
    store, files = saver_for(tmp_path)
    store.get().commit_turn(exchange("q", "a"))
    turn_file = next((save_folder(tmp_path) / "turns").iterdir())
    turn_file.write_text("{not json")
    with pytest.raises(HistoryFileError, match="cannot be read"):
        files.load("default")
    with pytest.raises(HistoryFileError, match="No saved conversation 'other'"):
        files.load("other")


def test_export_and_import_round_trip(tmp_path: Path) -> None:
    conversation = Conversation("c")
    conversation.commit_turn(exchange("q1", "a1", owner="cell", model="m", stop_reason="end_turn"))
    export_json(conversation, tmp_path / "c.json")
    turns = read_export(tmp_path / "c.json")
    assert [turn.messages for turn in turns] == [turn.messages for turn in conversation.turns]
    assert turns[0].source == "import" and turns[0].owner is None


def test_markdown_export_reads_like_a_transcript(tmp_path: Path) -> None:
    conversation = Conversation("c")
    weather = {"name": "weather", "input_schema": {"type": "object"}}
    conversation.commit_turn(Turn([
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "weather",
                                           "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "3 °C"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "It is 3 °C."}]},
    ], tools={"weather": weather}, model="claude-sonnet-5-5", usage={"input_tokens": 9, "output_tokens": 4},
        stop_reason="end_turn"))
    export_markdown(conversation, tmp_path / "c.md")
    text = (tmp_path / "c.md").read_text()
    for expected in ("## Turn 1", "**user**", "Weather in Oslo?", "*tool call* `weather`", '"city": "Oslo"',
                     "*tool result*", "3 °C", "It is 3 °C.", "9 in / 4 out", "stop_reason: end_turn"):
        assert expected in text


@pytest.mark.parametrize(("messages", "tools", "problem"), [
    ([{"role": "user", "content": "q"}, {"role": "user", "content": "q2"},
      {"role": "assistant", "content": "a"}], {}, "alternate"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}], {}, "non-empty"),
    ([{"role": "user", "content": "q"},
      {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}]},
      {"role": "user", "content": "no result"},
      {"role": "assistant", "content": "a"}], {"w": {"name": "w", "input_schema": {"type": "object"}}},
     "tool_result"),
    ([{"role": "user", "content": "q"},
      {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}]},
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]},
      {"role": "assistant", "content": "a"}], {}, "must define tools"),
])
def test_an_import_the_api_would_reject_loads_nothing(tmp_path: Path, messages: list[dict[str, Any]],
                                                      tools: dict[str, Any], problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": "claude_magic.conversation", "version": 1, "name": "x",
                                "turns": [{"messages": messages, "tools": tools}]}))
    with pytest.raises(HistoryFileError, match=problem):
        read_export(path)


def test_a_file_that_is_no_export_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(HistoryFileError, match="not a conversation exported by claude_magic"):
        read_export(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(HistoryFileError, match="not a JSON file"):
        read_export(tmp_path / "broken.json")
    with pytest.raises(HistoryFileError, match="No such file"):
        read_export(tmp_path / "missing.json")


# -- cost estimates ------------------------------------------------------------------------------------


def test_cost_uses_the_longest_matching_prefix() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert estimate_cost("claude-opus-5-5", usage) == pytest.approx(24.0)  # not claude-opus-5's 30
    assert estimate_cost("claude-opus-5", usage) == pytest.approx(30.0)
    assert estimate_cost("claude-sonnet-5-5", Usage(0, 0, cache_read_input_tokens=1_000_000)) == pytest.approx(0.10)
    assert estimate_cost("some-other-model", usage) is None


def test_price_overrides_win_and_bad_ones_are_one_line() -> None:
    overrides = parse_overrides({"claude-sonnet-5-5": {"input": 1, "output": 1, "cache_write": 1, "cache_read": 1}})
    assert prices_for("claude-sonnet-5-5-20261001", overrides) == overrides["claude-sonnet-5-5"]
    with pytest.raises(PriceError, match="needs numbers"):
        parse_overrides({"x": {"input": 1}})


def test_the_footer_shows_the_estimate_and_where_the_turn_went() -> None:
    state = TurnState(model="claude-sonnet-5-5", prompt="p", started_at=0.0, status="complete",
                      usage=Usage(1000, 100), stop_reason="end_turn")
    state.cost = estimate_cost(state.model, state.usage)
    state.history_note = "replaced turn 2 of 5"
    assert footer_text(state).endswith(f"{format_cost(0.003)} (estimate) · replaced turn 2 of 5")
    assert format_cost(0.003) == "≈ $0.0030"


def test_two_kernels_writing_beside_each_other_keep_their_saves_whole(tmp_path: Path) -> None:
    """Kernel A asks A-one, A-two; kernel B (same notebook) asks B-one; A asks A-three. Neither's save mixes
    in the other's turns, and A's three turns are in one save, in order."""
    store_a, files_a = saver_for(tmp_path)
    store_b, files_b = saver_for(tmp_path)
    store_a.get().commit_turn(exchange("A-one", "a1"))
    store_a.get().commit_turn(exchange("A-two", "a2"))
    store_b.get().commit_turn(exchange("B-one", "b1"))
    store_a.get().commit_turn(exchange("A-three", "a3"))
    saves = {entry.name: [turn.prompt_text for turn in files_a.load(entry.name)] for entry in files_a.saved()}
    assert sorted(saves.values()) == [["A-one", "A-two", "A-three"], ["B-one"]]
    assert [entry.turns for entry in files_a.saved() if entry.ours] == [3]
    assert [entry.turns for entry in files_b.saved() if entry.ours] == [1]


def test_the_history_folder_keeps_itself_out_of_git(tmp_path: Path) -> None:
    import shutil
    import subprocess

    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    repository = tmp_path / "project"
    repository.mkdir()
    subprocess.run([git, "init", "-q"], cwd=repository, check=True)
    (repository / "analysis.ipynb").write_text("{}")
    store, _files = saver_for(repository / ".claude_magic" / "history" / "analysis")
    store.get().commit_turn(exchange("my private question", "an answer about my data"))
    assert (repository / ".claude_magic" / ".gitignore").read_text().splitlines()[-1] == "*"
    subprocess.run([git, "add", "."], cwd=repository, check=True)
    staged = subprocess.run([git, "diff", "--cached", "--name-only"], cwd=repository, check=True,
                            capture_output=True, text=True).stdout.split()
    assert staged == ["analysis.ipynb"]


def test_an_existing_folder_gets_no_gitignore_written_into_it(tmp_path: Path) -> None:
    # Like pytest's cache: only a folder the saver creates is marked; the user's own folders are left alone.
    store, _files = saver_for(tmp_path / "history" / "nb")
    store.get().commit_turn(exchange("q", "a"))
    assert not (tmp_path / ".gitignore").exists() and (tmp_path / "history" / ".gitignore").exists()


def test_markdown_export_keeps_the_offline_label_and_an_answers_headings_inside_its_turn(tmp_path: Path) -> None:
    from markdown_it import MarkdownIt

    answer = ("## Plan\n\nFirst this.\n\nDetails\n-------\n\n> ## Quoted heading\n\n"
              "```python\n# a comment, not a heading\n```\n")
    conversation = Conversation("c")
    conversation.commit_turn(Turn([{"role": "user", "content": "# Why?\nPlan it."},
                                   {"role": "assistant", "content": [{"type": "text", "text": answer}]}],
                                  model="claude-sonnet-5-5", usage={"input_tokens": 3, "output_tokens": 9},
                                  stop_reason="end_turn", offline=True))
    conversation.commit_turn(exchange("q2", "a2", model="claude-sonnet-5-5"))  # from the API: no label
    export_markdown(conversation, tmp_path / "c.md")
    text = (tmp_path / "c.md").read_text()
    footers = [line for line in text.splitlines() if line.startswith("*claude-sonnet-5-5")]
    assert footers[0] == "*claude-sonnet-5-5 · offline emulator, not Claude · 3 in / 9 out · stop_reason: end_turn*"
    assert "offline emulator" not in footers[1]
    tokens = MarkdownIt("commonmark").parse(text)
    headings = [(token.tag, tokens[number + 1].content) for number, token in enumerate(tokens)
                if token.type == "heading_open"]
    # Every heading of a message sits below its turn's `## Turn N`; the code block is untouched.
    assert ("h2", "Turn 1 (code)") in headings and ("h3", "Why?") in headings
    assert ("h4", "Plan") in headings and ("h4", "Details") in headings
    assert "> #### Quoted heading" in text and "# a comment, not a heading" in text
    assert [tag for tag, _ in headings if tag in ("h1", "h2")] == ["h1", "h2", "h2"]
