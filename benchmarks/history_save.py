"""Time to save one committed turn, at 10 and at 500 turns of history.

    python benchmarks/history_save.py [--repeats 200]

Each repeat commits one new turn to a conversation of N turns (the saver writes it: its own file, then
the index of turn ids) and removes it again untimed, so N stays put. The baseline, in the same run, is
what a single JSON file per conversation would cost: the whole history written to a temporary file and
renamed over the old one. Turns are realistic in size (a 600-character question, a 2,400-character
answer). Prints the medians and the ratios: ours at 500 ÷ ours at 10 (the target: flat), and ours ÷ the
whole-file baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from claude_magic.core.history import ConversationStore, Turn
from claude_magic.core.persist import HistoryFiles

QUESTION = "How do I cache this response? " * 20
ANSWER = "Use Cache-Control with max-age, and validate with ETag. " * 43


def make_turn(number: int, owner: str | None = None) -> Turn:
    return Turn([{"role": "user", "content": f"{number}: {QUESTION}"},
                 {"role": "assistant", "content": [{"type": "text", "text": ANSWER}]}],
                owner=owner, model="claude-sonnet-5-5", usage={"input_tokens": 900, "output_tokens": 600})


def ours(turns: int, repeats: int, folder: Path) -> list[float]:
    store = ConversationStore()
    files = HistoryFiles(lambda: folder)
    store.set_listener(files.on_change)
    conversation = store.get(f"bench-{turns}")
    for number in range(turns):
        conversation.commit_turn(make_turn(number))
    times = []
    for repeat in range(repeats):
        turn = make_turn(turns + repeat, owner="timed")
        started = time.perf_counter()
        conversation.commit_turn(turn)
        times.append(time.perf_counter() - started)
        conversation.drop_owned_by(["timed"])
    return times


def whole_file(turns: int, repeats: int, folder: Path) -> list[float]:
    history = [make_turn(number).to_dict() for number in range(turns)]
    path = folder / f"whole-{turns}.json"
    times = []
    for repeat in range(repeats):
        history.append(make_turn(turns + repeat).to_dict())
        started = time.perf_counter()
        handle, temporary = tempfile.mkstemp(dir=folder)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(json.dumps({"turns": history}, ensure_ascii=False, separators=(",", ":")))
        os.replace(temporary, path)
        times.append(time.perf_counter() - started)
        history.pop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    medians: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for turns in (10, 500):
            medians["ours", turns] = statistics.median(ours(turns, args.repeats, Path(tmp) / "ours"))
            medians["whole", turns] = statistics.median(whole_file(turns, args.repeats, Path(tmp)))
    print(f"Saving one turn (median of {args.repeats}), claude_magic's per-turn files vs. one whole file\n")
    print("| history | per-turn files (ours) | whole file (baseline) | ours ÷ baseline |")
    print("|---|---|---|---|")
    for turns in (10, 500):
        ours_ms, whole_ms = medians["ours", turns] * 1000, medians["whole", turns] * 1000
        print(f"| {turns} turns | {ours_ms:.3f} ms | {whole_ms:.3f} ms | {ours_ms / whole_ms:.2f}× |")
    growth = medians["ours", 500] / medians["ours", 10]
    baseline_growth = medians["whole", 500] / medians["whole", 10]
    print(f"\nours at 500 ÷ ours at 10: {growth:.2f}× (whole file: {baseline_growth:.1f}×)")


if __name__ == "__main__":
    main()
