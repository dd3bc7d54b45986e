"""lsnn.io: atomic writes publish every file or none, and leave no temp file on failure."""
import os

import pytest

from lsnn import io


def test_atomic_paths_publish_all(tmp_path):
    with io.atomic_paths(tmp_path / "a", tmp_path / "b") as (ta, tb):
        ta.write_text("1")
        tb.write_text("2")
    assert sorted(os.listdir(tmp_path)) == ["a", "b"] and (tmp_path / "b").read_text() == "2"


def test_a_failure_while_making_temps_leaves_nothing(tmp_path, monkeypatch):
    real = io._temp_beside
    calls = []

    def second_fails(path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("no space")
        return real(path)

    monkeypatch.setattr(io, "_temp_beside", second_fails)
    with pytest.raises(OSError, match="no space"):
        with io.atomic_paths(tmp_path / "a", tmp_path / "b"):
            pass
    assert os.listdir(tmp_path) == []


def test_write_json_is_strict_and_maps_nan_when_asked(tmp_path):
    with pytest.raises(ValueError):
        io.write_json(tmp_path / "x.json", {"v": float("nan")})
    assert os.listdir(tmp_path) == []
    io.write_json(tmp_path / "x.json", {"v": float("nan")}, nan_as_none=True)
    assert (tmp_path / "x.json").read_text().strip() == '{\n  "v": null\n}'
