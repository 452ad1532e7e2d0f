"""Overhead per tool round through the real stack (emulator → SDK → engine), offline, no display, against
the SDK's own loop, `client.beta.messages.tool_runner(..., stream=True)`, on the same 5-round script.

    .venv/bin/python benchmarks/tool_rounds.py [--repeats N]

Per round, two gaps, measured the same way for both loops:

- message complete → tool starts: from the moment the loop's consumer sees the SDK's `message_stop`
  event of the tool_use message (our reducer; the runner's caller iterating its stream) to the first
  line of the tool function;
- tool returns → next request leaves: from the tool function's last line to `httpx2.Client.send` of
  the next POST /v1/messages (the transport both loops go through).

Prints medians over the repeats (one warm-up first) and the ratios claude_magic / tool_runner.
Numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2

from claude_magic.core import stream as core_stream
from claude_magic.core.engine import prepare_turn, run_exchange
from claude_magic.emulator import Emulator
from claude_magic.settings import ClaudeMagic

ROUNDS = 5
Marks = list[tuple[str, float]]
Samples = list[list[float]]  # per round, one gap per run
marks: Marks = []


def lookup(step: int) -> str:
    """Look a step up."""
    marks.append(("tool_start", time.perf_counter()))
    result = f"step {step} done"
    marks.append(("tool_end", time.perf_counter()))
    return result


def script() -> dict[str, Any]:
    turns: list[dict[str, Any]] = [
        {"match": "Go" if i == 0 else f"step {i - 1} done",
         "content": [{"type": "tool_use", "name": "lookup", "input": {"step": i}}]} for i in range(ROUNDS)]
    turns.append({"match": f"step {ROUNDS - 1} done", "content": "All steps done."})
    return {"turns": turns}


def gaps(run: Marks, first: str, then: str) -> list[float]:
    """Seconds from each `first` mark to the `then` mark right after it, in round order."""
    return [b[1] - a[1] for a, b in zip(run, run[1:], strict=False) if a[0] == first and b[0] == then]


def instrument() -> Callable[[], None]:
    """Mark requests at the transport and message_stop in our reducer; returns the undo."""
    original_send = httpx2.Client.send
    original_reduce = core_stream.reduce_event

    def timed_send(self: httpx2.Client, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.method == "POST" and request.url.path.endswith("/v1/messages"):
            marks.append(("request", time.perf_counter()))
        return original_send(self, request, *args, **kwargs)

    def timed_reduce(state: Any, event: Any, now: float) -> Any:
        if event.type == "message_stop":
            marks.append(("message_stop", time.perf_counter()))
        return original_reduce(state, event, now)

    httpx2.Client.send = timed_send  # type: ignore[method-assign]
    core_stream.reduce_event = timed_reduce  # type: ignore[assignment]

    def undo() -> None:
        httpx2.Client.send = original_send  # type: ignore[method-assign]
        core_stream.reduce_event = original_reduce  # type: ignore[assignment]

    return undo


def run_claude_magic(settings: ClaudeMagic) -> str:
    state = run_exchange(prepare_turn("Go", settings, tools=[lookup], max_tool_rounds=ROUNDS, conversation=None),
                         None)
    assert state.status == "complete" and state.tool_rounds == ROUNDS, state.error
    return state.text


def run_tool_runner(client: anthropic.Anthropic, model: str) -> str:
    # thread=False: the whole history every turn, as our loop sends it. (By default SDK 2.15's runner
    # continues a server-side message thread, a beta the emulator does not implement.)
    runner = client.beta.messages.tool_runner(
        model=model, max_tokens=1024, messages=[{"role": "user", "content": "Go"}],
        tools=[anthropic.beta_tool(lookup)], stream=True, max_iterations=ROUNDS + 1, thread=False)
    text = ""
    for message_stream in runner:
        for event in message_stream:
            if event.type == "message_stop":  # what the runner's caller sees, as our reducer does
                marks.append(("message_stop", time.perf_counter()))
        message = message_stream.get_final_message()
        text = "".join(block.text for block in message.content if block.type == "text")
    return text


def measure(run: Callable[[], str], emulator: Emulator, repeats: int) -> tuple[Samples, Samples, str]:
    """Per round: the samples of both gaps over `repeats` runs (after one warm-up)."""
    to_start: Samples = [[] for _ in range(ROUNDS)]
    to_request: Samples = [[] for _ in range(ROUNDS)]
    final = ""
    for repeat in range(repeats + 1):
        marks.clear()
        emulator.set_script(script())  # counts start over
        final = run()
        if repeat == 0:
            continue
        starts, requests = gaps(marks, "message_stop", "tool_start"), gaps(marks, "tool_end", "request")
        assert len(starts) == len(requests) == ROUNDS, (starts, requests, marks)
        for i in range(ROUNDS):
            to_start[i].append(starts[i])
            to_request[i].append(requests[i])
    return to_start, to_request, final


def ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    repeats = parser.parse_args().repeats
    undo = instrument()
    try:
        with Emulator(script=script(), tokens_per_second=0) as emulator:
            os.environ.update(ANTHROPIC_BASE_URL=emulator.base_url, ANTHROPIC_API_KEY="offline")
            settings = ClaudeMagic()
            client = anthropic.Anthropic(base_url=emulator.base_url, api_key="offline", max_retries=0)
            ours = measure(lambda: run_claude_magic(settings), emulator, repeats)
            sdk = measure(lambda: run_tool_runner(client, settings.model), emulator, repeats)
    finally:
        undo()
    print(f"{ROUNDS} tool rounds, {repeats} runs each (after a warm-up), emulator unthrottled; medians in ms")
    print(f"final answers: claude_magic {ours[2]!r}, tool_runner {sdk[2]!r}")
    print()
    header = (f"{'round':>5} | {'msg→tool: ours':>14} {'runner':>8} {'ratio':>6} | "
              f"{'tool→request: ours':>18} {'runner':>8} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    rows = [(str(i + 1), ours[0][i], sdk[0][i], ours[1][i], sdk[1][i]) for i in range(ROUNDS)]
    rows.append(("all", sum(ours[0], []), sum(sdk[0], []), sum(ours[1], []), sum(sdk[1], [])))
    for label, our_start, sdk_start, our_request, sdk_request in rows:
        print(f"{label:>5} | {ms(our_start):>14.3f} {ms(sdk_start):>8.3f} {ms(our_start) / ms(sdk_start):>6.2f} | "
              f"{ms(our_request):>18.3f} {ms(sdk_request):>8.3f} {ms(our_request) / ms(sdk_request):>6.2f}")


if __name__ == "__main__":
    main()
