"""The per-model contract: what the Messages API accepts from each model and how each one answers.

One row per model id the installed SDK lists (``anthropic.types.ModelParam``), each fact read from the
API's documentation, with the page it was read from in ``sources``. The client's checks
(``core/request.py``), the emulator, pricing (``core/pricing.py``), context windows (``core/models.py``),
the token guard and ``%claude tokens`` read this table and nothing else. A test fails when the SDK lists
a model this table does not know, so a new model is a deliberate update, never a guess.

    row = contract("claude-sonnet-5-5")       # a ModelContract, or None for an id the table does not know
    row.thinking_types, row.max_output, row.prices.input

An id with a date suffix (``claude-sonnet-5-5-20261001``) is the row of the id before the date. A model id
the table does not know is sent as asked: nothing is checked, no price or window is known.

This module imports nothing from the SDK (``%load_ext`` stays fast); the test that compares it with
``ModelParam`` imports the SDK itself.

What the fields mean, and the docs' words behind them:

- ``thinking_when_omitted``: what a request without ``thinking`` gets. "adaptive" on the 5.x models and
  Claude Mythos Preview (thinking on by default), "off" on the 4.x models.
- ``thinking_types``: the accepted ``thinking.type`` values; any other is a 400. Manual budgets
  (``enabled``) are deprecated on 4.6 and rejected from 4.7 on; only Sonnet 5.5 takes ``between_tools``
  (its lowest setting, instead of ``disabled``); Opus 5.5 and the Fable/Mythos 5.x models cannot turn
  thinking off.
- ``thinking_off_efforts``: the efforts at which ``disabled`` / ``between_tools`` are accepted (None: any).
  Sonnet 5.5's ``between_tools``, and ``disabled`` on Opus 5 and Haiku 5.5, work at effort high or below.
- ``display_default`` / ``displays``: ``thinking.display``. From 4.7 on the default is "omitted" (a thinking
  block carries only its signature); earlier models default to "summarized".
- ``sampling``: temperature/top_p/top_k; Claude 4.7 and later set their own and reject them.
- ``prefill``: a request whose last message is the assistant's; rejected from 4.6 on.
- ``forced_tool_choice``: ``tool_choice`` any/tool accepted at all. Sonnet 5.5, Opus 5.5 and Fable/Mythos
  5.1+ reject it outright; elsewhere it is rejected while thinking is on (a separate rule).
- ``efforts`` / ``effort_default``: ``output_config.effort``. Opus 5.5 and Haiku 5.5 default to medium,
  the rest to high; xhigh exists from 4.7 on; Haiku 4.5 takes no effort.
- ``preserved_thinking``: a thinking block is bound to the model that wrote it and to its prefix (top-level
  ``system``, ``tools``, every message and block before it); a changed prefix invalidates it and every
  later block (Fable/Mythos 5.1+, Opus 5.5, Sonnet 5.5, Haiku 5.5: the prefix-checks page's model list).
- ``reads_thinking_from``: models whose blocks this one can read; any other model's block is dropped
  without an error. Each model reads its own; Fable/Mythos 5.1 also read Opus 5 and Opus 5.5; only
  Fable/Mythos 5.2 read Fable 5.2 blocks. Models without preserved thinking read each other's blocks
  (the signature covers the text only) but not a preserved-thinking model's.
- ``between_tools_text_as_thinking``: on Sonnet 5.5 and Opus 5.5 the text written between tool calls
  arrives as thinking blocks (empty under the default display "omitted").
- ``prices``: US dollars per million tokens from the pricing page (base input, output, 5-minute cache
  writes, cache hits), with Haiku 5.5's long-prompt tier; None where the page lists no price.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

DOCS = "https://platform.claude.com/docs/en"
OVERVIEW = f"{DOCS}/about-claude/models/overview"
PRICING = f"{DOCS}/about-claude/pricing"
MIGRATION = f"{DOCS}/about-claude/models/migration-guide"
THINKING = f"{DOCS}/build-with-claude/thinking"
THINKING_TROUBLESHOOTING = f"{DOCS}/build-with-claude/thinking-troubleshooting"
EFFORT = f"{DOCS}/build-with-claude/effort"
PRESERVED_THINKING = f"{DOCS}/build-with-claude/preserved-thinking"
PREFIX_CHECKS = f"{DOCS}/build-with-claude/preserved-thinking/prefix-checks"
FIX_BOUND = f"{DOCS}/build-with-claude/preserved-thinking/fix-bound-to-a-different-conversation"
SONNET_5_5_NEW = f"{DOCS}/models/sonnet-5-5/whats-new-sonnet-5-5"
SONNET_5_5_MIGRATION = f"{DOCS}/models/sonnet-5-5/migration-guide"
SONNET_5_5_PAGE = f"{DOCS}/models/sonnet-5-5/overview"
OPUS_5_5_NEW = f"{DOCS}/models/opus-5-5/whats-new-opus-5-5"
OPUS_5_5_MIGRATION = f"{DOCS}/models/opus-5-5/migration-guide"
HAIKU_5_5_NEW = f"{DOCS}/models/haiku-5-5/whats-new-haiku-5-5"
HAIKU_5_5_MIGRATION = f"{DOCS}/models/haiku-5-5/migration-guide"
HAIKU_5_5_PAGE = f"{DOCS}/models/haiku-5-5/overview"
FABLE_5_2_NEW = f"{DOCS}/models/fable-5-2/whats-new-fable-5-2"
FABLE_5_1_MIGRATION = f"{DOCS}/models/fable-5-1/migration-guide"
FABLE_5_PAGE = f"{DOCS}/models/fable-5/overview"
FABLE_5_MIGRATION = f"{DOCS}/models/fable-5/migration-guide"
OPUS_5_PAGE = f"{DOCS}/about-claude/models/whats-new-opus-5"
OPUS_4_8_PAGE = f"{DOCS}/models/opus-4-8/overview"
OPUS_4_6_PAGE = f"{DOCS}/models/opus-4-6/overview"
SONNET_4_6_PAGE = f"{DOCS}/models/sonnet-4-6/overview"
CLAUDE_4_5_NEW = f"{DOCS}/about-claude/models/whats-new-claude-4-5"

SAMPLING_PARAMETERS = ("temperature", "top_p", "top_k")
EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")
THINKING_TYPES = ("enabled", "adaptive", "disabled", "between_tools")
DISPLAYS = frozenset({"summarized", "omitted"})
# The beta header a request needs for thinking.block_binding (prefix_mismatch_behavior) and for the
# response's input_transformations (FIX_BOUND, and the SDK's BetaThinkingBlockBindingParam).
BINDING_BETA = "thinking-binding-controls-2026-08-01"


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens. A prompt (input + cache reads + cache writes) over
    `long_prompt_tokens` pays `long_prompt` on every token of that request, output included."""

    input: float
    output: float
    cache_write: float  # 5-minute cache writes
    cache_read: float
    long_prompt_tokens: int | None = None
    long_prompt: Prices | None = None

    def for_prompt(self, prompt_tokens: int) -> Prices:
        """The rates a request with `prompt_tokens` of prompt pays."""
        if self.long_prompt is not None and self.long_prompt_tokens is not None \
                and prompt_tokens > self.long_prompt_tokens:
            return self.long_prompt
        return self


@dataclass(frozen=True)
class ModelContract:
    """What the API accepts from one model and how the model answers (see the module docstring)."""

    model: str
    thinking_when_omitted: str  # "off" | "adaptive"
    thinking_types: frozenset[str]
    display_default: str | None  # None where thinking.display is not taken
    displays: frozenset[str]
    sampling: bool
    prefill: bool
    forced_tool_choice: bool
    efforts: tuple[str, ...]
    effort_default: str | None
    preserved_thinking: bool
    reads_thinking_from: frozenset[str]
    between_tools_text_as_thinking: bool
    context_window: int
    max_output: int
    prices: Prices | None
    sources: Mapping[str, str]
    thinking_off_efforts: tuple[str, ...] | None = None  # efforts where disabled/between_tools work (None: any)

    @property
    def can_turn_thinking_off(self) -> bool:
        return bool(self.thinking_types & {"disabled", "between_tools"})

    @property
    def thinking_off_type(self) -> str | None:
        """The `thinking.type` that turns thinking (up-front thinking) off on this model, if any."""
        return "disabled" if "disabled" in self.thinking_types else (
            "between_tools" if "between_tools" in self.thinking_types else None)


def _sources(**pages: str) -> Mapping[str, str]:
    return MappingProxyType(dict(pages))


# ---- the rows, newest first, written as a few family templates and what differs per model ----------------

_ALL_EFFORTS = EFFORT_LEVELS
_OFF_AT_HIGH_OR_BELOW = ("low", "medium", "high")
_PRESERVING_SOURCES = dict(preserved_thinking=PREFIX_CHECKS, reads_thinking_from=PRESERVED_THINKING)

_FABLE_5_2 = ModelContract(
    model="claude-fable-5-2", thinking_when_omitted="adaptive", thinking_types=frozenset({"adaptive"}),
    display_default="omitted", displays=DISPLAYS, sampling=False, prefill=False, forced_tool_choice=False,
    efforts=_ALL_EFFORTS, effort_default="high", preserved_thinking=True,
    reads_thinking_from=frozenset({"claude-fable-5-2", "claude-mythos-5-2"}),
    between_tools_text_as_thinking=False, context_window=1_000_000, max_output=128_000,
    prices=Prices(8.0, 40.0, 10.0, 0.20),
    sources=_sources(
        thinking=FABLE_5_2_NEW, display_default=THINKING, sampling=FABLE_5_1_MIGRATION,
        prefill=FABLE_5_1_MIGRATION, forced_tool_choice=FABLE_5_1_MIGRATION, efforts=EFFORT,
        effort_default=FABLE_5_2_NEW, **_PRESERVING_SOURCES, context_window=FABLE_5_2_NEW,
        max_output=FABLE_5_2_NEW, prices=PRICING),
)
_FABLE_5_1 = replace(
    _FABLE_5_2, model="claude-fable-5-1", prices=Prices(10.0, 50.0, 12.5, 0.25),
    reads_thinking_from=frozenset({"claude-fable-5-1", "claude-mythos-5-1", "claude-opus-5", "claude-opus-5-5"}),
    sources=_sources(**{**_FABLE_5_2.sources, "thinking": FABLE_5_1_MIGRATION, "effort_default": OVERVIEW,
                        "context_window": OVERVIEW, "max_output": OVERVIEW}),
)
_OPUS_5_5 = replace(
    _FABLE_5_1, model="claude-opus-5-5", effort_default="medium",
    reads_thinking_from=frozenset({"claude-opus-5-5"}), between_tools_text_as_thinking=True,
    prices=Prices(4.0, 20.0, 5.0, 0.20),
    sources=_sources(
        thinking=OPUS_5_5_NEW, display_default=OPUS_5_5_NEW, sampling=OPUS_5_5_MIGRATION,
        prefill=OPUS_5_5_MIGRATION, forced_tool_choice=OPUS_5_5_NEW, efforts=EFFORT, effort_default=OPUS_5_5_NEW,
        **_PRESERVING_SOURCES, between_tools_text_as_thinking=OPUS_5_5_NEW, context_window=OPUS_5_5_MIGRATION,
        max_output=OPUS_5_5_MIGRATION, prices=PRICING),
)
_SONNET_5_5 = replace(
    _OPUS_5_5, model="claude-sonnet-5-5", thinking_types=frozenset({"adaptive", "between_tools"}),
    thinking_off_efforts=_OFF_AT_HIGH_OR_BELOW, effort_default="high",
    reads_thinking_from=frozenset({"claude-sonnet-5-5"}), prices=Prices(2.0, 10.0, 2.5, 0.10),
    sources=_sources(
        thinking=SONNET_5_5_NEW, thinking_off_efforts=SONNET_5_5_NEW, display_default=SONNET_5_5_NEW,
        sampling=SONNET_5_5_MIGRATION, prefill=SONNET_5_5_MIGRATION, forced_tool_choice=SONNET_5_5_NEW,
        efforts=EFFORT, effort_default=SONNET_5_5_NEW, **_PRESERVING_SOURCES,
        between_tools_text_as_thinking=SONNET_5_5_NEW, context_window=SONNET_5_5_PAGE, max_output=SONNET_5_5_PAGE,
        prices=SONNET_5_5_MIGRATION),
)
_HAIKU_5_5 = replace(
    _SONNET_5_5, model="claude-haiku-5-5", thinking_types=frozenset({"adaptive", "disabled"}),
    forced_tool_choice=True, effort_default="medium", reads_thinking_from=frozenset({"claude-haiku-5-5"}),
    between_tools_text_as_thinking=False,
    prices=Prices(0.10, 0.50, 0.125, 0.01, long_prompt_tokens=100_000, long_prompt=Prices(0.50, 2.50, 0.625, 0.05)),
    sources=_sources(
        thinking=HAIKU_5_5_MIGRATION, thinking_off_efforts=THINKING, display_default=HAIKU_5_5_NEW,
        sampling=HAIKU_5_5_MIGRATION, prefill=HAIKU_5_5_MIGRATION, forced_tool_choice=THINKING, efforts=EFFORT,
        effort_default=HAIKU_5_5_PAGE, **_PRESERVING_SOURCES, context_window=HAIKU_5_5_NEW,
        max_output=HAIKU_5_5_NEW, prices=HAIKU_5_5_PAGE),
)
# The 5.0 generation: thinking on by default, blocks not bound to their prefix.
_SONNET_5 = replace(
    _SONNET_5_5, model="claude-sonnet-5", thinking_types=frozenset({"adaptive", "disabled"}),
    thinking_off_efforts=None, forced_tool_choice=True, preserved_thinking=False,
    reads_thinking_from=frozenset(), between_tools_text_as_thinking=False, prices=Prices(2.0, 10.0, 2.5, 0.20),
    sources=_sources(
        thinking=SONNET_5_5_NEW, display_default=SONNET_5_5_NEW, sampling=SONNET_5_5_MIGRATION,
        prefill=SONNET_5_5_MIGRATION, forced_tool_choice=SONNET_5_5_NEW, efforts=EFFORT, effort_default=OVERVIEW,
        preserved_thinking=PREFIX_CHECKS, context_window=OVERVIEW, max_output=OVERVIEW, prices=PRICING),
)
_OPUS_5 = replace(
    _SONNET_5, model="claude-opus-5", thinking_off_efforts=_OFF_AT_HIGH_OR_BELOW, prices=Prices(5.0, 25.0, 6.25, 0.50),
    sources=_sources(**{**_SONNET_5.sources, "thinking": OPUS_5_5_NEW, "thinking_off_efforts": OPUS_5_5_NEW,
                        "effort_default": OPUS_5_PAGE, "context_window": OPUS_5_PAGE, "max_output": OPUS_5_PAGE}),
)
_FABLE_5 = replace(
    _OPUS_5, model="claude-fable-5", thinking_types=frozenset({"adaptive"}), thinking_off_efforts=None,
    prices=Prices(10.0, 50.0, 12.5, 1.0),
    sources=_sources(**{**_OPUS_5.sources, "thinking": FABLE_5_MIGRATION, "effort_default": OVERVIEW,
                        "context_window": FABLE_5_PAGE, "max_output": FABLE_5_PAGE}),
)
# The 4.x generation: thinking off unless asked for.
_OPUS_4_8 = replace(
    _OPUS_5, model="claude-opus-4-8", thinking_when_omitted="off", thinking_off_efforts=None,
    sources=_sources(
        thinking=THINKING_TROUBLESHOOTING, display_default=THINKING, sampling=MIGRATION, prefill=MIGRATION,
        forced_tool_choice=THINKING, efforts=EFFORT, effort_default=OPUS_4_8_PAGE, context_window=OPUS_4_8_PAGE,
        max_output=OPUS_4_8_PAGE, prices=PRICING),
)
_OPUS_4_7 = replace(_OPUS_4_8, model="claude-opus-4-7")
_MYTHOS_PREVIEW = replace(
    _OPUS_4_7, model="claude-mythos-preview", thinking_when_omitted="adaptive",
    thinking_types=frozenset({"enabled", "adaptive"}), sampling=True, prices=None,
    sources=_sources(**{**_OPUS_4_7.sources, "thinking": THINKING_TROUBLESHOOTING, "context_window": MIGRATION,
                        "max_output": MIGRATION}),
)
_OPUS_4_6 = replace(
    _OPUS_4_8, model="claude-opus-4-6", thinking_types=frozenset({"enabled", "adaptive", "disabled"}),
    display_default="summarized", sampling=True, efforts=("low", "medium", "high", "max"),
    sources=_sources(**{**_OPUS_4_8.sources, "effort_default": EFFORT, "context_window": OPUS_4_6_PAGE,
                        "max_output": OPUS_4_6_PAGE}),
)
_SONNET_4_6 = replace(
    _OPUS_4_6, model="claude-sonnet-4-6", prices=Prices(3.0, 15.0, 3.75, 0.30),
    sources=_sources(**{**_OPUS_4_6.sources, "context_window": SONNET_4_6_PAGE, "max_output": SONNET_4_6_PAGE}),
)
_OPUS_4_5 = replace(
    _OPUS_4_6, model="claude-opus-4-5", thinking_types=frozenset({"enabled", "disabled"}), prefill=True,
    efforts=("low", "medium", "high"), context_window=200_000, max_output=64_000,
    sources=_sources(**{**_OPUS_4_6.sources, "efforts": CLAUDE_4_5_NEW, "effort_default": EFFORT,
                        "context_window": OVERVIEW, "max_output": OVERVIEW}),
)
_HAIKU_4_5 = replace(
    _OPUS_4_5, model="claude-haiku-4-5", efforts=(), effort_default=None, prices=Prices(1.0, 5.0, 1.25, 0.10),
    sources=_sources(**{**_OPUS_4_5.sources, "efforts": OVERVIEW, "effort_default": OVERVIEW}),
)

# Listed by earlier SDK releases (2.5), no longer by 2.17: still served, so still described. Sonnet 4.5 shares
# Haiku 4.5's contract (manual thinking only, no effort parameter: Opus 4.5 alone took it) at Sonnet prices.
_SONNET_4_5 = replace(
    _HAIKU_4_5, model="claude-sonnet-4-5", prices=Prices(3.0, 15.0, 3.75, 0.30),
    sources=_sources(**{**_HAIKU_4_5.sources, "efforts": CLAUDE_4_5_NEW, "prices": PRICING}),
)


def _twin(row: ModelContract, model: str) -> ModelContract:
    """A model with the same specifications and prices (Mythos n and Fable n share them)."""
    return replace(row, model=model)


_ROWS: tuple[ModelContract, ...] = (
    _FABLE_5_2, _twin(_FABLE_5_2, "claude-mythos-5-2"),
    _HAIKU_5_5, _SONNET_5_5,
    _FABLE_5_1, _twin(_FABLE_5_1, "claude-mythos-5-1"), _OPUS_5_5,
    _SONNET_5, _FABLE_5, _twin(_FABLE_5, "claude-mythos-5"), _OPUS_5,
    _OPUS_4_8, _OPUS_4_7, _MYTHOS_PREVIEW, _OPUS_4_6, _SONNET_4_6, _HAIKU_4_5, _OPUS_4_5, _SONNET_4_5,
)


def _with_readers(rows: tuple[ModelContract, ...]) -> dict[str, ModelContract]:
    """Every row reads its own blocks; models without preserved thinking read each other's (the
    signature checks the text only) but never a preserved-thinking model's."""
    older = frozenset(row.model for row in rows if not row.preserved_thinking)
    table: dict[str, ModelContract] = {}
    for row in rows:
        readers = row.reads_thinking_from | {row.model} | (older if not row.preserved_thinking else frozenset())
        table[row.model] = replace(row, reads_thinking_from=frozenset(readers))
    return table


_TABLE: dict[str, ModelContract] = _with_readers(_ROWS)
_DATED = re.compile(r"^(?P<base>.+)-(?P<date>\d{8})$")


def contract(model: str) -> ModelContract | None:
    """The row for `model` (an id, or an id with a date suffix); None for an id the table does not know."""
    row = _TABLE.get(model)
    if row is None:
        match = _DATED.match(model)
        row = _TABLE.get(match["base"]) if match else None
    return row


def known_contracts() -> list[ModelContract]:
    """Every row, newest models first."""
    return list(_TABLE.values())


def family_of(model: str) -> str:
    """The row id a model id resolves to (itself when it is not a dated alias)."""
    row = contract(model)
    return row.model if row is not None else model


def takes_sampling(model: str) -> bool:
    """Whether `model` accepts the sampling parameters; True for an id this table does not know."""
    row = contract(model)
    return True if row is None else row.sampling


def thinking_modes(model: str) -> frozenset[str] | None:
    """The thinking-on `thinking.type`s ("enabled", "adaptive") `model` accepts; None for an id this table
    does not know (nothing is checked then)."""
    row = contract(model)
    return None if row is None else row.thinking_types & {"enabled", "adaptive"}


def thinks_by_default(model: str) -> bool:
    """Whether a request to `model` without `thinking` gets thinking."""
    row = contract(model)
    return row is not None and row.thinking_when_omitted != "off"


__all__ = [
    "BINDING_BETA", "EFFORT_LEVELS", "SAMPLING_PARAMETERS", "THINKING_TYPES", "ModelContract", "Prices",
    "contract", "family_of", "known_contracts", "takes_sampling", "thinking_modes", "thinks_by_default",
]

