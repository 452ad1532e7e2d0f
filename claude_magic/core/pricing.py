"""Estimated cost of a turn from its usage: a small price table, overridable with `%config ClaudeMagic.prices`.

    cost = estimate_cost("claude-sonnet-5-5", usage)          # US dollars, or None for an unknown model

The prices are US dollars per million tokens, from the API's pricing page as of 2026-11 (base input,
5-minute cache writes, cache hits, output). They are an estimate: the API bills what it bills (batch
discounts, long-context rates and 1-hour cache writes are not modelled), and prices change. A model not
listed gets no estimate rather than a wrong one. Override or add models by id prefix:

    %config ClaudeMagic.prices = {"claude-sonnet-5-5": {"input": 2, "output": 10, "cache_write": 2.5,
                                                        "cache_read": 0.1}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from claude_magic.core.turn import Usage


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float


# By model id prefix, longest prefix first (so "claude-opus-5-5" is not priced as "claude-opus-5").
PRICES: tuple[tuple[str, Prices], ...] = (
    ("claude-fable-5-1", Prices(10.0, 50.0, 12.5, 0.25)),
    ("claude-fable-5", Prices(10.0, 50.0, 12.5, 1.0)),
    ("claude-opus-5-5", Prices(4.0, 20.0, 5.0, 0.20)),
    ("claude-opus-5", Prices(5.0, 25.0, 6.25, 0.50)),
    ("claude-opus-4-1", Prices(15.0, 75.0, 18.75, 1.50)),
    ("claude-opus-4-0", Prices(15.0, 75.0, 18.75, 1.50)),
    ("claude-opus-4", Prices(5.0, 25.0, 6.25, 0.50)),  # 4.5 and later
    ("claude-sonnet-5-5", Prices(2.0, 10.0, 2.5, 0.10)),
    ("claude-sonnet-5", Prices(2.0, 10.0, 2.5, 0.20)),
    ("claude-sonnet-4", Prices(3.0, 15.0, 3.75, 0.30)),
    ("claude-haiku-5-5", Prices(0.10, 0.50, 0.125, 0.01)),  # prompts up to 100k tokens
    ("claude-haiku-4", Prices(1.0, 5.0, 1.25, 0.10)),
    ("claude-3-5-haiku", Prices(0.80, 4.0, 1.0, 0.08)),
    ("claude-3-haiku", Prices(0.25, 1.25, 0.30, 0.03)),
)


class PriceError(ValueError):
    """A price override that is not a mapping of model prefix to the four prices."""


def parse_overrides(overrides: Mapping[str, Any]) -> dict[str, Prices]:
    """`%config ClaudeMagic.prices` checked: {model prefix: {input, output, cache_write, cache_read}}."""
    parsed: dict[str, Prices] = {}
    for model, values in overrides.items():
        if not isinstance(values, Mapping):
            raise PriceError(f"prices[{model!r}] must be a dict with input, output, cache_write, cache_read")
        try:
            parsed[str(model)] = Prices(**{name: float(values[name]) for name in Prices.__dataclass_fields__})
        except (KeyError, TypeError, ValueError) as exc:
            raise PriceError(f"prices[{model!r}] needs numbers for input, output, cache_write and cache_read "
                             f"(US dollars per million tokens): {exc}") from None
    return parsed


def prices_for(model: str, overrides: Mapping[str, Prices] | None = None) -> Prices | None:
    table = [*sorted((overrides or {}).items(), key=lambda item: -len(item[0])), *PRICES]
    return next((prices for prefix, prices in table if model.startswith(prefix)), None)


def estimate_cost(model: str, usage: Usage, overrides: Mapping[str, Prices] | None = None) -> float | None:
    """US dollars for `usage` on `model`, or None when its prices are not known."""
    prices = prices_for(model, overrides)
    if prices is None:
        return None
    return (usage.input_tokens * prices.input + usage.output_tokens * prices.output
            + usage.cache_creation_input_tokens * prices.cache_write
            + usage.cache_read_input_tokens * prices.cache_read) / 1_000_000


def format_cost(dollars: float) -> str:
    """"≈ $0.0123": enough digits to tell small turns apart, labelled as an estimate by the ≈."""
    if dollars >= 1:
        return f"≈ ${dollars:,.2f}"
    if dollars >= 0.01:
        return f"≈ ${dollars:.3f}"
    return f"≈ ${dollars:.4f}" if dollars >= 0.0001 else "≈ $0.0000"


__all__ = ["PRICES", "PriceError", "Prices", "estimate_cost", "format_cost", "parse_overrides", "prices_for"]
