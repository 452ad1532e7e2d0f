"""Time to first token: %%claude vs. a raw SDK loop, same kernel, same emulator script, same run.

    python benchmarks/first_token.py [--repeats 20] [--tokens-per-second 0]

Both are timed from the moment the execute_request leaves this process to the moment the first
token's text arrives back on IOPub: for the raw loop, a print of the first text delta; for the
magic, the first display message that contains it. The difference is what the magic adds
(request building, the reducer, rendering, the display message) on top of the SDK itself.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.kernel import KernelSession  # noqa: E402

from claude_magic.emulator import Emulator  # noqa: E402

FIRST = "Zebra"
SCRIPT = {"turns": [{"content": f"{FIRST} crossings are painted stripes. " * 20}]}
SETUP = """
%load_ext claude_magic
import anthropic
from claude_magic.core.models import DEFAULT_MODEL as MODEL
client = anthropic.Anthropic(max_retries=0)  # reused, like the magic's client
"""
RAW_CELL = """
with client.messages.stream(model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": "q"}]) as s:
    first = True
    for text in s.text_stream:
        if first:
            print(text, flush=True)
            first = False
"""


def first_arrival(kernel: KernelSession, code: str) -> float:
    sent = time.monotonic()
    msg_id = kernel.execute_async(code)
    message = kernel.wait_for(lambda m: FIRST in json.dumps(m["content"]), msg_id=msg_id, timeout=60)
    kernel.collect(msg_id, timeout=60)
    return message["t"] - sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--tokens-per-second", type=float, default=0.0)
    args = parser.parse_args()
    with Emulator(script=SCRIPT, tokens_per_second=args.tokens_per_second) as emu:
        env = {"ANTHROPIC_BASE_URL": emu.base_url, "ANTHROPIC_API_KEY": "sk-ant-benchmark-key",
               "CLAUDE_MAGIC_DISPLAY": "live", "CLAUDE_MAGIC_OFFLINE": "0"}
        with KernelSession(env=env) as kernel:
            kernel.execute(SETUP)
            # Warm up both paths (imports, connection pool) before timing.
            first_arrival(kernel, RAW_CELL)
            first_arrival(kernel, "%%claude --new\nq")
            raw, magic = [], []
            for _ in range(args.repeats):
                raw.append(first_arrival(kernel, RAW_CELL))
                magic.append(first_arrival(kernel, "%%claude --new\nq"))
    print(f"time to first token, {args.repeats} repeats each, emulator at "
          f"{args.tokens_per_second or 'max'} tokens/s (ms)")
    print("| path | p50 | p95 | min |")
    print("|---|---|---|---|")
    for name, samples in (("raw SDK loop", raw), ("%%claude", magic)):
        ordered = sorted(samples)
        p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
        print(f"| {name} | {statistics.median(samples) * 1000:.1f} | {p95 * 1000:.1f} | {ordered[0] * 1000:.1f} |")
    print(f"magic − raw, p50: {(statistics.median(magic) - statistics.median(raw)) * 1000:+.1f} ms")


if __name__ == "__main__":
    main()
