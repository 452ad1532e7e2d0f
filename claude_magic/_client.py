"""The kernel's Anthropic client: created lazily, once, and reused across cells and the panel.

Offline mode starts the bundled emulator in this process and points the real SDK at it through its
ordinary `base_url`, so offline and online take exactly the same code path.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx2

from ._errors import NO_API_KEY_MESSAGE, user_error

OFFLINE_API_KEY = "offline-emulator"
DEMO_TOKENS_PER_SECOND = 60.0
OFFLINE_SCRIPT = Path(__file__).with_name("offline_script.yaml")


@dataclass(frozen=True)
class ClientSettings:
    offline: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 600.0


_lock = threading.Lock()
_clients: dict[tuple[ClientSettings, str | None, str | None], anthropic.Anthropic] = {}
_emulator = None


def get_client(settings: ClientSettings) -> anthropic.Anthropic:
    """The shared client for these settings; raises a one-line UsageError with the fix when there is no key."""
    # The environment is part of the key: a user who sets ANTHROPIC_API_KEY after a failed cell
    # must get a client that uses it.
    key = (settings, os.environ.get("ANTHROPIC_API_KEY"), os.environ.get("ANTHROPIC_BASE_URL"))
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _make_client(settings)
        return client


def _make_client(settings: ClientSettings) -> anthropic.Anthropic:
    timeout = httpx2.Timeout(settings.read_timeout, connect=settings.connect_timeout)
    # Retries are ours (see _stream.py) so the user sees each one; the SDK must not retry silently.
    if settings.offline:
        return anthropic.Anthropic(base_url=_offline_base_url(), api_key=OFFLINE_API_KEY,
                                   max_retries=0, timeout=timeout)
    api_key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    if not (api_key or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
        raise user_error(NO_API_KEY_MESSAGE)
    # A key pasted with a stray newline or space is not a valid header value: strip it here.
    return anthropic.Anthropic(api_key=api_key or None, max_retries=0, timeout=timeout)


def _offline_base_url() -> str:
    global _emulator
    if _emulator is None:
        from .emulator import Emulator

        rate = float(os.environ.get("CLAUDE_MAGIC_EMULATOR_TPS", DEMO_TOKENS_PER_SECOND))
        _emulator = Emulator(script=OFFLINE_SCRIPT, tokens_per_second=rate, chunk_tokens=1).start()
    return _emulator.base_url


def reset_clients() -> None:
    """Forget cached clients (after the environment or settings changed)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
