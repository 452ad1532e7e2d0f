"""Turn exceptions from the SDK and the network into one clear line for the user.

Every message says what happened and what to do about it; none contains a traceback or the API
key (error bodies can echo request headers, so the key is scrubbed from whatever the server said).
"""

from __future__ import annotations

import json
import os
import traceback
from email.utils import parsedate_to_datetime
from time import time as _wall_clock
from typing import Any

import anthropic
import httpx2

from claude_magic.core.turn import ErrorInfo

_RETRYABLE_STATUS = {408, 409, 429}
_INITIAL_RETRY_DELAY = 0.5
_MAX_RETRY_DELAY = 8.0
_MAX_RETRY_AFTER = 60.0


class ClaudeError(Exception):
    """A Claude turn failed (the API, the network, no key, an answer that is not what was asked for).

    A real exception, unlike IPython's UsageError (which the surfaces keep for a bad flag or argument: IPython
    prints it to stderr, with no `error` message on IOPub): the kernel sends this one as an `error` message, so
    `pytest --nbval-lax`, nbconvert and Run All stop at the cell as they do for any exception. IPython
    shows `_render_traceback_` in place of a traceback: the one line says what happened and the fix.
    `.reply` holds what arrived (a `claude_magic.Reply`: partial text, usage, state), when a turn ran.
    """

    def __init__(self, message: str, reply: Any = None) -> None:
        super().__init__(message)
        self.reply = reply

    def _render_traceback_(self) -> list[str]:
        if self.__cause__ is not None:  # debug mode chains the SDK's own exception to it: show everything
            return "".join(traceback.format_exception(self)).splitlines()
        return [f"{type(self).__name__}: {self}"]


class ClaudeInterrupted(ClaudeError):
    """The turn was interrupted (the kernel's Interrupt, a cancelled task): the partial answer stays shown
    and marked, history is untouched. Not a mistake of the user's, and still the end of Run All."""


def turn_failed(reply: Any) -> ClaudeError:
    """The exception for a reply whose turn ended in an error or an interrupt."""
    status = reply.state.status
    error = ClaudeInterrupted if status in ("interrupted", "stopped") else ClaudeError
    return error(reply.error or status, reply)


NO_API_KEY_MESSAGE = (
    "No Anthropic API key: set ANTHROPIC_API_KEY in the environment that starts Jupyter, "
    "or work offline against the bundled emulator with %config ClaudeMagic.offline = True "
    "(or CLAUDE_MAGIC_OFFLINE=1)."
)


def redact_secrets(text: str) -> str:
    """Remove the API key (and auth token) from text that may echo request headers."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        secret = os.environ.get(name)
        # Servers strip whitespace around header values, so the echo is of the stripped key.
        for variant in {secret or "", (secret or "").strip()}:
            if len(variant) >= 8:
                text = text.replace(variant, "[redacted]")
    return text


def redacted_exception(exc: BaseException) -> BaseException:
    """`exc` with the key scrubbed from its message, args and body (for debug mode's re-raise)."""
    exc.args = tuple(redact_secrets(arg) if isinstance(arg, str) else arg for arg in exc.args)
    for attribute in ("message", "body"):
        value = getattr(exc, attribute, None)
        if isinstance(value, str):
            setattr(exc, attribute, redact_secrets(value))
        elif isinstance(value, dict | list):
            setattr(exc, attribute, json.loads(redact_secrets(json.dumps(value))))
    return exc


def describe_error(exc: BaseException, *, model: str, output_tokens: int = 0) -> ErrorInfo:
    """What happened and what to do, for `exc`; `ErrorInfo.finalize` makes the one line shown."""
    after = f" after {output_tokens} tokens" if output_tokens else ""
    miss = cassette_miss(exc)
    if miss is not None:  # its own line names the cassette, the cell and what differs; never retried
        info = ErrorInfo("cassette", str(miss))
    elif isinstance(exc, anthropic.APIStatusError):
        info = _describe_status_error(exc, model=model, after=after)
    elif isinstance(exc, anthropic.APITimeoutError | httpx2.TimeoutException):
        info = ErrorInfo("timeout", f"Timed out waiting for the API{after}",
                         "check the network, or raise %config ClaudeMagic.read_timeout", retryable=True)
    elif isinstance(exc, anthropic.APIConnectionError | httpx2.TransportError):
        what = f"Connection to the API lost{after}" if after else "Could not connect to the API"
        info = ErrorInfo("connection", what, "check the network or ANTHROPIC_BASE_URL, then try again",
                         retryable=True)
    elif isinstance(exc, ValueError | anthropic.APIResponseValidationError):
        # json.JSONDecodeError and pydantic errors: the server sent an event the SDK cannot read.
        info = ErrorInfo("malformed", f"The API sent a malformed stream event{after}", "try again")
    elif isinstance(exc, anthropic.AnthropicError) and "authentication" in str(exc).lower():
        info = ErrorInfo("authentication", NO_API_KEY_MESSAGE)
    else:
        info = ErrorInfo("unexpected", f"Unexpected error{after}: {type(exc).__name__}: {exc}")
    info.message = redact_secrets(info.message)
    info.exception = exc
    return info


def cassette_miss(exc: BaseException) -> BaseException | None:
    """The `core.transport.CassetteMiss` behind `exc`: the SDK wraps what its transport raises in its own
    connection error, with the miss as the cause."""
    from claude_magic.core.transport import CassetteMiss

    seen: BaseException | None = exc
    for _depth in range(8):
        if seen is None or isinstance(seen, CassetteMiss):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _api_error_type_and_message(exc: anthropic.APIStatusError) -> tuple[str, str]:
    body: Any = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("type", "")), str(error.get("message", ""))
    return "", str(exc.message)


def _describe_status_error(exc: anthropic.APIStatusError, *, model: str, after: str) -> ErrorInfo:
    status = exc.status_code
    error_type, server_message = _api_error_type_and_message(exc)
    request_id = exc.request_id
    if status == 200:
        # An `event: error` inside a 200 stream: the answer started, then the API gave up.
        what = "Overloaded" if error_type == "overloaded_error" else f"API error ({error_type or 'unknown'})"
        return ErrorInfo(error_type or "stream_error", f"{what} mid-answer{after}", "try again",
                         status, request_id)
    retryable = status in _RETRYABLE_STATUS or status >= 500
    should_retry = exc.response.headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    detail = f": {server_message}" if server_message else ""
    known = {
        400: (f"Bad request (400){detail}", ""),
        401: ("Authentication failed (401)", "set a valid ANTHROPIC_API_KEY"),
        403: (f"Permission denied (403){detail}", f"this API key may not use {model}"),
        404: (f"Not found (404): unknown model {model!r}", "choose another with --model or %config ClaudeMagic.model"),
        413: ("Request too large (413)", "shorten the prompt or start a new conversation with --new"),
        429: (f"Rate limited (429){detail}", "wait a moment and try again"),
        529: ("Overloaded (529): the API is busy", "try again in a moment"),
    }
    message, hint = known.get(status) or (f"API error ({status}){detail}", "try again")
    return ErrorInfo(error_type or f"http_{status}", message, hint, status, request_id, retryable)


def retry_delay(exc: BaseException, attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (0-based): the server's retry-after if it
    gave one (capped), else exponential backoff like the SDK's own policy, without jitter so the
    message shown to the user is the wait that happens."""
    response = getattr(exc, "response", None)
    headers = response.headers if response is not None else {}
    retry_after = _parse_retry_after(headers)
    if retry_after is not None:
        return min(retry_after, _MAX_RETRY_AFTER)
    return min(_INITIAL_RETRY_DELAY * 2**attempt, _MAX_RETRY_DELAY)


def _parse_retry_after(headers: Any) -> float | None:
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            return max(parsedate_to_datetime(value).timestamp() - _wall_clock(), 0.0)
        except (TypeError, ValueError):
            return None
