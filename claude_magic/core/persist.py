"""Conversations on disk: every committed turn saved at once, loaded back only when asked (`%claude resume`).

    <history_dir>/.gitignore                                  "*": written with the folder (as pytest does
                                                              for its cache), so a `git add .` leaves it out
    <history_dir>/<notebook>/<conversation>@<time>/index.json    {"name", "turns": [ids, in order], "kernel"}
    <history_dir>/<notebook>/<conversation>@<time>/appended.txt  ids of turns added since, one per line
    <history_dir>/<notebook>/<conversation>@<time>/turns/<id>.json   one turn: messages, source, usage, cost

Each kernel saves each of its conversations into a folder of its own (a *save*), named after the conversation
and the time that kernel first saved it, and created with an exclusive mkdir: two kernels of one notebook, or
two terminal IPython sessions (which all save under `ipython/`), never write into one folder, so each save
holds one kernel's conversation whole, in the order it had, whatever else writes beside it. The index names
the kernel that writes the save (process id, host, start time); `%claude conversations` says which save is
this kernel's and which another's, and whether that kernel is still running.

A turn's file is written to a temporary file in the same folder and renamed over the old one, so a crash
leaves the old file or the new one, never half of one. A new turn's id is then appended to
`appended.txt` (a line that a crash cut short is ignored on loading, its turn file is not listed), so
saving a turn costs the turn's own size whatever the length of the conversation. Changes of order (a
dropped turn, a load) rewrite the index, the same way, and empty the list of appended ids. Only messages
and the turn's facts are saved: never the API key, never request headers.

A restarted kernel starts clean, and its first turn starts a new save. `%claude resume [NAME]` loads the
newest save of conversation NAME (or the save NAME@time itself) back; when the kernel that wrote it is no
longer running, the resumed conversation goes on in that save, otherwise in a new one. `%claude reset`
leaves the save so far as it is and starts a new one with the next turn.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claude_magic.core.history import STORE, Change, Conversation, Turn, message_text
from claude_magic.core.server_tools import CitationIndex, block_markdown, sources_markdown
from claude_magic.core.turn import OFFLINE_LABEL

FORMAT = "claude_magic.conversation"
VERSION = 1
INDEX = "index.json"
APPENDED = "appended.txt"
TURNS = "turns"


class HistoryFileError(ValueError):
    """A saved or exported conversation that cannot be loaded: the message says why, in one line."""


def notebook_key() -> str:
    """The notebook this kernel runs for (Jupyter tells its kernels in JPY_SESSION_NAME), else "ipython"."""
    session = os.environ.get("JPY_SESSION_NAME", "").strip()
    return _safe(Path(session).stem) if session else "ipython"


def _safe(name: str) -> str:
    """A conversation or notebook name as one folder name (the real name is kept in the index)."""
    cleaned = re.sub(r"[^\w.@-]", "_", name).strip(".") or "_"
    return cleaned[:100]


def _write_atomically(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # dumps (the C encoder, one write) rather than dump, which writes piece by piece: 10x faster here
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


GITIGNORE = "# Created by claude_magic: saved conversations hold prompts, answers and attached data.\n*\n"


def _make_folders(path: Path) -> None:
    """mkdir -p `path`; the topmost folder this creates gets a .gitignore ignoring everything in it."""
    created = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        created = folder
    path.mkdir(parents=True, exist_ok=True)
    if created is not None:
        with contextlib.suppress(OSError):
            (created / ".gitignore").write_text(GITIGNORE, encoding="utf-8")


def _this_kernel() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": _STARTED}


_STARTED = time.strftime("%Y-%m-%d %H:%M:%S")


def _still_running(kernel: dict[str, Any]) -> bool | None:
    """Whether the process that wrote a save is still running; None when that cannot be told (another host)."""
    if kernel.get("host") != socket.gethostname() or not isinstance(kernel.get("pid"), int):
        return None
    if kernel["pid"] == os.getpid():
        return True
    try:
        os.kill(kernel["pid"], 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


@dataclass(frozen=True)
class SavedConversation:
    """What `%claude conversations` lists of a save on disk."""

    name: str  # the save's name (its folder): what `%claude resume NAME` takes
    conversation: str  # the conversation it saves
    turns: int
    input_tokens: int
    output_tokens: int
    cost: float | None
    modified: float
    kernel: dict[str, Any]  # the process that writes it: pid, host, started (empty for older saves)
    ours: bool  # written by this kernel
    running: bool | None  # its kernel is still running (None: on another host, or unknown)


@dataclass
class _Save:
    """A save this kernel writes: its folder and the turn ids in it, in order."""

    folder: Path
    ids: dict[str, None]


class HistoryFiles:
    """Saves every change of the kernel's conversations under `root()` (None: saving is off)."""

    def __init__(self, root: Callable[[], Path | None]) -> None:
        self._root = root
        self._lock = threading.Lock()
        # This kernel's saves, by folder of saves and conversation name: only this kernel writes into them.
        self._saves: dict[tuple[Path, str], _Save] = {}
        self.last_error: str | None = None

    def root(self) -> Path | None:
        """This notebook's folder of saved conversations (None: saving is off)."""
        return self._root()

    # -- saving ----------------------------------------------------------------------------------------

    def on_change(self, conversation: Conversation, change: Change, turn: Turn | None) -> None:
        """The store's listener: runs after every change, under the conversation's lock (so in order)."""
        root = self._root()
        if root is None:
            return
        key = (root, conversation.name)
        folder: Path | None = None
        try:
            with self._lock:
                if change == "reset":
                    # Cleared, not lost: the save so far stays as it is; the next turn starts a new one.
                    self._saves.pop(key, None)
                    return
                save = self._saves.get(key) or self._new_save(root, conversation.name)
                self._saves[key] = save
                folder, ids = save.folder, save.ids
                if change == "turn" and turn is not None:
                    _write_atomically(folder / TURNS / f"{turn.id}.json", turn.to_dict())
                    if turn.id in ids:
                        return  # replaced in place: the order is unchanged
                    if (folder / INDEX).exists():  # a new turn, always added at the end: one line
                        with open(folder / APPENDED, "a", encoding="utf-8") as appended:
                            appended.write(f"{turn.id}\n")
                        ids[turn.id] = None
                        return
                current = conversation.turn_ids
                unsaved = set(current) - set(ids) - ({turn.id} if turn is not None else set())
                if unsaved:  # loaded (resume, import) or moved in: their files are written once
                    for loaded in conversation.turns:
                        if loaded.id in unsaved:
                            _write_atomically(folder / TURNS / f"{loaded.id}.json", loaded.to_dict())
                self._write_index(folder, conversation.name, current)
                for gone in set(ids) - set(current):
                    with contextlib.suppress(OSError):
                        (folder / TURNS / f"{gone}.json").unlink()
                save.ids = dict.fromkeys(current)
        except OSError as exc:
            # Saving is a convenience: the turn is committed in memory whatever the disk says.
            message = (f"claude_magic: could not save conversation {conversation.name!r} to {folder or root}: "
                       f"{exc}")
            if message != self.last_error:
                print(message, file=sys.stderr)
            self.last_error = message

    @staticmethod
    def _new_save(root: Path, name: str) -> _Save:
        """A folder no other kernel writes: `<name>@<now>`, claimed with an exclusive mkdir (a second kernel
        starting the same second gets `-2`, ...)."""
        _make_folders(root)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for counter in range(1, 1000):
            folder = root / f"{_safe(name)}@{stamp}{'' if counter == 1 else f'-{counter}'}"
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            return _Save(folder, {})
        raise OSError(f"no free folder name for {name!r} in {root}")

    @staticmethod
    def _write_index(folder: Path, name: str, ids: list[str]) -> None:
        _write_atomically(folder / INDEX, {"format": FORMAT, "version": VERSION, "name": name, "turns": ids,
                                           "kernel": _this_kernel()})
        with contextlib.suppress(FileNotFoundError):
            (folder / APPENDED).unlink()  # its ids are in the index now

    # -- loading ---------------------------------------------------------------------------------------

    def find(self, name: str) -> Path:
        """The save `name` (a folder `conversation@time`), else the newest save of conversation `name`."""
        root = self._root()
        if root is None:
            raise HistoryFileError("Saving history is off (%config ClaudeMagic.history_dir is empty)")
        exact = root / _safe(name)
        if "@" in name and (exact / INDEX).exists():
            return exact
        saves = []
        for index in root.glob(f"*/{INDEX}"):
            try:
                conversation = str(json.loads(index.read_text(encoding="utf-8"))["name"])
            except (OSError, ValueError, KeyError, TypeError):  # a broken index: loading it says why
                conversation = index.parent.name
            if conversation.split("@")[0] == name:
                saves.append(index.parent)
        if not saves:
            raise HistoryFileError(f"No saved conversation {name!r} in {root}")
        return max(saves, key=_modified)

    def load(self, name: str | Path) -> list[Turn]:
        """The saved turns of save or conversation `name` (or of the save in folder `name`, a Path from
        `find`), checked the way the API would check the history."""
        folder = name if isinstance(name, Path) else self.find(name)
        try:
            ids = _saved_ids(folder)
            turns = [Turn.from_dict(json.loads((folder / TURNS / f"{turn_id}.json").read_text(encoding="utf-8")))
                     for turn_id in ids]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HistoryFileError(f"The saved conversation {folder.name!r} cannot be read: {exc}") from None
        check_turns(turns, where=str(folder))
        return turns

    def adopt(self, conversation: str, folder: Path, ids: list[str]) -> None:
        """Before loading the save in `folder` (turns `ids`) into `conversation` of this kernel: when no running
        kernel writes that save any more, the conversation goes on in it; otherwise it gets a save of its own."""
        root = self._root()
        if root is None:
            return
        try:
            kernel = json.loads((folder / INDEX).read_text(encoding="utf-8")).get("kernel") or {}
        except (OSError, ValueError):
            return
        key = (root, conversation)
        with self._lock:
            holder = next((held for held, save in self._saves.items() if save.folder == folder), None)
            if holder is not None and holder != key:
                return  # another conversation of this kernel writes it
            written_here = kernel.get("pid") == os.getpid() and kernel.get("host") == socket.gethostname()
            if holder == key or written_here or not kernel or _still_running(kernel) is False:
                self._saves[key] = _Save(folder, dict.fromkeys(ids))

    def saved(self) -> list[SavedConversation]:
        """The saves of this notebook's conversations, newest first."""
        root = self._root()
        if root is None or not root.is_dir():
            return []
        ours = {save.folder for save in self._saves.values()}
        found = []
        for index in root.glob(f"*/{INDEX}"):
            try:
                data = json.loads(index.read_text(encoding="utf-8"))
                turns = [json.loads((index.parent / TURNS / f"{turn_id}.json").read_text(encoding="utf-8"))
                         for turn_id in _saved_ids(index.parent)]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # a broken save is reported when someone resumes it
            costs = [turn.get("cost") for turn in turns]
            kernel = data.get("kernel") if isinstance(data.get("kernel"), dict) else {}
            is_ours = index.parent in ours
            found.append(SavedConversation(
                name=index.parent.name, conversation=str(data.get("name", index.parent.name)).split("@")[0],
                turns=len(turns),
                input_tokens=sum(turn.get("usage", {}).get("input_tokens", 0) for turn in turns),
                output_tokens=sum(turn.get("usage", {}).get("output_tokens", 0) for turn in turns),
                cost=None if not costs or None in costs else sum(costs), modified=_modified(index.parent),
                kernel=kernel, ours=is_ours, running=True if is_ours else _still_running(kernel) if kernel else False))
        return sorted(found, key=lambda saved: -saved.modified)


def _modified(folder: Path) -> float:
    """When a save last changed: its index, or the list of turns appended since."""
    times = [(folder / INDEX).stat().st_mtime]
    with contextlib.suppress(FileNotFoundError):
        times.append((folder / APPENDED).stat().st_mtime)
    return max(times)


def _saved_ids(folder: Path) -> list[str]:
    """The turn ids saved in `folder`, in order: the index's, then the appended ones whose file exists (a
    line a crash cut short, or a turn whose file never landed, is left out)."""
    ids = list(json.loads((folder / INDEX).read_text(encoding="utf-8"))["turns"])
    try:
        lines = (folder / APPENDED).read_text(encoding="utf-8").split("\n")
    except FileNotFoundError:
        return ids
    known = set(ids)
    for line in lines[:-1]:  # the last piece has no newline yet: cut short, or empty
        if line and line not in known and (folder / TURNS / f"{line}.json").exists():
            ids.append(line)
            known.add(line)
    return ids


def check_turns(turns: list[Turn], *, where: str) -> None:
    """Raise HistoryFileError unless every turn is a whole exchange and the history as a whole is one the
    API accepts (alternation, non-empty content, every tool_use answered, tools defined)."""
    messages: list[dict[str, Any]] = []
    tools: dict[str, dict[str, Any]] = {}
    for number, turn in enumerate(turns, start=1):
        if not isinstance(turn.messages, list) or not turn.messages:
            raise HistoryFileError(f"{where}: turn {number} has no messages")
        if not all(isinstance(m, dict) and "role" in m and "content" in m for m in turn.messages):
            raise HistoryFileError(f"{where}: turn {number} has a message without role or content")
        if turn.messages[0]["role"] != "user" or turn.messages[-1]["role"] != "assistant":
            raise HistoryFileError(f"{where}: turn {number} must start with the user and end with an answer")
        messages.extend(turn.messages)
        tools.update(turn.tools or {})
    if not messages:
        return
    # The emulator's request checks (and with them the SDK's model list) are loaded only when a file is read:
    # `%load_ext` installs the saver, and must stay quick.
    from claude_magic.emulator import history_problem

    problem = history_problem(messages, list(tools.values()))
    if problem is not None:
        raise HistoryFileError(f"{where}: the API would reject this history: {problem}")


# -- export and import ---------------------------------------------------------------------------------


def export_json(conversation: Conversation, path: Path) -> None:
    _write_atomically(path, {"format": FORMAT, "version": VERSION, "name": conversation.name,
                             "turns": [turn.to_dict() for turn in conversation.turns]})


def export_markdown(conversation: Conversation, path: Path) -> None:
    """The conversation for a person to read: roles, text, tool calls and results, a footer per turn (as the
    cell's footer says it, offline answers marked). Headings inside a message are moved two levels down, so
    that an answer's own `## Plan` stays inside its `## Turn N` (under the document's `# Conversation`)."""
    lines = [f"# Conversation {conversation.name}", ""]
    for number, turn in enumerate(conversation.turns, start=1):
        lines += [f"## Turn {number} ({turn.source})", ""]
        for message in turn.messages:
            lines += [f"**{message['role']}**", "", demote_headings(_markdown_content(message["content"]), 2), ""]
        facts = [turn.model] if turn.model else []
        if turn.offline:
            facts.append(OFFLINE_LABEL)
        usage = turn.usage or {}
        if usage:
            facts.append(f"{usage.get('input_tokens', 0):,} in / {usage.get('output_tokens', 0):,} out")
        if turn.stop_reason:
            facts.append(f"stop_reason: {turn.stop_reason}")
        if turn.cost is not None:
            facts.append(f"≈ ${turn.cost:.4f} (estimate)")
        if facts:
            lines += [f"*{' · '.join(facts)}*", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def demote_headings(markdown: str, levels: int) -> str:
    """`markdown` with every heading `levels` deeper (at most `######`; setext headings become ATX ones);
    code blocks, and `#` anywhere but a heading, are left as they are."""
    from markdown_it import MarkdownIt

    lines = markdown.split("\n")
    replaced: dict[int, tuple[int, str]] = {}  # first line -> (lines it spans, the new heading line)
    tokens = MarkdownIt("commonmark").parse(markdown)
    for position, token in enumerate(tokens):
        if token.type != "heading_open" or token.map is None:
            continue
        start, end = token.map
        level = min(int(token.tag[1]) + levels, 6)
        # What contains the heading (indentation, `> ` of a quote, a list item's marker) stays in front.
        container = re.match(r"[ \t>]*(?:(?:[-*+]|\d+[.)])[ \t]+)?", lines[start])
        prefix = container[0] if container else ""
        text = tokens[position + 1].content  # the inline token: the heading's text, markers removed
        replaced[start] = (end - start, f"{prefix}{'#' * level} {text}")
    out: list[str] = []
    number = 0
    while number < len(lines):
        if number in replaced:
            span, heading = replaced[number]
            out.append(heading)
            number += span
        else:
            out.append(lines[number])
            number += 1
    return "\n".join(out)


def _markdown_content(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    citations = CitationIndex()  # numbered per message: the sources list follows the answer
    for block in content:
        kind = block.get("type")
        drawn = block_markdown(block, citations)  # server tools' calls and results, cited passages
        if drawn is not None:
            parts.append(drawn)
        elif kind == "tool_use":
            parts.append(f"*tool call* `{block.get('name')}`\n\n```json\n"
                         f"{json.dumps(block.get('input'), indent=2, ensure_ascii=False)}\n```")
        elif kind == "tool_result":
            result = block.get("content")
            text = result if isinstance(result, str) else message_text(result or [])
            label = "tool error" if block.get("is_error") else "tool result"
            parts.append(f"*{label}*\n\n```\n{text}\n```")
        elif kind == "thinking":
            parts.append("> *thinking:* " + block.get("thinking", "").replace("\n", "\n> "))
        elif kind == "text":
            parts.append(block.get("text", ""))
        else:
            parts.append(f"*[{kind} block]*")
    if citations.sources:
        parts.append(sources_markdown(citations))
    return "\n\n".join(parts)


def read_export(path: Path) -> list[Turn]:
    """The turns of a file `export_json` wrote, checked like the API would check them; nothing half-read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HistoryFileError(f"No such file: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise HistoryFileError(f"{path} is not a JSON file: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("turns"), list):
        raise HistoryFileError(f"{path} is not a conversation exported by claude_magic (%claude export FILE.json)")
    try:
        turns = [Turn.from_dict(turn) for turn in data["turns"]]
    except (TypeError, AttributeError) as exc:
        raise HistoryFileError(f"{path}: a turn is malformed: {exc}") from None
    check_turns(turns, where=str(path))
    for turn in turns:
        turn.source = "import"
        turn.owner = None  # the cells it came from are not this notebook's
    return turns


# -- the kernel's saver --------------------------------------------------------------------------------

_SAVER: HistoryFiles | None = None


def history_root(history_dir: str) -> Path | None:
    """The folder for this notebook's saved conversations, or None when saving is off."""
    if not history_dir.strip():
        return None
    return Path(history_dir).expanduser() / notebook_key()


def install(history_dir: Callable[[], str]) -> HistoryFiles:
    """Save every change of the kernel's conversations from now on (idempotent: one saver per kernel;
    `history_dir` is read at each change, so `%config ClaudeMagic.history_dir` takes effect at once)."""
    global _SAVER
    if _SAVER is None:
        _SAVER = HistoryFiles(lambda: None)
        STORE.set_listener(_SAVER.on_change)
    _SAVER._root = lambda: history_root(history_dir())
    return _SAVER


__all__ = ["HistoryFileError", "HistoryFiles", "SavedConversation", "check_turns", "export_json",
           "export_markdown", "history_root", "install", "notebook_key", "read_export"]
