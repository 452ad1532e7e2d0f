"""The emulator's Message Batches API, through the SDK's `client.messages.batches`: the lifecycle, counts at
the end, results as JSONL out of order, custom_id and size rules, stream refused, errored requests."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import pytest

from claude_magic.emulator import Emulator
from claude_magic.emulator._batches import MAX_REQUESTS


@pytest.fixture
def client(emulator: Emulator) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=emulator.base_url, api_key="test", max_retries=0)


def _requests(count: int, **params: Any) -> list[dict[str, Any]]:
    return [{"custom_id": f"row-{i}", "params": {"model": "claude-haiku-4-5", "max_tokens": 60,
                                                  "messages": [{"role": "user", "content": f"question {i}"}],
                                                  **params}} for i in range(count)]


def _error(call: Any) -> str:
    with pytest.raises(anthropic.APIStatusError) as info:
        call()
    return str(info.value.body["error"]["message"])  # type: ignore[index]


def test_a_batch_runs_then_ends_with_counts_and_out_of_order_results(emulator: Emulator,
                                                                     client: anthropic.Anthropic) -> None:
    emulator.set_batch_timing(seconds=0.6)
    requests = _requests(12)
    requests[5]["params"]["max_tokens"] = 0  # the Messages API rejects it: an errored result, not a failed batch
    batch = client.messages.batches.create(requests=requests)
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 12 and batch.request_counts.succeeded == 0  # counted at the end
    assert "cannot be deleted while it is still processing" in _error(lambda: client.messages.batches.delete(batch.id))
    time.sleep(0.7)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None and ended.results_url
    assert (ended.request_counts.succeeded, ended.request_counts.errored, ended.request_counts.processing) == (11, 1, 0)
    results = list(client.messages.batches.results(batch.id))
    ids = [r.custom_id for r in results]
    assert sorted(ids) == sorted(r["custom_id"] for r in requests) and ids != [r["custom_id"] for r in requests]
    by_id = {r.custom_id: r.result for r in results}
    assert by_id["row-5"].type == "errored"
    assert "max_tokens: Input should be greater than or equal to 1" in by_id["row-5"].error.error.message
    assert by_id["row-3"].type == "succeeded" and "question 3" in by_id["row-3"].message.content[0].text
    assert client.messages.batches.delete(batch.id).type == "message_batch_deleted"
    assert "not found" in _error(lambda: client.messages.batches.retrieve(batch.id))


def test_cancel_leaves_the_unprocessed_requests_canceled(emulator: Emulator, client: anthropic.Anthropic) -> None:
    emulator.set_batch_timing(seconds=1.0)
    batch = client.messages.batches.create(requests=_requests(10))
    time.sleep(0.35)
    assert client.messages.batches.cancel(batch.id).processing_status == "canceling"
    ended = client.messages.batches.retrieve(batch.id)
    counts = ended.request_counts
    assert ended.processing_status == "ended" and ended.cancel_initiated_at is not None
    assert 0 < counts.succeeded < 10 and counts.succeeded + counts.canceled == 10
    kinds = [r.result.type for r in client.messages.batches.results(batch.id)]
    assert kinds.count("canceled") == counts.canceled


def test_an_expiring_batch_marks_the_rest_expired(emulator: Emulator, client: anthropic.Anthropic) -> None:
    emulator.set_batch_timing(seconds=0, expire=True)
    batch = client.messages.batches.create(requests=_requests(6))
    counts = client.messages.batches.retrieve(batch.id).request_counts
    assert (counts.succeeded, counts.expired) == (3, 3)


def test_list_pages_newest_first(emulator: Emulator, client: anthropic.Anthropic) -> None:
    made = [client.messages.batches.create(requests=_requests(1)).id for _ in range(3)]
    page = client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == made[::-1][:2] and page.has_more
    assert [b.id for b in client.messages.batches.list(limit=5)] == made[::-1]  # the SDK's auto-paging


@pytest.mark.parametrize(("requests", "message"), [
    ([], "requests: List should have at least 1 item"),
    ([{"custom_id": "has space", "params": {}}], "custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"),
    ([{"custom_id": "x" * 65, "params": {}}], "custom_id: String should match pattern"),
    (_requests(1) + _requests(1), "Duplicate custom_id in batch: 'row-0'"),
    (_requests(1, stream=True), "requests.0.params.stream: Streaming is not supported in batch requests."),
])
def test_create_rules(client: anthropic.Anthropic, requests: list[dict[str, Any]], message: str) -> None:
    assert message in _error(lambda: client.messages.batches.create(requests=requests))


def test_more_than_the_limit_is_refused(client: anthropic.Anthropic) -> None:
    tiny = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
    requests = [{"custom_id": str(i), "params": tiny} for i in range(MAX_REQUESTS + 1)]
    assert f"List should have at most {MAX_REQUESTS} items" in _error(
        lambda: client.messages.batches.create(requests=requests))
