"""Message Batches: split a job, submit it, record it on disk, poll it, collect its results in input order.

    job = BatchJob.from_requests(requests, options)                 # one request per prompt, in input order
    record = submit_part(client, job, part, positions, folder)      # per job.parts(); recorded when created
    wait_until_ended(client, record.id, on_poll, sleep=sleep)       # until processing_status is "ended"
    collect(client, record, states, spec, offline=False)            # results, streamed, into states by position

Docs: https://platform.claude.com/docs/en/build-with-claude/batch-processing — a batch holds at most
100,000 requests and 256 MB; it ends within 24 hours and costs half the standard price; results are
kept 29 days and come back in any order, matched by `custom_id`. Here a `custom_id` is `p<position>`:
the prompt's position in the job, so each result goes back to its row without a lookup table.

A record is written the moment the API answers the create call (an Interrupt is held back until it is),
so a paid-for batch is never forgotten: `<folder>/<batch id>.json` holds the id, when it was created,
the positions it covers, a digest of each prompt's request, and the options. A job's digest (over all its
requests) lets the same `map(..., batch=True)` cell find its batches again instead of submitting twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_magic.core.structured import OutputSpec, parse_into
from claude_magic.core.turn import Block, ErrorInfo, TurnState, Usage, block_from_param

MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 1024 * 1024
BATCH_DISCOUNT = 0.5  # batch requests cost half the standard price
DIGEST_CHARS = 20  # of a prompt's sha256: enough to tell prompts apart, small enough for 100,000 in a record
RECORD_VERSION = 1
_ENVELOPE_BYTES = 64  # {"custom_id": "p12345", "params": } and the comma between requests


@dataclass
class BatchJob:
    """The requests of one `map(..., batch=True)`: params per position, their digests, the job's digest."""

    params: list[dict[str, Any]]
    digests: list[str]
    sizes: list[int]  # bytes of each request as sent
    options: dict[str, Any]

    @classmethod
    def from_requests(cls, requests: list[dict[str, Any]], options: dict[str, Any]) -> BatchJob:
        params = [batch_params(request) for request in requests]
        encoded = [json.dumps(p, sort_keys=True, ensure_ascii=False, default=str).encode() for p in params]
        digests = [hashlib.sha256(data).hexdigest()[:DIGEST_CHARS] for data in encoded]
        return cls(params, digests, [len(data) + _ENVELOPE_BYTES for data in encoded], options)

    @property
    def digest(self) -> str:
        """The whole job's fingerprint: the same prompts with the same options, in the same order."""
        joined = hashlib.sha256()
        for digest in self.digests:
            joined.update(digest.encode())
        return joined.hexdigest()[:32]

    def parts(self, max_requests: int | None = None, max_bytes: int | None = None) -> list[range]:
        """Consecutive position ranges, each within the API's per-batch limits."""
        max_requests = max_requests or MAX_REQUESTS
        max_bytes = max_bytes or MAX_BYTES
        parts: list[range] = []
        start = size = 0
        for position, request_bytes in enumerate(self.sizes):
            if position > start and (position - start >= max_requests or size + request_bytes > max_bytes):
                parts.append(range(start, position))
                start, size = position, 0
            size += request_bytes
        if start < len(self.sizes) or not parts:
            parts.append(range(start, len(self.sizes)))
        return parts


def batch_params(request: dict[str, Any]) -> dict[str, Any]:
    """A turn's `messages.stream(**request)` keyword arguments as a batch request's `params` (what
    `messages.create` would send): `extra_body` merged in, SDK-only options dropped, never `stream`."""
    params = {key: value for key, value in request.items()
              if key not in ("extra_body", "extra_headers", "extra_query", "timeout", "stream")}
    params.update(request.get("extra_body") or {})
    return params


def custom_id(position: int) -> str:
    return f"p{position}"


def position_of(custom: str) -> int:
    return int(custom[1:])


# -- records on disk -----------------------------------------------------------------------------------------


@dataclass
class BatchRecord:
    """One submitted batch as recorded on disk (and what `%claude batches` lists)."""

    id: str
    created_at: str
    job: str  # the job's digest
    part: int
    parts: int
    start: int  # positions start .. start + count - 1 of the job
    count: int
    total: int  # prompts in the whole job
    digests: list[str]
    options: dict[str, Any]
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {"version": RECORD_VERSION, "id": self.id, "created_at": self.created_at, "job": self.job,
                "part": self.part, "parts": self.parts, "start": self.start, "count": self.count,
                "total": self.total, "options": self.options, "prompt_digests": self.digests}

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> BatchRecord:
        return cls(id=data["id"], created_at=data["created_at"], job=data["job"], part=data["part"],
                   parts=data["parts"], start=data["start"], count=data["count"], total=data["total"],
                   digests=list(data.get("prompt_digests", [])), options=dict(data.get("options", {})), path=path)

    @property
    def positions(self) -> range:
        return range(self.start, self.start + self.count)


def write_record(folder: Path, record: BatchRecord) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record.id}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(record.to_json()), encoding="utf-8")
    os.replace(temporary, path)  # a reader never sees half a record
    record.path = path
    return path


def read_records(folder: Path | None) -> list[BatchRecord]:
    """Every batch recorded in `folder`, oldest first; unreadable files are skipped."""
    if folder is None or not folder.is_dir():
        return []
    records = []
    for path in folder.glob("*.json"):
        try:
            records.append(BatchRecord.from_json(json.loads(path.read_text(encoding="utf-8")), path))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(records, key=lambda r: (r.created_at, r.part))


def find_record(folders: list[Path], batch_id: str) -> BatchRecord | None:
    for folder in folders:
        for record in read_records(folder):
            if record.id == batch_id:
                return record
    return None


# -- submit, wait, collect -----------------------------------------------------------------------------------


def submit_part(client: Any, job: BatchJob, part: int, positions: range, folder: Path) -> BatchRecord:
    """Create one batch for `positions` and record it before anything else can happen."""
    requests = [{"custom_id": custom_id(p), "params": job.params[p]} for p in positions]
    with holding_interrupts():
        batch = client.messages.batches.create(requests=requests)
        created = batch.created_at.isoformat() if hasattr(batch.created_at, "isoformat") else str(batch.created_at)
        record = BatchRecord(id=batch.id, created_at=created, job=job.digest, part=part,
                             parts=len(job.parts()), start=positions.start, count=len(positions),
                             total=len(job.params), digests=[job.digests[p] for p in positions],
                             options=job.options)
        write_record(folder, record)
    return record


@contextlib.contextmanager
def holding_interrupts() -> Iterator[None]:
    """Hold a SIGINT (the kernel's Interrupt) until the block is done, then deliver it: between the API
    creating a batch and its record reaching the disk, an interrupt would lose a paid-for batch."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[Any] = []
    previous = signal.getsignal(signal.SIGINT)

    def hold(signum: int, frame: Any) -> None:
        received.append((signum, frame))

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(*received[0])
        elif received and previous == signal.SIG_DFL:
            raise KeyboardInterrupt


def poll_delays(first: float = 0.5, factor: float = 1.5, longest: float = 30.0) -> Iterator[float]:
    """Seconds between status checks: quick at first (small batches end fast), then at most `longest`."""
    delay = first
    while True:
        yield delay
        delay = min(delay * factor, longest)


def wait_until_ended(client: Any, batch_id: str, on_poll: Callable[[Any], None], *,
                     sleep: Callable[[float], bool], delays: Iterator[float] | None = None) -> Any:
    """Retrieve the batch until processing_status is "ended"; `on_poll(batch)` after each look. `sleep`
    returns False to give up (a cancelled wait): then the last batch seen is returned, not ended."""
    delays = delays or poll_delays()
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        on_poll(batch)
        if batch.processing_status == "ended":
            return batch
        if not sleep(next(delays)):
            return batch


def collect(client: Any, record: BatchRecord, states: list[TurnState], spec: OutputSpec | None, *,
            offline: bool, prices: Any = None) -> dict[str, int]:
    """Stream the batch's results into `states` (indexed by job position); counts by result type.

    Each result is folded as it arrives from the JSONL stream: nothing holds all of them twice."""
    from claude_magic.core.pricing import estimate_cost

    counts = {"succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    for line in client.messages.batches.results(record.id):
        state = states[position_of(line.custom_id)]
        result = line.result
        counts[result.type] = counts.get(result.type, 0) + 1
        if result.type == "succeeded":
            _fold_message(state, result.message)
            if spec is not None:
                parse_into(state, spec)
            if not offline:
                cost = estimate_cost(state.model, state.usage, prices)
                state.cost = None if cost is None else cost * BATCH_DISCOUNT
        else:
            state.status = "error"
            state.error = ErrorInfo(result.type, _not_answered(result, record.id))
        state.finished_at = time.monotonic()
    return counts


def _fold_message(state: TurnState, message: Any) -> None:
    # Text blocks (nearly all of a batch) are built directly; the rest through their dict form.
    state.blocks = [Block("text", parts=[block.text], complete=True) if block.type == "text"
                    else block_from_param(block.to_dict()) for block in message.content]
    usage = message.usage
    state.usage = Usage(input_tokens=usage.input_tokens or 0, output_tokens=usage.output_tokens or 0,
                        cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
                        cache_read_input_tokens=usage.cache_read_input_tokens or 0)
    state.usage_final = True
    state.stop_reason = message.stop_reason
    state.message_id = message.id
    state.final_message = message
    state.status = "complete"


def _not_answered(result: Any, batch_id: str) -> str:
    if result.type == "errored":
        error = result.error.error
        return f"Batch request errored ({error.type}): {error.message}"
    if result.type == "expired":
        return f"Not processed: batch {batch_id} expired (24 hours) before this request ran; ask again"
    return f"Not processed: batch {batch_id} was canceled before this request ran"


__all__ = ["BATCH_DISCOUNT", "MAX_BYTES", "MAX_REQUESTS", "BatchJob", "BatchRecord", "batch_params", "collect",
           "custom_id", "find_record", "holding_interrupts", "poll_delays", "read_records", "submit_part",
           "wait_until_ended", "write_record"]
