"""The durable bound of published versions (streamer.io.version_ceiling)."""

from __future__ import annotations

from streamer.io.version_ceiling import FILE, HEADROOM, VersionCeiling


def test_a_version_is_covered_on_disk_before_it_is_written_and_a_restart_continues_above(tmp_path):
    ceiling = VersionCeiling(tmp_path, "model-a")
    assert ceiling.reserved == 0 and ceiling.base(400) == 0  # nothing published yet
    ceiling.cover(1500)
    assert ceiling.reserved == 1500 + HEADROOM
    ceiling.cover(1600)  # within the reservation: no new write
    assert (tmp_path / FILE).read_bytes().count(b"%d" % (1500 + HEADROOM)) == 1
    restarted = VersionCeiling(tmp_path, "model-a")  # e.g. from the 400-event checkpoint, Redis empty
    assert restarted.base(400) + 400 > 1600
    assert VersionCeiling(tmp_path, "model-b").base(400) == 0  # another model starts its versions again


def test_an_unreadable_or_unwritable_file_is_logged_not_fatal(tmp_path):
    (tmp_path / FILE).write_bytes(b"{not json")
    ceiling = VersionCeiling(tmp_path, "model-a")
    assert ceiling.reserved == 0
    blocked = tmp_path / "blocked"
    blocked.write_bytes(b"")  # a file where the directory should be
    unwritable = VersionCeiling(blocked / "state", "model-a")
    unwritable.cover(10)  # logged, publishing goes on
    assert unwritable.reserved == 0
