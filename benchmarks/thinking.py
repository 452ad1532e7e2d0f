"""Thinking on today's default model: first visible token with display summarized vs omitted, and the input
tokens a re-run earlier cell costs against an append-only conversation. One run, both measured, ratios printed.

    python benchmarks/thinking.py [--repeats 5] [--tokens-per-second 200] [--turns 6]

First visible token: from asking (`claude_magic.ask`, in process, real SDK, the bundled emulator pacing every
token, thinking included) to the first character a person can read — the thinking summary under
"summarized", the answer's first word under "omitted" (whose thinking block carries only a signature but
takes its tokens all the same).

Re-run cost: a conversation of N turns (`%%claude --key k1 … kN`), then one more turn asked two ways: appended
(every thinking block still valid, the history read from the prompt cache) and after re-running cell 2 (the
turns after it lose their thinking, `core.preserved`, and the cache no longer matches after cell 1). Input
tokens as the emulator reports them: uncached input, cache reads and cache writes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from claude_magic.core.models import DEFAULT_MODEL  # noqa: E402
from claude_magic.emulator import Emulator  # noqa: E402

ANSWER = "Zebra crossings are painted stripes that tell drivers to stop for people on foot. " * 6


class _FirstSeen:
    """A sink noting when the first readable character (any) and the first answer text arrived."""

    def __init__(self) -> None:
        self.visible: float | None = None
        self.answer: float | None = None

    def start(self, state: Any) -> None:
        pass

    def affords(self, state: Any) -> bool:
        return True

    def frame(self, state: Any) -> None:
        now = time.monotonic()
        if self.visible is None and state.first_token_at is not None:
            self.visible = state.first_token_at
        if self.answer is None and any(block.kind == "text" and block.parts for block in state.blocks):
            self.answer = now

    def finish(self, state: Any) -> None:
        self.frame(state)


def first_visible(display: str, repeats: int) -> tuple[list[float], list[float]]:
    """(first readable character, first answer character) after asking, in seconds, per run."""
    from claude_magic.core.engine import prepare_turn, run_exchange
    from claude_magic.settings import ClaudeMagic

    settings = ClaudeMagic(throttle_interval=0.0)
    visible, answer = [], []
    for _ in range(repeats):
        turn = prepare_turn("Why stripes?", settings, model=DEFAULT_MODEL, thinking_display=display, new=True)
        sink = _FirstSeen()
        state = run_exchange(turn, sink)
        assert state.error is None and sink.visible is not None and sink.answer is not None, state.error
        visible.append(sink.visible - state.started_at)
        answer.append(sink.answer - state.started_at)
    return visible, answer


def rerun_cost(turns: int) -> dict[str, dict[str, Any]]:
    from IPython.core.interactiveshell import InteractiveShell

    from claude_magic.core.history import STORE

    shell = InteractiveShell.instance(history_length=0)
    shell.run_line_magic("load_ext", "claude_magic")
    results: dict[str, dict[str, Any]] = {}
    for label in ("append-only", "re-run cell 2"):
        STORE.get().reset()
        for index in range(1, turns + 1):
            shell.run_cell_magic("claude", f"--key k{index} --display final", f"Question {index} about zebras?")
        if label == "re-run cell 2":
            shell.run_cell_magic("claude", "--key k2 --display final", "Question 2 about zebras, asked again?")
        shell.run_cell_magic("claude", "--key next --display final --out r", "One more question?")
        reply = shell.user_ns["r"]
        usage = reply.state.total_usage
        results[label] = {"input": usage.input_tokens, "cache read": usage.cache_read_input_tokens,
                          "cache write": usage.cache_creation_input_tokens, "note": reply.state.thinking_note or ""}
    InteractiveShell.clear_instance()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens-per-second", type=float, default=200.0)
    parser.add_argument("--turns", type=int, default=6)
    args = parser.parse_args()
    script = {"turns": [{"match": "stripes", "content": ANSWER}]}
    with Emulator(script=script, tokens_per_second=args.tokens_per_second) as emu:
        os.environ.update({"ANTHROPIC_BASE_URL": emu.base_url, "ANTHROPIC_API_KEY": "sk-ant-benchmark-key"})
        summarized = first_visible("summarized", args.repeats)
        omitted = first_visible("omitted", args.repeats)
        emu.set_pace(None)
        costs = rerun_cost(args.turns)
    (s_visible, s_answer), (o_visible, o_answer) = ((statistics.median(v), statistics.median(a))
                                                    for v, a in (summarized, omitted))
    print(f"## First visible token, {DEFAULT_MODEL}, emulator at {args.tokens_per_second:g} tokens/s, "
          f"median of {args.repeats}\n")
    print("| thinking display | first readable character | first answer character |\n|---|---|---|")
    print(f"| summarized (default) | {s_visible:.3f} s (thinking) | {s_answer:.3f} s |")
    print(f"| omitted | {o_visible:.3f} s | {o_answer:.3f} s |")
    print(f"\nfirst readable character, omitted / summarized: {o_visible / s_visible:.1f}×")
    print(f"thinking before the answer (summarized): {s_answer - s_visible:.3f} s of reasoning on screen. "
          f"Omitted answers after {o_answer:.3f} s: where that is far below {s_answer:.3f} s, the emulator did "
          "not spend the hidden thinking's time (the API does: there, omitted shows nothing until about the "
          "summarized answer's first character)\n")
    print(f"## Input tokens of turn {args.turns + 1}: append-only vs after re-running cell 2\n")
    print("| conversation | input | cache read | cache write | total input | thinking |\n|---|---|---|---|---|---|")
    totals = {}
    for label, usage in costs.items():
        totals[label] = usage["input"] + usage["cache read"] + usage["cache write"]
        print(f"| {label} | {usage['input']:,} | {usage['cache read']:,} | {usage['cache write']:,} | "
              f"{totals[label]:,} | {usage['note'] or 'all carried'} |")
    a, r = costs["append-only"], costs["re-run cell 2"]
    print(f"\nre-run / append-only: total input {totals['re-run cell 2'] / totals['append-only']:.2f}×, "
          f"uncached input {r['input'] / max(a['input'], 1):.1f}×")


if __name__ == "__main__":
    main()
