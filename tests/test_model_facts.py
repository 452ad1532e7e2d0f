"""The per-model contract table: it covers every model the installed SDK lists, each fact has its page,
and pricing, context windows and the client's helpers read it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import pytest

from claude_magic import _model_facts as facts
from claude_magic.core.models import DEFAULT_MODEL, context_window
from claude_magic.core.pricing import estimate_cost, prices_for
from claude_magic.core.turn import Usage


def sdk_model_ids() -> list[str]:
    from claude_magic.emulator._validate import sdk_models  # the SDK's ModelParam literals, as the emulator reads them

    return list(sdk_models())


def test_the_table_knows_every_model_the_installed_sdk_lists() -> None:
    missing = [model for model in sdk_model_ids() if facts.contract(model) is None]
    assert not missing, (f"the installed SDK lists models the contract table does not know: {missing}. Read "
                         "their pages and add rows to claude_magic/_model_facts.py")


def test_the_default_model_has_a_row() -> None:
    assert facts.contract(DEFAULT_MODEL) is not None


def test_every_fact_about_thinking_effort_windows_and_prices_has_its_page() -> None:
    needed = {"thinking", "display_default", "sampling", "prefill", "forced_tool_choice", "efforts",
              "context_window", "max_output"}
    for row in facts.known_contracts():
        missing = needed - set(row.sources)
        if row.prices is not None:
            missing |= {"prices"} - set(row.sources)
        if row.preserved_thinking:
            missing |= {"preserved_thinking", "reads_thinking_from"} - set(row.sources)
        assert not missing, f"{row.model}: no page for {sorted(missing)}"
        assert all(url.startswith("https://platform.claude.com/docs/") for url in row.sources.values()), row.model


def test_rows_are_consistent() -> None:
    field_names = {f.name for f in fields(facts.ModelContract)}
    assert {"model", "thinking_types", "reads_thinking_from", "prices", "sources"} <= field_names
    for row in facts.known_contracts():
        assert row.thinking_when_omitted in ("off", "adaptive"), row.model
        assert row.thinking_types <= set(facts.THINKING_TYPES), row.model
        assert set(row.efforts) <= set(facts.EFFORT_LEVELS), row.model
        assert (row.effort_default is None) == (not row.efforts), row.model
        assert row.effort_default is None or row.effort_default in row.efforts, row.model
        assert row.display_default is None or row.display_default in row.displays, row.model
        assert row.model in row.reads_thinking_from, row.model
        assert row.max_output <= row.context_window, row.model
        if row.thinking_when_omitted == "adaptive":
            assert "adaptive" in row.thinking_types, row.model


def test_the_facts_the_issue_named() -> None:
    sonnet = facts.contract("claude-sonnet-5-5")
    assert sonnet is not None
    assert sonnet.thinking_types == {"adaptive", "between_tools"} and sonnet.thinking_off_type == "between_tools"
    assert sonnet.thinking_off_efforts == ("low", "medium", "high")
    assert not sonnet.prefill and not sonnet.forced_tool_choice and sonnet.display_default == "omitted"
    for model in ("claude-opus-5-5", "claude-fable-5-1", "claude-fable-5-2"):
        row = facts.contract(model)
        assert row is not None and not row.can_turn_thinking_off and row.preserved_thinking, model
    for model in ("claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8"):
        assert context_window(model) == 1_000_000, model
    assert all(row.max_output <= 128_000 for row in facts.known_contracts())
    fable = facts.contract("claude-fable-5-2")
    assert fable is not None and fable.prices is not None and (fable.prices.input, fable.prices.output) == (8, 40)
    haiku = facts.contract("claude-haiku-5-5")
    assert haiku is not None and haiku.prices is not None and haiku.prices.long_prompt is not None


def test_dated_ids_resolve_to_their_row_and_unknown_ids_to_none() -> None:
    assert facts.contract("claude-haiku-4-5-20251001") == facts.contract("claude-haiku-4-5")
    assert facts.family_of("claude-sonnet-5-5-20261001") == "claude-sonnet-5-5"
    assert facts.contract("claude-test-model") is None and context_window("claude-test-model") is None
    assert facts.takes_sampling("claude-test-model") and facts.thinking_modes("claude-test-model") is None


def test_the_helpers_read_the_table() -> None:
    for row in facts.known_contracts():
        assert facts.takes_sampling(row.model) == row.sampling
        assert facts.thinking_modes(row.model) == row.thinking_types & {"enabled", "adaptive"}
        assert facts.thinks_by_default(row.model) == (row.thinking_when_omitted != "off")
        assert context_window(row.model) == row.context_window
        assert prices_for(row.model) == row.prices


def test_haiku_5_5_prices_a_long_prompt_at_its_higher_tier() -> None:
    row = facts.contract("claude-haiku-5-5")
    assert row is not None and row.prices is not None and row.prices.long_prompt is not None
    short, long = Usage(input_tokens=50_000, output_tokens=1_000), Usage(input_tokens=150_000, output_tokens=1_000)
    low, high = row.prices, row.prices.long_prompt
    assert estimate_cost("claude-haiku-5-5", short) == pytest.approx((50_000 * low.input + 1_000 * low.output) / 1e6)
    assert estimate_cost("claude-haiku-5-5", long) == pytest.approx((150_000 * high.input + 1_000 * high.output) / 1e6)
    # cache reads count toward the prompt that picks the tier
    cached = Usage(input_tokens=10_000, output_tokens=0, cache_read_input_tokens=95_000)
    assert estimate_cost("claude-haiku-5-5", cached) == pytest.approx(
        (10_000 * high.input + 95_000 * high.cache_read) / 1e6)


def test_the_table_does_not_import_the_sdk() -> None:
    code = "import sys, claude_magic._model_facts; print('anthropic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
