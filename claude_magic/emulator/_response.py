"""Turning a script turn and a request into a reply: the Message object and its stream of events."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._binding import BindingOutcome, PrefixHasher, bound_signature
from ._replies import default_reply, default_thinking, default_tool_blocks, generate_markdown
from ._script import Turn, content_text, prompt_text, user_prompts
from ._server_tools import block_cost_text, default_server_blocks, expand_blocks, iteration_cut, resumed_blocks
from ._structured import json_answer, output_schema
from ._thinking_rules import model_row, thinking_display, thinking_mode, thinking_type
from ._tokens import count_request_tokens, tokenize
from ._tool_rules import custom_tools

# The API interleaves pings with long streams; one every this many deltas looks the same to a client.
PING_EVERY_DELTAS = 50


@dataclass
class Reply:
    """The answer to one request, already cut to ``max_tokens`` / stop sequences."""

    message_id: str
    model: str
    blocks: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    usage: dict[str, int] = field(default_factory=dict)
    # input_transformations, reported only when the request sent the binding beta header (see _binding)
    transformations: list[dict[str, str]] | None = None

    def message(self) -> dict[str, Any]:
        """The non-streaming Message object."""
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.blocks,
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "usage": dict(self.usage),
        }
        if self.transformations is not None:
            message["input_transformations"] = list(self.transformations)
        return message


@dataclass(frozen=True)
class StreamEvent:
    """One SSE event, with the output tokens it carries (drives pacing and fault positions)."""

    name: str
    data: dict[str, Any]
    tokens: int = 0


@dataclass
class _Draft:
    """A reply block while the reply is built: what is sent, plus what the emulator needs to know of it."""

    block: dict[str, Any]
    hidden: str | None = None  # thinking text display "omitted" leaves out (it still costs output tokens)
    signed: bool = False  # the script set the signature: sent as it is


def _tool_json(block: dict[str, Any]) -> str:
    # The API's partial_json uses json's default ", " / ": " separators.
    return json.dumps(block["input"], ensure_ascii=False)


def _scripted_blocks(turn: Turn | None, body: dict[str, Any], tool_id: Callable[[], str]) -> list[_Draft]:
    """The reply's blocks: what the script says (or the default reply), shaped the way the request's model
    answers: up-front thinking first when thinking is on, the text between tool calls in thinking blocks on
    the models that do so, thinking text left out under display "omitted"; and only the rest of the answer
    when the request continues a partial one."""
    drafts = [_Draft(block, signed=block["type"] == "thinking" and "signature" in block)
              for block in _whole_reply(turn, body, tool_id)]
    if resumed_blocks(body):  # a paused server-tool answer goes on: no new up-front thinking
        return drafts
    prefill = _prefill_text(body["messages"])
    if prefill is not None:
        return [_Draft(block) for block in _continuation([d.block for d in drafts], prefill)]
    row = model_row(body)
    kind = thinking_type(body)
    if thinking_mode(body) is not None and not any(
            d.block["type"] in ("thinking", "redacted_thinking") for d in drafts):
        thought = default_thinking(user_prompts(body["messages"]))
        drafts.insert(0, _Draft({"type": "thinking", "thinking": thought}))
    progress: set[int] = set()
    if row is not None and row.between_tools_text_as_thinking and kind in ("adaptive", "between_tools"):
        # "Text between tool calls comes back in thinking blocks" (What's new in Claude Sonnet 5.5 / Opus 5.5):
        # the text a reply writes before a tool call it makes is a progress update. Only client tool calls
        # (`tool_use`) count here: the pages say "tool calls" and say nothing of server tools (web search, web
        # fetch, code execution), nor does the server tools page; so text written between server tool calls, and
        # cited text after a search, stays text as on the other models. Change this when the API documents it.
        last_tool = max((n for n, d in enumerate(drafts) if d.block["type"] == "tool_use"), default=-1)
        for draft in drafts[:max(last_tool, 0)]:
            if draft.block["type"] == "text":
                draft.block = {"type": "thinking", "thinking": draft.block["text"]}
                progress.add(id(draft))
    display = thinking_display(body)
    for draft in drafts:
        # Display "omitted" (the default from Claude 4.7 on): the block arrives with an empty `thinking` and
        # only its signature (https://platform.claude.com/docs/en/build-with-claude/thinking). Under
        # between_tools the progress updates keep their summary text (What's new in Claude Sonnet 5.5).
        if draft.block["type"] == "thinking" and display == "omitted" and not (
                kind == "between_tools" and id(draft) in progress):
            draft.hidden = draft.block["thinking"]
            draft.block = {**draft.block, "thinking": ""}
    return drafts


def _prefill_text(messages: list[Any]) -> str | None:
    """The text of a final assistant message (an answer to continue), or None when the user spoke last."""
    last = messages[-1]
    return content_text(last.get("content")) if last.get("role") == "assistant" else None


def _continuation(blocks: list[dict[str, Any]], prefill: str) -> list[dict[str, Any]]:
    """The answer after `prefill`, when the scripted answer starts with it (an answer cut off by max_tokens
    and continued): one text block with the rest. Otherwise the reply as scripted (a paused turn's next
    part, or a prefill of the caller's own)."""
    text = "".join(block["text"] for block in blocks if block["type"] == "text")
    if not prefill or not text.startswith(prefill):
        return blocks
    rest = text[len(prefill):]
    return [{"type": "text", "text": rest}] if rest else []


def _whole_reply(turn: Turn | None, body: dict[str, Any], tool_id: Callable[[], str]) -> list[dict[str, Any]]:
    """Complete content blocks for the turn (or the default reply), with tool ids filled in."""
    if turn is not None and turn.generate is not None:
        return [{"type": "text", "text": generate_markdown(turn.generate.tokens, turn.generate.seed)}]
    sources = turn.content if turn is not None else None
    schema = output_schema(body)
    if sources is None and schema is not None:  # structured output: JSON that satisfies the schema
        return [{"type": "text", "text": json_answer(schema, "\n".join(user_prompts(body["messages"])[-1:]))}]
    if sources is None:
        sources = tuple(default_server_blocks(body, prompt_text(body["messages"]))
                        or default_tool_blocks(body, custom_tools(body)) or ())
    if not sources:
        return [{"type": "text", "text": default_reply(user_prompts(body["messages"]), body["model"])}]
    blocks: list[dict[str, Any]] = []
    for source in sources:
        block = dict(source)
        if block["type"] == "tool_use":
            block = {
                "type": "tool_use",
                "id": block.get("id") or tool_id(),
                "name": block["name"],
                "input": block["input"],
            }
        blocks.append(block)
    return blocks


def _server_expanded(drafts: list[_Draft], body: dict[str, Any], tool_id: Callable[[], str],
                     ) -> tuple[list[_Draft], dict[str, int], bool]:
    """Server tool shorthands expanded into their calls and results (_server_tools); a resumed paused answer
    goes on after what it already sent; the reply stops where the server-side loop pauses."""
    by_identity = {id(draft.block): draft for draft in drafts}
    blocks = expand_blocks([draft.block for draft in drafts], body, tool_id)
    expanded = [by_identity.get(id(block)) or _Draft(block) for block in blocks]
    already = resumed_blocks(body)
    if already:
        expanded = [d for d in expanded if d.block["type"] not in ("thinking", "redacted_thinking")][already:]
    end, counts, paused = iteration_cut([draft.block for draft in expanded])
    return expanded[:end], counts, paused


def _cost(block: dict[str, Any], hidden: str | None = None) -> int:
    kind = block["type"]
    if kind not in ("text", "thinking", "redacted_thinking", "tool_use"):
        text = block_cost_text(block)  # a server tool's call costs its input; its result is input, not output
        return len(tokenize(text)) if text else 0
    if kind == "tool_use":
        return len(tokenize(_tool_json(block)))
    if kind == "redacted_thinking":
        return len(tokenize(block["data"]))
    if kind == "thinking" and hidden is not None:
        return len(tokenize(hidden))
    return len(tokenize(block[kind]))


def _cut(draft: _Draft, tokens: int) -> _Draft:
    """The first `tokens` tokens of a text or thinking block (its hidden text too)."""
    key = draft.block["type"]
    block = {**draft.block, key: "".join(tokenize(draft.block[key])[:tokens])}
    hidden = None if draft.hidden is None else "".join(tokenize(draft.hidden)[:tokens])
    return _Draft(block, hidden, signed=False)  # a cut block is a different block: signed anew


def _signed(drafts: list[_Draft], body: dict[str, Any]) -> list[dict[str, Any]]:
    """The blocks as sent, each thinking block signed for its model and prefix (see _binding): the request's
    messages as sent and the reply's blocks before it."""
    prefix = PrefixHasher(body).continue_with(body["messages"], "assistant")
    blocks: list[dict[str, Any]] = []
    for draft in drafts:
        block = draft.block
        if block["type"] == "thinking" and not draft.signed:
            signature = bound_signature(body["model"], prefix.current(), block["thinking"])
            block = {**block, "signature": signature}
        prefix.take(block)
        blocks.append(block)
    return blocks


def build_reply(turn: Turn | None, body: dict[str, Any], message_id: str, tool_id: Callable[[], str],
                binding: BindingOutcome | None = None) -> Reply:
    """The reply to a validated request: scripted blocks, cut where a real model would have stopped.

    `binding`: the request's thinking blocks as checked (what the model sees; what was dropped)."""
    budget: int = body["max_tokens"]
    stops: list[str] = body.get("stop_sequences") or []
    kept: list[_Draft] = []
    used = 0
    forced: tuple[str, str | None] | None = None
    drafts, server_uses, paused = _server_expanded(_scripted_blocks(turn, body, tool_id), body, tool_id)
    for draft in drafts:
        block = draft.block
        hit = None
        if block["type"] == "text" and stops:
            found = [(block["text"].find(s), s) for s in stops if s in block["text"]]
            if found:
                position, hit = min(found)
                draft = _Draft({**block, "text": block["text"][:position]})
                block = draft.block
        cost = _cost(block, draft.hidden)
        if used + cost > budget:
            # Thinking and text can stop mid-way; a tool call or redacted block is all or nothing.
            if block["type"] in ("text", "thinking") and budget > used:
                kept.append(_cut(draft, budget - used))
                used = budget
            forced = ("max_tokens", None)
            break
        if block["type"] != "text" or block["text"]:
            kept.append(draft)
        used += cost
        if hit is not None:
            forced = ("stop_sequence", hit)
            break
    if forced is not None:
        stop_reason, stop_sequence = forced
    else:
        has_tool = any(d.block["type"] == "tool_use" for d in kept)
        default = "tool_use" if has_tool else "pause_turn" if paused else "end_turn"
        stop_reason = (turn.stop_reason if turn else None) or default
        stop_sequence = turn.stop_sequence if turn else None
    seen = body if binding is None else {**body, "messages": binding.messages}  # dropped blocks cost nothing
    scripted_usage = dict(turn.usage) if turn else {}
    usage = {
        "input_tokens": scripted_usage.get("input_tokens", count_request_tokens(seen)),
        # The API never reports 0 output tokens, even for an empty answer.
        "output_tokens": scripted_usage.get("output_tokens", max(used, 1)),
        "cache_creation_input_tokens": scripted_usage.get("cache_creation_input_tokens", 0),
        "cache_read_input_tokens": scripted_usage.get("cache_read_input_tokens", 0),
    }
    if any(server_uses.values()):  # usage.server_tool_use: the searches and fetches this answer made
        usage["server_tool_use"] = server_uses  # type: ignore[assignment]
    transformations = binding.transformations if binding is not None and binding.report else None
    return Reply(message_id, body["model"], _signed(kept, body), stop_reason, stop_sequence, usage, transformations)


def _chunks(text: str, chunk_tokens: int) -> Iterator[tuple[str, int]]:
    tokens = tokenize(text)
    for start in range(0, len(tokens), chunk_tokens):
        piece = tokens[start : start + chunk_tokens]
        yield "".join(piece), len(piece)


def _block_start(block: dict[str, Any]) -> dict[str, Any]:
    """The block as ``content_block_start`` announces it: empty, to be filled by deltas."""
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": ""}
    if kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if kind in ("tool_use", "server_tool_use"):
        return {"type": kind, "id": block["id"], "name": block["name"], "input": {}}
    return dict(block)


def _deltas(block: dict[str, Any], chunk_tokens: int) -> Iterator[tuple[dict[str, Any], int]]:
    kind = block["type"]
    if kind == "text":
        # A cited passage: its citations first, then its text (https://platform.claude.com/docs/en/
        # build-with-claude/citations, "Streaming support": a citations_delta adds one to the block's list).
        for citation in block.get("citations") or ():
            yield {"type": "citations_delta", "citation": citation}, 0
        for text, n in _chunks(block["text"], chunk_tokens):
            yield {"type": "text_delta", "text": text}, n
    elif kind == "thinking":
        for text, n in _chunks(block["thinking"], chunk_tokens):
            yield {"type": "thinking_delta", "thinking": text}, n
        yield {"type": "signature_delta", "signature": block["signature"]}, 0
    elif kind in ("tool_use", "server_tool_use"):
        # The API opens every tool input with an empty fragment before the JSON itself.
        yield {"type": "input_json_delta", "partial_json": ""}, 0
        for text, n in _chunks(_tool_json(block), chunk_tokens):
            yield {"type": "input_json_delta", "partial_json": text}, n


def stream_events(reply: Reply, chunk_tokens: int) -> Iterator[StreamEvent]:
    """The SSE events of ``reply`` in the API's order, ``chunk_tokens`` tokens per delta."""
    ping = StreamEvent("ping", {"type": "ping"})
    start_usage = {**reply.usage, "output_tokens": 1}
    message = {**reply.message(), "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}
    yield StreamEvent("message_start", {"type": "message_start", "message": message})
    yield ping
    deltas = 0
    for index, block in enumerate(reply.blocks):
        # A redacted block arrives whole in its start event, so that event carries its tokens.
        start_tokens = _cost(block) if block["type"] == "redacted_thinking" else 0
        start = {"type": "content_block_start", "index": index, "content_block": _block_start(block)}
        yield StreamEvent("content_block_start", start, start_tokens)
        for delta, n in _deltas(block, chunk_tokens):
            yield StreamEvent("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}, n)
            deltas += 1
            if deltas % PING_EVERY_DELTAS == 0:
                yield ping
        yield StreamEvent("content_block_stop", {"type": "content_block_stop", "index": index})
    yield StreamEvent(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
            "usage": dict(reply.usage),
        },
    )
    yield StreamEvent("message_stop", {"type": "message_stop"})
