"""What an assessment cost: tokens times the model's price, from a table in the settings.

Prices are US dollars per million tokens, Anthropic's list prices when this was
written (https://docs.anthropic.com/en/docs/about-claude/pricing): a cache write
(5-minute cache) costs 1.25 times the input price, a cache read 0.1 times. ``AI_PRICES``
(JSON, ``{"<model or model prefix>": {"input": 3, "output": 15, "cache_write": 3.75,
"cache_read": 0.3}}``) adds or replaces entries; the longest matching model-name
prefix wins. A model that matches nothing costs 0 and is logged once, so a
missing price shows as a gap rather than a made-up figure.
"""

from __future__ import annotations

import logging
from typing import Annotated

import msgspec

log = logging.getLogger(__name__)

PerMillion = Annotated[float, msgspec.Meta(ge=0, le=10_000)]


class ModelPrice(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """USD per million tokens."""

    input: PerMillion
    output: PerMillion
    cache_write: PerMillion
    cache_read: PerMillion


def _list_price(input_usd: float, output_usd: float) -> ModelPrice:
    return ModelPrice(input_usd, output_usd, round(input_usd * 1.25, 6), round(input_usd * 0.1, 6))


DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-opus-4-5": _list_price(5.0, 25.0),
    "claude-opus-4-6": _list_price(5.0, 25.0),
    "claude-opus": _list_price(15.0, 75.0),
    "claude-sonnet": _list_price(3.0, 15.0),
    "claude-3-7-sonnet": _list_price(3.0, 15.0),
    "claude-3-5-sonnet": _list_price(3.0, 15.0),
    "claude-haiku-4-5": _list_price(1.0, 5.0),
    "claude-3-5-haiku": _list_price(0.8, 4.0),
    "claude-3-haiku": _list_price(0.25, 1.25),
    "offline": ModelPrice(0.0, 0.0, 0.0, 0.0),
}

_price_table = msgspec.json.Decoder(dict[str, ModelPrice])


def parse_prices(raw: str) -> dict[str, ModelPrice]:
    """The default table with ``AI_PRICES`` (JSON) over it; ValueError naming what is wrong."""
    table = dict(DEFAULT_PRICES)
    if raw.strip():
        try:
            table.update(_price_table.decode(raw))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ValueError(f"AI_PRICES is not a price table: {exc}") from exc
    return table


_unpriced: set[str] = set()


def price_of(model: str, table: dict[str, ModelPrice]) -> ModelPrice | None:
    matches = [prefix for prefix in table if model.startswith(prefix)]
    if not matches:
        if model not in _unpriced:
            _unpriced.add(model)
            log.warning("no price for model %r in AI_PRICES: its assessments are counted at $0", model)
        return None
    return table[max(matches, key=len)]


def cost_usd(
    table: dict[str, ModelPrice],
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_write_tokens: int,
    cache_read_tokens: int,
) -> float:
    """The cost of one model call, in USD (``input_tokens`` excludes the cached ones, as the
    API reports them)."""
    price = price_of(model, table)
    if price is None:
        return 0.0
    total = (
        input_tokens * price.input
        + output_tokens * price.output
        + cache_write_tokens * price.cache_write
        + cache_read_tokens * price.cache_read
    )
    return round(total / 1_000_000, 6)
