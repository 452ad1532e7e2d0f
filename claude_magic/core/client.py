"""The kernel's Anthropic client: created lazily, once, and reused across cells and the panel.

Offline mode starts the bundled emulator in this process and points the real SDK at it through its
ordinary `base_url`, so offline and online take exactly the same code path.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx2

from claude_magic.core.errors import NO_API_KEY_MESSAGE, ClaudeError
from claude_magic.core.transport import DEFAULT_MODE, AsyncCassetteTransport, CassetteTransport
from claude_magic.core.wire_events import TappedAnthropic, TappedAsyncAnthropic

OFFLINE_API_KEY = "offline-emulator"
DEMO_TOKENS_PER_SECOND = 60.0
OFFLINE_SCRIPT = Path(__file__).parent.parent / "offline_script.yaml"  # the tutorials' replies


@dataclass(frozen=True)
class ClientSettings:
    offline: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 600.0
    emulator_script: str = ""  # offline mode: the emulator's script file ("": the bundled tutorial script)
    cassette: str = ""  # record / replay every exchange in this file (core.transport); "": none
    cassette_mode: str = DEFAULT_MODE
    cassette_speed: float = 1.0  # replay pace: 1 as recorded, 10 ten times faster, 0 without waiting


_lock = threading.Lock()
_ClientKey = tuple[ClientSettings, str | None, str | None]  # settings and the key / base URL in the environment
_clients: dict[_ClientKey, anthropic.Anthropic] = {}
_emulators: dict[Path, object] = {}  # offline emulators by script, started once per kernel
# An async client's connections belong to the event loop that opened them, so async clients are cached
# per loop: the kernel's loop keeps its own across cells; map()'s private loops close theirs.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_ClientKey, anthropic.AsyncAnthropic]] = (
    weakref.WeakKeyDictionary())


def get_client(settings: ClientSettings) -> anthropic.Anthropic:
    """The shared client for these settings; raises a one-line ClaudeError with the fix when there is no key."""
    # The environment is part of the key: a user who sets ANTHROPIC_API_KEY after a failed cell
    # must get a client that uses it.
    key = (settings, os.environ.get("ANTHROPIC_API_KEY"), os.environ.get("ANTHROPIC_BASE_URL"))
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _make_client(settings)
        return client  # type: ignore[no-any-return]


def get_async_client(settings: ClientSettings) -> anthropic.AsyncAnthropic:
    """The running event loop's shared `AsyncAnthropic` for these settings (same errors as `get_client`)."""
    loop = asyncio.get_running_loop()
    key = (settings, os.environ.get("ANTHROPIC_API_KEY"), os.environ.get("ANTHROPIC_BASE_URL"))
    with _lock:
        clients = _async_clients.setdefault(loop, {})
        client = clients.get(key)
        if client is None:
            client = clients[key] = _make_client(settings, TappedAsyncAnthropic)
        return client


async def close_async_clients() -> None:
    """Close the running loop's async clients (before a private event loop ends)."""
    with _lock:
        clients = list(_async_clients.pop(asyncio.get_running_loop(), {}).values())
    for client in clients:
        await client.close()


def _make_client(settings: ClientSettings, kind: type[Any] = TappedAnthropic) -> Any:
    # Tapped clients are the SDK's own with one addition: the raw view can watch their streams' events,
    # pings included (core.wire_events); a turn that does not ask pays nothing.
    timeout = httpx2.Timeout(settings.read_timeout, connect=settings.connect_timeout)
    # Retries are ours (see _stream.py) so the user sees each one; the SDK must not retry silently.
    if settings.cassette:
        return _cassette_client(settings, kind, timeout)
    if settings.offline:
        return kind(base_url=_offline_base_url(settings.emulator_script), api_key=OFFLINE_API_KEY,
                    max_retries=0, timeout=timeout)
    api_key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    if not (api_key or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
        raise ClaudeError(NO_API_KEY_MESSAGE)
    # A key pasted with a stray newline or space is not a valid header value: strip it here.
    return kind(api_key=api_key or None, max_retries=0, timeout=timeout)


REPLAY_API_KEY = "cassette-replay"  # never leaves the process: a replaying transport sends nothing


def _cassette_client(settings: ClientSettings, kind: type[Any], timeout: httpx2.Timeout) -> Any:
    """A client whose every exchange goes through the cassette's transport (core.transport). Replaying
    needs neither a key nor the emulator: nothing is sent. Where nothing can be sent (no key), the
    replay-or-record mode replays strictly."""
    mode = settings.cassette_mode
    base_url = os.environ.get("ANTHROPIC_BASE_URL") or None
    api_key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    can_record = bool(api_key or os.environ.get("ANTHROPIC_AUTH_TOKEN"))
    if mode != "replay" and settings.offline:
        base_url, api_key, can_record = _offline_base_url(settings.emulator_script), OFFLINE_API_KEY, True
    elif mode == "record" and not can_record:
        raise ClaudeError(NO_API_KEY_MESSAGE)
    asynchronous = issubclass(kind, anthropic.AsyncAnthropic)
    transport_kind = AsyncCassetteTransport if asynchronous else CassetteTransport
    transport = transport_kind(settings.cassette, mode=mode, speed=settings.cassette_speed, can_record=can_record)
    http_client = (httpx2.AsyncClient if asynchronous else httpx2.Client)(
        transport=transport, timeout=timeout,
        # Every request must reach the cassette's transport: no proxy mounted around it from the environment
        # (the transport's own live client honours proxies when it sends).
        trust_env=False)
    if can_record and not settings.offline and not api_key:
        return kind(base_url=base_url, max_retries=0, timeout=timeout, http_client=http_client)
    return kind(base_url=base_url, api_key=api_key or REPLAY_API_KEY, max_retries=0, timeout=timeout,
                http_client=http_client)


def _offline_base_url(script: str) -> str:
    from claude_magic.emulator import Emulator

    path = Path(script).expanduser().resolve() if script else OFFLINE_SCRIPT
    emulator = _emulators.get(path)
    if emulator is None:
        if not path.is_file():
            raise ClaudeError(f"Emulator script not found: {script!r}. Fix the path in %config ClaudeMagic."
                              "emulator_script (or CLAUDE_MAGIC_EMULATOR_SCRIPT), or set it to '' for the "
                              "bundled one.")
        rate = float(os.environ.get("CLAUDE_MAGIC_EMULATOR_TPS", DEMO_TOKENS_PER_SECOND))
        try:
            emulator = Emulator(script=path, tokens_per_second=rate, chunk_tokens=1).start()
        except ValueError as exc:  # the script's own loader names the bad key and where it is
            raise ClaudeError(f"Emulator script is not valid: {exc}") from None
        _emulators[path] = emulator
    return emulator.base_url  # type: ignore[attr-defined]


def reset_clients() -> None:
    """Forget cached clients (after the environment or settings changed)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
