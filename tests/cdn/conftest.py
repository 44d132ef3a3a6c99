"""Fixtures for the purger tests: a recording HTTP server per test, speaking the API the purger expects."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.cdn.recording_server import Call, RecordingServer, Reply

TOKEN = "tok-Secret-0123456789abcdefABCDEF"
FASTLY_SERVICE = "SU1Z0isxPaozGVKXdv0eY"
CLOUDFLARE_ZONE = "023e105f4ecef8ad9ca31a8372d0c353"


def fastly_reply(call: Call) -> Reply:
    # Fastly answers a batch purge with a purge id per key.
    keys = call.headers.get("surrogate-key", "").split()
    return Reply.json(200, {key: f"108-{index}" for index, key in enumerate(keys)})


def cloudflare_reply(call: Call) -> Reply:
    return Reply.json(200, {"success": True, "errors": [], "messages": [], "result": {"id": "9a7806061c88"}})


def varnish_reply(call: Call) -> Reply:
    return Reply(200, json.dumps({"status": 200, "message": "Purged 1"}).encode())


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as recording:
        yield recording
