"""trainwatch's native batch protocol, version 1 (docs/protocol.md), with nothing but the standard library.

A frame is a small uncompressed header (magic ``TWB``, version, compression, idempotency key = source id +
sequence, CRC-32 of the uncompressed payload) followed by the payload: a string table, the series (label
indexes into the table, zigzag-delta timestamps, raw little-endian float64 values) and job events as JSON.

The encoder is checked byte for byte against the shared test vectors in ``testdata/native/`` that the
TypeScript codec (``src/protocol/native.ts``) is tested against. The decoder exists for ``trainwatch sync``
(which checks a frame before sending it) and for tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import struct
import sys
import types
import zlib
from array import array
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Sequence, Tuple

MAGIC = b"TWB"
VERSION = 1
CONTENT_TYPE = "application/x-trainwatch-batch"
COMPRESSION_NONE = 0
COMPRESSION_ZLIB = 1
_COMPRESSIONS = {"none": COMPRESSION_NONE, "zlib": COMPRESSION_ZLIB}
MAX_SOURCE_ID_BYTES = 256
# Varints are limited to 53 bits so that they round-trip through a JavaScript number.
MAX_UVARINT = (1 << 53) - 1

_LITTLE_ENDIAN = sys.byteorder == "little"


class Series(NamedTuple):
    """One series of a batch: its labels (``__name__`` is the metric name) and parallel sample columns."""

    labels: Mapping[str, str]
    timestamps: Sequence[int]
    values: Sequence[float]


class Frame(NamedTuple):
    source_id: str
    sequence: int
    compression: str
    series: List[Series]
    events: List[Dict[str, Any]]


class DecodeError(ValueError):
    """A frame that is not a valid native frame; the message says what and where."""


def _uvarint(out: bytearray, v: int) -> None:
    if v < 0 or v > MAX_UVARINT:
        raise ValueError(f"varint {v} out of range 0..2^53-1")
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _svarint(out: bytearray, v: int) -> None:
    # Zigzag: 0 -> 0, -1 -> 1, 1 -> 2, ...  (Python ints are unbounded, so no shift tricks are needed.)
    _uvarint(out, (v << 1) if v >= 0 else ((-v << 1) - 1))


def _string(out: bytearray, s: str) -> None:
    b = s.encode("utf-8")
    _uvarint(out, len(b))
    out += b


def _float64s(values: Sequence[float]) -> bytes:
    a = array("d", values)
    if not _LITTLE_ENDIAN:
        a.byteswap()
    return a.tobytes()


def event_json(event: Mapping[str, Any]) -> str:
    """A job event as compact JSON, the way ``JSON.stringify`` writes it (no NaN: JSON has none)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_payload(series: Iterable[Series], events: Sequence[Mapping[str, Any]] = ()) -> bytes:
    """The uncompressed payload: string table, series, events (docs/protocol.md, "Payload")."""
    series = list(series)
    index: Dict[str, int] = {}
    strings: List[str] = []
    # Names and values are interned in series order, label order: the same table the TypeScript encoder builds.
    for s in series:
        for name, value in s.labels.items():
            if name not in index:
                index[name] = len(strings)
                strings.append(name)
            if value not in index:
                index[value] = len(strings)
                strings.append(value)
    out = bytearray()
    _uvarint(out, len(strings))
    for s in strings:
        _string(out, s)
    _uvarint(out, len(series))
    for s in series:
        _uvarint(out, len(s.labels))
        for name, value in s.labels.items():
            _uvarint(out, index[name])
            _uvarint(out, index[value])
        n = len(s.timestamps)
        if len(s.values) != n:
            raise ValueError(f"series {dict(s.labels)} has {n} timestamps but {len(s.values)} values")
        _uvarint(out, n)
        prev = 0
        for t in s.timestamps:
            _svarint(out, t - prev)
            prev = t
        out += _float64s(s.values)
    _uvarint(out, len(events))
    for ev in events:
        _string(out, event_json(ev))
    return bytes(out)


def encode_frame(
    source_id: str,
    sequence: int,
    series: Iterable[Series],
    events: Sequence[Mapping[str, Any]] = (),
    compression: str = "zlib",
) -> bytes:
    """One complete frame, ready to POST to ``/api/v1/ingest`` or to write to a spool file."""
    if compression not in _COMPRESSIONS:
        raise ValueError(f"compression {compression!r} is not one of {sorted(_COMPRESSIONS)}")
    sid = source_id.encode("utf-8")
    if not 1 <= len(sid) <= MAX_SOURCE_ID_BYTES:
        raise ValueError(f"source id must be 1..{MAX_SOURCE_ID_BYTES} bytes of UTF-8, got {len(sid)}")
    payload = encode_payload(series, events)
    out = bytearray(MAGIC)
    out.append(VERSION)
    out.append(_COMPRESSIONS[compression])
    _uvarint(out, len(sid))
    out += sid
    _uvarint(out, sequence)
    out += struct.pack("<I", zlib.crc32(payload) & 0xFFFFFFFF)
    out += zlib.compress(payload) if compression == "zlib" else payload
    return bytes(out)


# --------------------------------------------------------------------------------------------------------
# Decoding


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def fail(self, what: str) -> DecodeError:
        return DecodeError(f"{what} (at byte {self.pos})")

    def need(self, n: int, what: str) -> None:
        if self.pos + n > len(self.buf):
            raise self.fail(f"truncated {what}: need {n} bytes, {len(self.buf) - self.pos} remain")

    def u8(self, what: str) -> int:
        self.need(1, what)
        v = self.buf[self.pos]
        self.pos += 1
        return v

    def uvarint(self, what: str) -> int:
        v = 0
        shift = 0
        for _ in range(8):
            b = self.u8(what)
            v |= (b & 0x7F) << shift
            if b < 0x80:
                if v > MAX_UVARINT:
                    raise self.fail(f"{what} {v} exceeds 2^53-1")
                return v
            shift += 7
        raise self.fail(f"{what} is a varint longer than 8 bytes")

    def svarint(self, what: str) -> int:
        u = self.uvarint(what)
        return (u >> 1) if (u & 1) == 0 else -((u + 1) >> 1)

    def string(self, what: str) -> str:
        n = self.uvarint(f"{what} length")
        self.need(n, what)
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.fail(f"{what} is not valid UTF-8: {e}") from None


def decode_frame_header(frame: bytes) -> Tuple[str, int, int, int, int]:
    """(source id, sequence, compression, crc, payload start) of a frame; raises DecodeError."""
    r = _Reader(frame)
    r.need(5, "frame header")
    if frame[:3] != MAGIC:
        raise DecodeError('not a trainwatch batch: it does not start with the magic bytes "TWB"')
    r.pos = 3
    version = r.u8("version")
    if version != VERSION:
        raise DecodeError(f"unsupported native protocol version {version} (this SDK speaks {VERSION})")
    compression = r.u8("compression")
    if compression not in (COMPRESSION_NONE, COMPRESSION_ZLIB):
        raise DecodeError(f"unknown compression {compression} (0 = none, 1 = zlib)")
    source_id = r.string("source id")
    if not source_id:
        raise DecodeError("source id is empty")
    sequence = r.uvarint("sequence")
    r.need(4, "payload CRC")
    (crc,) = struct.unpack_from("<I", frame, r.pos)
    return source_id, sequence, compression, crc, r.pos + 4


def decode_frame(frame: bytes) -> Frame:
    source_id, sequence, compression, crc, start = decode_frame_header(frame)
    body = frame[start:]
    if compression == COMPRESSION_ZLIB:
        try:
            payload = zlib.decompress(body)
        except zlib.error as e:
            raise DecodeError(f"payload is not valid zlib data: {e}") from None
    else:
        payload = body
    actual = zlib.crc32(payload) & 0xFFFFFFFF
    if actual != crc:
        raise DecodeError(f"payload CRC mismatch: header says {crc:x}, payload has {actual:x}")
    series, events = decode_payload(payload)
    name = "zlib" if compression == COMPRESSION_ZLIB else "none"
    return Frame(source_id, sequence, name, series, events)


def decode_payload(payload: bytes) -> Tuple[List[Series], List[Dict[str, Any]]]:
    r = _Reader(payload)
    count = r.uvarint("string count")
    if count > len(payload):
        raise r.fail(f"string count {count} exceeds payload size")
    strings = [r.string("string table entry") for _ in range(count)]
    series: List[Series] = []
    for s in range(r.uvarint("series count")):
        labels: Dict[str, str] = {}
        for _ in range(r.uvarint("label count")):
            ni = r.uvarint("label name index")
            vi = r.uvarint("label value index")
            if ni >= count or vi >= count:
                raise r.fail(f"series {s} refers to string {max(ni, vi)} but the table has {count}")
            labels[strings[ni]] = strings[vi]
        n = r.uvarint("sample count")
        if n * 9 > len(payload) - r.pos:
            raise r.fail(f"series {s} claims {n} samples but only {len(payload) - r.pos} bytes remain")
        timestamps: List[int] = []
        t = 0
        for _ in range(n):
            t += r.svarint("timestamp")
            timestamps.append(t)
        r.need(8 * n, "values")
        values = array("d")
        values.frombytes(payload[r.pos : r.pos + 8 * n])
        if not _LITTLE_ENDIAN:
            values.byteswap()
        r.pos += 8 * n
        series.append(Series(labels, timestamps, values.tolist()))
    events: List[Dict[str, Any]] = []
    for e in range(r.uvarint("event count")):
        text = r.string("job event")
        try:
            events.append(json.loads(text))
        except ValueError as err:
            raise r.fail(f"job event {e} is not valid JSON: {err}") from None
    if r.pos != len(payload):
        raise r.fail(f"{len(payload) - r.pos} unexpected bytes after the last job event")
    return series, events


def float_bits(v: float) -> int:
    """The IEEE-754 bit pattern of a float64 (tests compare NaN payloads with it)."""
    return struct.unpack("<Q", struct.pack("<d", v))[0]


def json_safe(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` that JSON can carry: non-finite floats and unknown objects become strings.

    Job metadata comes from user configs (argparse namespaces, dataclasses, torch dtypes, paths); a frame
    that fails to serialise would lose the samples travelling with it, so nothing here may raise.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth > 20:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v, depth + 1) for v in value]
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item):
        try:
            return json_safe(item(), depth + 1)
        except Exception:
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
        return json_safe(fields, depth + 1)
    if isinstance(value, (argparse.Namespace, types.SimpleNamespace)):
        return json_safe(vars(value), depth + 1)
    text = str(value)
    return text if len(text) <= 1000 else text[:1000] + "..."
