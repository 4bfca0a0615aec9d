"""The encoder against the shared test vectors (testdata/native/), which the TypeScript codec is tested
against too: byte-exact for uncompressed vectors, decode-equal for zlib ones. Values in the JSON are finite
numbers, or '-0', '+Inf', '-Inf' and hex bit patterns for everything else (NaN payloads matter: the
staleness marker is a NaN)."""

from __future__ import annotations

import json
import math
import random
import struct
import zlib

import pytest
from conftest import VECTORS

from trainwatch.protocol import (
    DecodeError,
    Series,
    decode_frame,
    decode_payload,
    encode_frame,
    encode_payload,
    float_bits,
    json_safe,
)

NAMES = sorted(p.stem for p in VECTORS.glob("*.json"))


def from_vector_value(v):
    if isinstance(v, (int, float)):
        return float(v)
    if v == "-0":
        return -0.0
    if v == "+Inf":
        return math.inf
    if v == "-Inf":
        return -math.inf
    return struct.unpack("<d", struct.pack("<Q", int(v, 16)))[0]


def vector_series(doc):
    return [Series(s["labels"], s["timestamps"], [from_vector_value(v) for v in s["values"]]) for s in doc["series"]]


def load(name):
    doc = json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
    return doc, (VECTORS / f"{name}.bin").read_bytes()


def test_the_shared_vectors_are_there():
    assert NAMES == ["empty", "gauges", "job-events", "special-values"]


@pytest.mark.parametrize("name", NAMES)
def test_encodes_each_vector(name):
    doc, expected = load(name)
    frame = encode_frame(doc["sourceId"], doc["sequence"], vector_series(doc), doc["events"], doc["compression"])
    if doc["compression"] == "none":
        assert frame == expected
    else:
        # zlib implementations may pick other (equally valid) encodings: compare what the frames carry.
        assert frame[:5] == expected[:5]
        assert_same_frame(decode_frame(frame), decode_frame(expected))


@pytest.mark.parametrize("name", NAMES)
def test_decodes_each_vector_bit_for_bit(name):
    doc, data = load(name)
    f = decode_frame(data)
    assert (f.source_id, f.sequence, f.compression) == (doc["sourceId"], doc["sequence"], doc["compression"])
    assert f.events == doc["events"]
    assert [dict(s.labels) for s in f.series] == [s["labels"] for s in doc["series"]]
    for got, want in zip(f.series, doc["series"]):
        assert list(got.timestamps) == want["timestamps"]
        assert [float_bits(v) for v in got.values] == [float_bits(from_vector_value(v)) for v in want["values"]]


def assert_same_frame(a, b):
    assert (a.source_id, a.sequence, a.events) == (b.source_id, b.sequence, b.events)
    assert [dict(s.labels) for s in a.series] == [dict(s.labels) for s in b.series]
    for x, y in zip(a.series, b.series):
        assert list(x.timestamps) == list(y.timestamps)
        assert [float_bits(v) for v in x.values] == [float_bits(v) for v in y.values]


def test_round_trips_random_batches_bit_exactly():
    rng = random.Random(7)
    specials = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308,
                struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]]
    for _ in range(200):
        series = []
        for i in range(rng.randrange(0, 6)):
            labels = {"__name__": f"m_{i}", "job_id": "j", "k": rng.choice(["", "é", "✓", "x" * 50])}
            n = rng.randrange(0, 20)
            ts = [rng.randrange(0, 2**50) for _ in range(n)]
            vals = [rng.choice(specials) if rng.random() < 0.3 else rng.uniform(-1e9, 1e9) for _ in range(n)]
            series.append(Series(labels, ts, vals))
        seq = rng.randrange(0, 2**53)
        compression = rng.choice(["none", "zlib"])
        f = decode_frame(encode_frame("src", seq, series, [{"kind": "start", "jobId": "j", "timeMs": 1}], compression))
        assert f.sequence == seq
        assert_same_frame(f, decode_frame(encode_frame("src", seq, series, f.events, "none")))
        for got, want in zip(f.series, series):
            assert list(got.timestamps) == want.timestamps
            assert [float_bits(v) for v in got.values] == [float_bits(v) for v in want.values]


def test_header_carries_the_crc_of_the_uncompressed_payload():
    frame = encode_frame("s", 1, [Series({"__name__": "x"}, [1], [2.0])], [], "zlib")
    body = zlib.decompress(frame[5 + 1 + 1 + 1 + 4 :])
    assert struct.unpack("<I", frame[8:12])[0] == zlib.crc32(body)


def test_refuses_what_it_cannot_encode():
    with pytest.raises(ValueError, match="source id"):
        encode_frame("", 0, [])
    with pytest.raises(ValueError, match="source id"):
        encode_frame("x" * 257, 0, [])
    with pytest.raises(ValueError, match="2\\^53"):
        encode_frame("s", 2**53, [])
    with pytest.raises(ValueError, match="2 timestamps but 1 values"):
        encode_frame("s", 0, [Series({"__name__": "x"}, [1, 2], [1.0])])


def test_decoder_names_the_problem():
    good = encode_frame("s", 1, [Series({"__name__": "x"}, [1], [2.0])], [], "none")
    with pytest.raises(DecodeError, match="magic"):
        decode_frame(b"XYZ\x01\x00")
    with pytest.raises(DecodeError, match="CRC mismatch"):
        decode_frame(good[:-1] + bytes([good[-1] ^ 0xFF]))
    with pytest.raises(DecodeError, match="claims 1 samples but only 7 bytes remain"):
        decode_payload(encode_payload([Series({"__name__": "x"}, [1], [2.0])])[:-3])


def test_job_event_metadata_is_made_json_safe():
    class Odd:
        def __str__(self):
            return "odd"

    cfg = json_safe({"lr": 1e-3, "nan": math.nan, "inf": -math.inf, "obj": Odd(), 3: (1, 2), "nested": {"x": {1, }}})
    assert cfg == {"lr": 1e-3, "nan": "nan", "inf": "-inf", "obj": "odd", "3": [1, 2], "nested": {"x": [1]}}
    frame = encode_frame("s", 0, [], [{"kind": "start", "jobId": "j", "timeMs": 1, "config": cfg}])
    assert decode_frame(frame).events[0]["config"] == cfg
