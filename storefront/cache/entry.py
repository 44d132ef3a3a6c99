"""What the render cache stores: a render compressed once, and its compact checksummed byte encoding."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import struct
import time
import zlib
from typing import NamedTuple

# The size report's own brotli (quality and window chosen there), so it counts the bytes sent here.
from storefront.render.assets import brotli_compress

# Layout (big-endian, no padding):
#   magic 4s | version B | kind B | created d | soft_expiry d | render_ms d
#   | content_type length H | etag length B | identity length I | gzip length I | br length I
#   | crc32 of identity I | crc32 of gzip I | crc32 of br I
#   | content_type | etag | crc32 of everything before it (I) | identity | gzip | br
# Each body has its own checksum, and the head's covers those: a reader that sends one encoding
# checks the head and that body alone (``decode_entry(..., encoding)``), a fifth of the bytes.
# A version bump makes old values decode to None (a miss), so a deploy never misreads them.
MAGIC = b"SFRC"
VERSION = 2
_KIND_RENDER = 1
_KIND_NOT_FOUND = 2
_HEADER = struct.Struct("!4sBBdddHBIIIIII")
_CRC = struct.Struct("!I")
# Rough bytes a Python object with eight fields costs beyond its payloads.
_OBJECT_OVERHEAD = 400
_MAX_MESSAGE_BYTES = 1000
# zlib.crc32 lets go of the GIL for buffers over 5 KiB; for the few microseconds a 14 KB entry
# takes, that costs a cache hit two thread switches in a busy worker. Slices this size keep it.
_CRC_SLICE = 5 * 1024


def strong_etag(identity: bytes) -> str:
    """A strong ETag from the identity body: 128 bits of blake2b, urlsafe base64, quoted."""
    digest = hashlib.blake2b(identity, digest_size=16).digest()
    return '"' + base64.urlsafe_b64encode(digest).decode("ascii")[:22] + '"'


class CachedRender(NamedTuple):
    """One render: the identity body plus its gzip and brotli forms, compressed once when built.

    Immutable, and a tuple rather than a frozen dataclass: every shared-tier hit builds one, and a
    frozen dataclass's ``__init__`` (a guarded ``setattr`` per field) costs three times as much.
    """

    etag: str
    created: float
    soft_expiry: float
    render_ms: float
    content_type: str
    identity: bytes
    gzip: bytes
    br: bytes
    # Decoded for one encoding only (decode_entry's ``encoding``): the other bodies are empty, so
    # such a copy is sent once and never kept.
    partial: bool = False

    @classmethod
    def build(
        cls, body: bytes, content_type: str, render_ms: float, ttl_s: float, *, now: float | None = None
    ) -> CachedRender:
        body = bytes(body)
        created = time.time() if now is None else now
        return cls(
            etag=strong_etag(body),
            created=created,
            soft_expiry=created + ttl_s,
            render_ms=float(render_ms),
            content_type=content_type,
            identity=body,
            # mtime=0: the same body always gives the same bytes, whichever worker compressed it.
            gzip=gzip.compress(body, compresslevel=9, mtime=0),
            br=brotli_compress(body),
        )

    @property
    def nbytes(self) -> int:
        """Memory this entry holds, for the local tier's byte budget."""
        return (
            len(self.identity) + len(self.gzip) + len(self.br) + len(self.content_type) + len(self.etag)
            + _OBJECT_OVERHEAD
        )

    def encode(self) -> bytes:
        content_type = self.content_type.encode("utf-8")
        etag = self.etag.encode("ascii")
        return _pack(
            _KIND_RENDER, self.created, self.soft_expiry, self.render_ms,
            content_type, etag, self.identity, self.gzip, self.br,
        )

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview | None) -> CachedRender | None:
        """The entry, or None for anything truncated, foreign, corrupted or not a render."""
        entry = decode_entry(data)
        return entry if isinstance(entry, CachedRender) else None


@dataclasses.dataclass(frozen=True, slots=True)
class NotFoundEntry:
    """A remembered NotFoundRender (the negative cache): its message and when it stops counting."""

    message: str
    expires: float

    @property
    def nbytes(self) -> int:
        return len(self.message) + 200

    def encode(self) -> bytes:
        # Cut on a character boundary: a split UTF-8 sequence would make the value undecodable.
        message = self.message.encode("utf-8")[:_MAX_MESSAGE_BYTES].decode("utf-8", "ignore").encode("utf-8")
        return _pack(_KIND_NOT_FOUND, self.expires, self.expires, 0.0, message, b"", b"", b"", b"")


def _pack(
    kind: int, created: float, soft_expiry: float, render_ms: float,
    content_type: bytes, etag: bytes, identity: bytes, gzip_body: bytes, br_body: bytes,
) -> bytes:
    header = _HEADER.pack(
        MAGIC, VERSION, kind, created, soft_expiry, render_ms,
        len(content_type), len(etag), len(identity), len(gzip_body), len(br_body),
        _crc32(identity), _crc32(gzip_body), _crc32(br_body),
    )
    head = header + content_type + etag
    return b"".join((head, _CRC.pack(_crc32(head)), identity, gzip_body, br_body))


def _crc32(data: bytes | memoryview) -> int:
    """zlib's CRC-32 of ``data``, computed holding the GIL (see _CRC_SLICE)."""
    if len(data) <= _CRC_SLICE:
        return zlib.crc32(data)
    view = memoryview(data)
    crc = 0
    for start in range(0, len(view), _CRC_SLICE):
        crc = zlib.crc32(view[start:start + _CRC_SLICE], crc)
    return crc


def decode_entry(data: bytes | bytearray | memoryview | None,
                 encoding: str | None = None) -> CachedRender | NotFoundEntry | None:
    """Whatever the encoding holds, or None when it is not an intact value of this format version.

    ``encoding`` (identity, gzip or br): only that body is checked and kept, for a caller that sends
    it and keeps nothing; the render's other two bodies are then empty (``CachedRender.partial``).
    """
    if data is None:
        return None
    try:
        view = memoryview(data)
        if len(view) < _HEADER.size + _CRC.size or view[:4] != MAGIC:
            return None
        (_magic, version, kind, created, soft_expiry, render_ms, type_len, etag_len,
         identity_len, gzip_len, br_len, identity_crc, gzip_crc, br_crc) = _HEADER.unpack_from(view)
        head = _HEADER.size + type_len + etag_len
        if version != VERSION or len(view) != head + _CRC.size + identity_len + gzip_len + br_len:
            return None
        if _crc32(view[:head]) != _CRC.unpack_from(view, head)[0]:
            return None
        at = _HEADER.size
        content_type = str(view[at:at + type_len], "utf-8")
        if kind == _KIND_NOT_FOUND:
            return NotFoundEntry(message=content_type, expires=soft_expiry)
        if kind != _KIND_RENDER:
            return None
        etag = str(view[at + type_len:head], "ascii")
        at = head + _CRC.size
        bodies = []
        for name, length, crc in (("identity", identity_len, identity_crc), ("gzip", gzip_len, gzip_crc),
                                  ("br", br_len, br_crc)):
            if encoding is None or name == encoding:
                body = view[at:at + length]
                if _crc32(body) != crc:
                    return None
                bodies.append(bytes(body))
            else:
                bodies.append(b"")
            at += length
    except (TypeError, ValueError, struct.error):
        # ValueError covers UnicodeDecodeError: bytes that pass the CRC by chance are still refused.
        return None
    # Positional: the hot path's one construction per shared-tier hit (the fields' order above).
    return CachedRender(etag, created, soft_expiry, render_ms, content_type, bodies[0], bodies[1], bodies[2],
                        encoding is not None)
