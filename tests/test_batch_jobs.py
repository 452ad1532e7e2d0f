"""`map(..., batch=True)`, `batch_results(id)` and `%claude batches` against the emulator's Message Batches:
input order from out-of-order results, every result type marked, the record on disk, re-runs that collect
instead of submitting, splitting, and a batch collected again by a kernel started after the first one."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

import anthropic
import pydantic
import pytest
from support import run_coroutine

import claude_magic
from claude_magic.core import batches as core_batches
from claude_magic.core.turn import TurnState
from claude_magic.emulator import Emulator
from claude_magic.settings import current_settings
from claude_magic.surfaces.batch_jobs import batches_folder


class Verdict(pydantic.BaseModel):
    label: Literal["spam", "ham"]


SCRIPT = {"turns": [{"match": "break with 400", "fault": {"kind": "http", "status": 400, "message": "bad input"}}]}


@pytest.fixture
def emu(emulator: Emulator, api_env: dict[str, str]) -> Emulator:
    emulator.set_script(SCRIPT)
    return emulator


def _creates(emu: Emulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST" and r.path == "/v1/messages/batches"]


def _records() -> list[dict[str, Any]]:
    folder = batches_folder(current_settings())
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_a_typed_batch_comes_back_in_input_order_with_errors_marked_and_is_recorded(
        emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emu.set_batch_timing(seconds=0.5)
    prompts = [f"message {i}: ham" if i % 3 else f"message {i}: spam" for i in range(30)]
    prompts[7] = "please break with 400"
    replies = claude_magic.map(prompts, output=Verdict, batch=True)
    assert len(replies) == 30 and len(replies.batch_ids) == 1
    frame = replies.to_frame()
    expected = ["spam" if i % 3 == 0 else "ham" for i in range(30)]
    assert [label for i, label in enumerate(frame["label"]) if i != 7] == [e for i, e in enumerate(expected) if i != 7]
    assert "Batch request errored (invalid_request_error): bad input" in frame["error"][7]
    assert replies.failed == [7] and all(isinstance(r.parsed, Verdict) for i, r in enumerate(replies) if i != 7)
    sent = _creates(emu)[0].body["requests"]
    assert [r["custom_id"] for r in sent] == [f"p{i}" for i in range(30)]
    assert sent[0]["params"]["output_config"]["format"]["schema"]["additionalProperties"] is False
    assert "stream" not in sent[0]["params"]
    record = _records()[0]
    assert record["id"] == replies.batch_ids[0] and record["count"] == 30 and record["start"] == 0
    assert len(record["prompt_digests"]) == 30 and record["options"]["output"] == "Verdict"
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "29 succeeded · 1 errored" in summary and "at the batch price (50% of" in summary
    costs = frame["cost"].dropna()
    assert len(costs) == 29 and (costs > 0).all()


def test_running_the_same_cell_again_collects_instead_of_submitting(emu: Emulator) -> None:
    prompts = [f"row {i}" for i in range(5)]
    first = claude_magic.map(prompts, batch=True, display="none")
    again = claude_magic.map(prompts, batch=True, display="none")
    assert again.batch_ids == first.batch_ids and len(_creates(emu)) == 1
    assert [r.text for r in again] == [r.text for r in first]
    claude_magic.map([*prompts, "one more"], batch=True, display="none")  # another job: submitted
    fresh = claude_magic.map(prompts, batch=True, display="none", resubmit=True)
    assert len(_creates(emu)) == 3 and fresh.batch_ids != first.batch_ids


def test_expired_and_canceled_rows_say_so(emu: Emulator) -> None:
    emu.set_batch_timing(seconds=0, expire=True)  # the batch's time runs out halfway
    replies = claude_magic.map([f"e {i}" for i in range(4)], batch=True, display="none")
    errors = [r.error for r in replies]
    assert errors[:2] == [None, None]
    assert all("expired (24 hours) before this request ran" in e for e in errors[2:])
    # A batch canceled while it runs (%claude batches cancel): its unprocessed rows are collected as canceled.
    emu.set_batch_timing(seconds=30, expire=False)
    client = anthropic.Anthropic()
    created = client.messages.batches.create(requests=[{"custom_id": "p0", "params": {
        "model": "claude-sonnet-5-5", "max_tokens": 20, "messages": [{"role": "user", "content": "x"}]}}])
    client.messages.batches.cancel(created.id)
    record = core_batches.BatchRecord(id=created.id, created_at="", job="j", part=0, parts=1, start=0, count=1,
                                      total=1, digests=[], options={})
    states = [TurnState(model="m", prompt="x", started_at=0.0)]
    counts = core_batches.collect(client, record, states, None, offline=True)
    assert counts["canceled"] == 1 and "was canceled before this request ran" in states[0].error.message


def test_a_job_over_the_limits_is_split_and_put_back_in_order(emu: Emulator,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core_batches, "MAX_REQUESTS", 4)
    replies = claude_magic.map([f"part {i}" for i in range(10)], batch=True, display="none")
    assert len(replies.batch_ids) == 3 and [len(c.body["requests"]) for c in _creates(emu)] == [4, 4, 2]
    assert [r.text.count(f"part {i}") > 0 for i, r in enumerate(replies)] == [True] * 10
    records = _records()
    assert sorted((r["part"], r["start"], r["count"]) for r in records) == [(0, 0, 4), (1, 4, 4), (2, 8, 2)]
    request = {"model": "m", "messages": [{"role": "user", "content": "x" * 100}]}
    job = core_batches.BatchJob.from_requests([request] * 5, {})
    assert [len(p) for p in job.parts(max_requests=10, max_bytes=2 * job.sizes[0])] == [2, 2, 1]


def test_tools_cannot_go_in_a_batch(emu: Emulator) -> None:
    def lookup(city: str) -> str:
        """Look a city up."""
        return city

    with pytest.raises(ValueError, match="cannot run tools"):
        claude_magic.map(["x"], batch=True, tools=[lookup])
    assert _creates(emu) == []


def test_magic_lists_and_cancels_this_notebooks_batches(shell: Any, emu: Emulator,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    emu.set_batch_timing(seconds=0)
    done = claude_magic.map(["a", "b"], batch=True, display="none")
    emu.set_batch_timing(seconds=60)
    client = anthropic.Anthropic()
    running = client.messages.batches.create(requests=[{"custom_id": "p0", "params": {
        "model": "claude-sonnet-5-5", "max_tokens": 20, "messages": [{"role": "user", "content": "x"}]}}])
    core_batches.write_record(batches_folder(current_settings()), core_batches.BatchRecord(
        id=running.id, created_at="2099-01-01T00:00:00+00:00", job="other", part=0, parts=1, start=0, count=1,
        total=1, digests=["d"], options={}))
    capsys.readouterr()
    shell.run_line_magic("claude", "batches")
    listing = capsys.readouterr().out
    assert f"{done.batch_ids[0]} · created" in listing and "2 prompts · ended: 2 succeeded" in listing
    assert f"{running.id} · created" in listing and "in progress (1 processing)" in listing
    shell.run_line_magic("claude", f"batches cancel {running.id}")
    assert f"Batch {running.id}: canceling" in capsys.readouterr().out
    shell.run_line_magic("claude", "batches")
    assert "ended: 1 canceled" in capsys.readouterr().out


def test_batch_results_of_an_unknown_id_is_one_line(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="No batch 'msgbatch_nope' is recorded"):
        claude_magic.batch_results("msgbatch_nope")


# -- a batch survives the kernel ------------------------------------------------------------------------------


@pytest.mark.kernel
def test_interrupting_leaves_the_batch_running_and_a_new_kernel_collects_it(
        kernel_factory: Any, api_env: dict[str, str], emulator: Emulator) -> None:
    emulator.set_batch_timing(seconds=4)
    first = kernel_factory(env=api_env)
    first.execute("import claude_magic, json\n"
                  "from typing import Literal\nimport pydantic\n"
                  "class Verdict(pydantic.BaseModel):\n    label: Literal['spam', 'ham']")
    code = "rs = claude_magic.map([f'mail {i}: spam' for i in range(6)], output=Verdict, batch=True)"
    msg_id = first.execute_async(code)
    deadline = time.monotonic() + 20
    while not _creates(emulator) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    first.interrupt()
    result = first.collect(msg_id, timeout=30)
    assert result.status == "ok" and "keeps running on Anthropic's side" in result.stdout()
    batch_id = json.loads(first.execute("print(json.dumps(rs.batch_ids + [rs.interrupted]))").stdout())[0]
    assert "batch_results" in first.execute("print(rs[0].error)").stdout()
    first.shutdown()

    second = kernel_factory(env=api_env)  # the same history_dir: the record is on disk
    listing = second.execute("%load_ext claude_magic\n%claude batches").stdout()
    assert batch_id in listing
    out = second.execute(f"import claude_magic\nframe = claude_magic.batch_results({batch_id!r}).to_frame()\n"
                         "print(list(frame['label']), frame['error'].isna().all())", timeout=60).stdout()
    assert out.strip().splitlines()[-1] == "['spam', 'spam', 'spam', 'spam', 'spam', 'spam'] True"
    assert len(_creates(emulator)) == 1  # collected, never submitted again


def test_record_folder_is_beside_the_conversations(emu: Emulator) -> None:
    folder = batches_folder(current_settings())
    assert folder.parent.name == ".batches" and Path(current_settings().history_dir) in folder.parents


def test_map_async_batch_and_a_cancelled_wait_leave_the_batch_recorded(emu: Emulator) -> None:
    import asyncio

    replies = run_coroutine(claude_magic.map_async(["x 1", "x 2"], batch=True, display="none"))
    assert [r.ok for r in replies] == [True, True] and len(replies.batch_ids) == 1
    emu.set_batch_timing(seconds=30)

    async def cancel_while_waiting() -> None:
        task = asyncio.ensure_future(claude_magic.map_async(["y 1", "y 2"], batch=True, display="none"))
        while len(_creates(emu)) < 2:
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_coroutine(cancel_while_waiting())
    assert len(_records()) == 2  # the cancelled wait's batch is on disk, still running on the API's side


def test_a_job_that_cannot_be_submitted_marks_every_row_in_one_line(emu: Emulator,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{dead}")
    replies = claude_magic.map(["a", "b"], batch=True, display="none")
    assert replies.failed == [0, 1] and replies.batch_ids == []
    assert all(r.error.startswith("Not submitted (Could not connect to the API") and "\n" not in r.error
               for r in replies)
    assert _records() == []


def test_an_interrupt_while_a_batch_is_recorded_waits_until_the_record_is_written() -> None:
    import os
    import signal

    done: list[str] = []
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # what ipykernel sets for a cell
    try:
        with pytest.raises(KeyboardInterrupt), core_batches.holding_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the signal arrives while "the record is being written"
            done.append("recorded")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert done == ["recorded"]
