"""Properties of the public widget request parser: only ApiError escapes; exactly the allow-list passes."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from storefront.web.errors import ApiError
from storefront.web.widget_request import ALLOWED, WidgetRequest, parse_query, parse_widget_request
from tests.fuzz.property_settings import bounded

# The contract's forms (docs/http-api.md), written out here rather than taken from the module.
CONTRACT = {
    "product": re.compile(r"[0-9]{1,20}"),
    "locale": re.compile(r"[a-z]{2}(-[A-Z]{2})?"),
    "v": re.compile(r"[A-Za-z0-9._-]{1,32}"),
}
KINDS = ("subscription", "bundle", "loyalty")
FORMATS = ("js", "html", "json", "css")
SHOP = re.compile(r"[a-z0-9][a-z0-9-]{0,60}\.myshopify\.com")

valid_values = {
    "product": st.from_regex(r"\A[0-9]{1,20}\Z"),
    "locale": st.from_regex(r"\A[a-z]{2}(-[A-Z]{2})?\Z"),
    "v": st.from_regex(r"\A[A-Za-z0-9._-]{1,32}\Z"),
}
valid_params = st.fixed_dictionaries({}, optional=valid_values)
valid_shops = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,60}\.myshopify\.com\Z")
# Characters that matter to a query parser, plus anything at all.
query_text = st.text(alphabet=st.sampled_from("&=;%+?#/ pP0123456789.-_aeAE\x00é\u2028") | st.characters(),
                     max_size=80)
names = st.sampled_from(["product", "locale", "v", "Product", "pro%64uct", "product ", "", "x", "v[]",
                         "locale;v"]) | st.text(max_size=12)


def _query(params: dict[str, str], order: list[str]) -> str:
    return "&".join(f"{name}={params[name]}" for name in order)


@st.composite
def ordered_valid_queries(draw: st.DrawFn) -> tuple[dict[str, str], str]:
    params = draw(valid_params)
    order = draw(st.permutations(sorted(params)))
    return params, _query(params, list(order))


@st.composite
def defective_queries(draw: st.DrawFn) -> str:
    """A valid query with exactly one defect the contract says is a 400."""
    params, raw = draw(ordered_valid_queries())
    pieces = [raw] if raw else []
    defect = draw(st.sampled_from(["unknown", "repeat", "malformed", "no-equals", "empty-piece"]))
    # Injected names and values hold no "&", so each defect stays one piece of the query.
    if defect == "unknown":
        name = draw(names.filter(lambda n: n not in CONTRACT and "&" not in n))
        value = draw(st.text(max_size=10).filter(lambda text: "&" not in text))
        pieces.insert(draw(st.integers(0, len(pieces))), f"{name}={value}")
    elif defect == "repeat" and params:
        name = draw(st.sampled_from(sorted(params)))
        pieces.append(f"{name}={draw(valid_values[name])}")
    elif defect in ("malformed", "repeat"):
        name = draw(st.sampled_from(sorted(CONTRACT)))
        pattern = CONTRACT[name]
        value = draw(st.text(max_size=40).filter(lambda t: "&" not in t and not pattern.fullmatch(t)))
        pieces = [piece for piece in raw.split("&") if piece and not piece.startswith(f"{name}=")]
        pieces.append(f"{name}={value}")
    elif defect == "no-equals":
        pieces.append(draw(names.filter(lambda n: n and "=" not in n and "&" not in n)))
    else:
        pieces = [*pieces, ""] if pieces else ["", ""]  # "a=1&" or "&"; an empty query is fine
    return "&".join(pieces)


def _is_bad_request(error: ApiError) -> bool:
    fields = error.fields
    return error.status == 400 and bool(fields) and all(isinstance(why, str) for why in fields.values())


@bounded(400)
@given(query_text | st.lists(st.tuples(names, st.sampled_from(["=", ""]), st.text(max_size=25)), max_size=5)
       .map(lambda pairs: "&".join(name + sep + value for name, sep, value in pairs)))
def test_parse_query_raises_only_api_errors_and_returns_only_literal_allowed_pairs(raw):
    try:
        params = parse_query(raw, ALLOWED)
    except ApiError as error:
        assert _is_bad_request(error)
        return
    assert set(params) <= set(CONTRACT)
    assert all(CONTRACT[name].fullmatch(value) for name, value in params.items())
    # Nothing was decoded, dropped or reordered: the result spells out the query it came from.
    assert raw == _query(params, list(params))


@bounded()
@given(ordered_valid_queries())
def test_parse_query_accepts_every_allowed_combination_in_any_order(query):
    params, raw = query
    assert parse_query(raw, ALLOWED) == params


@bounded(300)
@given(defective_queries())
def test_parse_query_refuses_unknown_repeated_malformed_or_bare_parameters(raw):
    try:
        parse_query(raw, ALLOWED)
    except ApiError as error:
        assert _is_bad_request(error)
    else:
        raise AssertionError(f"accepted {raw!r}")


filenames = (st.tuples(st.sampled_from(KINDS), st.sampled_from(FORMATS)).map(".".join)
             | st.text(max_size=20)
             | st.tuples(st.sampled_from(KINDS + ("Subscription", "loyalty.js", "")),
                         st.sampled_from(FORMATS + ("JS", "js.map", "", "css "))).map(".".join))


@bounded(400)
@given(shop=valid_shops | st.text(max_size=70), filename=filenames, raw_path=st.text(max_size=30),
       raw_query=query_text, has_body=st.booleans())
def test_parse_widget_request_raises_only_api_errors(shop, filename, raw_path, raw_query, has_body):
    try:
        request = parse_widget_request(shop, filename, raw_path, raw_query, has_body)
    except ApiError as error:
        kind, _, fmt = filename.partition(".")
        if kind not in KINDS or fmt not in FORMATS:
            assert error.status == 404  # an unknown widget is not found, whatever else is wrong
            # Only a canonical-looking name may be cached: a normalising cache must not file a
            # 404 for SUBSCRIPTION.js under subscription.js.
            canonical = re.fullmatch(r"[a-z]{1,32}", kind) is not None and fmt in FORMATS
            assert error.cache_control == ("public, max-age=60" if canonical else "no-store")
        else:
            assert _is_bad_request(error)
        return
    assert isinstance(request, WidgetRequest)
    assert SHOP.fullmatch(request.shop) and request.shop == shop
    assert not has_body and "%" not in raw_path
    assert f"{request.kind}.{request.fmt}" == filename


@bounded(300)
@given(shop=valid_shops, kind=st.sampled_from(KINDS), fmt=st.sampled_from(FORMATS),
       query=ordered_valid_queries())
def test_parse_widget_request_accepts_exactly_the_contracts_requests(shop, kind, fmt, query):
    params, raw = query
    path = f"/v1/shops/{shop}/widgets/{kind}.{fmt}"
    needs_product = kind in ("subscription", "bundle") and fmt != "css"
    try:
        request = parse_widget_request(shop, f"{kind}.{fmt}", path, raw, False)
    except ApiError as error:
        assert needs_product and "product" not in params, error.fields
        assert error.status == 400 and "product" in error.fields
        return
    assert request == WidgetRequest(shop=shop, kind=kind, fmt=fmt, locale=params.get("locale"),
                                    product_id=int(params["product"]) if needs_product else None)
    # The same request with a body, or a percent-encoded path, is refused.
    for args in ((path, raw, True), (path.replace(".", "%2E", 1), raw, False)):
        try:
            parse_widget_request(shop, f"{kind}.{fmt}", *args)
        except ApiError as error:
            assert _is_bad_request(error)
        else:
            raise AssertionError(f"accepted {args!r}")
