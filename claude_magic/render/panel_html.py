"""HTML for the chat panel's transcript, and the panel's one piece of front-end code (the send shortcut).

Everything here is a pure function of its input. Model text only ever reaches the page through the
magic's renderer (`render_markdown`, `block_html`, `answer_bundle`: Markdown with raw HTML off, then
nh3); the user's own text is escaped, never rendered, because it may have been pasted from anywhere.
"""

from __future__ import annotations

import html
import json
from typing import Any

from claude_magic.core.history import message_text
from claude_magic.core.turn import block_from_param
from claude_magic.render.footer import warning_html
from claude_magic.render.markdown import render_markdown
from claude_magic.render.view import cited_blocks_html

# Appended to the textarea's value by the keyboard shortcut: the value sync then carries "send" itself,
# so the kernel always sees the exact text that was in the box (see PANEL_KEYS_JS). Invisible, and
# stripped before anything else looks at the value.
SUBMIT_MARK = "\u2063"

PANEL_CLASS = "claude-magic-panel"
INPUT_CLASS = "claude-magic-input"

PANEL_CSS = f"""<style>
.{PANEL_CLASS} .widget-html-content {{ line-height: 1.45; }}
.{PANEL_CLASS} .claude-panel-user {{ background: var(--jp-layout-color2, #f1f3f5); border-radius: 6px;
  padding: 4px 10px; margin: 6px 0 2px 0; white-space: pre-wrap; }}
.{PANEL_CLASS} .claude-panel-who {{ color: var(--jp-content-font-color2, #6e6e6e); font-size: 0.8em; }}
.{PANEL_CLASS} .claude-panel-info {{ color: var(--jp-content-font-color2, #6e6e6e); font-size: 0.85em; }}
.{PANEL_CLASS} .claude-panel-note {{ color: var(--jp-content-font-color2, #6e6e6e); font-style: italic;
  font-size: 0.85em; }}
.{PANEL_CLASS} .widget-html-content a {{ color: var(--jp-content-link-color, #1976d2); text-decoration: none; }}
.{PANEL_CLASS} .widget-html-content a:hover {{ text-decoration: underline; }}
</style>"""

# Shift+Enter / Ctrl+Enter / Cmd+Enter in a panel's textarea sends. ipywidgets' Textarea has no key
# events, and a <script> inside widgets.HTML never runs, so this is displayed once as an
# application/javascript output next to the panel. One capturing listener on `window` serves every
# panel on the page (present and future views), runs before JupyterLab's own Shift+Enter (run cell)
# and stops it. It does not click the Send button: a click message could overtake the textarea's
# value sync (ipywidgets buffers a model's state updates while an earlier one is unacknowledged), so
# instead the mark rides on the value itself and the kernel side sends when it sees it.
PANEL_KEYS_JS = f"""
(function () {{
  if (typeof element !== 'undefined' && element && element.closest) {{
    const child = element.closest('.jp-OutputArea-child');
    if (child) {{ child.style.display = 'none'; }}
  }}
  if (window.__claudeMagicPanelKeys) {{ return; }}
  window.__claudeMagicPanelKeys = true;
  window.addEventListener('keydown', function (event) {{
    if (event.key !== 'Enter' || event.isComposing) {{ return; }}
    if (!(event.shiftKey || event.ctrlKey || event.metaKey)) {{ return; }}
    const target = event.target;
    if (!(target instanceof HTMLTextAreaElement) || !target.closest('.{INPUT_CLASS}')) {{ return; }}
    event.preventDefault();
    event.stopPropagation();
    if (target.disabled) {{ return; }}
    target.value = target.value + {json.dumps(SUBMIT_MARK)};
    target.dispatchEvent(new Event('change', {{ bubbles: true }}));
  }}, true);
}})();
"""


def user_html(prompt: str | list[dict[str, Any]]) -> str:
    """A user message: escaped plain text (never rendered as Markdown or HTML)."""
    text = message_text(prompt)
    return (f'<div class="claude-panel-user"><div class="claude-panel-who">You</div>'
            f"{html.escape(text)}</div>")


def assistant_history_html(content: str | list[dict[str, Any]]) -> str:
    """An assistant message from the stored history, drawn with the same block renderer as live turns."""
    if isinstance(content, str):
        return render_markdown(content)
    return cited_blocks_html([block_from_param(param) for param in content])


def info_html(name: str, turns: int) -> str:
    plural = "" if turns == 1 else "s"
    return (f'<span class="claude-panel-info">Conversation <b>{html.escape(name)}</b> · '
            f"{turns} turn{plural} in history</span>")


def note_html(text: str) -> str:
    return f'<div class="claude-panel-note">{html.escape(text)}</div>'


def setup_error_html(message: str) -> str:
    """A turn that never reached the API (no key, bad settings): the warning line alone."""
    return warning_html(message)
