"""Shopify money formats: every placeholder, half-up rounding edges, signs, sizes, zero-decimal currencies."""

from __future__ import annotations

import pytest

from storefront.money import MONEY_PLACEHOLDERS, format_amount, format_money, unknown_placeholders

# widget-model.md's table for 113465 subunits.
CONTRACT_TABLE = {
    "amount": "1,134.65",
    "amount_no_decimals": "1,135",
    "amount_with_comma_separator": "1.134,65",
    "amount_no_decimals_with_comma_separator": "1.135",
    "amount_with_apostrophe_separator": "1'134.65",
    "amount_no_decimals_with_space_separator": "1 135",
    "amount_with_space_separator": "1 134,65",
    "amount_with_period_and_space_separator": "1 134.65",
}


def test_the_contract_table_covers_every_placeholder():
    assert set(CONTRACT_TABLE) == set(MONEY_PLACEHOLDERS)


@pytest.mark.parametrize(("placeholder", "expected"), sorted(CONTRACT_TABLE.items()))
def test_every_placeholder_formats_the_contract_example(placeholder, expected):
    assert format_amount(113465, placeholder) == expected
    assert format_money(113465, "{{" + placeholder + "}}") == expected
    assert format_money(113465, "<{{ " + placeholder + " }}>") == f"<{expected}>"


@pytest.mark.parametrize(("subunits", "expected"), [
    (149, "1"),      # 1.49 rounds down
    (150, "2"),      # exactly half a unit rounds up ...
    (250, "3"),      # ... also from an even number (not banker's rounding)
    (151, "2"),
    (50, "1"),
    (49, "0"),
    (113449, "1,134"),
    (113450, "1,135"),
    (99949, "999"),
    (99950, "1,000"),  # rounding up carries into a new thousands group
])
def test_no_decimal_formats_round_half_up(subunits, expected):
    assert format_amount(subunits, "amount_no_decimals") == expected
    assert format_amount(subunits, "amount_no_decimals_with_comma_separator") == expected.replace(",", ".")
    assert format_amount(subunits, "amount_no_decimals_with_space_separator") == expected.replace(",", " ")


@pytest.mark.parametrize(("subunits", "placeholder", "expected"), [
    (-113465, "amount", "-1,134.65"),
    (-113465, "amount_with_comma_separator", "-1.134,65"),
    (-150, "amount_no_decimals", "-2"),  # half rounds away from zero, symmetric with positives
    (-149, "amount_no_decimals", "-1"),
    (-1, "amount", "-0.01"),
    (-49, "amount_no_decimals", "0"),    # rounds to zero: no "-0"
    (-100000, "amount_with_apostrophe_separator", "-1'000.00"),
])
def test_negative_amounts(subunits, placeholder, expected):
    assert format_amount(subunits, placeholder) == expected


@pytest.mark.parametrize(("placeholder", "expected"), [
    ("amount", "0.00"),
    ("amount_no_decimals", "0"),
    ("amount_with_comma_separator", "0,00"),
    ("amount_with_space_separator", "0,00"),
    ("amount_no_decimals_with_space_separator", "0"),
])
def test_zero(placeholder, expected):
    assert format_amount(0, placeholder) == expected


@pytest.mark.parametrize(("subunits", "placeholder", "expected"), [
    (123456789012345, "amount", "1,234,567,890,123.45"),
    (123456789012345, "amount_no_decimals", "1,234,567,890,123"),
    (123456789012345, "amount_with_period_and_space_separator", "1 234 567 890 123.45"),
    (2**53 - 1, "amount", "90,071,992,547,409.91"),  # the largest amount the renders carry exactly
    (99999, "amount", "999.99"),
    (100000, "amount", "1,000.00"),
    (100000000, "amount_with_comma_separator", "1.000.000,00"),
    (1, "amount", "0.01"),
    (10, "amount", "0.10"),
])
def test_grouping_and_large_amounts(subunits, placeholder, expected):
    assert format_amount(subunits, placeholder) == expected


@pytest.mark.parametrize(("money_format", "subunits", "expected"), [
    ("¥{{amount_no_decimals}}", 313500, "¥3,135"),       # JPY is still x100 in the data
    ("¥{{amount_no_decimals}}", 330000, "¥3,300"),
    ("¥{{amount_no_decimals}}", 100, "¥1"),
    ("¥{{amount_no_decimals}}", 313550, "¥3,136"),       # half a yen rounds up
    ("₩{{amount_no_decimals}}", 1234500, "₩12,345"),
    ("{{amount_no_decimals_with_comma_separator}} Ft", 12345000, "123.450 Ft"),
])
def test_zero_decimal_currencies(money_format, subunits, expected):
    assert format_money(subunits, money_format) == expected


@pytest.mark.parametrize(("money_format", "expected"), [
    ("${{amount}}", "$1,134.65"),
    ("{{amount_with_comma_separator}} €", "1.134,65 €"),
    ("${{ amount }} USD", "$1,134.65 USD"),                 # spaces inside the braces
    ("{{amount}} ({{amount_no_decimals}})", "1,134.65 ({{amount_no_decimals}})"),  # only the first
    ("CHF {{amount_with_apostrophe_separator}}", "CHF 1'134.65"),
])
def test_format_money_keeps_the_text_around_the_first_placeholder(money_format, expected):
    assert format_money(113465, money_format) == expected


@pytest.mark.parametrize("money_format", ["{{price}}", "no placeholder", ""])
def test_format_money_falls_back_to_plain_amount(money_format):
    assert format_money(113465, money_format) == "1,134.65"


def test_unknown_placeholders():
    assert unknown_placeholders("${{amount}}") == []
    assert unknown_placeholders("{{ amount_no_decimals }} and {{ price }}") == ["price"]
    assert unknown_placeholders("{{amount}} {{ money }} {{cents}}") == ["money", "cents"]
