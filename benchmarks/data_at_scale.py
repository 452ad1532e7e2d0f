"""Typed `map` against the raw SDK pattern, and the client's cost per row of a 10,000-row Message Batch.

    .venv/bin/python benchmarks/data_at_scale.py                      # 200 typed prompts, 10,000-row batch
    .venv/bin/python benchmarks/data_at_scale.py --prompts 50 --rows 2000

Part 1: `map(prompts, output=Model)` against the loop people write by hand: `AsyncAnthropic` +
`asyncio.Semaphore` + `asyncio.gather` over `client.messages.parse(output_format=Model)`, both on one
emulator in a subprocess (so the process CPU measured is the client's alone). Target: wall <= 1.10x.

Part 2: a 10,000-row typed batch, stage by stage, as `map(..., batch=True)` runs it: build (prepare the
turns and the batch requests), submit (create + record on disk), wait (the server's time, not the client's),
collect (stream the JSONL results into the rows), frame (`.to_frame()`). Client CPU per row over build,
submit, collect and frame (target <= 0.2 ms), the results' size, and the memory the collect step allocated
at its peak (tracemalloc) against that size: results are streamed, not held whole next to the rows. Then the
whole `map(..., batch=True)` once, end to end. Everything is printed in one run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import anthropic
import pandas  # noqa: F401 - imported up front, as in a notebook that has a DataFrame: not timed in .to_frame()
import pydantic

from claude_magic.core.models import DEFAULT_MODEL

API_KEY = "bench-key"


class Ticket(pydantic.BaseModel):
    category: Literal["billing", "bug", "feature", "other"]
    urgent: bool
    summary: str


def start_emulator(tokens_per_second: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_magic.emulator", "--port", "0", "--tokens-per-second", str(tokens_per_second)],
        stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().rsplit(" ", 1)[-1].strip()


def set_batch_seconds(base_url: str, seconds: float) -> None:
    request = urllib.request.Request(f"{base_url}/_emulator/batches", data=json.dumps({"seconds": seconds}).encode(),
                                     method="POST", headers={"content-type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def results_size(base_url: str, batch_id: str) -> int:
    request = urllib.request.Request(f"{base_url}/v1/messages/batches/{batch_id}/results",
                                     headers={"x-api-key": API_KEY})
    return len(urllib.request.urlopen(request, timeout=60).read())


async def raw_parse_loop(prompts: list[str], concurrency: int, max_tokens: int, stream: bool = False) -> list[Any]:
    """`messages.parse(output_format=Ticket)`, or with `stream` its streaming twin `messages.stream(output_format=)`."""
    client = anthropic.AsyncAnthropic(max_retries=2)
    slots = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> Any:
        async with slots:
            if stream:
                async with client.messages.stream(model=DEFAULT_MODEL, max_tokens=max_tokens, output_format=Ticket,
                                                  messages=[{"role": "user", "content": prompt}]) as events:
                    message = await events.get_final_message()
            else:
                message = await client.messages.parse(model=DEFAULT_MODEL, max_tokens=max_tokens,
                                                      output_format=Ticket,
                                                      messages=[{"role": "user", "content": prompt}])
            return message.parsed_output

    try:
        return list(await asyncio.gather(*(one(prompt) for prompt in prompts)))
    finally:
        await client.close()


def timed(run: Callable[[], Any]) -> tuple[Any, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def typed_map(args: argparse.Namespace) -> None:
    import claude_magic

    prompts = [f"ticket {i}: the invoice total is wrong, billing" for i in range(args.prompts)]
    print(f"\n## Typed map: {args.prompts} prompts, concurrency {args.concurrency}, "
          f"{args.tokens_per_second:g} tokens/s per stream")
    warm = prompts[: args.concurrency]
    asyncio.run(raw_parse_loop(warm, args.concurrency, 300))
    claude_magic.map(warm, output=Ticket, concurrency=args.concurrency, max_tokens=300, display="none")
    # Alternating runs, best of `--repeats` each: on a shared machine the load moves between runs.
    raw_runs, stream_runs, map_runs = [], [], []
    for _ in range(args.repeats):
        raw, *figures = timed(lambda: asyncio.run(raw_parse_loop(prompts, args.concurrency, 300)))
        raw_runs.append(figures)
        _, *figures = timed(lambda: asyncio.run(raw_parse_loop(prompts, args.concurrency, 300, stream=True)))
        stream_runs.append(figures)
        typed, *figures = timed(lambda: claude_magic.map(prompts, output=Ticket, concurrency=args.concurrency,
                                                         max_tokens=300, display="none"))
        map_runs.append(figures)
    (raw_wall, raw_cpu), (map_wall, map_cpu) = min(raw_runs), min(map_runs)
    stream_wall, stream_cpu = min(stream_runs)
    print(f"  best of {args.repeats} alternating runs each:")
    print(f"  raw AsyncAnthropic + messages.parse   wall {raw_wall:6.2f} s   CPU {raw_cpu:6.2f} s")
    print(f"  raw ... + messages.stream(output_format=) wall {stream_wall:6.2f} s   CPU {stream_cpu:6.2f} s"
          "  (streams, as map does)")
    print(f"  map(output=Ticket)                    wall {map_wall:6.2f} s   CPU {map_cpu:6.2f} s")
    print(f"  ratio to the raw parse loop: wall {map_wall / raw_wall:5.3f}x (target <= 1.10x), "
          f"CPU {map_cpu / raw_cpu:5.3f}x")
    print(f"  ratio to the raw streaming loop: wall {map_wall / stream_wall:5.3f}x, CPU {map_cpu / stream_cpu:5.3f}x")


def batch_stages(args: argparse.Namespace, base_url: str) -> None:
    import claude_magic
    from claude_magic.core import batches
    from claude_magic.core.client import get_client
    from claude_magic.core.turn import TurnState
    from claude_magic.settings import current_settings
    from claude_magic.surfaces.api import _prepare_batch
    from claude_magic.surfaces.batch_jobs import batches_folder
    from claude_magic.surfaces.replies import Replies
    from claude_magic.surfaces.reply import Reply

    rows = args.rows
    set_batch_seconds(base_url, 0)
    claude_magic.map(["warm-up"], batch=True, display="none")  # imports and the connection: not timed
    prompts = [f"row {i}: the app crashes on start, bug" for i in range(rows)]
    print(f"\n## A {rows:,}-row typed batch, stage by stage (client CPU; the emulator runs in a subprocess)")
    figures: dict[str, tuple[float, float]] = {}

    turns, wall, cpu = timed(lambda: _prepare_batch(prompts, None, None, 300, None, 1, output=Ticket))
    job, wall2, cpu2 = timed(lambda: batches.BatchJob.from_requests([t.request for t in turns], {"model": "bench"}))
    figures["build"] = (wall + wall2, cpu + cpu2)
    client = get_client(turns[0].client_settings)
    folder = batches_folder(current_settings())
    record, *figures["submit"] = timed(lambda: batches.submit_part(client, job, 0, range(rows), folder))
    _, *figures["wait (server)"] = timed(lambda: batches.wait_until_ended(client, record.id, lambda _b: None,
                                                                          sleep=lambda s: time.sleep(s) is None))
    states = [turn.state for turn in turns]
    size = results_size(base_url, record.id)
    counts, *figures["collect"] = timed(lambda: batches.collect(client, record, states, turns[0].output,
                                                                offline=False))
    # Memory on a second collect into fresh rows (tracemalloc slows what it traces: not timed).
    fresh = [TurnState(model=s.model, prompt=s.prompt, started_at=0.0, typed=True) for s in states]
    tracemalloc.start()
    batches.collect(client, record, fresh, turns[0].output, offline=False)
    retained, collect_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del fresh
    frame, *figures["frame"] = timed(lambda: Replies(Reply(s) for s in states).to_frame())
    assert counts["succeeded"] == rows and len(frame) == rows and frame["error"].isna().all()
    client_cpu = sum(figures[name][1] for name in ("build", "submit", "collect", "frame"))
    for name, (wall, cpu) in figures.items():
        print(f"  {name:<14} wall {wall:7.3f} s   client CPU {cpu:7.3f} s   {cpu / rows * 1000:6.3f} ms/row")
    print(f"  client CPU per row (build + submit + collect + frame): {client_cpu / rows * 1000:.3f} ms "
          "(target <= 0.2 ms)")
    print(f"  results: {size / 1e6:.1f} MB of JSONL; collect allocated {retained / 1e6:.1f} MB kept in the rows "
          f"(answers, parsed objects, the SDK's Message per row) and peaked {(collect_peak - retained) / 1e6:.2f} MB "
          f"above that: the JSONL is streamed line by line, never held whole; record "
          f"{Path(record.path).stat().st_size / 1e3:.0f} kB on disk")

    replies, wall, cpu = timed(lambda: claude_magic.map(prompts, output=Ticket, max_tokens=300, batch=True,
                                                        display="none", resubmit=True))
    print(f"  end to end, map(..., batch=True): wall {wall:.2f} s, client CPU {cpu:.2f} s "
          f"({cpu / rows * 1000:.3f} ms/row, the server's processing not included), {len(replies.failed)} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tokens-per-second", type=float, default=100.0)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of the typed-map comparison")
    args = parser.parse_args()
    emulator, base_url = start_emulator(args.tokens_per_second)
    history = tempfile.mkdtemp(prefix="scale-bench-")
    os.environ.update(ANTHROPIC_BASE_URL=base_url, ANTHROPIC_API_KEY=API_KEY, CLAUDE_MAGIC_HISTORY_DIR=history)
    print(f"emulator {base_url} (subprocess), records in {history}")
    try:
        typed_map(args)
        batch_stages(args, base_url)
    finally:
        emulator.terminate()
        emulator.wait(10)


if __name__ == "__main__":
    main()
