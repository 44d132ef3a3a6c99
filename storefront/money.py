"""Shopify money formats: the eight placeholders, grouping, and half-up rounding on subunits."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

# placeholder -> (decimals, thousands separator, decimal separator)
MONEY_PLACEHOLDERS: dict[str, tuple[int, str, str]] = {
    "amount": (2, ",", "."),
    "amount_no_decimals": (0, ",", "."),
    "amount_with_comma_separator": (2, ".", ","),
    "amount_no_decimals_with_comma_separator": (0, ".", ","),
    "amount_with_apostrophe_separator": (2, "'", "."),
    "amount_no_decimals_with_space_separator": (0, " ", "."),
    "amount_with_space_separator": (2, " ", ","),
    "amount_with_period_and_space_separator": (2, " ", "."),
}

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def unknown_placeholders(money_format: str) -> list[str]:
    """Placeholder names in ``money_format`` that Shopify does not define."""
    return [name for name in PLACEHOLDER.findall(money_format) if name not in MONEY_PLACEHOLDERS]


def format_amount(subunits: int, placeholder: str) -> str:
    """``113465`` with ``amount`` -> ``1,134.65``. Amounts are x100 in every currency."""
    decimals, thousands, decimal_mark = MONEY_PLACEHOLDERS[placeholder]
    value = (Decimal(subunits) / 100).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    whole, _, fraction = f"{abs(value):f}".partition(".")
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    text = thousands.join(groups)
    if decimals:
        text += decimal_mark + fraction
    return sign + text


def format_money(subunits: int, money_format: str) -> str:
    """Replace the first placeholder of the shop's ``money_format``; keep the text around it."""
    match = PLACEHOLDER.search(money_format)
    if match is None or match.group(1) not in MONEY_PLACEHOLDERS:
        return format_amount(subunits, "amount")
    amount = format_amount(subunits, match.group(1))
    return money_format[: match.start()] + amount + money_format[match.end():]
