"""How tool calls look: the call while Claude writes it, the run, the result. HTML and text, pure.

Tool names, inputs and results are untrusted (the model writes the first two, a tool may return anything
it read), so everything here is escaped; nothing is rendered as Markdown or HTML.
"""

from __future__ import annotations

import html
from typing import Any

from claude_magic.core.errors import redact_secrets
from claude_magic.core.tools import ToolCallView, describe_call
from claude_magic.core.turn import Block
from claude_magic.render.markdown import themed

# Plain property values, or the theme's colour variables with a hex fallback (`themed`); never url().
_CALL_STYLE = "margin:0.3em 0;font-size:0.9em"
_MUTED = themed("color", "--jp-content-font-color2", "#6e6e6e")
_ERROR = themed("color", "--jp-error-color1", "#b00020")
_WARN = f"{themed('color', '--jp-warn-color0', '#b35c00')};font-weight:600"
_TRACE_STYLE = "margin:0.3em 0 0 1.5em;font-size:0.95em;max-height:20em;overflow:auto"
LIVE_PREVIEW_CHARS = 800  # raw tool input shown while streaming: the tail only
# Status marks in every common text font (DejaVu, Liberation's fallbacks, Segoe UI Symbol, Apple
# Symbols): no emoji, which shows as an empty box on a machine without an emoji font.
_STATUS_ICONS = {"running": "○", "done": "✓", "error": "✗", "interrupted": "⚠", "stopped": "⚠"}


def _call_text(block: Block) -> str:
    """`name(arg=…)` from the SDK's parsed snapshot: the fields so far while it streams."""
    snapshot: Any = block.snapshot
    if snapshot is None and block.complete:
        param = block.to_param()
        snapshot = param["input"] if param else None
    return redact_secrets(describe_call(block.tool_name, snapshot or {}, limit=400))


def tool_use_html(block: Block, *, live: bool) -> str:
    """A tool call Claude is writing or wrote: its name and arguments (the fields parsed so far)."""
    text = html.escape(_call_text(block))
    if block.cut_off:
        return (f'<div style="{_CALL_STYLE}"><span style="{_MUTED}">tool call</span> <code>{text}</code> '
                f'<span style="{_WARN}">— cut off by max_tokens: incomplete input, not run</span></div>')
    title = "server tool" if block.kind == "server_tool_use" else "tool call"
    head = f'<div style="{_CALL_STYLE}"><span style="{_MUTED}">{title}</span> <code>{text}</code></div>'
    if block.snapshot is None and block.parts and not block.complete:
        # No parsed snapshot (events replayed without the SDK's stream): the raw JSON so far, its tail.
        return f"{head}<pre>{html.escape(redact_secrets(block.text)[-LIVE_PREVIEW_CHARS:])}</pre>"
    return head


def tool_use_text(block: Block) -> str:
    text = _call_text(block)
    if block.cut_off:
        return f"\ntool call {text} — cut off by max_tokens: incomplete input, not run\n"
    return f"\ntool call {text}\n"


def _status_line(call: ToolCallView) -> str:
    return redact_secrets(_status(call))  # Claude wrote the arguments: they may echo anything


def _status(call: ToolCallView) -> str:
    icon = _STATUS_ICONS.get(call.status, "")
    timing = f"{call.elapsed:.1f} s"
    if call.status == "running":
        return f"{icon} running {call.call_text}… {timing}"
    if call.status in ("interrupted", "stopped"):
        return f"{icon} {call.call_text} {call.status} after {timing}: no result"
    outcome = call.outcome
    if outcome is None:
        return f"{icon} {call.call_text}"
    if outcome.is_error:
        return f"{icon} {call.call_text} raised {outcome.preview} ({timing})"
    cut = ", cut for Claude" if outcome.truncated_for_claude else ""
    return f"{icon} {call.call_text} → {outcome.size}{cut} ({timing})"


def tool_result_html(block: Block) -> str:
    """One call being run or run: a status line; a finished result collapsible, its preview escaped."""
    call: ToolCallView = block.call
    line = html.escape(_status_line(call))
    outcome = call.outcome
    if outcome is None or outcome.is_error or outcome.kind == "image":
        style = _ERROR if outcome is not None and outcome.is_error else _MUTED
        trace = ""
        if outcome is not None and outcome.traceback:  # debug mode only (the loop clears it otherwise)
            trace = f'<pre style="{_TRACE_STYLE}">{html.escape(outcome.traceback)}</pre>'
        return f'<div class="claude-magic-tool" style="{_CALL_STYLE};{style}">{line}{trace}</div>'
    preview = outcome.preview
    more = ""
    if len(preview) >= 2000 or outcome.truncated_for_claude:
        more = f'\n<span style="{_MUTED}">… (shown in part: {html.escape(outcome.size)} in all)</span>'
    return (f'<div class="claude-magic-tool" style="{_CALL_STYLE}"><details><summary><span style="{_MUTED}">'
            f'{line}</span></summary><pre style="max-height:16em;overflow:auto">{html.escape(preview)}{more}</pre>'
            "</details></div>")


def tool_result_text(block: Block) -> str:
    call: ToolCallView = block.call
    line = _status_line(call)
    outcome = call.outcome
    if outcome is None or outcome.is_error or outcome.kind == "image":
        trace = "".join(f"    {row}\n" for row in outcome.traceback.splitlines()) if outcome else ""
        return f"{line}\n{trace}"
    preview = outcome.preview if len(outcome.preview) <= 500 else outcome.preview[:500] + f"… ({outcome.size})"
    indented = "\n".join(f"    {row}" for row in preview.splitlines()[:12])
    return f"{line}\n{indented}\n"


__all__ = ["tool_result_html", "tool_result_text", "tool_use_html", "tool_use_text"]
