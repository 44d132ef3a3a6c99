"""CachedRender: compressed once, encoded compactly, and anything damaged decodes to None."""

from __future__ import annotations

import gzip
import json
import pickle
import re
import struct
import zlib

import brotli
import pytest

from storefront.cache.entry import MAGIC, CachedRender, NotFoundEntry, decode_entry, strong_etag

BODY = ("<div class=\"sf-widget\">Subscribe &amp; save 10% — ¥1,200</div>\n" * 40).encode("utf-8")


@pytest.fixture
def entry() -> CachedRender:
    return CachedRender.build(
        BODY, "text/html; charset=utf-8", render_ms=12.5, ttl_s=60, now=1_700_000_000.25
    )


def test_build_compresses_once_and_keeps_the_identity_body(entry: CachedRender) -> None:
    assert entry.identity == BODY
    assert gzip.decompress(entry.gzip) == BODY
    assert brotli.decompress(entry.br) == BODY
    assert len(entry.br) < len(BODY) and len(entry.gzip) < len(BODY)
    assert entry.created == 1_700_000_000.25
    assert entry.soft_expiry == 1_700_000_060.25
    assert entry.render_ms == 12.5
    assert entry.content_type == "text/html; charset=utf-8"


def test_gzip_output_does_not_depend_on_when_it_was_built() -> None:
    first = CachedRender.build(BODY, "text/html", 1, 60, now=1.0)
    second = CachedRender.build(BODY, "text/html", 1, 60, now=999.0)
    assert first.gzip == second.gzip
    assert first.br == second.br


def test_etag_is_strong_and_follows_the_identity_bytes(entry: CachedRender) -> None:
    assert re.fullmatch(r'"[A-Za-z0-9_-]{22}"', entry.etag)
    assert entry.etag == strong_etag(BODY)
    assert CachedRender.build(BODY, "text/css", 99, 1).etag == entry.etag
    assert CachedRender.build(BODY + b" ", "text/html", 1, 60).etag != entry.etag


def test_round_trip(entry: CachedRender) -> None:
    data = entry.encode()
    assert data.startswith(MAGIC)
    assert CachedRender.decode(data) == entry
    assert CachedRender.decode(bytearray(data)) == entry
    assert CachedRender.decode(memoryview(data)) == entry
    assert entry.encode() == data


def test_round_trip_of_an_empty_body() -> None:
    entry = CachedRender.build(b"", "application/json", 0.0, 5, now=10.0)
    assert CachedRender.decode(entry.encode()) == entry
    assert gzip.decompress(entry.gzip) == b""


def test_encoding_is_compact(entry: CachedRender) -> None:
    payload = len(entry.identity) + len(entry.gzip) + len(entry.br)
    assert len(entry.encode()) - payload < 120


def test_nbytes_counts_every_body(entry: CachedRender) -> None:
    assert entry.nbytes >= len(entry.identity) + len(entry.gzip) + len(entry.br)


@pytest.mark.parametrize("value", [None, b"", b"SFRC", b"hello world", b"\x00" * 200])
def test_foreign_values_decode_to_none(value: bytes | None) -> None:
    assert CachedRender.decode(value) is None
    assert decode_entry(value) is None


def test_other_serialisations_decode_to_none(entry: CachedRender) -> None:
    assert CachedRender.decode(pickle.dumps(entry)) is None
    assert CachedRender.decode(json.dumps({"etag": entry.etag}).encode()) is None


def test_every_truncation_decodes_to_none(entry: CachedRender) -> None:
    data = entry.encode()
    for length in range(len(data)):
        assert CachedRender.decode(data[:length]) is None, length


def test_trailing_bytes_decode_to_none(entry: CachedRender) -> None:
    assert CachedRender.decode(entry.encode() + b"\x00") is None


def test_every_single_bit_flip_decodes_to_none() -> None:
    data = CachedRender.build(b"<p>hi</p>" * 5, "text/html", 1.0, 60, now=5.0).encode()
    for position in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[position] ^= 1 << bit
            assert CachedRender.decode(bytes(damaged)) is None, (position, bit)


def head_length(data: bytes) -> int:
    """Where the head's checksum sits: after the fixed header, the content type and the ETag."""
    from storefront.cache.entry import _HEADER

    fields = _HEADER.unpack_from(data)
    return _HEADER.size + fields[6] + fields[7]


def test_another_format_version_decodes_to_none(entry: CachedRender) -> None:
    data = bytearray(entry.encode())
    data[4] += 1  # the version byte right after the magic
    # A valid checksum: only the version check can refuse it.
    head = head_length(bytes(data))
    data[head:head + 4] = struct.pack("!I", zlib.crc32(bytes(data[:head])))
    assert CachedRender.decode(bytes(data)) is None


def test_not_found_entries_round_trip_but_are_no_render() -> None:
    marker = NotFoundEntry("unknown product 42", expires=1234.5)
    data = marker.encode()
    assert decode_entry(data) == marker
    assert CachedRender.decode(data) is None


def test_not_found_message_is_bounded_on_a_character_boundary() -> None:
    assert len(decode_entry(NotFoundEntry("x" * 10_000, expires=1.0).encode()).message) == 1000
    message = decode_entry(NotFoundEntry("é" * 10_000, expires=1.0).encode()).message
    assert message == "é" * 500


def test_checksums_are_zlibs_crc32_of_each_body_and_of_the_head_whatever_the_size() -> None:
    """Computed in slices (so a hit keeps the GIL), each is still one CRC-32 of its whole part:
    values written by any other writer of the format decode alike."""
    import os

    for size in (0, 5119, 5120, 5121, 40_000):
        body = os.urandom(size // 2 + 1).hex().encode()[:size]
        entry = CachedRender.build(body, "text/plain", 1.0, 60, now=1000.0)
        data = entry.encode()
        head = head_length(data)
        assert struct.unpack_from("!I", data, head)[0] == zlib.crc32(data[:head])
        assert struct.unpack_from("!III", data, head - 12 - len(entry.content_type) - len(entry.etag)) == \
            (zlib.crc32(entry.identity), zlib.crc32(entry.gzip), zlib.crc32(entry.br))
        assert CachedRender.decode(data) == entry


def test_one_encoding_is_decoded_and_checked_alone(entry: CachedRender) -> None:
    data = entry.encode()
    start = head_length(data) + 4
    spans = {"identity": (start, len(entry.identity)),
             "gzip": (start + len(entry.identity), len(entry.gzip)),
             "br": (start + len(entry.identity) + len(entry.gzip), len(entry.br))}
    for encoding in ("identity", "gzip", "br"):
        one = decode_entry(data, encoding)
        assert one is not None and one.partial and not entry.partial
        assert (one.etag, one.content_type, one.created, one.soft_expiry, one.render_ms) == \
            (entry.etag, entry.content_type, entry.created, entry.soft_expiry, entry.render_ms)
        assert {name: getattr(one, name) for name in spans} == \
            {name: getattr(entry, name) if name == encoding else b"" for name in spans}
    for damaged_part, (at, length) in spans.items():
        damaged = bytearray(data)
        damaged[at + length // 2] ^= 0x10
        assert decode_entry(bytes(damaged)) is None
        for encoding in spans:
            decoded = decode_entry(bytes(damaged), encoding)
            # Only the body it sends is checked: the others' damage does not concern this reader.
            assert (decoded is None) == (encoding == damaged_part), (damaged_part, encoding)
    damaged = bytearray(data)
    damaged[8] ^= 0x01  # in the head (the creation time): every reader refuses it
    assert all(decode_entry(bytes(damaged), encoding) is None for encoding in (None, *spans))
