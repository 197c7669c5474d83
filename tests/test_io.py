"""Atomic writes and JSON reading (trspose.io)."""

import pytest

from trspose.errors import DataError
from trspose.io import atomic_path, read_json, write_json


def test_write_json_creates_the_folder_and_reads_back(tmp_path):
    path = write_json({"a": [1, 2.5, "x"]}, tmp_path / "new" / "data.json")
    assert read_json(path, "data file") == {"a": [1, 2.5, "x"]}
    assert path.read_text().endswith("\n") and [p.name for p in path.parent.iterdir()] == ["data.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_json([1], tmp_path / "data.json")
    with pytest.raises(RuntimeError), atomic_path(path) as temporary:
        temporary.write_text("[2, ")
        raise RuntimeError("killed mid-write")
    assert read_json(path, "data file") == [1] and [p.name for p in tmp_path.iterdir()] == ["data.json"]


def test_read_json_errors_name_the_file_and_what_it_is(tmp_path):
    with pytest.raises(DataError, match="nothing.json: split file not found"):
        read_json(tmp_path / "nothing.json", "split file")
    (tmp_path / "cut.json").write_text('{"a": [1,')
    with pytest.raises(DataError, match="cut.json: malformed JSON at line 1 .*re-create the boxes file"):
        read_json(tmp_path / "cut.json", "boxes file")
