"""One atomic-write helper: a file appears whole or not at all."""

import json

import pytest

from bitswarm import atomic


def test_write_json_replaces_whole_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "sub" / "a.json"
    atomic.write_json(p, {"x": 1})
    atomic.write_json(p, {"x": 2})
    assert json.loads(p.read_text()) == {"x": 2}
    assert [f.name for f in p.parent.iterdir()] == ["a.json"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "a.json"
    atomic.write_json(p, {"x": 1})
    with pytest.raises(TypeError):
        atomic.write_json(p, {"x": object()})  # not JSON-serialisable: fails before anything is renamed
    with pytest.raises(RuntimeError), atomic.atomic_path(p) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert json.loads(p.read_text()) == {"x": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["a.json"]
