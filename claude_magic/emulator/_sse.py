"""Server-side Server-Sent Events framing, byte-for-byte like the Messages API."""

from __future__ import annotations

import json
from typing import Any

# What the `malformed` fault sends: a well-framed event whose data is not JSON, so the failure is in
# the client's JSON parsing, not in its SSE framing.
MALFORMED_EVENT = b"event: content_block_delta\ndata: {not json\n\n"


def encode_event(event: str, data: dict[str, Any]) -> bytes:
    """One SSE event: ``event: NAME``, one ``data:`` line of compact JSON, blank line.

    ``json.dumps`` escapes newlines inside strings, so the data always fits on one line.
    """
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()
