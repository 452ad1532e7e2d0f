"""The one-line summary under every answer: model, usage, stop reason, speed."""

from __future__ import annotations

import html

from claude_magic.core.pricing import format_cost
from claude_magic.core.turn import OFFLINE_LABEL, TurnState
from claude_magic.render.markdown import themed

_STOP_EXPLANATIONS = {
    "max_tokens": "cut off: the answer reached max_tokens. Continue it with %claude continue (the panel: "
                  "Continue), or raise --max-tokens",
    "refusal": "Claude declined to answer: the turn was not added to history",
    "pause_turn": "paused: the turn was paused more often than claude_magic resumes it; %claude continue "
                  "goes on",
    "model_context_window_exceeded": "cut off: the conversation filled the model's context window. Start "
                                     "over with %claude reset, or attach less",
}


def footer_parts(state: TurnState) -> list[str]:
    """The footer's facts in display order (pure: depends on the state only)."""
    usage = state.total_usage  # summed over tool rounds
    parts = [state.model]
    if state.offline:
        parts.append(OFFLINE_LABEL)
    tokens = f"{usage.input_tokens:,} in / {state.tokens_so_far:,} out"
    if usage.cache_read_input_tokens:
        tokens += f" / {usage.cache_read_input_tokens:,} cache read"
    if usage.cache_creation_input_tokens:
        tokens += f" / {usage.cache_creation_input_tokens:,} cache write"
    parts.append(tokens)
    if state.tool_rounds:
        parts.append(f"{state.tool_rounds} tool round{'s' * (state.tool_rounds != 1)}")
    if usage.web_search_requests:
        parts.append(f"{usage.web_search_requests} web search{'es' * (usage.web_search_requests != 1)}")
    if usage.web_fetch_requests:
        parts.append(f"{usage.web_fetch_requests} web fetch{'es' * (usage.web_fetch_requests != 1)}")
    parts.append(f"stop_reason: {state.stop_reason or '—'}")
    if state.first_token_at is not None:
        parts.append(f"first token {state.first_token_at - state.started_at:.2f} s")
        rate = tokens_per_second(state)
        if rate is not None:
            parts.append(f"{rate:.1f} tokens/s")
    if state.cost is not None:
        parts.append(f"{format_cost(state.cost)} (estimate)")
    if state.history_note:
        parts.append(state.history_note)
    if state.thinking_note:
        parts.append(state.thinking_note)
    if state.continued_later:
        parts.append("continued below (%claude continue)")
    return parts


def tokens_per_second(state: TurnState) -> float | None:
    """Output tokens over the time from the first token to the end of the stream."""
    if state.first_token_at is None or state.finished_at is None:
        return None
    elapsed = state.finished_at - state.first_token_at
    if elapsed <= 0 or state.usage.output_tokens <= 1 or state.tool_rounds:
        return None  # over tool rounds the elapsed time is mostly the tools' and the requests'
    return state.usage.output_tokens / elapsed


def warning_line(state: TurnState) -> str | None:
    """A plain sentence when the answer is not a whole, normal answer."""
    if state.continued_later:
        return None
    if state.error is not None:
        # A raised error is printed once, by the surface; the partial answer above stays marked by it.
        return None if state.error_raised else state.error.message
    return _STOP_EXPLANATIONS.get(state.stop_reason or "")


def footer_text(state: TurnState) -> str:
    line = " · ".join(footer_parts(state))
    warning = warning_line(state)
    return f"⚠ {warning}\n{line}" if warning else line


# Inline styles, not a <style> element: a saved notebook opened from disk is untrusted, and JupyterLab
# then drops <style> elements but keeps these properties. Colours follow the theme (`themed`).
FOOTER_STYLE = f"{themed('color', '--jp-content-font-color2', '#6e6e6e')};font-size:0.85em;margin-top:0.4em"
WARNING_STYLE = f"{themed('color', '--jp-warn-color0', '#b35c00')};font-weight:600;margin-top:0.4em"


def warning_html(warning: str) -> str:
    return f'<div class="claude-magic-warning" style="{WARNING_STYLE}">⚠ {html.escape(warning)}</div>'


def footer_html(state: TurnState) -> str:
    line = html.escape(" · ".join(footer_parts(state)))
    warning = warning_line(state)
    shown = warning_html(warning) if warning else ""
    return f'{shown}<div class="claude-magic-footer" style="{FOOTER_STYLE}">{line}</div>'
