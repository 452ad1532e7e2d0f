"""The Python API and `answer = %claude` in a real kernel (jupyter_client, real SDK, the emulator): what a
notebook shows, message by message."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from harness.kernel import ExecutionResult, KernelSession

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.kernel

ANSWER = "HTTP caching keeps **copies** of responses close to the client, so repeat requests are fast."
SCRIPT = {
    "turns": [
        {"match": "Explain HTTP caching", "content": ANSWER},
        {"match": "follow-up", "content": "Yes, **exactly**."},
        {"match": "long answer", "generate": {"tokens": 300, "seed": 5}},
        {"match": "break with 400", "fault": {"kind": "http", "status": 400, "message": "bad input"}},
        {"match": "rate limited", "times": 1, "fault": {"kind": "http", "status": 429, "retry_after": 1}},
        {"match": "item", "content": "An item answer."},
    ]
}


@pytest.fixture
def kernel(magic_kernel: KernelSession, emulator: Emulator) -> KernelSession:
    emulator.set_script(SCRIPT)
    magic_kernel.execute("import asyncio, json\nimport claude_magic\nfrom claude_magic.core.history import STORE")
    return magic_kernel


def display_ids(result: ExecutionResult) -> list[str]:
    return [m["content"].get("transient", {}).get("display_id", "") for m in result.displays()]


def answers_shown(result: ExecutionResult, text: str) -> int:
    return sum(text in out.get("data", {}).get("text/plain", "") for out in result.final_outputs())


def test_ask_streams_live_and_shares_history_with_the_magic(kernel: KernelSession, emulator: Emulator) -> None:
    emulator.set_pace(tokens_per_second=60)
    result = kernel.execute("r = claude_magic.ask('Explain HTTP caching')\nprint(type(r).__name__, r.stop_reason)")
    kinds = [m["header"]["msg_type"] for m in result.displays()]
    assert kinds[0] == "display_data" and kinds.count("update_display_data") >= 3
    assert answers_shown(result, "HTTP caching keeps") == 1
    assert "Reply end_turn" in result.stdout()
    kernel.execute("%%claude\nIs this a follow-up?")
    assert [m["role"] for m in emulator.requests[-1].messages] == ["user", "assistant", "user"]


def test_two_ask_async_in_one_gather_stream_into_their_own_outputs(kernel: KernelSession,
                                                                   emulator: Emulator) -> None:
    emulator.set_pace(tokens_per_second=100)
    result = kernel.execute(
        "a, b = await asyncio.gather(claude_magic.ask_async('a long answer, first', conversation='a'),\n"
        "                            claude_magic.ask_async('a long answer, second', conversation='b'))\n"
        "print(a.ok, b.ok, len(STORE.get('a')), len(STORE.get('b')))", timeout=60)
    assert "True True 1 1" in result.stdout()
    updates = [i.rsplit("-", 1)[0] for m, i in zip(result.displays(), display_ids(result), strict=True)
               if m["header"]["msg_type"] == "update_display_data"]
    streams = sorted(set(updates))
    assert len(streams) == 2, streams
    switches = sum(1 for x, y in zip(updates, updates[1:], strict=False) if x != y)
    assert switches >= 6, "both answers must stream at once, their updates interleaved"
    assert emulator.peak_streams == 2


def test_cancelled_ask_async_keeps_partial_marked_and_history_valid(kernel: KernelSession,
                                                                    emulator: Emulator) -> None:
    emulator.set_pace(tokens_per_second=60)
    result = kernel.execute(
        "task = asyncio.ensure_future(claude_magic.ask_async('Please write a long answer.'))\n"
        "await asyncio.sleep(1.0)\n"
        "task.cancel()\n"
        "try:\n    await task\nexcept asyncio.CancelledError:\n    print('cancelled', len(STORE.get()))\n",
        timeout=60)
    assert "cancelled 0" in result.stdout()
    text = result.final_text()
    assert "Cancelled after" in text and "partial answer kept, not added to history" in text
    emulator.set_pace(tokens_per_second=0)
    kernel.execute("%%claude\nIs this a follow-up?")
    assert [m["role"] for m in emulator.requests[-1].messages] == ["user"]


def test_map_in_a_cell_order_concurrency_failure_rate_limit_no_history(kernel: KernelSession,
                                                                       emulator: Emulator) -> None:
    emulator.set_pace(tokens_per_second=200)
    prompts = [f"item {i}, a long answer" for i in range(10)]
    prompts[3] = "please break with 400"
    prompts[6] = "rate limited"
    emulator.reset_peak_streams()
    started = time.monotonic()
    result = kernel.execute(
        f"replies = claude_magic.map({prompts!r}, concurrency=4, max_tokens=400)\n"
        "print(json.dumps([[r.state.prompt, r.ok, r.error] for r in replies]), len(STORE.get()))", timeout=90)
    took = time.monotonic() - started
    lines = result.stdout().strip().splitlines()
    rows_json, history = lines[-1].rsplit(" ", 1)
    rows = json.loads(rows_json)
    assert [row[0] for row in rows] == prompts  # input order
    assert [row[1] for row in rows] == [i != 3 for i in range(10)]
    assert "Bad request (400)" in rows[3][2]
    assert history == "0"
    assert emulator.peak_streams == 4
    assert took >= 1.0  # the 429's retry-after was waited out, then it succeeded
    assert [r.status for r in emulator.requests].count(429) == 1
    assert "claude_magic.map: 10 prompts · 9 done · 1 failed" in lines[-2]  # the summary, after the bar


def test_out_stores_the_reply(kernel: KernelSession) -> None:
    kernel.execute("%%claude --out first\nExplain HTTP caching")
    result = kernel.execute("%claude --out second Is this a follow-up?\n")
    assert answers_shown(result, "Yes, exactly") + answers_shown(result, "Yes, **exactly**") == 1
    printed = kernel.execute("print(type(first).__name__, first.text[:12], '|', second.text)").stdout()
    assert printed.strip() == "Reply HTTP caching | Yes, **exactly**."


def test_assigned_line_magic_shows_the_answer_once(kernel: KernelSession) -> None:
    result = kernel.execute("answer = %claude Explain HTTP caching")
    assert answers_shown(result, "HTTP caching keeps") == 1
    assert result.of_type("execute_result") == []
    assert kernel.execute(f"print(answer.text == {ANSWER!r})").stdout().strip() == "True"


def test_line_magic_alone_at_the_end_shows_once(kernel: KernelSession) -> None:
    result = kernel.execute("x = 1\n%claude Explain HTTP caching")
    assert answers_shown(result, "HTTP caching keeps") == 1
    assert [o["output_type"] for o in result.final_outputs()] == ["display_data"]
    # In a later cell the reply was not streamed there, so it draws itself.
    later = kernel.execute("_")
    assert answers_shown(later, "HTTP caching keeps") == 1


def test_ask_with_display_none_renders_as_the_cells_value(kernel: KernelSession) -> None:
    result = kernel.execute("claude_magic.ask('Explain HTTP caching', display='none')")
    outputs: list[dict[str, Any]] = result.final_outputs()
    assert len(outputs) == 1 and "<strong>copies</strong>" in outputs[0]["data"]["text/html"]
