"""Command line: ``python -m claude_magic.emulator --port N`` (console script ``claude-magic-emulator``)."""

from __future__ import annotations

import argparse
import sys
import threading

from ._emulator import Emulator
from ._script import ScriptError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="claude-magic-emulator",
        description="Serve an offline emulator of the Anthropic Messages API until Ctrl+C.",
    )
    parser.add_argument("--port", type=int, default=8765, help="port to listen on; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--script", help="JSON or YAML script of replies and faults")
    parser.add_argument("--tokens-per-second", type=float, default=0.0, help="stream speed; 0 = unpaced")
    parser.add_argument("--chunk-tokens", type=int, default=1, help="tokens per streamed delta event")
    parser.add_argument("--verbose", action="store_true", help="log each request line to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the emulator in the foreground; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        emulator = Emulator(
            script=args.script,
            tokens_per_second=args.tokens_per_second,
            chunk_tokens=args.chunk_tokens,
            host=args.host,
            port=args.port,
            verbose=args.verbose,
        ).start()
    except (OSError, ScriptError, ValueError) as exc:
        print(f"claude-magic-emulator: {exc}", file=sys.stderr)
        return 2
    # flush: a parent process reads this line from a pipe to learn the port.
    print(f"Emulator listening on {emulator.base_url}", flush=True)
    try:
        # Event.wait keeps the main thread interruptible by Ctrl+C, unlike joining the server thread.
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
