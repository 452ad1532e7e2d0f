"""The Message Batches API: create, retrieve, list, cancel, delete, and results as JSONL.

Docs: https://platform.claude.com/docs/en/build-with-claude/batch-processing and the API reference pages
(https://platform.claude.com/docs/en/api/messages/batches/create, .../results, .../cancel, .../delete).
What the emulator keeps of them:
- create takes 1–100,000 `requests`, each `{custom_id, params}`; a `custom_id` is 1–64 characters of
  `[a-zA-Z0-9_-]` and unique in the batch; `params` is a Messages request, where `stream` is not
  supported (a validation error at create). Each request is otherwise validated when it is processed,
  and one the Messages API would reject becomes an `errored` result with that error, not a failed batch.
- processing_status goes in_progress → ended (canceling → ended after a cancel); `request_counts` stay
  all `processing` until the batch ends (the API counts at the end); `results_url` appears at the end.
- results are JSONL, one line per request, **not** in request order (match them by `custom_id`).
- a batch can be deleted only once it has ended ("cancel it first"); results expire with the batch.
The time a batch takes is scriptable (`Emulator.set_batch_timing(seconds=..., expire=...)`) so tests can
watch one run and end; requests end in order, spread over that time, so a cancel leaves the rest canceled.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ._errors import ApiError, error_body

MAX_REQUESTS = 100_000
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
EXPIRES_AFTER = timedelta(hours=24)  # an unfinished batch expires 24 hours after creation
RESULTS_KEPT = timedelta(days=29)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class _Batch:
    id: str
    created: datetime
    started: float  # monotonic
    seconds: float  # processing time, spread over the requests in order
    expire: bool  # the batch runs out of time before finishing: the unprocessed requests expire
    requests: list[dict[str, Any]]
    results: dict[int, dict[str, Any]] = field(default_factory=dict)  # position → result, once processed
    cancel_at: float | None = None
    cancel_initiated: datetime | None = None
    ended: datetime | None = None
    final: dict[str, int] | None = None

    def due(self, now: float) -> int:
        """How many requests (from the first) have been processed by `now`."""
        if self.seconds <= 0:
            return len(self.requests)
        cutoff = now if self.cancel_at is None else min(now, self.cancel_at)
        share = (cutoff - self.started) / self.seconds
        return max(0, min(len(self.requests), int(share * len(self.requests))))


class BatchStore:
    """The emulator's batches. `answer(params)`, bound by the server, turns one request's params into a
    Message dict or raises ApiError: the emulator's Messages path, so a batch answers as single requests do."""

    def __init__(self, next_id: Callable[[str], str]) -> None:
        self.answer: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # set by the server
        self._next_id = next_id
        self._lock = threading.Lock()
        self._batches: dict[str, _Batch] = {}
        self.seconds = 0.0
        self.expire = False

    def set_timing(self, seconds: float | None = None, expire: bool | None = None) -> None:
        with self._lock:
            if seconds is not None:
                if seconds < 0:
                    raise ValueError("batch seconds must be >= 0")
                self.seconds = float(seconds)
            if expire is not None:
                self.expire = bool(expire)

    def reset(self) -> None:
        with self._lock:
            self._batches.clear()

    # -- endpoints ---------------------------------------------------------------------------------------

    def create(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or "requests" not in body:
            raise ApiError(400, "requests: Field required")
        requests = body["requests"]
        if not isinstance(requests, list):
            raise ApiError(400, "requests: Input should be a valid list")
        if not requests:
            raise ApiError(400, "requests: List should have at least 1 item after validation, not 0")
        if len(requests) > MAX_REQUESTS:
            raise ApiError(400, f"requests: List should have at most {MAX_REQUESTS} items after validation, "
                           f"not {len(requests)}")
        seen: set[str] = set()
        for index, request in enumerate(requests):
            where = f"requests.{index}"
            if not isinstance(request, dict):
                raise ApiError(400, f"{where}: Input should be a valid dictionary")
            custom_id = request.get("custom_id")
            if not isinstance(custom_id, str):
                raise ApiError(400, f"{where}.custom_id: Field required")
            if not CUSTOM_ID.match(custom_id):
                raise ApiError(400, f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
            if custom_id in seen:
                raise ApiError(400, f"Duplicate custom_id in batch: {custom_id!r}. Each request's custom_id must "
                               "be unique within the batch.")
            seen.add(custom_id)
            params = request.get("params")
            if not isinstance(params, dict):
                raise ApiError(400, f"{where}.params: Field required")
            if params.get("stream"):
                raise ApiError(400, f"{where}.params.stream: Streaming is not supported in batch requests.")
        with self._lock:
            batch = _Batch(self._next_id("msgbatch_emu_"), datetime.now(timezone.utc), time.monotonic(),
                           self.seconds, self.expire, requests)
            self._batches[batch.id] = batch
            return self._view(batch)

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            return self._view(self._get(batch_id))

    def list(self, limit: int = 20, after_id: str | None = None, before_id: str | None = None) -> dict[str, Any]:
        """Newest first, as the API lists them; `after_id` pages on, `before_id` back."""
        with self._lock:
            ordered = sorted(self._batches.values(), key=lambda b: (b.created, b.id), reverse=True)
            ids = [b.id for b in ordered]
            if after_id is not None:
                ordered = ordered[ids.index(after_id) + 1:] if after_id in ids else []
            elif before_id is not None:
                ordered = ordered[:ids.index(before_id)][-limit:] if before_id in ids else []
            page = ordered[:limit]
            return {"data": [self._view(b) for b in page], "has_more": len(ordered) > len(page),
                    "first_id": page[0].id if page else None, "last_id": page[-1].id if page else None}

    def cancel(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            batch = self._get(batch_id)
            self._advance(batch)
            if batch.ended is None and batch.cancel_at is None:
                batch.cancel_at = time.monotonic()
                batch.cancel_initiated = datetime.now(timezone.utc)
            return self._view(batch, advance=False)  # "canceling": finalized at the next look

    def _ended(self, batch_id: str, refusal: str) -> _Batch:
        """The batch, brought up to date; the API's 400 (`Batch ID <refusal>`) while it is still processing.
        Call with the lock held."""
        batch = self._get(batch_id)
        self._advance(batch)
        if batch.ended is None:
            raise ApiError(400, f"Batch {batch_id} {refusal}")
        return batch

    def delete(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            self._ended(batch_id, "cannot be deleted while it is still processing; cancel it first.")
            del self._batches[batch_id]
            return {"id": batch_id, "type": "message_batch_deleted"}

    def results(self, batch_id: str) -> bytes:
        """The results file: one JSON line per request, shuffled (the API does not keep request order)."""
        with self._lock:
            batch = self._ended(batch_id, "has not finished processing; results are available once "
                                          "processing_status is ended.")
            order = list(range(len(batch.requests)))
            random.Random(batch.id).shuffle(order)
            lines = [json.dumps({"custom_id": batch.requests[i]["custom_id"], "result": batch.results[i]},
                                ensure_ascii=False) for i in order]
        return ("\n".join(lines) + "\n").encode()

    # -- processing --------------------------------------------------------------------------------------

    def _get(self, batch_id: str) -> _Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise ApiError(404, f"message_batch_id: {batch_id} not found")
        return batch

    def _advance(self, batch: _Batch) -> None:
        """Process what is due; end the batch when every request is done, canceled or expired."""
        if batch.ended is not None:
            return
        now = time.monotonic()
        # An expiring batch gets through only its first half before its 24 hours (here: its seconds) run out.
        reachable = len(batch.requests) // 2 if batch.expire else len(batch.requests)
        for position in range(len(batch.results), min(batch.due(now), reachable)):
            batch.results[position] = self._process(batch.requests[position]["params"])
        if batch.cancel_at is not None:
            rest = "canceled"
        elif len(batch.results) == len(batch.requests):
            rest = ""
        elif batch.expire and now >= batch.started + batch.seconds:
            rest = "expired"
        else:
            return
        for position in range(len(batch.results), len(batch.requests)):
            batch.results[position] = {"type": rest}
        batch.ended = datetime.now(timezone.utc)
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for result in batch.results.values():
            counts[result["type"]] += 1
        batch.final = counts

    def _process(self, params: dict[str, Any]) -> dict[str, Any]:
        assert self.answer is not None, "the server binds BatchStore.answer when it starts"
        try:
            return {"type": "succeeded", "message": self.answer(params)}
        except ApiError as error:
            return {"type": "errored", "error": error_body(error.error_type, error.message, None)}

    def _view(self, batch: _Batch, *, advance: bool = True) -> dict[str, Any]:
        if advance:
            self._advance(batch)
        ended = batch.ended is not None
        counts = batch.final if ended and batch.final is not None else {
            "processing": len(batch.requests), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        status = "ended" if ended else ("canceling" if batch.cancel_at is not None else "in_progress")
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": dict(counts),
            "created_at": _iso(batch.created),
            "expires_at": _iso(batch.created + EXPIRES_AFTER),
            "ended_at": _iso(batch.ended) if batch.ended else None,
            "cancel_initiated_at": _iso(batch.cancel_initiated) if batch.cancel_initiated else None,
            "archived_at": None,
            "results_url": f"/v1/messages/batches/{batch.id}/results" if ended else None,
        }


__all__ = ["MAX_REQUESTS", "BatchStore"]
