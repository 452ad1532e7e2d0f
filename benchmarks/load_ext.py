"""What a fresh kernel costs: `%load_ext claude_magic` vs. `import anthropic`, and the first answer's time to
first token in a fresh kernel vs. a warm one, measured in the same run.

    python benchmarks/load_ext.py [--repeats 5]

Each repeat starts three fresh kernels (ipykernel, as JupyterLab starts them):
- one times `import anthropic` alone (inside the kernel, around the statement);
- one times `%load_ext claude_magic` (the same way), then asks at once (the cell sent the moment the
  load's cell is done, as "Run All" does), then asks again: the second question is the warm one;
- one loads the extension, waits until its background warm-up is done (a person typing the first question;
  the wait is a cell of its own, and how long the warm-up took after the load is reported), then asks.
Time to first token is measured from the moment the execute_request leaves this process to the first
display message holding the answer's first word (as in benchmarks/first_token.py).
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
QUESTION = "%%claude --new\nq"
WAIT_FOR_WARM_UP = "from claude_magic.surfaces import warm_up\nwarm_up.wait()"


def timed_in_kernel(kernel: KernelSession, statement: str) -> float:
    """Seconds `statement` took inside the kernel (no messaging in the figure)."""
    code = f"import time as _t\n_s = _t.perf_counter()\n{statement}\nprint('TOOK', _t.perf_counter() - _s)"
    stdout = kernel.execute(code).stdout()
    return float(stdout.split("TOOK", 1)[1].split()[0])


def first_token(kernel: KernelSession) -> float:
    sent = time.monotonic()
    msg_id = kernel.execute_async(QUESTION)
    message = kernel.wait_for(lambda m: FIRST in json.dumps(m["content"]), msg_id=msg_id, timeout=120)
    kernel.collect(msg_id, timeout=120)
    return message["t"] - sent


def summary(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:8.0f} | {min(samples) * 1000:8.0f} | {max(samples) * 1000:8.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    load = "get_ipython().run_line_magic('load_ext', 'claude_magic')"
    samples: dict[str, list[float]] = {name: [] for name in ("sdk", "load", "warm_up", "at_once", "later", "warm")}
    with Emulator(script=SCRIPT, tokens_per_second=0) as emu:
        env = {"ANTHROPIC_BASE_URL": emu.base_url, "ANTHROPIC_API_KEY": "sk-ant-benchmark-key",
               "CLAUDE_MAGIC_DISPLAY": "live", "CLAUDE_MAGIC_OFFLINE": "0"}
        for repeat in range(args.repeats):
            with KernelSession(env=env) as kernel:
                samples["sdk"].append(timed_in_kernel(kernel, "import anthropic"))
            with KernelSession(env=env) as kernel:
                samples["load"].append(timed_in_kernel(kernel, load))
                samples["at_once"].append(first_token(kernel))
                samples["warm"].append(first_token(kernel))
            with KernelSession(env=env) as kernel:
                loaded = kernel.execute(load)
                warmed = kernel.execute(WAIT_FOR_WARM_UP)
                samples["warm_up"].append(warmed.messages[-1]["t"] - loaded.messages[-1]["t"])
                samples["later"].append(first_token(kernel))
            print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)

    def ratio(a: str, b: str) -> str:
        return f"{statistics.median(samples[a]) / statistics.median(samples[b]):.2f}"

    print(f"Fresh kernels, {args.repeats} repeats, emulator at full speed (ms)")
    print()
    print("| measure | p50 | min | max |")
    print("|---|---|---|---|")
    print(f"| `import anthropic` in a fresh kernel | {summary(samples['sdk'])} |")
    print(f"| `%load_ext claude_magic` in a fresh kernel | {summary(samples['load'])} |")
    print(f"| first token, fresh kernel, asked the moment loading is done | {summary(samples['at_once'])} |")
    print(f"| background warm-up, from the end of `%load_ext` | {summary(samples['warm_up'])} |")
    print(f"| first token, fresh kernel, asked once the warm-up is done | {summary(samples['later'])} |")
    print(f"| first token, warm kernel (the same kernel's next question) | {summary(samples['warm'])} |")
    print()
    print(f"load_ext / import anthropic (p50): {ratio('load', 'sdk')}   (the goal: at most 0.20)")
    print(f"first token fresh, asked once the warm-up is done / warm (p50): {ratio('later', 'warm')}"
          "   (the goal: at most 1)")
    print(f"first token fresh, asked at once / warm (p50): {ratio('at_once', 'warm')}"
          "   (asked at once, the question waits for the rest of the warm-up's imports)")


if __name__ == "__main__":
    main()
