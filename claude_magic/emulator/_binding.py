"""Preserved thinking: each thinking block is bound to the model that wrote it and to its prefix.

From the API's pages (https://platform.claude.com/docs/en/build-with-claude/preserved-thinking and
.../preserved-thinking/prefix-checks):

- When a ``thinking`` or ``redacted_thinking`` block comes back in a request, its ``signature`` is checked
  for two things. **The model can read the block**: each model reads its own blocks and those of a fixed
  set of others (``ModelContract.reads_thinking_from``); a block the current model cannot read is dropped
  from that request without an error. **Nothing before the block has changed**: the top-level ``system``,
  ``tools`` and everything in ``messages`` before the block (earlier messages, and earlier blocks of its
  own message) are its *prefix*. If the prefix differs from what was sent when the block was produced,
  that block and every later one are invalid (each later block's prefix holds the change too). Leaving
  out or moving a thinking block between others changes the prefix of those after it.
- A change invalidates only the thinking already after it: blocks before it, and blocks written after
  the change (their prefix is the changed conversation), stay valid.
- The prefix check runs on the models with preserved thinking (``ModelContract.preserved_thinking``).
  An invalid block is a 400 (``INVALID_BLOCK``) unless the request sets
  ``thinking.block_binding.prefix_mismatch_behavior: "drop_block"``, which needs the beta header
  ``thinking-binding-controls-2026-08-01``; then the failing blocks are dropped and the response's
  ``input_transformations`` lists each one (``{"type": "thinking_dropped", "path": "messages.i.content.j",
  "reason": "prefix_binding_mismatch" | "model_binding_mismatch"}``, in request order; ``[]`` when nothing
  was dropped; only with the beta header; when streaming, in ``message_start``). Dropped blocks add
  nothing to ``usage.input_tokens``.
  (https://platform.claude.com/docs/en/build-with-claude/preserved-thinking/fix-bound-to-a-different-conversation,
  and the SDK's ``BetaThinkingDroppedInputTransformation`` / ``BetaMessage.input_transformations``.)
- On the other models the signature verifies the block's text only, as before.

What counts as an edit here (the emulator's reading of "what counts as an edit"): any difference in the
JSON of ``system``, ``tools`` or the earlier messages and blocks, after three normalisations that carry no
content: a string ``content``/``system`` is the same as one text block holding it, ``cache_control``
markers are left out, and fields whose value is null are left out (the SDK's models serialise absent
fields as null). So a re-run that replaces an earlier turn, a different system prompt, a tool added or
removed, a deleted or reordered message, an image dropped from history, an earlier thinking block left
out, or an edited text all invalidate every thinking block after the change; appending new messages
never invalidates anything.

The emulator's signatures are its own (real ones are opaque): ``cmemu1.`` and base64 of the writing
model, the prefix digest and the digest of the block's text as sent, with a keyed hash over them so a
made-up signature does not verify. A signature a script set by hand, or one made by the emulator of
earlier releases (a hash of the text), carries no binding and is accepted on every model.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from .._model_facts import BINDING_BETA, ModelContract, contract
from ._errors import ApiError

SIGNATURE_PREFIX = "cmemu1."
_KEY = b"claude_magic emulator thinking binding"
THINKING_KINDS = ("thinking", "redacted_thinking")


def legacy_signature(thinking: str) -> str:
    """The unbound signature of a thinking text (what the emulator issued before preserved thinking)."""
    return base64.b64encode(hashlib.sha256(b"claude_magic emulator thinking\0" + thinking.encode()).digest()).decode()


# -- canonical prefixes ------------------------------------------------------------------------------

def _clean(value: Any) -> Any:
    """JSON without what carries no content: cache_control markers and null fields."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k != "cache_control" and v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content) if isinstance(content, list) else []


def content_digest(content: Any) -> str:
    """A digest of a message's content, normalised as for prefixes (a string is one text block)."""
    data = json.dumps(_clean(_blocks(content)), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()


class PrefixHasher:
    """Digests of the prefix before each block of a request: system, tools, earlier messages and blocks."""

    def __init__(self, body: dict[str, Any]) -> None:
        self._head = hashlib.sha256()
        head = {"system": _clean(_blocks(body.get("system"))), "tools": _clean(body.get("tools") or [])}
        self._feed(self._head, head)

    @staticmethod
    def _feed(digest: Any, item: Any) -> None:
        data = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        digest.update(len(data).to_bytes(8, "big") + data)

    def walk(self, messages: list[Any]) -> list[list[str]]:
        """For each message and each of its blocks, the digest of everything before that block."""
        running = self._head.copy()
        digests: list[list[str]] = []
        for message in messages:
            role = message.get("role") if isinstance(message, dict) else None
            self._feed(running, {"role": role})
            row: list[str] = []
            for block in _blocks(message.get("content") if isinstance(message, dict) else None):
                row.append(running.hexdigest())
                self._feed(running, _clean(block))
            digests.append(row)
            self._feed(running, {"end": role})
        self._running = running
        return digests

    def continue_with(self, messages: list[Any], role: str) -> Continuation:
        """Digests for the blocks of a reply that follows `messages` as a new `role` message."""
        self.walk(messages)
        running = self._running.copy()
        self._feed(running, {"role": role})
        return Continuation(running)


class Continuation:
    """The running prefix of a reply being built, block by block."""

    def __init__(self, running: Any) -> None:
        self._running = running

    def current(self) -> str:
        """The prefix digest of the next block (the reply's blocks so far included)."""
        return str(self._running.hexdigest())

    def take(self, block: dict[str, Any]) -> None:
        """Add a block, as sent, to the prefix."""
        PrefixHasher._feed(self._running, _clean(block))


# -- signatures -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Binding:
    """What an emulator signature records."""

    model: str
    prefix: str
    text: str  # digest of the block's text as sent


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def bound_signature(model: str, prefix: str, text: str) -> str:
    payload = json.dumps([model, prefix, _text_digest(text)], separators=(",", ":"))
    mac = hmac.new(_KEY, payload.encode(), hashlib.sha256).hexdigest()[:24]
    return SIGNATURE_PREFIX + base64.urlsafe_b64encode(f"{payload}|{mac}".encode()).decode()


def read_signature(signature: str) -> Binding | None:
    """The binding an emulator signature records; None for anything else (or a forged one)."""
    if not signature.startswith(SIGNATURE_PREFIX):
        return None
    try:
        payload, _, mac = base64.urlsafe_b64decode(signature[len(SIGNATURE_PREFIX):]).decode().rpartition("|")
        expected = hmac.new(_KEY, payload.encode(), hashlib.sha256).hexdigest()[:24]
        if not hmac.compare_digest(mac, expected):
            return None
        model, prefix, text = json.loads(payload)
    except (ValueError, UnicodeDecodeError, TypeError):
        return None
    return Binding(str(model), str(prefix), str(text))


def text_matches(binding: Binding, text: str) -> bool:
    return binding.text == _text_digest(text)


# -- the check --------------------------------------------------------------------------------------

def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def invalid_block_message(where: str, kind: str, beta: bool) -> str:
    """The API's 400 for a block that failed the prefix check (FIX_BOUND page; the sentence about the
    header is left out when the request already sent it)."""
    message = (f"{where}: Invalid `signature` in `{kind}` block. The block is bound to a different "
               "conversation. Remove the block, or set `thinking.block_binding.prefix_mismatch_behavior` to "
               '"drop_block".')
    if not beta:
        message += f" That setting requires the `{BINDING_BETA}` value in the `anthropic-beta` header."
    return message


def beta_values(headers: dict[str, str] | None) -> frozenset[str]:
    raw = (headers or {}).get("anthropic-beta", "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def mismatch_behavior(body: dict[str, Any], betas: frozenset[str]) -> str:
    """thinking.block_binding.prefix_mismatch_behavior, checked: "error" (the default) or "drop_block"."""
    thinking = body.get("thinking")
    binding = thinking.get("block_binding") if isinstance(thinking, dict) else None
    if binding is None:
        return "error"
    if BINDING_BETA not in betas:
        # https://platform.claude.com/docs/en/build-with-claude/preserved-thinking/fix-bound-to-a-different-conversation
        # ("If the error still asks for the header, the header did not arrive.")
        raise _bad(f"thinking.block_binding: this setting requires the `{BINDING_BETA}` value in the "
                   "`anthropic-beta` header.")
    if not isinstance(binding, dict):
        raise _bad("thinking.block_binding: Input should be a valid dictionary")
    behavior = binding.get("prefix_mismatch_behavior")
    if behavior is None:
        return "error"
    if behavior not in ("error", "drop_block"):
        raise _bad("thinking.block_binding.prefix_mismatch_behavior: Input should be 'error' or 'drop_block'")
    return str(behavior)


@dataclass
class BindingOutcome:
    """The request as the model sees it, and what was dropped (for input_transformations)."""

    messages: list[Any]
    transformations: list[dict[str, str]]
    report: bool  # the beta header was sent: the response carries input_transformations


def _reads(reader: ModelContract | None, writer: str) -> bool:
    if reader is None:
        return True  # a model the table does not know (a script's own id): nothing is checked
    written_by = contract(writer)
    if written_by is None:
        return True  # a block from such a model reads anywhere
    return written_by.model in reader.reads_thinking_from


def apply_binding(body: dict[str, Any], signatures: frozenset[str], headers: dict[str, str] | None,
                  ) -> BindingOutcome:
    """Check every thinking block of the request the way the API does; raise the API's 400 or return the
    messages with the blocks the model may not see dropped."""
    betas = beta_values(headers)
    behavior = mismatch_behavior(body, betas)
    reader = contract(str(body.get("model")))
    messages: list[Any] = body.get("messages") or []
    prefixes = PrefixHasher(body).walk(messages)
    dropped: dict[tuple[int, int], str] = {}
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for k, block in enumerate(content):
            if not isinstance(block, dict) or block.get("type") not in THINKING_KINDS:
                continue
            where = f"messages.{i}.content.{k}"
            kind = block["type"]
            binding = _checked_signature(block, where, signatures)
            if binding is None:
                continue  # unbound (a script's signature): accepted as it is
            if not _reads(reader, binding.model):
                # Preserved thinking: "If the current model can't read a block, the API drops it from that
                # request without an error."
                dropped[(i, k)] = "model_binding_mismatch"
                continue
            if reader is not None and reader.preserved_thinking and binding.prefix != prefixes[i][k]:
                if behavior != "drop_block":
                    raise _bad(invalid_block_message(where, kind, BINDING_BETA in betas))
                dropped[(i, k)] = "prefix_binding_mismatch"
    kept = [_without(message, i, dropped) for i, message in enumerate(messages)]
    transformations = [{"type": "thinking_dropped", "path": f"messages.{i}.content.{k}", "reason": reason}
                       for (i, k), reason in sorted(dropped.items())]
    return BindingOutcome(kept, transformations, BINDING_BETA in betas)


def _without(message: Any, index: int, dropped: dict[tuple[int, int], str]) -> Any:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list) or not any(i == index for i, _ in dropped):
        return message
    return {**message, "content": [b for k, b in enumerate(content) if (index, k) not in dropped]}


def _checked_signature(block: dict[str, Any], where: str, signatures: frozenset[str]) -> Binding | None:
    """The block's binding; None for a block a script signed by hand. Raises the API's 400 for a block whose
    signature is missing or does not verify its text."""
    if block["type"] == "redacted_thinking":
        data = block.get("data")
        if not isinstance(data, str) or not data:
            raise _bad(f"{where}.redacted_thinking.data: Field required")
        return read_signature(data)  # the emulator never writes redacted blocks: scripts' data is unbound
    text, signature = block.get("thinking"), block.get("signature")
    if not isinstance(text, str):
        raise _bad(f"{where}.thinking.thinking: Field required")
    if not isinstance(signature, str) or not signature:
        raise _bad(f"{where}.thinking.signature: Field required")
    if signature in signatures or signature == legacy_signature(text):
        return None
    binding = read_signature(signature)
    if binding is None or not text_matches(binding, text):
        raise _bad(f"{where}: Invalid `signature` in `thinking` block")
    return binding


def check_signatures(messages: list[Any], signatures: frozenset[str] = frozenset()) -> None:
    """Only the signature-over-text check of every thinking block (a stored history has no model to read it)."""
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        for k, block in enumerate(content if isinstance(content, list) else []):
            if isinstance(block, dict) and block.get("type") in THINKING_KINDS:
                _checked_signature(block, f"messages.{i}.content.{k}", signatures)
