"""The topic ids a link's offsets belong to are saved in the same manifest write as the offsets."""

from pathlib import Path

from streamer.io.manifest import Link, Manifest


def test_topic_ids_round_trip_with_their_link():
    link = Link("delta-00000002.seg", 2, 10, {("events", 0): 30}, 30, {"events": "01a2-new"})
    manifest = Manifest(2, [Link("base-00000001.ckpt", 1, 5, {("events", 0): 10}, 10, {"events": "01a2-old"}), link])
    loaded = Manifest.from_json(manifest.to_json(), Path("manifest.json"))
    assert loaded.topic_ids == {"events": "01a2-new"} and loaded.offsets == {("events", 0): 30}
    assert loaded.chain[0].topic_ids == {"events": "01a2-old"}, "a fallback to an earlier link gets its own ids"


def test_a_link_without_topic_ids_reads_as_none_known():
    raw = {"name": "base-00000001.ckpt", "sequence": 1, "bytes": 5, "offsets": [["events", 0, 10]], "event_count": 10}
    assert Link.from_dict(raw).topic_ids == {}
    assert Manifest().topic_ids == {}
