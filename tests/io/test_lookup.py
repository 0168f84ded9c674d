"""The lookup client and ``streamer lookup`` against the real redis-server (Debian 7.0, no search module).

Items, neighbour lists, user vectors and meta are written by hand in the published layout, as the daemon
would. The FT.SEARCH path can only be checked here on command construction and reply parsing.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamer.cli import main
from streamer.commands.lookup import read_titles
from streamer.errors import StreamerError
from streamer.keys import Keys
from streamer.localstack import free_port
from streamer.lookup import (
    CorruptMeta, CorruptVector, Lookup, LookupClientError, LookupUnavailable, NamespaceNotFound, SearchUnavailable,
    encode_command, encode_vector_reads, knn_search_arguments, parse_knn_reply, parse_meta, parse_scored_members,
)

VECTOR_SIZE = 8


def _blob(values) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()


def _publish(client, namespace: str, items: dict, neighbours: dict | None = None, users: dict | None = None,
             vector_size: int = VECTOR_SIZE) -> None:
    client.hset(f"{namespace}:meta", mapping={"vector_size": vector_size, "dtype": "float32", "normalised": 1,
                                              "model_version": 3, "item_count": len(items), "last_flush": 1.5})
    for item, vector in items.items():
        client.hset(f"{namespace}:item:{item}", mapping={"vec": _blob(vector), "version": 1, "updated_at": 1.0})
    for item, scored in (neighbours or {}).items():
        client.zadd(f"{namespace}:nn:{item}", dict(scored))
    for user, vector in (users or {}).items():
        client.set(f"{namespace}:user:{user}", _blob(vector), ex=600)


@pytest.fixture
def catalog(redis_client, unique_name):
    generator = np.random.default_rng(7)
    items = {f"m{number}": generator.normal(size=VECTOR_SIZE).astype(np.float32) for number in range(5)}
    neighbours = {"m0": [("m1", 0.9), ("m2", 0.75), ("m3", 0.5), ("m4", -0.25)]}
    users = {"u1": generator.normal(size=VECTOR_SIZE).astype(np.float32)}
    _publish(redis_client, unique_name, items, neighbours, users)
    return items, users


@pytest.fixture
def lookup(redis_url, unique_name):
    with Lookup(redis_url, namespace=unique_name) as client:
        yield client


# -- pure helpers --------------------------------------------------------------------------------------

def test_commands_are_encoded_exactly_as_redis_py_packs_them():
    from redis.connection import Connection

    packer = Connection()
    commands = [("ZREVRANGE", "i2v:nn:é", 0, 9, "WITHSCORES"), ("GET", b"\x00\xff"), ("HGETALL", "i2v:meta"),
                ("ZADD", "k", 0.25, "m")]
    for command in commands:
        assert encode_command(command) == b"".join(packer.pack_commands([command]))
    keys = [b"i2v:item:a", "i2v:item:ünï".encode()]
    assert encode_vector_reads(keys) == b"".join(packer.pack_commands([("HGET", key, "vec") for key in keys]))


def test_knn_search_arguments_build_a_cosine_knn_query_over_the_vec_field():
    arguments = knn_search_arguments("shop:idx", b"\x00" * 8, 5)
    assert arguments == [
        "FT.SEARCH", "shop:idx", "*=>[KNN 5 @vec $query AS distance]", "PARAMS", "2", "query", b"\x00" * 8,
        "SORTBY", "distance", "ASC", "RETURN", "1", "distance", "LIMIT", "0", "5", "DIALECT", "2",
    ]


def test_parse_knn_reply_turns_cosine_distance_into_similarity_for_both_protocols():
    keys = Keys("shop")
    resp2 = [2, b"shop:item:a", [b"distance", b"0.1"], b"shop:item:b", [b"distance", b"0.5"]]
    resp3 = {b"total_results": 2, b"results": [
        {b"id": b"shop:item:a", b"extra_attributes": {b"distance": b"0.1"}},
        {b"id": b"shop:item:b", b"extra_attributes": {b"distance": b"0.5"}}]}
    for reply in (resp2, resp3):
        assert [(item, round(score, 6)) for item, score in parse_knn_reply(reply, keys)] == [("a", 0.9), ("b", 0.5)]
    assert parse_knn_reply([0], keys) == []


def test_parse_scored_members_reads_flat_and_paired_replies():
    assert parse_scored_members([b"x", b"0.5", b"y", b"-1"]) == [("x", 0.5), ("y", -1.0)]
    assert parse_scored_members([[b"x", 0.5], [b"y", -1.0]]) == [("x", 0.5), ("y", -1.0)]
    assert parse_scored_members([]) == []


def test_parse_meta_reads_the_fields_and_rejects_missing_or_foreign_layouts():
    meta = parse_meta({b"vector_size": b"64", b"dtype": b"float32", b"normalised": b"0", b"item_count": b"10",
                       b"last_flush": b"12.5", b"model_version": b"7"})
    assert (meta.vector_size, meta.normalised, meta.item_count, meta.last_flush, meta.model_version) == \
        (64, False, 10, 12.5, "7")
    with pytest.raises(NamespaceNotFound):
        parse_meta({}, "shop")
    with pytest.raises(CorruptMeta):
        parse_meta({b"vector_size": b"64", b"dtype": b"float64"})
    with pytest.raises(CorruptMeta):
        parse_meta({b"dtype": b"float32"})


def test_read_titles_reads_movielens_and_generic_catalogs(tmp_path):
    movies = tmp_path / "movies.csv"
    movies.write_text('movieId,title,genres\n1,Toy Story (1995),Animation\n11,"American President, The (1995)",'
                      'Comedy\n', encoding="utf-8")
    generic = tmp_path / "catalog.csv"
    generic.write_text("id,title\nsku-1,Red shoe\n", encoding="utf-8")
    headerless = tmp_path / "plain.csv"
    headerless.write_text("a,Alpha\nb,Beta\n", encoding="utf-8")
    assert read_titles(movies) == {"1": "Toy Story (1995)", "11": "American President, The (1995)"}
    assert read_titles(generic) == {"sku-1": "Red shoe"}
    assert read_titles(headerless) == {"a": "Alpha", "b": "Beta"}


# -- the client against the real redis-server ----------------------------------------------------------

@pytest.mark.integration
def test_vector_returns_the_published_float32_vector_and_none_when_missing(lookup, catalog):
    items, _ = catalog
    vector = lookup.vector("m2")
    assert vector.dtype == np.float32 and vector.shape == (VECTOR_SIZE,)
    np.testing.assert_array_equal(vector, items["m2"])
    assert lookup.vector("never-published") is None
    assert lookup.vector_size == VECTOR_SIZE


@pytest.mark.integration
def test_vectors_keeps_order_and_gives_none_for_missing_items(lookup, catalog):
    items, _ = catalog
    found = lookup.vectors(["m3", "nope", "m0"])
    np.testing.assert_array_equal(found[0], items["m3"])
    assert found[1] is None
    np.testing.assert_array_equal(found[2], items["m0"])
    assert lookup.vectors([]) == []


@pytest.mark.integration
def test_vectors_survives_a_dropped_connection_and_a_failed_batch(lookup, catalog, redis_client, unique_name):
    items, _ = catalog
    assert lookup.vectors(["m1"])[0] is not None
    own_id = redis_client.client_id()
    for entry in redis_client.client_list():
        if int(entry["id"]) != own_id:
            redis_client.client_kill_filter(_id=entry["id"])
    np.testing.assert_array_equal(lookup.vectors(["m1"])[0], items["m1"])
    redis_client.set(f"{unique_name}:item:plain", b"a string, not a hash")
    with pytest.raises(LookupClientError, match="HGET"):
        lookup.vectors(["m1", "plain", "m2"])
    np.testing.assert_array_equal(lookup.vectors(["m2", "m3"])[1], items["m3"])


@pytest.mark.integration
def test_similar_returns_the_published_neighbours_most_similar_first(lookup, catalog):
    assert lookup.similar("m0") == [("m1", 0.9), ("m2", 0.75), ("m3", 0.5), ("m4", -0.25)]
    assert lookup.similar("m0", k=2) == [("m1", 0.9), ("m2", 0.75)]
    assert lookup.similar("m1") == []
    assert lookup.similar("m0", k=0) == []


@pytest.mark.integration
def test_user_vector_returns_the_published_interest_vector(lookup, catalog):
    _, users = catalog
    np.testing.assert_array_equal(lookup.user_vector("u1"), users["u1"])
    assert lookup.user_vector("stranger") is None


@pytest.mark.integration
def test_meta_is_read_once_not_on_every_call(lookup, catalog, redis_client, unique_name):
    assert lookup.vector("m1") is not None
    redis_client.delete(f"{unique_name}:meta")
    assert lookup.vector("m1") is not None
    with pytest.raises(NamespaceNotFound):
        lookup.meta()


@pytest.mark.integration
def test_a_blob_of_the_wrong_length_is_a_corrupt_vector(lookup, catalog, redis_client, unique_name):
    redis_client.hset(f"{unique_name}:item:short", "vec", _blob(np.ones(VECTOR_SIZE - 1)))
    redis_client.set(f"{unique_name}:user:long", _blob(np.ones(VECTOR_SIZE + 1)))
    with pytest.raises(CorruptVector, match="short"):
        lookup.vector("short")
    with pytest.raises(CorruptVector):
        lookup.vectors(["m1", "short"])
    with pytest.raises(CorruptVector):
        lookup.user_vector("long")


@pytest.mark.integration
def test_a_namespace_without_meta_raises_namespace_not_found(redis_url, unique_name, redis_client):
    redis_client.hset(f"{unique_name}:item:a", "vec", _blob(np.ones(VECTOR_SIZE)))
    with Lookup(redis_url, namespace=unique_name) as lookup:
        with pytest.raises(NamespaceNotFound, match=unique_name):
            lookup.vector("a")


@pytest.mark.integration
def test_a_wrong_key_type_is_a_lookup_error_not_a_redis_error(lookup, catalog, redis_client, unique_name):
    redis_client.set(f"{unique_name}:nn:m1", b"not a sorted set")
    with pytest.raises(LookupClientError, match="ZREVRANGE"):
        lookup.similar("m1")


@pytest.mark.integration
def test_an_unreachable_server_raises_lookup_unavailable():
    lookup = Lookup(f"redis://127.0.0.1:{free_port()}/0", namespace="i2v", timeout=0.5)
    for call in (lambda: lookup.vector("a"), lambda: lookup.vectors(["a"]), lambda: lookup.similar("a"),
                 lambda: lookup.has_search()):
        with pytest.raises(LookupUnavailable) as raised:
            call()
        assert isinstance(raised.value, StreamerError)


@pytest.mark.integration
def test_vector_queries_fail_clearly_on_a_server_without_search(lookup, catalog, redis_client):
    modules = [str(entry) for entry in redis_client.execute_command("MODULE", "LIST")]
    if any("search" in entry.lower() for entry in modules):
        pytest.skip("this redis-server has the search module")
    assert lookup.has_search() is False
    with pytest.raises(SearchUnavailable, match="search module"):
        lookup.similar_to_vector(np.ones(VECTOR_SIZE), k=3)
    with pytest.raises(SearchUnavailable, match="search module"):
        lookup.recommend_for_user("u1", k=3)


@pytest.mark.integration
def test_an_injected_client_of_either_protocol_is_used_and_must_return_bytes(redis_url, unique_name, catalog):
    import redis

    items, _ = catalog
    for protocol in (2, 3):
        with redis.Redis.from_url(redis_url, protocol=protocol) as client:
            lookup = Lookup(client=client, namespace=unique_name)
            assert lookup.similar("m0", k=1) == [("m1", 0.9)]
            np.testing.assert_array_equal(lookup.vector("m4"), items["m4"])
            assert lookup.meta().item_count == len(items)
    with redis.Redis.from_url(redis_url, decode_responses=True) as decoding:
        with pytest.raises(LookupClientError, match="decode_responses"):
            Lookup(client=decoding, namespace=unique_name)


# -- the command ----------------------------------------------------------------------------------------

@pytest.mark.integration
def test_lookup_command_prints_neighbours_with_scores_and_titles(redis_url, unique_name, catalog, tmp_path, capsys):
    titles = tmp_path / "movies.csv"
    titles.write_text("movieId,title,genres\nm0,Alien (1979),Horror\nm1,Aliens (1986),Action\n"
                      "m2,Predator (1987),Action\n", encoding="utf-8")
    status = main(["lookup", "m0", "--k", "3", "--redis-url", redis_url, "--namespace", unique_name,
                   "--titles", str(titles)])
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert "m0 (Alien (1979))" in lines[0]
    assert lines[1:] == ["   1   0.9000  m1  Aliens (1986)", "   2   0.7500  m2  Predator (1987)",
                         "   3   0.5000  m3"]


@pytest.mark.integration
def test_lookup_command_reads_env_defaults_and_reports_missing_items(redis_url, unique_name, catalog, capsys,
                                                                     monkeypatch):
    monkeypatch.setenv("STREAMER_REDIS_URL", redis_url)
    monkeypatch.setenv("STREAMER_NAMESPACE", unique_name)
    assert main(["lookup", "m0", "--k", "1"]) == 0
    assert "m1" in capsys.readouterr().out
    assert main(["lookup", "ghost"]) == 1
    assert "not published" in capsys.readouterr().err
    assert main(["lookup", "m4"]) == 0
    assert "no neighbour list yet" in capsys.readouterr().out


@pytest.mark.integration
def test_lookup_command_for_a_user_explains_a_missing_search_module(redis_url, unique_name, catalog, capsys):
    status = main(["lookup", "--user", "u1", "--redis-url", redis_url, "--namespace", unique_name])
    assert status == 1
    assert "search module" in capsys.readouterr().err


def test_lookup_command_needs_an_item_or_a_user(capsys):
    assert main(["lookup", "--redis-url", "redis://127.0.0.1:1/0"]) == 1
    assert "ITEM" in capsys.readouterr().err


def test_lookup_command_reports_an_unreachable_redis(capsys):
    status = main(["lookup", "m0", "--redis-url", f"redis://127.0.0.1:{free_port()}/0"])
    assert status == 1
    assert "Redis unavailable" in capsys.readouterr().err
