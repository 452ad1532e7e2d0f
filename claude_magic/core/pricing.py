"""Estimated cost of a turn from its usage: a small price table, overridable with `%config ClaudeMagic.prices`.

    cost = estimate_cost("claude-sonnet-5-5", usage)          # US dollars, or None for an unknown model

The prices are US dollars per million tokens, read from the contract table (`claude_magic._model_facts`,
from the API's pricing page: base input, 5-minute cache writes, cache hits, output, and Haiku 5.5's
long-prompt tier). They are an estimate: the API bills what it bills (batch discounts and 1-hour cache
writes are not modelled), and prices change. A model the table does not price gets no estimate rather
than a wrong one. Override or add models by id prefix:

    %config ClaudeMagic.prices = {"claude-sonnet-5-5": {"input": 2, "output": 10, "cache_write": 2.5,
                                                        "cache_read": 0.1}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from claude_magic._model_facts import Prices, contract
from claude_magic.core.server_tools import WEB_SEARCH_USD_PER_SEARCH
from claude_magic.core.turn import Usage

PRICE_FIELDS = ("input", "output", "cache_write", "cache_read")


class PriceError(ValueError):
    """A price override that is not a mapping of model prefix to the four prices."""


def parse_overrides(overrides: Mapping[str, Any]) -> dict[str, Prices]:
    """`%config ClaudeMagic.prices` checked: {model prefix: {input, output, cache_write, cache_read}}."""
    parsed: dict[str, Prices] = {}
    for model, values in overrides.items():
        if not isinstance(values, Mapping):
            raise PriceError(f"prices[{model!r}] must be a dict with input, output, cache_write, cache_read")
        try:
            parsed[str(model)] = Prices(**{name: float(values[name]) for name in PRICE_FIELDS})
        except (KeyError, TypeError, ValueError) as exc:
            raise PriceError(f"prices[{model!r}] needs numbers for input, output, cache_write and cache_read "
                             f"(US dollars per million tokens): {exc}") from None
    return parsed


def prices_for(model: str, overrides: Mapping[str, Prices] | None = None) -> Prices | None:
    """An override whose prefix `model` starts with (longest first), else the contract table's prices."""
    for prefix, prices in sorted((overrides or {}).items(), key=lambda item: -len(item[0])):
        if model.startswith(prefix):
            return prices
    row = contract(model)
    return None if row is None else row.prices


def estimate_cost(model: str, usage: Usage, overrides: Mapping[str, Prices] | None = None) -> float | None:
    """US dollars for `usage` on `model`, or None when its prices are not known."""
    prices = prices_for(model, overrides)
    if prices is None:
        return None
    prices = prices.for_prompt(usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens)
    tokens = (usage.input_tokens * prices.input + usage.output_tokens * prices.output
              + usage.cache_creation_input_tokens * prices.cache_write
              + usage.cache_read_input_tokens * prices.cache_read) / 1_000_000
    # Web searches are billed per search on top of tokens (fetches cost only their tokens); see server_tools.
    return tokens + getattr(usage, "web_search_requests", 0) * WEB_SEARCH_USD_PER_SEARCH


def format_cost(dollars: float) -> str:
    """"≈ $0.0123": enough digits to tell small turns apart, labelled as an estimate by the ≈."""
    if dollars >= 1:
        return f"≈ ${dollars:,.2f}"
    if dollars >= 0.01:
        return f"≈ ${dollars:.3f}"
    return f"≈ ${dollars:.4f}" if dollars >= 0.0001 else "≈ $0.0000"


__all__ = ["PRICE_FIELDS", "PriceError", "Prices", "estimate_cost", "format_cost", "parse_overrides", "prices_for"]
