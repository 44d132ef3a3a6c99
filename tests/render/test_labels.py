"""Label resolution (translations, default locale, settings.labels, built-in) and placeholder filling."""

from __future__ import annotations

import pytest

from storefront.render.context import EXTRA_LABELS, fill, label_defaults, resolve_labels
from storefront.widget_settings import LABELS
from tests.render.fixture_data import settings

TRANSLATIONS = {
    "de": {"onetime": "Einmalkauf", "subscribe": "Abonnieren und {discount} sparen"},
    "fr": {"onetime": "Achat unique"},
}


def labels(locale: str, default_locale: str, **changes):
    widget = settings("subscription", translations=TRANSLATIONS, **changes)
    return resolve_labels("subscription", widget, locale, default_locale)


def test_the_requested_locale_wins():
    assert labels("fr", "en")["onetime"] == "Achat unique"
    assert labels("de", "de")["subscribe"] == "Abonnieren und {discount} sparen"


def test_a_missing_key_falls_back_to_the_default_locale_then_labels_then_built_in():
    # fr has no "subscribe": the default locale's translation (de) comes next.
    assert labels("fr", "de")["subscribe"] == "Abonnieren und {discount} sparen"
    # No translation in fr or en (the default): the merchant's labels.
    assert labels("fr", "en", labels={"subscribe": "Sub {discount}"})["subscribe"] == "Sub {discount}"
    # Nothing anywhere: the built-in text.
    assert labels("fr", "en")["deliver_every"] == "Deliver every"


def test_the_default_locale_uses_its_translation_then_labels():
    assert labels("de", "de", labels={"onetime": "Once"})["onetime"] == "Einmalkauf"
    assert labels("en", "en", labels={"onetime": "Once"})["onetime"] == "Once"


def test_a_locale_without_translations_uses_the_default_locales_translation():
    assert labels("en", "de")["onetime"] == "Einmalkauf"


def test_empty_or_non_text_translations_fall_through():
    widget = settings("subscription", translations={"fr": {"onetime": "", "subscribe": None}})
    resolved = resolve_labels("subscription", widget, "fr", "en")
    assert resolved["onetime"] == "One-time purchase"
    assert resolved["subscribe"] == "Subscribe & save {discount}"


@pytest.mark.parametrize("kind", sorted(LABELS))
def test_every_kind_resolves_every_label_key(kind):
    resolved = resolve_labels(kind, settings(kind), "en", "en")
    assert set(resolved) == set(LABELS[kind]) | set(EXTRA_LABELS[kind])
    assert resolved == label_defaults(kind)


def test_widget_settings_labels_override_render_extras_of_the_same_name():
    # If widget_settings ever adopts one of our extra keys, its default wins over ours.
    for kind, extras in EXTRA_LABELS.items():
        for key in extras:
            if key in LABELS[kind]:
                assert label_defaults(kind)[key] == LABELS[kind][key][0]


@pytest.mark.parametrize(("text", "values", "expected"), [
    ("Subscribe & save {discount}", {"discount": "10%"}, "Subscribe & save 10%"),
    ("Choose {min}-{max}", {"min": 2, "max": 4}, "Choose 2-4"),
    ("{a}{a}", {"a": "x"}, "xx"),
    ("Keep {unknown} as typed", {"discount": "10%"}, "Keep {unknown} as typed"),
    ("One pass: {first}", {"first": "{later}", "later": "nope"}, "One pass: {later}"),
    ("{ spaced }", {"spaced": "x"}, "{ spaced }"),
    ("No placeholders", {}, "No placeholders"),
])
def test_fill(text, values, expected):
    assert fill(text, **values) == expected
