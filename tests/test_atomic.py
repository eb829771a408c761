from pathlib import Path

import pytest

from jordanlab._atomic import atomic_path, write_json, write_text


def test_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_write_json_round_trip_and_creates_parents(tmp_path: Path):
    import json

    p = write_json(tmp_path / "d" / "x.json", {"a": 1})
    assert json.loads(p.read_text()) == {"a": 1}
