"""The Redis key layout and the vector encoding services rely on."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.keys import Keys, decode_vector, encode_vector, index_definition


def test_key_layout():
    keys = Keys("shop")
    assert keys.item("sku:1") == "shop:item:sku:1"
    assert keys.neighbours("a") == "shop:nn:a"
    assert keys.user("u") == "shop:user:u"
    assert (keys.meta, keys.lease, keys.fence, keys.index) == ("shop:meta", "shop:lease", "shop:fence", "shop:idx")
    assert keys.item_id(b"shop:item:sku:1") == "sku:1"
    with pytest.raises(ValueError):
        keys.item_id("other:item:x")
    assert Keys().item("x") == "i2v:item:x"


def test_vectors_are_float32_little_endian():
    vector = np.array([1.0, -2.0, 0.5], dtype=np.float64)
    data = encode_vector(vector)
    assert data == np.array([1.0, -2.0, 0.5], dtype="<f4").tobytes() == b"\x00\x00\x80?\x00\x00\x00\xc0\x00\x00\x00?"
    decoded = decode_vector(data)
    assert decoded.dtype == np.float32 and decoded.tolist() == [1.0, -2.0, 0.5]
    big_endian = np.array([1.0], dtype=">f4")
    assert encode_vector(big_endian) == b"\x00\x00\x80?"


def test_index_definition_matches_the_documented_ft_create():
    assert " ".join(index_definition(Keys("i2v"), 64)) == (
        "FT.CREATE i2v:idx ON HASH PREFIX 1 i2v:item: SCHEMA vec VECTOR HNSW 6 "
        "TYPE FLOAT32 DIM 64 DISTANCE_METRIC COSINE")
