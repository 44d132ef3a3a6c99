"""Properties of Shopify money formatting: every output reads back as the amount, rounded half up."""

from __future__ import annotations

import re
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from storefront.money import MONEY_PLACEHOLDERS, PLACEHOLDER, format_amount, format_money
from storefront.validation import MAX_AMOUNT
from tests.fuzz.property_settings import bounded

# Amounts the admin API accepts (validation.MAX_AMOUNT), negatives for the arithmetic's sake.
amounts = st.integers(-MAX_AMOUNT, MAX_AMOUNT) | st.integers(-1000, 1000)
placeholders = st.sampled_from(sorted(MONEY_PLACEHOLDERS))


def _expected(subunits: int, decimals: int) -> Decimal:
    """The amount in whole units, rounded half up (away from zero at .5) with integer math only."""
    if decimals == 2:
        return Decimal(subunits).scaleb(-2)
    units, cents = divmod(abs(subunits), 100)
    rounded = units + (1 if cents >= 50 else 0)
    return Decimal(-rounded if subunits < 0 else rounded)


def _read_back(text: str, placeholder: str) -> Decimal:
    """Parse a formatted amount, checking its grouping on the way."""
    decimals, thousands, decimal_mark = MONEY_PLACEHOLDERS[placeholder]
    sign = "-" if text.startswith("-") else ""
    body = text[len(sign):]
    whole, fraction = (body.rsplit(decimal_mark, 1) if decimals else (body, ""))
    assert len(fraction) == decimals, text
    groups = whole.split(thousands)
    assert 1 <= len(groups[0]) <= 3 and all(len(group) == 3 for group in groups[1:]), text
    digits = "".join(groups)
    assert re.fullmatch(r"0|[1-9][0-9]*", digits) and (not fraction or fraction.isdigit()), text
    return Decimal(f"{sign}{digits}.{fraction}" if decimals else f"{sign}{digits}")


@bounded(500)
@given(amounts, placeholders)
def test_format_amount_reads_back_as_the_amount_rounded_half_up(subunits, placeholder):
    decimals = MONEY_PLACEHOLDERS[placeholder][0]
    text = format_amount(subunits, placeholder)
    expected = _expected(subunits, decimals)
    assert _read_back(text, placeholder) == expected
    assert text.startswith("-") == (expected < 0)  # no "-0"


surrounding_text = st.text(max_size=15).filter(lambda text: PLACEHOLDER.search(text) is None)


@bounded(400)
@given(amounts, placeholders, surrounding_text, st.text(max_size=15), st.sampled_from(["", " ", "  "]))
def test_format_money_replaces_the_first_placeholder_and_keeps_the_text_around_it(subunits, placeholder,
                                                                                   before, after, space):
    money_format = f"{before}{{{{{space}{placeholder}{space}}}}}{after}"
    assert format_money(subunits, money_format) == before + format_amount(subunits, placeholder) + after


@bounded(400)
@given(amounts, st.text(max_size=40))
def test_format_money_never_raises_and_falls_back_to_amount(subunits, money_format):
    text = format_money(subunits, money_format)
    match = PLACEHOLDER.search(money_format)
    if match is None or match.group(1) not in MONEY_PLACEHOLDERS:
        assert text == format_amount(subunits, "amount")
    else:
        assert format_amount(subunits, match.group(1)) in text
