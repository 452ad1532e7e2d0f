"""Tools in a real kernel (jupyter_client, the real SDK, the emulator): what the cell shows, what the API is
sent, and that history stays valid after every way a tool turn can end."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from harness.kernel import KernelSession
from support import FAKE_API_KEY

from claude_magic.emulator import Emulator

pytestmark = pytest.mark.kernel

TOOLS_CELL = '''
import asyncio, json, time
import claude_magic

def get_weather(city: str, unit: str = "c") -> str:
    """Current weather for a city.

    Args:
        city: city name
        unit: "c" or "f"
    """
    return f"{city}: 21 degrees {unit}, sunny"

def broken(city: str) -> str:
    """Always fails."""
    raise LookupError(f"no data for {city}")

def leaky(city: str) -> str:
    """Fails with the API key in its message (a client library echoing its headers)."""
    import os
    raise PermissionError(f"denied for {city}, key=" + os.environ["ANTHROPIC_API_KEY"])

def slow(seconds: float) -> str:
    """Sleeps."""
    time.sleep(seconds)
    return "slept"

async def fetch_async(city: str) -> str:
    """Async weather."""
    await asyncio.sleep(0.05)
    return f"async {city}"
'''


def call(name: str, tool_input: dict[str, Any], tool_id: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


SCRIPT = {"turns": [
    # two calls in one message, then an answer that matches the results it was sent
    {"match": "Tokyo or Paris", "content": [{"type": "text", "text": "Checking both."},
                                            call("get_weather", {"city": "Tokyo"}, "toolu_a"),
                                            call("get_weather", {"city": "Paris"}, "toolu_b")]},
    {"match": "Tokyo: 21 degrees c, sunnyParis: 21", "content": "Both are **21 °C**: a tie."},
    {"match": "Use the broken tool", "content": [call("broken", {"city": "Oslo"}, "toolu_c")]},
    {"match": "LookupError: no data for Oslo", "content": "The tool failed, so I cannot say."},
    {"match": "Use the leaky tool", "content": [call("leaky", {"city": "Oslo"}, "toolu_d")]},
    {"match": "PermissionError: denied for Oslo", "content": "The tool was denied."},
    {"match": "Loop forever", "content": [call("get_weather", {"city": "Rome"}, "toolu_r")], "times": 1},
    {"match": "Rome", "content": [call("get_weather", {"city": "Rome"}, "toolu_r2")]},
    {"match": "Sleep please", "content": [call("slow", {"seconds": 30}, "toolu_s")]},
    {"match": "Async please", "content": [call("fetch_async", {"city": "Lima"}, "toolu_l")]},
    {"match": "async Lima", "content": "Lima, asynchronously."},
    {"match": "Panel weather", "content": [call("get_weather", {"city": "Kyiv"}, "toolu_k")]},
    {"match": "Kyiv: 21", "content": "Kyiv is **21 °C**."},
    {"match": "Leak the key", "content": [call("get_weather", {"city": FAKE_API_KEY}, "toolu_x")]},
    {"match": "plain", "content": "A plain answer."},
]}


@pytest.fixture
def kernel(magic_kernel: KernelSession, emulator: Emulator) -> KernelSession:
    emulator.set_script(SCRIPT)
    magic_kernel.execute(TOOLS_CELL)
    return magic_kernel


def roles(messages: list[dict[str, Any]]) -> list[str]:
    return [m["role"] for m in messages]


def test_parallel_calls_run_and_results_go_back_in_one_message(kernel: KernelSession, emulator: Emulator) -> None:
    emulator.set_pace(tokens_per_second=200)
    result = kernel.execute("%%claude --tools get_weather\nIs it warmer in Tokyo or Paris?")
    assert result.status == "ok", result.traceback_text()
    text = result.final_text()
    assert "get_weather(city='Tokyo') → 26 characters" in text and "get_weather(city='Paris')" in text
    assert "Both are **21 °C**" in text
    assert "1 tool round" in text and "stop_reason: end_turn" in text
    # Live frames showed the call before its result (one output area, updated in place).
    frames = [m["content"]["data"].get("text/html", "") for m in result.displays()]
    assert any("running get_weather" in f or "get_weather(city=&#x27;Tokyo&#x27;)" in f for f in frames[:-1])
    second = emulator.requests[-1]
    assert [t["name"] for t in second.body["tools"]] == ["get_weather"]
    results = second.messages[-1]["content"]
    assert [r["tool_use_id"] for r in results] == ["toolu_a", "toolu_b"]
    # Footer usage is the sum over both requests.
    usages = [r for r in emulator.requests if r.path.endswith("/messages")][-2:]
    assert len(usages) == 2

    # A later turn without --tools is still accepted: the definitions went along, tool_choice none.
    plain = kernel.execute("%%claude\nA plain follow-up")
    assert plain.status == "ok", plain.traceback_text()
    last = emulator.requests[-1]
    assert last.status == 200 and last.body["tool_choice"] == {"type": "none"}
    assert roles(last.messages) == ["user", "assistant", "user", "assistant", "user"]


def test_a_raising_tool_is_one_line_and_claude_is_told(kernel: KernelSession, emulator: Emulator) -> None:
    result = kernel.execute("%%claude --tools broken\nUse the broken tool")
    assert result.status == "ok", result.traceback_text()
    text = result.final_text()
    assert "broken(city='Oslo') raised LookupError: no data for Oslo" in text
    assert "Traceback" not in text and "The tool failed" in text
    sent = emulator.requests[-1].messages[-1]["content"][0]
    assert sent["is_error"] is True and sent["content"] == "LookupError: no data for Oslo"


def test_debug_shows_a_raising_tools_traceback_with_the_key_redacted(kernel: KernelSession,
                                                                     emulator: Emulator) -> None:
    kernel.execute("%config ClaudeMagic.debug = True")
    result = kernel.execute("%%claude --tools leaky\nUse the leaky tool")
    kernel.execute("%config ClaudeMagic.debug = False")
    assert result.status == "ok", result.traceback_text()
    text = result.final_text()
    line = "leaky(city='Oslo') raised PermissionError: denied for Oslo, key=[redacted]"
    assert line in text and "The tool was denied." in text
    # The traceback follows the line: it starts at the user's function (not in claude_magic or the SDK).
    trace = text[text.index(line):]
    assert "Traceback (most recent call last)" in trace and re.search(r"line \d+, in leaky", trace)
    assert "claude_magic" not in trace.split("The tool was denied.")[0]
    html = result.displays()[-1]["content"]["data"]["text/html"]
    assert "<pre" in html and "in leaky" in html
    everything = json.dumps(result.messages, default=str)
    assert FAKE_API_KEY not in everything
    # Claude still gets one line, never the traceback.
    sent = emulator.requests[-1].messages[-1]["content"][0]
    assert sent["content"] == "PermissionError: denied for Oslo, key=[redacted]" and sent["is_error"] is True

    # Without debug: one line, as before.
    plain = kernel.execute("%%claude --tools leaky\nUse the leaky tool")
    assert "Traceback" not in plain.final_text() and line in plain.final_text()


def test_the_round_limit_stops_with_one_line(kernel: KernelSession, emulator: Emulator) -> None:
    kernel.execute("%config ClaudeMagic.max_tool_rounds = 2")
    result = kernel.execute("%%claude --tools get_weather\nLoop forever", allow_error=True)
    assert result.status == "error"
    line = result.traceback_text() + result.stderr()
    assert "Stopped after 2 tool rounds (max_tool_rounds)" in line and "max_tool_rounds = 4" in line
    kernel.execute("%config ClaudeMagic.max_tool_rounds = 8")
    plain = kernel.execute("%%claude\nplain question")
    assert plain.status == "ok" and roles(emulator.requests[-1].messages) == ["user"]  # nothing was kept


def test_interrupt_mid_tool_ends_the_turn_and_keeps_history_valid(kernel: KernelSession,
                                                                  emulator: Emulator) -> None:
    msg_id = kernel.execute_async("%%claude --tools slow\nSleep please")
    kernel.wait_for(lambda m: "running slow(seconds=30)" in m["content"].get("data", {}).get("text/html", ""),
                    msg_id=msg_id, timeout=30)
    kernel.interrupt()
    result = kernel.collect(msg_id, timeout=30)
    assert result.status == "error"
    text = result.final_text()
    assert "slow(seconds=30) interrupted after" in text
    assert result.traceback_text().startswith("ClaudeInterrupted: Interrupted after")
    assert result.duration() < 20
    plain = kernel.execute("%%claude\nplain question")
    assert plain.status == "ok"
    assert roles(emulator.requests[-1].messages) == ["user"]


def test_async_tool_through_ask_async(kernel: KernelSession, emulator: Emulator) -> None:
    result = kernel.execute("r = await claude_magic.ask_async('Async please', tools=[fetch_async])\n"
                            "print(r.text, r.state.tool_rounds, r.usage.output_tokens > 0)")
    assert result.status == "ok", result.traceback_text()
    assert "Lima, asynchronously. 1 True" in result.stdout()
    assert emulator.requests[-1].messages[-1]["content"][0]["content"] == "async Lima"


def test_unknown_tool_name_is_one_line_before_anything_is_sent(kernel: KernelSession,
                                                               emulator: Emulator) -> None:
    before = len(emulator.requests)
    result = kernel.execute("%%claude --tools get_weather,nope\nIs it warmer in Tokyo or Paris?", allow_error=True)
    assert result.status == "error" and "no function named 'nope'" in result.stderr() + result.traceback_text()
    assert len(emulator.requests) == before


def test_panel_with_tools(kernel: KernelSession, emulator: Emulator) -> None:
    out = kernel.execute(
        "from claude_magic import ChatPanel\n"
        "p = ChatPanel(conversation='tools', tools=[get_weather])\n"
        "assert p.send('Panel weather?')\n"
        "t = p.wait(30)\n"
        "html = ''.join(w.value for w in p.transcript.children[-1].children if hasattr(w, 'value'))\n"
        "print(json.dumps({'status': t.status, 'rounds': t.tool_rounds, 'html': html, 'info': p.info.value}))",
        timeout=60).stdout().strip().splitlines()
    state = json.loads(out[-1])
    assert state["status"] == "complete" and state["rounds"] == 1
    assert "get_weather(city=&#x27;Kyiv&#x27;)" in state["html"] and "Kyiv is <strong>21 °C</strong>" in state["html"]
    assert roles(emulator.requests[-1].messages) == ["user", "assistant", "user"]


def test_the_api_key_never_shows_in_tool_displays(kernel: KernelSession, emulator: Emulator) -> None:
    result = kernel.execute("%%claude --tools get_weather --no-raise\nLeak the key")
    everything = json.dumps(result.messages, default=str)
    assert FAKE_API_KEY not in everything, everything[max(0, everything.find(FAKE_API_KEY) - 300):][:400]
    assert "[redacted]" in result.final_text()
