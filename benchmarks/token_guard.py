"""What the token guard (`max_input_tokens`) costs a turn.

    python benchmarks/token_guard.py [--turns 30] [--repeats 200]

1. In the process: `check_budget` for the next turn of a conversation of 10, 100 and 500 turns (text), and
   of 10 turns holding a 1 MB image, against the same call with the guard off. The history's count is
   known from the previous turn (as after every completed turn), so the guard only fingerprints the
   state and estimates the new message.
2. Through the real stack (emulator → SDK → engine, no display): `--turns` turns of one conversation
   with the guard on and off, alternating; median wall time per turn, and how many
   `/v1/messages/count_tokens` requests the guard made (a normal turn should make none).
Prints medians and ratios against the guard-off baseline of the same run.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import time
from typing import Any

from claude_magic.core import client as core_client
from claude_magic.core.engine import prepare_turn, run_exchange
from claude_magic.core.history import STORE
from claude_magic.core.tokens import CACHE, TokenCache, check_budget, fingerprint
from claude_magic.emulator import Emulator
from claude_magic.settings import ClaudeMagic

MODEL = "claude-sonnet-5-5"
LIMIT = 1_000_000


def history(turns: int, image: bytes | None = None) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for number in range(turns):
        content: Any = f"Question {number}: how do I cache this response? " * 10
        if image is not None and number == 0:
            content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                    "data": base64.b64encode(image).decode()}},
                       {"type": "text", "text": content}]
        messages += [{"role": "user", "content": content},
                     {"role": "assistant", "content": [{"type": "text", "text": "Use Cache-Control. " * 60}]}]
    return messages


def png(size_bytes: int) -> bytes:
    from PIL import Image

    side = int((size_bytes / 3) ** 0.5)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def time_check(messages: list[dict[str, Any]], limit: int | None, repeats: int) -> float:
    request = {"model": MODEL, "max_tokens": 1024, "messages": [*messages, {"role": "user", "content": "And?"}]}
    cache = TokenCache()
    cache.put(fingerprint(request, messages), 50_000)  # what the previous turn's usage told us

    def never(_params: dict[str, Any]) -> int:
        raise AssertionError("the guard asked the API although the count was known")

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        check_budget(request, limit, never, cache)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def through_the_stack(turns: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with Emulator() as emu:
        os.environ["ANTHROPIC_BASE_URL"] = emu.base_url
        os.environ["ANTHROPIC_API_KEY"] = "sk-ant-benchmark-key"
        settings = ClaudeMagic(throttle_interval=0.1, history_dir="")
        times: dict[str, list[float]] = {"on": [], "off": []}
        for number in range(turns):
            for mode in ("on", "off"):
                settings.max_input_tokens = None if mode == "on" else 0
                turn = prepare_turn(f"Question {number}: what about caching?", settings, conversation=f"bench-{mode}")
                started = time.perf_counter()
                run_exchange(turn, None)
                times[mode].append(time.perf_counter() - started)
        counts = [r for r in emu.requests if r.path == "/v1/messages/count_tokens"]
        results = {"median_on": statistics.median(times["on"]), "median_off": statistics.median(times["off"]),
                   "count_requests": len(counts), "turns": turns}
    core_client.reset_clients()
    for name in ("bench-on", "bench-off"):
        STORE.get(name).reset()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    print(f"1. check_budget for the next turn (median of {args.repeats}; the history's count is known)\n")
    print("| history | guard off | guard on | guard on − off |")
    print("|---|---|---|---|")
    image = png(1_000_000)
    for label, messages in (("10 turns", history(10)), ("100 turns", history(100)), ("500 turns", history(500)),
                            (f"10 turns + {len(image) / 1e6:.1f} MB image", history(10, image))):
        off, on = time_check(messages, None, args.repeats), time_check(messages, LIMIT, args.repeats)
        print(f"| {label} | {off * 1e6:.1f} µs | {on * 1e6:.1f} µs | {(on - off) * 1e3:.3f} ms |")
    CACHE.clear()
    stack = through_the_stack(args.turns)
    print(f"\n2. {stack['turns']} turns of one conversation through the emulator, guard on vs. off (median)\n")
    print(f"- per turn: guard on {stack['median_on'] * 1e3:.1f} ms, off {stack['median_off'] * 1e3:.1f} ms "
          f"({stack['median_on'] / stack['median_off']:.3f}×)")
    print(f"- count_tokens requests the guard made: {stack['count_requests']} in {stack['turns']} turns")


if __name__ == "__main__":
    main()
