"""`map` over rows: typed answers, pandas input, `.to_frame()`, templates from DataFrame rows, and an
interrupted `map` that keeps what it received — in this process and in a real kernel."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Literal

import pandas as pd
import pydantic
import pytest
from harness.kernel import KernelSession
from support import run_coroutine

import claude_magic
from claude_magic.emulator import Emulator


class Label(pydantic.BaseModel):
    sentiment: Literal["positive", "negative"]
    confidence: int = pydantic.Field(ge=0, le=100)


SCRIPT = {"turns": [
    {"match": "break with 400", "fault": {"kind": "http", "status": 400, "message": "bad input"}},
    {"match": "bad object", "content": '{"sentiment": "meh", "confidence": 5}'},
]}


@pytest.fixture
def emu(emulator: Emulator, api_env: dict[str, str]) -> Emulator:
    emulator.set_script(SCRIPT)
    return emulator


def test_typed_map_over_a_series_gives_a_frame_in_input_order(emu: Emulator) -> None:
    reviews = pd.Series(["great, positive", "awful, negative", "please break with 400", "a bad object",
                         "loved it: positive"], index=[10, 11, 12, 13, 14])
    replies = claude_magic.map(reviews, output=Label, display="none", concurrency=3)
    assert isinstance(replies, claude_magic.Replies) and len(replies) == 5
    frame = replies.to_frame()
    assert list(frame.index) == [10, 11, 12, 13, 14]
    assert list(frame.columns) == ["sentiment", "confidence", "input_tokens", "output_tokens", "cost", "error"]
    assert list(frame["sentiment"][[10, 11, 14]]) == ["positive", "negative", "positive"]
    assert frame["error"][[10, 11, 14]].isna().all()
    assert "Bad request (400)" in frame["error"][12] and pd.isna(frame["sentiment"][12])
    assert "not a valid Label" in frame["error"][13]
    assert (frame["output_tokens"][[10, 11, 14]] > 0).all()
    assert replies.failed == [2, 3]
    sent = [r.body for r in emu.requests if "output_config" in r.body]
    assert len(sent) == 5 and all(b["output_config"]["format"]["schema"]["additionalProperties"] is False
                                  for b in sent)


def test_untyped_map_has_a_text_column(emu: Emulator) -> None:
    frame = claude_magic.map(["one", "two"], display="none").to_frame()
    assert list(frame.columns) == ["text", "input_tokens", "output_tokens", "cost", "error"]
    assert frame["text"].str.contains("offline claude_magic emulator").all()


def test_prompts_from_fills_a_template_from_each_row(emu: Emulator) -> None:
    df = pd.DataFrame({"review": ["fine {not a field}", "bad"], "stars": [4, 1], "other": [0, 0]}, index=["a", "b"])
    prompts = claude_magic.prompts_from(df, "Review: {review} ({stars} stars) {{literal}}")
    assert list(prompts) == ["Review: fine {not a field} (4 stars) {literal}", "Review: bad (1 stars) {literal}"]
    assert list(prompts.index) == ["a", "b"]
    frame = claude_magic.map(prompts, output=Label, display="none").to_frame()
    assert list(frame.index) == ["a", "b"]
    assert sorted(r.messages[0]["content"] for r in emu.requests[-2:]) == sorted(prompts)  # sent as filled
    with pytest.raises(ValueError, match="'missing' not among the DataFrame's columns"):
        claude_magic.prompts_from(df, "{missing}")


# -- interrupting a map in a real kernel ----------------------------------------------------------------------


@pytest.mark.kernel
def test_an_interrupted_map_keeps_its_answers_and_a_rerun_asks_only_the_missing(
        magic_kernel: KernelSession, emulator: Emulator) -> None:
    emulator.set_pace(tokens_per_second=40)
    magic_kernel.execute("import json, claude_magic")
    prompts = [f"question {i}" for i in range(40)]
    code = f"rs = claude_magic.map({prompts!r}, concurrency=4, max_tokens=30)"
    msg_id = magic_kernel.execute_async(code)
    deadline = time.monotonic() + 30
    while sum(r.status == 200 for r in emulator.requests) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    magic_kernel.interrupt()
    result = magic_kernel.collect(msg_id, timeout=30)
    assert result.status == "ok"  # the answers come back as the cell's result, not as a KeyboardInterrupt
    assert "interrupted" in result.stdout() and "run the same map again" in result.stdout()
    state = json.loads(magic_kernel.execute(
        "print(json.dumps([r.ok for r in rs]), rs.interrupted, claude_magic.last_map() is rs)").stdout()
        .rsplit(" ", 2)[0])
    answered = sum(state)
    assert 4 <= answered < 40 and not all(state)
    asked_before = len(emulator.requests)
    emulator.set_pace(tokens_per_second=0)
    rerun = magic_kernel.execute(code + "\nprint(sum(r.ok for r in rs), len(rs))", timeout=60)
    assert rerun.stdout().strip().splitlines()[-1] == "40 40"
    assert f"{answered} kept from the interrupted run" in rerun.stdout()
    assert len(emulator.requests) - asked_before == 40 - answered  # only the missing ones were asked


def test_a_cancelled_map_async_keeps_its_answers_in_last_map(emu: Emulator) -> None:
    emu.set_pace(tokens_per_second=100)  # 30 tokens: 0.3 s an answer, 40 of them three at a time

    async def cancel_midway() -> None:
        task = asyncio.ensure_future(claude_magic.map_async([f"async {i}" for i in range(40)], concurrency=3,
                                                            max_tokens=30, display="none",
                                                            model="claude-haiku-4-5"))  # answers without thinking
        # A request is logged when its stream opens: the 7th opening means at least 4 answers have ended.
        while sum(r.status == 200 for r in emu.requests) < 7:
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_coroutine(cancel_midway())
    kept = claude_magic.last_map()
    assert kept is not None and kept.interrupted and len(kept) == 40
    answered = [r for r in kept if r.ok]
    assert 4 <= len(answered) < 40 and all("async" in r.text for r in answered)
