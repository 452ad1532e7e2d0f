"""Footer text: pure function of the turn state."""

from __future__ import annotations

from claude_magic.core.turn import ErrorInfo, TurnState, Usage
from claude_magic.render.footer import footer_html, footer_text


def finished(**changes: object) -> TurnState:
    state = TurnState(model="claude-sonnet-4-5", prompt="p", started_at=10.0, status="complete",
                      usage=Usage(input_tokens=1234, output_tokens=101), stop_reason="end_turn",
                      first_token_at=10.5, finished_at=12.5)
    for name, value in changes.items():
        setattr(state, name, value)
    return state


def test_footer_lists_model_usage_stop_reason_and_speed() -> None:
    assert footer_text(finished()) == (
        "claude-sonnet-4-5 · 1,234 in / 101 out · stop_reason: end_turn · first token 0.50 s · 50.5 tokens/s"
    )


def test_cache_tokens_appear_only_when_present() -> None:
    state = finished(usage=Usage(10, 20, cache_read_input_tokens=900, cache_creation_input_tokens=50))
    assert "10 in / 20 out / 900 cache read / 50 cache write" in footer_text(state)
    assert "cache" not in footer_text(finished())


def test_max_tokens_says_the_answer_was_cut_off() -> None:
    text = footer_text(finished(stop_reason="max_tokens"))
    assert text.startswith("⚠ cut off: the answer reached max_tokens")
    assert "stop_reason: max_tokens" in text


def test_offline_answers_say_so() -> None:
    assert "offline emulator, not Claude" in footer_text(finished(offline=True))


def test_error_line_leads_the_footer_and_is_escaped_in_html() -> None:
    state = finished(status="error", error=ErrorInfo("overloaded", "Overloaded <b>mid</b>-answer"))
    assert footer_text(state).splitlines()[0] == "⚠ Overloaded <b>mid</b>-answer"
    assert "Overloaded &lt;b&gt;mid&lt;/b&gt;-answer" in footer_html(state)


def test_no_speed_before_any_token() -> None:
    text = footer_text(finished(first_token_at=None, usage=Usage(5, 0), stop_reason=None))
    assert "tokens/s" not in text and "first token" not in text
    assert "stop_reason: —" in text


def test_footer_html_is_styled_inline_not_by_a_style_element() -> None:
    """A saved notebook opened from disk is untrusted: JupyterLab drops <style> elements there."""
    markup = footer_html(finished(stop_reason="max_tokens"))
    assert "<style" not in markup
    # Each colour twice: a hex one for frontends without JupyterLab's theme, then the theme's variable.
    warning = ('<div class="claude-magic-warning" style="color:#b35c00;color:var(--jp-warn-color0, #b35c00);'
               'font-weight:600;margin-top:0.4em">⚠ cut off')
    assert warning in markup
    assert ('<div class="claude-magic-footer" style="color:#6e6e6e;color:var(--jp-content-font-color2, #6e6e6e);'
            'font-size:0.85em;margin-top:0.4em">') in markup
    assert "claude-magic-warning" not in footer_html(finished())
