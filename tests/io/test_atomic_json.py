"""ifan_tf.io.atomic_write.write_json_atomic: complete JSON or the previous file, never half of one."""
import json

import pytest

from ifan_tf.io.atomic_write import write_json_atomic


def test_writes_indented_json_creating_the_folder(tmp_path):
    path = tmp_path / "new" / "summary.json"
    write_json_atomic(path, {"b": 1, "a": [1.5, None]}, sort_keys=True)
    assert path.read_text() == '{\n  "a": [\n    1.5,\n    null\n  ],\n  "b": 1\n}\n'
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]


def test_a_refused_document_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"psnr": 30.0})
    with pytest.raises(ValueError):
        write_json_atomic(path, {"psnr": float("nan")}, allow_nan=False)
    with pytest.raises(TypeError):
        write_json_atomic(path, {"psnr": object()})
    assert json.loads(path.read_text()) == {"psnr": 30.0}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    write_json_atomic(path, {"psnr": float("inf")})  # allowed by default (training logs)
    assert path.read_text() == '{\n  "psnr": Infinity\n}\n'
