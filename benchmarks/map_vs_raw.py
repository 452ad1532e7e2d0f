"""`claude_magic.map()` against the raw SDK pattern it wraps, in one process, on one emulator.

    .venv/bin/python benchmarks/map_vs_raw.py                 # 200 prompts, concurrency 16, 100 tokens/s
    .venv/bin/python benchmarks/map_vs_raw.py --prompts 50 --tokens 50

The reference is the loop people write by hand: `AsyncAnthropic` + `asyncio.Semaphore(16)` +
`asyncio.gather`, streaming each answer with `messages.stream` and reading `text_stream`. Then `map()` with
its progress bar (text on stderr here) and with `display="none"`, so the bar's share of the cost shows.
The emulator runs in a subprocess, so the process CPU measured is the client's alone. The script prints
wall time, process CPU and the ratios to the raw loop; it asserts nothing about timings
(targets: wall <= 1.10x, CPU <= 1.5x).
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
from collections.abc import Callable
from typing import Any

import anthropic

from claude_magic.core.models import DEFAULT_MODEL

API_KEY = "bench-key"


def start_emulator(tokens: int, tokens_per_second: float) -> tuple[subprocess.Popen[str], str]:
    script = {"turns": [{"match": "prompt", "generate": {"tokens": tokens, "seed": 11}}]}
    path = os.path.join(tempfile.mkdtemp(prefix="map-bench-"), "script.json")
    with open(path, "w") as file:
        json.dump(script, file)
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_magic.emulator", "--port", "0", "--script", path,
         "--tokens-per-second", str(tokens_per_second)],
        stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # "Emulator listening on http://127.0.0.1:PORT"
    return process, line.rsplit(" ", 1)[-1].strip()


async def raw_loop(prompts: list[str], concurrency: int, max_tokens: int) -> list[str]:
    client = anthropic.AsyncAnthropic(max_retries=2)
    slots = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> str:
        async with slots, client.messages.stream(
                model=DEFAULT_MODEL, max_tokens=max_tokens,
                messages=[{"role": "user", "content": prompt}]) as stream:
            return "".join([text async for text in stream.text_stream])

    try:
        return list(await asyncio.gather(*(one(prompt) for prompt in prompts)))
    finally:
        await client.close()


def measure(name: str, run: Callable[[], list[Any]]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    results = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  {name:<24} wall {wall:6.2f} s   CPU {cpu:6.2f} s   ({len(results)} answers)", flush=True)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=100, help="tokens per answer")
    parser.add_argument("--tokens-per-second", type=float, default=100.0, help="the emulator's pace per stream")
    args = parser.parse_args()

    emulator, base_url = start_emulator(args.tokens, args.tokens_per_second)
    os.environ.update(ANTHROPIC_BASE_URL=base_url, ANTHROPIC_API_KEY=API_KEY)
    import claude_magic

    prompts = [f"prompt {i}: summarize item {i}" for i in range(args.prompts)]
    max_tokens = args.tokens * 2
    print(f"{args.prompts} prompts x {args.tokens} tokens at {args.tokens_per_second:g} tokens/s per stream, "
          f"concurrency {args.concurrency}, emulator {base_url} (subprocess)")
    try:
        # One untimed round each first: imports, connection pools and the emulator's threads warm up.
        asyncio.run(raw_loop(prompts[: args.concurrency], args.concurrency, max_tokens))
        claude_magic.map(prompts[: args.concurrency], concurrency=args.concurrency, max_tokens=max_tokens,
                         display="none")
        raw = measure("raw AsyncAnthropic loop", lambda: asyncio.run(
            raw_loop(prompts, args.concurrency, max_tokens)))
        shown = measure("map(), progress bar", lambda: claude_magic.map(
            prompts, concurrency=args.concurrency, max_tokens=max_tokens))
        quiet = measure('map(display="none")', lambda: claude_magic.map(
            prompts, concurrency=args.concurrency, max_tokens=max_tokens, display="none"))
    finally:
        emulator.terminate()
        emulator.wait(10)
    print("ratios to the raw loop (targets: wall <= 1.10x, CPU <= 1.5x):")
    for name, (wall, cpu) in (("map(), progress bar", shown), ('map(display="none")', quiet)):
        print(f"  {name:<24} wall {wall / raw[0]:5.3f}x   CPU {cpu / raw[1]:5.3f}x")


if __name__ == "__main__":
    main()
