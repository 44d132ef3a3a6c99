"""Asking the hot path as gunicorn's worker does (``answer_parsed``), beside the WSGI path's answer."""

from __future__ import annotations

from typing import Any

from storefront.web.hot_path import Answer

# Headers that differ between any two answers.
PER_ANSWER = {"X-Request-ID", "Date"}


def parsed(headers: dict[str, str]) -> list[tuple[str, str]]:
    """Request headers as gunicorn's parser hands them to answer_parsed."""
    return [(name.upper(), value) for name, value in headers.items()]


def answered_alike(app: Any, url: str, method: str, headers: dict[str, str]) -> tuple[Answer, Any]:
    """``url``'s hit through WSGI (the test client), then the parsed request's answer; asserts the
    two alike (status, body, every header but PER_ANSWER) and returns both."""
    by_wsgi = app.test_client().open(url, method=method, headers=headers)
    assert by_wsgi.headers["X-Cache"] == "HIT"
    answer = app.wsgi_app.answer_parsed(method, url, parsed(headers))
    assert answer is not None, (method, headers)
    status, answer_headers, body = answer
    assert status == by_wsgi.status.upper() and b"".join(body) == by_wsgi.data
    assert [(k, v) for k, v in answer_headers if k not in PER_ANSWER] == \
        [(k, v) for k, v in by_wsgi.headers.items() if k not in PER_ANSWER]
    return answer, by_wsgi
