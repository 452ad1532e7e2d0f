"""The state of one question-and-answer turn, and the pure reducer that folds stream events into it.

`reduce_event(state, event, now)` is the only place that interprets Messages API stream events; every
surface (cell, panel, terminal) renders the same `TurnState`. It does no I/O: the clock reading is
passed in, so tests replay events with made-up times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

# What every footer of an emulated answer says, wherever it is shown or exported.
OFFLINE_LABEL = "offline emulator, not Claude"

TurnStatus = Literal["waiting", "streaming", "complete", "error", "interrupted", "stopped"]


class StreamOrderError(RuntimeError):
    """An event arrived that cannot follow the events before it."""


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    # usage.server_tool_use: the searches and fetches the API ran for this message (searches are billed)
    web_search_requests: int = 0
    web_fetch_requests: int = 0


@dataclass
class Block:
    """One content block of the assistant message as it streams in."""

    kind: str  # text | thinking | redacted_thinking | tool_use | server_tool_use | other types as sent
    parts: list[str] = field(default_factory=list)  # text, thinking text, or partial JSON fragments
    signature: str = ""
    data: str = ""  # redacted_thinking payload
    tool_id: str = ""
    tool_name: str = ""
    complete: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # the start payload of block kinds we only pass through
    # tool_use: the SDK's parsed snapshot of the input so far (partial JSON parsed by the SDK's stream).
    snapshot: Any = None
    cut_off: bool = False  # tool_use whose input max_tokens cut off: shown as such, never run, never sent back
    # kind "tool_result": a display-only block for one call being run (a `core.tools.ToolCallView`).
    call: Any = None
    # kind "thinking" on a model that sends the text it writes between tool calls as thinking (the 5.5
    # models): a thinking block after the first block of its message is that text, drawn in its place.
    between_tools: bool = False
    # text: the citations of this passage as received (citations_delta, or the block's own list), each the
    # API's dict (web_search_result_location, char_location, page_location, ...): shown as numbered links.
    citations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def has_content(self) -> bool:
        """Something to show: text, a redacted payload, or a block that arrives whole (a server tool's result)."""
        return bool(self.parts or self.data or (self.extra and self.kind not in _CALL_KINDS))

    def to_param(self) -> dict[str, Any] | None:
        """The block as the API expects it back in `messages` (None: nothing worth sending back)."""
        if self.kind == "text":
            if not self.parts:
                return None
            if self.citations:  # sent back as received: the API reads its own citations again
                return {"type": "text", "text": self.text, "citations": list(self.citations)}
            return {"type": "text", "text": self.text}
        if self.kind == "thinking":
            return {"type": "thinking", "thinking": self.text, "signature": self.signature}
        if self.kind == "redacted_thinking":
            return {"type": "redacted_thinking", "data": self.data}
        if self.kind in ("tool_use", "server_tool_use"):
            if self.cut_off:
                return None
            try:
                tool_input = json.loads(self.text) if self.text else {}
            except ValueError:  # incomplete JSON (cut off by max_tokens): the API would reject it
                return None
            # A server tool call goes back exactly as it came (its start payload: `caller`, ...), with the
            # input its deltas spelled out.
            return {**self.extra, "type": self.kind, "id": self.tool_id, "name": self.tool_name, "input": tool_input}
        if self.kind == "tool_result":
            return None  # drawn only: results go back in the next user message
        return dict(self.extra) or None


def block_from_param(param: dict[str, Any]) -> Block:
    """A finished Block from a content block as stored in history (to draw it, or to continue it)."""
    kind = str(param.get("type", "unknown"))
    if kind == "text":
        return Block(kind, parts=[param.get("text", "")], complete=True, citations=list(param.get("citations") or []))
    if kind == "thinking":
        return Block(kind, parts=[param.get("thinking", "")], signature=param.get("signature", ""), complete=True)
    if kind == "redacted_thinking":
        return Block(kind, data=param.get("data", ""), complete=True)
    if kind in ("tool_use", "server_tool_use"):
        extra = {key: value for key, value in param.items() if key not in ("type", "id", "name", "input")}
        return Block(kind, parts=[json.dumps(param.get("input", {}))], tool_id=param.get("id", ""),
                     tool_name=param.get("name", ""), complete=True, extra=extra if kind == "server_tool_use" else {})
    return Block(kind, complete=True, extra=dict(param))


@dataclass
class ErrorInfo:
    """What went wrong, phrased for the user: one line, plus the facts a bug report needs."""

    kind: str  # e.g. rate_limit, overloaded, authentication, connection, timeout, interrupted
    message: str  # what happened; after `finalize`, the whole line shown to the user
    hint: str = ""  # what to do about it
    status_code: int | None = None
    request_id: str | None = None
    retryable: bool = False
    exception: BaseException | None = field(default=None, repr=False, compare=False)  # for debug mode

    def finalize(self, partial: bool) -> ErrorInfo:
        """Compose the one line: what happened, what became of the partial answer, what to do, request id."""
        line = self.message
        if partial:
            line += " — partial answer kept, not added to history"
        if self.hint:
            line += f". {self.hint[0].upper()}{self.hint[1:]}"
        if self.request_id:
            line += f" (request id {self.request_id})"
        self.message = line
        return self


@dataclass
class TurnState:
    """Everything any surface needs to draw a turn; grows as events arrive."""

    model: str
    prompt: str
    started_at: float
    status: TurnStatus = "waiting"
    blocks: list[Block] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    message_id: str | None = None
    request_id: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    error: ErrorInfo | None = None
    notice: str | None = None  # transient status line, e.g. "Rate limited (429): retrying in 2 s"
    offline: bool = False  # answered by the bundled emulator, not Claude
    revision: int = 0  # bumped when visible content changes; the throttle compares it first
    deltas: int = 0  # content deltas received: the token count before the final usage arrives
    chars: int = 0  # characters of content received (text, thinking, tool input): sizes frame budgets
    usage_final: bool = False  # message_delta has reported the cumulative usage
    # The surface raises the error line itself (a failed %%claude cell): the drawing must not say it again.
    error_raised: bool = False
    # The SDK's final `Message` (`stream.get_final_message()`) once the turn completed: the Python API's
    # reply hands it out; the reducer never reads it.
    final_message: Any = field(default=None, repr=False, compare=False)
    # Tool rounds: the blocks of earlier messages stay in `blocks` (drawn in one output); the current
    # message's blocks start at `round_start`, and `usage` is the current message's, `prior_usage` the sum
    # of the earlier ones.
    round_start: int = 0
    prior_usage: Usage = field(default_factory=Usage)
    tool_rounds: int = 0
    # The raw view: one line per event as it came over the wire, pings included (`core.wire_events`);
    # None when the surface draws the answer instead, so a normal turn records nothing.
    events: list[str] | None = None
    # A continued answer (`%claude continue`, a paused turn): the blocks before `kept_blocks` came from
    # earlier, and never go in a retry. With `seam` set, the new message's first text block extends the
    # last of them, so the answer reads on in the same paragraph (the API continues a final assistant
    # message where it ends).
    kept_blocks: int = 0
    seam: bool = False
    # Where the committed turn went in its conversation ("replaced turn 2 of 5"), or why it was not added.
    history_note: str | None = None
    cost: float | None = None  # estimated US dollars for this turn (core.pricing)
    # Where a cell draws the turn from (block index, part index): a continuation drawn below the cut-off
    # answer shows only what follows it. None: all of it.
    drawn_from: tuple[int, int] | None = None
    # A cut-off answer that `%claude continue` has since continued: its warning is resolved.
    continued_later: bool = False
    # The model sends the text it writes between tool calls as thinking blocks (from the contract table).
    narrates_in_thinking: bool = False
    # Earlier thinking this request did not carry, or that the model does not read (core.preserved.describe).
    thinking_note: str | None = None
    # A typed answer (`output=Model`, core.structured): the validated object once the turn completed, drawn
    # in place of its JSON; None when no type was asked for or the answer was not one (then `error` says why).
    typed: bool = False
    parsed: Any = field(default=None, repr=False, compare=False)

    @property
    def text(self) -> str:
        """All text blocks joined: the Markdown answer."""
        return "".join(block.text for block in self.blocks if block.kind == "text")

    @property
    def tokens_so_far(self) -> int:
        """Output tokens received: exact once message_delta reports usage, else counted deltas."""
        current = self.usage.output_tokens if self.usage_final else max(self.usage.output_tokens, self.deltas)
        return self.prior_usage.output_tokens + current

    @property
    def total_usage(self) -> Usage:
        """Usage summed over every message of the turn (tool rounds included)."""
        return Usage(*(getattr(self.prior_usage, name) + getattr(self.usage, name) for name in _USAGE_FIELDS))

    @property
    def round_has_content(self) -> bool:
        """The current message has content (a retry would repeat it)."""
        return any(block.has_content for block in self.blocks[self.round_start :])

    @property
    def has_content(self) -> bool:
        return any(block.has_content for block in self.blocks)

    @property
    def finished(self) -> bool:
        return self.status not in ("waiting", "streaming")

    def assistant_content(self) -> list[dict[str, Any]]:
        """The assistant message content to commit to history."""
        return [param for block in self.blocks if (param := block.to_param()) is not None]


def reduce_event(state: TurnState, event: Any, now: float) -> TurnState:
    """Fold one stream event (an SDK event object) into `state` and return it.

    Only the raw Messages API events are interpreted; the SDK's derived convenience events
    (`text`, `thinking`, `input_json`, ...) repeat the same deltas and are ignored.
    """
    kind = event.type
    if kind == "message_start":
        message = event.message
        state.message_id = message.id
        state.model = message.model or state.model
        _merge_usage(state.usage, message.usage)
        state.status = "streaming"
    elif kind == "content_block_start":
        position = event.index + state.round_start
        if state.seam and position == len(state.blocks) - 1 and event.content_block.type == "text":
            # The continuation's first text block: the answer goes on inside the block it continues.
            state.seam = False
            block = state.blocks[position]
            block.complete = False
            if event.content_block.text:
                block.parts.append(event.content_block.text)
                state.revision += 1
            return state
        state.seam = False
        if position != len(state.blocks):
            raise StreamOrderError(f"content block {event.index} started, "
                                   f"expected {len(state.blocks) - state.round_start}")
        block = _new_block(event.content_block)
        if block.kind == "thinking" and state.narrates_in_thinking:
            # A message's first thinking block is its up-front reasoning; a later one is what Claude writes
            # around its tool calls, sent as thinking by these models.
            block.between_tools = position > state.round_start
        state.blocks.append(block)
        if block.has_content:
            state.revision += 1
    elif kind == "content_block_delta":
        block = _open_block(state, event.index + state.round_start)
        if event.delta.type == "citations_delta":
            # A citation of the passage this text block holds: kept as received, drawn as a numbered link.
            block.citations.append(_as_dict(event.delta.citation))
            state.revision += 1
            return state
        added = _apply_delta(block, event.delta)
        if not added:
            return state
        state.chars += added
        state.deltas += 1
        if state.first_token_at is None:
            state.first_token_at = now
        state.revision += 1
    elif kind == "input_json":
        # The SDK's derived event after each input_json_delta: its `snapshot` is the input parsed so far
        # (partial JSON, parsed by the SDK anyway); it belongs to the last block started.
        if state.blocks and state.blocks[-1].kind in ("tool_use", "server_tool_use"):
            state.blocks[-1].snapshot = event.snapshot
    elif kind == "content_block_stop":
        _open_block(state, event.index + state.round_start).complete = True
    elif kind == "message_delta":
        state.stop_reason = event.delta.stop_reason
        state.stop_sequence = event.delta.stop_sequence
        if state.stop_reason == "max_tokens":
            # A tool call max_tokens cut off has incomplete input JSON: shown as cut off, never run or sent.
            for block in state.blocks[state.round_start :]:
                if block.kind in ("tool_use", "server_tool_use") and block.to_param() is None:
                    block.cut_off = True
        _merge_usage(state.usage, event.usage)
        state.usage_final = True
    elif kind == "message_stop":
        state.status = "complete"
        state.finished_at = now
    return state


_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                 "web_search_requests", "web_fetch_requests")


# Calls whose start payload (kept in `extra`) is not content of its own: their input streams after it.
_CALL_KINDS = ("tool_use", "server_tool_use")


def _as_dict(item: Any) -> dict[str, Any]:
    """An SDK object as the API sent it (fields it left out stay out), or a dict as it is."""
    if isinstance(item, dict):
        return dict(item)
    if hasattr(item, "to_dict"):
        return item.to_dict()
    return item.model_dump(exclude_none=True) if hasattr(item, "model_dump") else {}


def _new_block(start: Any) -> Block:
    kind = start.type
    if kind == "text":
        citations = [_as_dict(citation) for citation in getattr(start, "citations", None) or []]
        return Block(kind, parts=[start.text] if start.text else [], citations=citations)
    if kind == "thinking":
        return Block(kind, parts=[start.thinking] if start.thinking else [], signature=start.signature or "")
    if kind == "redacted_thinking":
        return Block(kind, data=start.data)
    if kind == "tool_use":
        return Block(kind, tool_id=start.id, tool_name=start.name)
    if kind == "server_tool_use":
        # Kept as received but for its input, which the deltas spell out (the start carries `{}`).
        extra = {key: value for key, value in _as_dict(start).items() if key not in ("type", "id", "name", "input")}
        return Block(kind, tool_id=start.id, tool_name=start.name, extra=extra)
    # Blocks that arrive whole in their start event (a server tool's result, ...): kept exactly as received,
    # since the API needs them back verbatim.
    return Block(kind, extra=_as_dict(start))


def _open_block(state: TurnState, index: int) -> Block:
    if not 0 <= index < len(state.blocks):
        raise StreamOrderError(f"event for content block {index} before it started")
    block = state.blocks[index]
    if block.complete:
        raise StreamOrderError(f"event for content block {index} after it stopped")
    return block


def _apply_delta(block: Block, delta: Any) -> int:
    """Apply a delta; returns the characters added, 0 when nothing visible changed (a signature)."""
    kind = delta.type
    if kind == "signature_delta":
        block.signature += delta.signature
        return 0
    piece = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}.get(kind)
    if piece is None:
        return 0  # future delta kinds carry nothing we render yet
    value = getattr(delta, piece)
    if not value:
        return 0  # the first input_json_delta is often "": no token has arrived yet
    block.parts.append(value)
    return len(value)


def _merge_usage(usage: Usage, reported: Any) -> None:
    """message_delta usage is cumulative; fields it leaves out (None) keep their earlier value."""
    if reported is None:
        return
    for name in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        value = getattr(reported, name, None)
        if value is not None:
            setattr(usage, name, value)
    server = getattr(reported, "server_tool_use", None)
    if server is not None:
        for name in ("web_search_requests", "web_fetch_requests"):
            value = getattr(server, name, None)
            if value is not None:
                setattr(usage, name, value)
