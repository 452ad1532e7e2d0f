"""`map(..., batch=True)`, `batch_results(id)` and `%claude batches`: Message Batches from a notebook.

    replies = claude_magic.map(df["review"], output=Label, batch=True)   # submit, wait, collect in order
    replies = claude_magic.batch_results("msgbatch_...")                 # after a restart: collect it again
    %claude batches                       # this notebook's batches, their status and counts
    %claude batches cancel msgbatch_...   # cancel one

The work is in `core.batches` (split, submit, record, poll, collect); this module draws the progress and
hands back the same `Replies` a plain `map` returns. Batches are recorded under
`<history_dir>/.batches/<notebook>/` (also when saving history is off: a paid-for batch is never lost).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic

from claude_magic.core.batches import (
    BATCH_DISCOUNT,
    BatchJob,
    BatchRecord,
    collect,
    find_record,
    read_records,
    submit_part,
    wait_until_ended,
)
from claude_magic.core.client import get_client
from claude_magic.core.engine import PreparedTurn, client_settings
from claude_magic.core.errors import describe_error
from claude_magic.core.persist import notebook_key
from claude_magic.core.pricing import format_cost
from claude_magic.core.structured import OutputSpec
from claude_magic.core.turn import ErrorInfo, TurnState
from claude_magic.settings import ClaudeMagic, current_settings
from claude_magic.surfaces.display import resolve_display
from claude_magic.surfaces.replies import Replies
from claude_magic.surfaces.reply import Reply

BATCHES_FOLDER = ".batches"  # inside history_dir; a notebook's folder name never starts with a dot
DEFAULT_HISTORY_DIR = ".claude_magic/history"


def batches_root(settings: ClaudeMagic) -> Path:
    return Path(settings.history_dir.strip() or DEFAULT_HISTORY_DIR).expanduser() / BATCHES_FOLDER


def batches_folder(settings: ClaudeMagic) -> Path:
    """Where this notebook's batches are recorded."""
    return batches_root(settings) / notebook_key()


# -- map(..., batch=True) ------------------------------------------------------------------------------------


def run_batch_job(turns: list[PreparedTurn], *, index: Any = None, display: str = "progress",
                  resubmit: bool = False, stop: threading.Event | None = None) -> Replies:
    """Submit `turns` (prepared one-off turns) as Message Batches, or find this job's batches recorded
    earlier; wait for them and collect the results in input order. An Interrupt while waiting hands back
    the Replies marked "not collected yet": the batch keeps running on Anthropic's side."""
    if any(turn.tool_loop is not None for turn in turns):
        raise ValueError("map(..., batch=True) cannot run tools: a batch's answers arrive when it ends, with no "
                         "way to send tool results back; drop tools=, or use map() without batch=True")
    settings = current_settings()
    states = [turn.state for turn in turns]
    if not turns:
        return Replies([], index=index)
    spec = turns[0].output
    job = BatchJob.from_requests([turn.request for turn in turns], {**_options(turns[0], spec),
                                                                    "index": _recordable_index(index)})
    client = get_client(turns[0].client_settings)  # no key: one line, before a bar is drawn
    progress = _BatchProgress(len(turns), display)
    folder = batches_folder(settings)
    records = [] if resubmit else _recorded_parts(client, folder, job.digest, progress)
    done = {record.part for record in records}
    try:
        for part, positions in enumerate(job.parts()):
            if part not in done:
                records.append(submit_part(client, job, part, positions, folder))
        records.sort(key=lambda record: record.part)
        progress.submitted(records)
        for record in records:
            progress.waiting_for(record)
            batch = wait_until_ended(client, record.id, progress.poll, sleep=_sleeper(stop))
            if batch.processing_status != "ended":
                raise KeyboardInterrupt  # the wait was called off (map_async cancelled)
            progress.counts.update({k: progress.counts.get(k, 0) + v for k, v in
                                    collect(client, record, states, spec, offline=settings.offline,
                                            prices=turns[0].prices).items()})
    except KeyboardInterrupt:
        _mark_not_collected(states, records)
        progress.close()
        progress.report(states, interrupted=records)
        return Replies((Reply(state) for state in states), index=index, interrupted=True,
                       batch_ids=[record.id for record in records])
    except anthropic.APIError as exc:
        # The job failed as a whole (a create refused, the connection lost while waiting): every row not
        # answered says so in one line, and what was created stays recorded and collectable.
        _mark_not_collected(states, records, because=describe_error(exc, model=states[0].model).finalize(False))
    progress.close()
    progress.report(states)
    return Replies((Reply(state) for state in states), index=index, batch_ids=[record.id for record in records])


async def run_batch_job_async(turns: list[PreparedTurn], *, index: Any = None, display: str = "progress",
                              resubmit: bool = False) -> Replies:
    """`run_batch_job` in a worker thread, the event loop free meanwhile; cancelling stops the waiting (the
    batch keeps running) and raises CancelledError."""
    stop = threading.Event()
    context = contextvars.copy_context()  # the cell's parent header: the progress lands in this cell
    try:
        return await asyncio.to_thread(context.run, run_batch_job, turns, index=index, display=display,
                                       resubmit=resubmit, stop=stop)
    except asyncio.CancelledError:
        stop.set()
        raise


def _sleeper(stop: threading.Event | None) -> Callable[[float], bool]:
    if stop is None:
        def sleep(seconds: float) -> bool:
            time.sleep(seconds)  # an Interrupt lands here as KeyboardInterrupt
            return True
        return sleep
    return lambda seconds: not stop.wait(seconds)


def _options(turn: PreparedTurn, spec: OutputSpec | None) -> dict[str, Any]:
    request = turn.request
    return {"model": request.get("model"), "max_tokens": request.get("max_tokens"),
            "system": str(request.get("system") or "")[:200], "output": spec.name if spec else None,
            "schema": spec.schema if spec else None, "offline": turn.state.offline}


def _recordable_index(index: Any) -> list[Any] | None:
    """The input's pandas index as a JSON list (ints and strings only), so rows collected after a restart
    line up with the DataFrame again; None for anything else (the rows then come back by position)."""
    if index is None:
        return None
    values = list(index)
    if all(isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) for v in values):
        return values
    try:  # numpy integers
        return [int(v) for v in values] if all(float(v).is_integer() for v in values) else None
    except (TypeError, ValueError):
        return None


def _recorded_parts(client: Any, folder: Path, job: str, progress: _BatchProgress) -> list[BatchRecord]:
    """This job's batches recorded earlier that the API still has (newest per part)."""
    found: dict[int, BatchRecord] = {}
    for record in read_records(folder):
        if record.job == job:
            found[record.part] = record
    kept = []
    for record in found.values():
        try:
            client.messages.batches.retrieve(record.id)
        except anthropic.NotFoundError:
            progress.say(f"Batch {record.id} (recorded {record.created_at}) is no longer known to the API: "
                         "submitting those prompts again")
            continue
        progress.say(f"Collecting batch {record.id}, submitted {record.created_at} by an earlier run of this "
                     "job (map(..., resubmit=True) submits it again)")
        kept.append(record)
    return kept


def _mark_not_collected(states: list[TurnState], records: list[BatchRecord], because: ErrorInfo | None = None,
                        ) -> None:
    """Rows without a result: interrupted (`because` None) or failed with `because`; a row whose batch was
    created says how to collect it later."""
    owner = {position: record.id for record in records for position in record.positions}
    reason = "interrupted" if because is None else because.message
    for position, state in enumerate(states):
        if state.status in ("waiting", "streaming"):
            state.status = "interrupted" if because is None else "error"
            batch_id = owner.get(position)
            line = (f"Not collected yet ({reason}): batch {batch_id} keeps running on Anthropic's side; "
                    f"claude_magic.batch_results({batch_id!r}) collects it" if batch_id else
                    f"Not submitted ({reason}): no batch was created for this row")
            state.error = ErrorInfo("interrupted" if because is None else because.kind, line)


# -- collecting a recorded batch -----------------------------------------------------------------------------


def batch_results(batch_id: str | None = None, *, output: Any = None, display: str = "progress",
                  wait: bool = True) -> Replies:
    """Collect one recorded batch (this notebook's, or any notebook's under the same history_dir) into the
    Replies `map(..., batch=True)` returned for its prompts, in input order; waits while it still runs.
    Without an id: this notebook's most recent batch.

    >>> replies = claude_magic.batch_results("msgbatch_01...")   # e.g. after a kernel restart
    >>> replies.to_frame()

    output: the type to validate into (the pydantic model, dataclass, ...); without it a typed batch's
    answers are parsed as dicts of the recorded schema. wait=False: a running batch raises ValueError.
    """
    from claude_magic.core.structured import output_spec
    from claude_magic.surfaces.api import _remember

    settings = current_settings()
    root = batches_root(settings)
    folders = [batches_folder(settings), *sorted(p for p in root.glob("*") if p.is_dir())]
    if batch_id is None:
        recorded = read_records(batches_folder(settings))
        if not recorded:
            raise ValueError(f"No batches recorded for this notebook (in {batches_folder(settings)})")
        batch_id = recorded[-1].id
    record = find_record(folders, batch_id)
    client = get_client(client_settings(settings))
    if record is None:
        raise ValueError(f"No batch {batch_id!r} is recorded under {root} (see %claude batches); collect batches "
                         "submitted elsewhere with client.messages.batches.results()")
    options = record.options
    spec = output_spec(output) if output is not None else (
        OutputSpec(name=options["output"], schema=options["schema"]) if options.get("schema") else None)
    model = options.get("model") or ""
    states = [TurnState(model=model, prompt="", started_at=time.monotonic(), offline=bool(options.get("offline")),
                        typed=spec is not None) for _ in range(record.start + record.count)]
    progress = _BatchProgress(record.count, display)
    progress.submitted([record])
    progress.waiting_for(record)
    try:
        batch = wait_until_ended(client, record.id, progress.poll,
                                 sleep=_sleeper(None) if wait else (lambda _seconds: False))
        if batch.processing_status != "ended":
            progress.close()
            raise ValueError(f"Batch {batch_id} is still {batch.processing_status}; wait=True waits for it")
        progress.counts.update(collect(client, record, states, spec, offline=settings.offline))
    except anthropic.APIError as exc:
        progress.close()
        raise ValueError(f"Could not collect batch {batch_id}: "
                         f"{describe_error(exc, model=model).finalize(False).message}") from None
    except KeyboardInterrupt:
        mine = states[record.start:]
        _mark_not_collected(mine, [BatchRecord(**{**record.__dict__, "start": 0})])
        progress.close()
        progress.report(mine, interrupted=[record])
        return _remember(Replies((Reply(s) for s in mine), interrupted=True, batch_ids=[record.id]))
    progress.close()
    mine = states[record.start:]
    progress.report(mine)
    return _remember(Replies((Reply(s) for s in mine), batch_ids=[record.id], index=_index_of(record)))


def _index_of(record: BatchRecord) -> Any:
    """The recorded input index of this batch's rows, as a pandas Index (None when none was recorded)."""
    values = record.options.get("index")
    if not values or len(values) < record.start + record.count:
        return None
    import pandas as pd

    return pd.Index(values[record.start:record.start + record.count])


# -- %claude batches -----------------------------------------------------------------------------------------


def batches_report(settings: ClaudeMagic) -> str:
    """This notebook's batches, oldest first: id, created, prompts, status and counts as the API reports."""
    folder = batches_folder(settings)
    records = read_records(folder)
    if not records:
        return f"No batches recorded for this notebook (in {folder})."
    client = get_client(client_settings(settings))
    lines = [f"Batches of this notebook (recorded in {folder}):"]
    for record in records:
        try:
            batch = client.messages.batches.retrieve(record.id)
        except anthropic.NotFoundError:
            status = "gone (no longer known to the API)"
        except anthropic.APIError as exc:
            status = f"unknown ({type(exc).__name__})"
        else:
            status = _status_text(batch)
        what = f"{record.count} prompt{'s' * (record.count != 1)}"
        if record.parts > 1:
            what += f", part {record.part + 1} of {record.parts}"
        output = f", output {record.options['output']}" if record.options.get("output") else ""
        lines.append(f"  {record.id} · created {record.created_at} · {what}{output} · {status}")
    return "\n".join(lines)


def cancel_batch(settings: ClaudeMagic, batch_id: str) -> str:
    client = get_client(client_settings(settings))
    try:
        batch = client.messages.batches.cancel(batch_id)
    except anthropic.NotFoundError:
        raise ValueError(f"No batch {batch_id!r} is known to the API") from None
    except anthropic.APIError as exc:
        raise ValueError(f"Could not cancel batch {batch_id}: "
                         f"{describe_error(exc, model='').finalize(False).message}") from None
    return (f"Batch {batch_id}: {batch.processing_status}. Requests not yet processed end as canceled; "
            f"claude_magic.batch_results({batch_id!r}) collects the rest.")


def _status_text(batch: Any) -> str:
    counts = batch.request_counts
    if batch.processing_status != "ended":
        return f"{batch.processing_status.replace('_', ' ')} ({counts.processing} processing)"
    parts = [f"{getattr(counts, name)} {name}" for name in ("succeeded", "errored", "canceled", "expired")
             if getattr(counts, name)]
    return "ended: " + (", ".join(parts) or "no requests")


# -- progress ------------------------------------------------------------------------------------------------


class _BatchProgress:
    """What the API reports, and nothing it does not: in progress (with the elapsed time) while it runs,
    the counts once it has ended (the API counts only at the end). A tqdm bar in a notebook or terminal;
    with display_mode final only the summary line."""

    def __init__(self, total: int, display: str) -> None:
        if display not in ("progress", "none"):
            raise ValueError(f"display must be 'progress' or 'none', got {display!r}")
        self.total = total
        self.counts: dict[str, int] = {}
        self._show = display == "progress"
        self._started = time.monotonic()
        self._bar: Any = None
        self._batch_id = ""
        self._ids: list[str] = []
        if self._show:
            mode = resolve_display(current_settings().display_mode)
            if mode != "final":
                from claude_magic.surfaces.api import _make_bar

                self._bar = _make_bar(total, text=mode == "terminal", desc="claude_magic batch")

    def say(self, line: str) -> None:
        if self._show:
            print(line)

    def submitted(self, records: list[BatchRecord]) -> None:
        self._ids = [record.id for record in records]

    def waiting_for(self, record: BatchRecord) -> None:
        self._batch_id = record.id

    def poll(self, batch: Any) -> None:
        if self._bar is None:
            return
        elapsed = time.monotonic() - self._started
        if batch.processing_status == "ended":
            counts = batch.request_counts
            self._bar.update(counts.succeeded + counts.errored + counts.canceled + counts.expired)
            self._bar.set_postfix_str(f"{batch.id}: {_status_text(batch)}", refresh=True)
        else:
            self._bar.set_postfix_str(f"{batch.id}: {batch.processing_status.replace('_', ' ')} · "
                                      f"elapsed {elapsed:.0f} s", refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def report(self, states: list[TurnState], interrupted: list[BatchRecord] | None = None) -> None:
        if not (self._show or interrupted is not None):
            return
        print(self.summary(states, interrupted))

    def summary(self, states: list[TurnState], interrupted: list[BatchRecord] | None = None) -> str:
        elapsed = time.monotonic() - self._started
        ids = ", ".join(self._ids) or "none"
        parts = [f"claude_magic.map (batch {ids}): {self.total} prompt{'s' * (self.total != 1)}"]
        parts += [f"{count} {name}" for name, count in self.counts.items() if count]
        tokens = sum(state.usage.output_tokens for state in states)
        parts.append(f"{tokens:,} tokens out")
        costs = [state.cost for state in states if state.cost is not None]
        if costs:
            paid = sum(costs)
            parts.append(f"{format_cost(paid)} at the batch price ({int(BATCH_DISCOUNT * 100)}% of "
                         f"{format_cost(paid / BATCH_DISCOUNT)})")
        elif any(state.offline for state in states):
            parts.append("no cost (offline emulator; a real batch costs half the standard price)")
        parts.append(f"elapsed {elapsed:.1f} s")
        line = " · ".join(parts)
        if interrupted is not None:
            waiting = ", ".join(f"claude_magic.batch_results({r.id!r})" for r in interrupted)
            line += (f" · interrupted: the batch keeps running on Anthropic's side; collect it with {waiting}, "
                     "or run this cell again")
        return line


__all__ = ["batch_results", "batches_report", "cancel_batch", "run_batch_job", "run_batch_job_async"]
