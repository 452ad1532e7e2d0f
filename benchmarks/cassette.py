"""Cassettes (core/transport.py): what recording costs, and how a replay compares with the live API.

    .venv/bin/python benchmarks/cassette.py                    # 20 answers of 200 tokens at 400 tokens/s, ~1 min
    .venv/bin/python benchmarks/cassette.py --answers 10 --tokens 100

One run, one emulator (in a subprocess, playing the live API, so the CPU measured is the client's alone), the
same prompts streamed one after another through the client `core.client` builds:

- live, no cassette (the reference);
- live, recording (`cassette_mode = "record"`): the overhead of writing every chunk down;
- replayed at the recorded pace (speed 1, the default: a replayed notebook looks like the live one), with the
  emulator stopped;
- replayed at full speed (speed 0), what a CI run can choose.

It prints wall time and process CPU per mode and the ratios to the live run, plus the cassette's size; it
asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from claude_magic.core import client as _client
from claude_magic.core import transport
from claude_magic.core.client import ClientSettings, get_client
from claude_magic.core.models import DEFAULT_MODEL


def start_emulator(tokens: int, tokens_per_second: float) -> tuple[subprocess.Popen[str], str]:
    script = {"turns": [{"match": "prompt", "generate": {"tokens": tokens, "seed": 7}}]}
    path = os.path.join(tempfile.mkdtemp(prefix="cassette-bench-"), "script.json")
    with open(path, "w") as file:
        json.dump(script, file)
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_magic.emulator", "--port", "0", "--script", path,
         "--tokens-per-second", str(tokens_per_second)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # "Emulator listening on http://127.0.0.1:PORT"
    return process, line.rsplit(" ", 1)[-1].strip()


def stream_all(settings: ClientSettings, prompts: list[str]) -> tuple[float, float, list[str]]:
    """Wall and CPU seconds to stream every prompt's answer, one after another, in a fresh kernel's state."""
    transport.forget_cassettes()
    _client.reset_clients()
    client = get_client(settings)
    cpu, wall = time.process_time(), time.perf_counter()
    answers = []
    for prompt in prompts:
        with client.messages.stream(model=DEFAULT_MODEL, max_tokens=4000,
                                    messages=[{"role": "user", "content": prompt}]) as stream:
            answers.append("".join(stream.text_stream))
    return time.perf_counter() - wall, time.process_time() - cpu, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=200, help="tokens per answer")
    parser.add_argument("--tokens-per-second", type=float, default=400.0, help="the emulator's pace")
    args = parser.parse_args()

    cassette = Path(tempfile.mkdtemp(prefix="cassette-bench-")) / "bench.cassette"
    prompts = [f"prompt {n}: answer at length" for n in range(args.answers)]
    emulator, base_url = start_emulator(args.tokens, args.tokens_per_second)
    os.environ.update({"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": "bench-key"})
    print(f"{args.answers} answers of {args.tokens} tokens at {args.tokens_per_second:g} tokens/s, streamed one "
          "after another", flush=True)
    results: dict[str, tuple[float, float]] = {}
    try:
        stream_all(ClientSettings(), prompts[:1])  # warm-up: imports, connection, validators
        wall, cpu, live = stream_all(ClientSettings(), prompts)
        results["live, no cassette"] = wall, cpu
        wall, cpu, recorded = stream_all(ClientSettings(cassette=str(cassette), cassette_mode="record"), prompts)
        results["live, recording"] = wall, cpu
        assert recorded == live
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    del os.environ["ANTHROPIC_BASE_URL"], os.environ["ANTHROPIC_API_KEY"]  # replay: no key, nothing listening
    for speed, name in ((1.0, "replay, recorded pace"), (0.0, "replay, full speed")):
        wall, cpu, replayed = stream_all(ClientSettings(cassette=str(cassette), cassette_mode="replay",
                                                        cassette_speed=speed), prompts)
        assert replayed == live, "a replay must give back exactly what was recorded"
        results[name] = wall, cpu

    base_wall, base_cpu = results["live, no cassette"]
    print(f"\n| {'mode':<24} | wall s | × live | CPU s | × live |\n|{'-' * 26}|--------|--------|-------|--------|")
    for name, (wall, cpu) in results.items():
        print(f"| {name:<24} | {wall:6.2f} | {wall / base_wall:6.2f} | {cpu:5.2f} | {cpu / base_cpu:6.2f} |")
    size = cassette.stat().st_size
    print(f"\ncassette: {size / 1024:,.0f} kB for {args.answers} exchanges ({size / args.answers / 1024:,.1f} kB each, "
          f"{args.tokens} tokens streamed one per chunk)")


if __name__ == "__main__":
    main()
