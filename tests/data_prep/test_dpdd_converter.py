"""Tests of the DPDD converter: lossless records, summary, every refusal, overwrite and resume."""
import hashlib
import json

import numpy as np
import pytest
import tensorflow as tf

from data_prep import dpdd, scene_files
from ifan_tf.data import dataset_writer, schema
from ifan_tf.io import image_io


def read_split(output_dir, split):
    scenes = {}
    for path in sorted(output_dir.glob(f"{split}-*.tfrecord")):
        for record in tf.data.TFRecordDataset(str(path)):
            scene = schema.record_to_scene(record.numpy(), str(path))
            scenes[scene.name] = scene
    return scenes


def convert(root, out, **kwargs):
    return dpdd.convert_dpdd(root, out, num_workers=2, show_progress=False, **kwargs)


def file_digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("bit_depth,lr_suffixes", [(8, True), (16, False)])
def test_conversion_is_lossless_and_summarised(make_dpdd_tree, tmp_path, bit_depth, lr_suffixes):
    root, contents = make_dpdd_tree(splits=(("train", 5), ("val", 1), ("test", 2)), bit_depth=bit_depth,
                                    lr_suffixes=lr_suffixes)
    out = tmp_path / "records"
    summary = convert(root, out, examples_per_shard=2)
    assert sorted(p.name for p in out.glob("train-*")) == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    for split, count in (("train", 5), ("val", 1), ("test", 2)):
        scenes = read_split(out, split)
        assert len(scenes) == count
        for name, scene in scenes.items():
            assert scene.bit_depth == bit_depth
            for view in schema.VIEWS:
                np.testing.assert_array_equal(scene.views[view], contents[(split, name)][view])
    on_disk = json.loads((out / "dataset_summary.json").read_text())
    assert on_disk == summary and summary["dataset"] == "dpdd"
    train = summary["splits"]["train"]
    assert train["num_examples"] == 5 and train["num_shards"] == 3 and train["bit_depths"] == [bit_depth]
    assert train["sizes"] == {"32x24": 5} and train["views"] == ["c", "l", "r", "target"]
    assert [s["num_examples"] for s in train["shards"]] == [2, 1, 2]
    for shard in train["shards"]:
        assert shard["sha256"] == hashlib.sha256((out / shard["file"]).read_bytes()).hexdigest()
    assert not list(out.glob(".*"))  # no temporary files or progress marker left


def break_tree(root, problem):
    if problem == "missing view":
        (root / "train_r/source/1P0A0001_R.png").unlink()
    elif problem == "unmatched name":
        (root / "train_l/source/1P0A0002_L.png").rename(root / "train_l/source/1P0A9999_L.png")
    elif problem == "size":
        image_io.write_image(root / "train_c/target/1P0A0000.png", np.zeros((24, 30, 3), np.uint8), 8)
    elif problem == "bit depth in a scene":
        image_io.write_image(root / "test_l/source/1P0A0001_L.png", np.zeros((24, 32, 3), np.uint16), 16)
    elif problem == "bit depth across scenes":
        for pattern in ("test_c/source/1P0A0001.png", "test_c/target/1P0A0001.png", "test_l/source/1P0A0001_L.png",
                        "test_r/source/1P0A0001_R.png"):
            image_io.write_image(root / pattern, np.zeros((24, 32, 3), np.uint16), 16)
    elif problem == "missing folder":
        for path in (root / "test_r/source").iterdir():
            path.unlink()
        (root / "test_r/source").rmdir()
    elif problem == "unreadable file":
        (root / "train_c/source/1P0A0002.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")


EXPECTED_MESSAGES = {
    "missing view": r"train: scene '1P0A0001' has no file for r in .*train_r/source",
    "unmatched name": r"(?s)scene '1P0A0002' has no file for l in .*scene '1P0A9999' has no file for c",
    "size": r"train: scene '1P0A0000' views differ in size: .*1P0A0000.png 30x24",
    "bit depth in a scene": r"test: scene '1P0A0001' views differ in bit depth: .*1P0A0001_L.png 16-bit",
    "bit depth across scenes": r"mixes bit depths \(8-bit: 4 scenes .*16-bit: 1 scenes \(e.g. test/1P0A0001\)",
    "missing folder": r"test: folder .*test_r/source for view r is missing",
    "unreadable file": r"1P0A0002.png: not a PNG image",
}


@pytest.mark.parametrize("problem", sorted(EXPECTED_MESSAGES))
def test_inconsistent_trees_are_refused_before_writing(make_dpdd_tree, tmp_path, problem):
    root, _ = make_dpdd_tree()
    break_tree(root, problem)
    out = tmp_path / "records"
    with pytest.raises(scene_files.DatasetLayoutError, match=EXPECTED_MESSAGES[problem]) as error:
        convert(root, out)
    assert "nothing was written" in str(error.value)
    assert not out.exists()


def test_all_problems_are_listed_together(make_dpdd_tree, tmp_path):
    root, _ = make_dpdd_tree()
    break_tree(root, "missing view")
    break_tree(root, "size")
    with pytest.raises(scene_files.DatasetLayoutError, match="2 problem") as error:
        convert(root, tmp_path / "records")
    assert "has no file for r" in str(error.value) and "differ in size" in str(error.value)


def test_no_dpdd_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(scene_files.DatasetLayoutError, match="no DPDD split found"):
        convert(tmp_path / "empty", tmp_path / "records")
    with pytest.raises(scene_files.DatasetLayoutError, match="no such folder"):
        convert(tmp_path / "absent", tmp_path / "records")


def test_existing_output_needs_overwrite(make_dpdd_tree, tmp_path):
    root, _ = make_dpdd_tree()
    out = tmp_path / "records"
    convert(root, out)
    before = file_digests(out)
    with pytest.raises(dataset_writer.OutputExistsError, match="pass --overwrite"):
        convert(root, out, examples_per_shard=1)
    assert file_digests(out) == before
    convert(root, out, examples_per_shard=1, overwrite=True)
    assert len(list(out.glob("train-*.tfrecord"))) == 3 and "train-00000-of-00001.tfrecord" not in file_digests(out)


def test_stray_shards_of_unknown_origin_are_not_overwritten(make_dpdd_tree, tmp_path):
    root, _ = make_dpdd_tree()
    out = tmp_path / "records"
    out.mkdir()
    (out / "train-00000-of-00001.tfrecord").write_bytes(b"someone else's")
    with pytest.raises(dataset_writer.OutputExistsError):
        convert(root, out)
    assert (out / "train-00000-of-00001.tfrecord").read_bytes() == b"someone else's"


def test_rerun_after_interruption_gives_the_same_result(make_dpdd_tree, tmp_path, monkeypatch):
    root, _ = make_dpdd_tree(splits=(("train", 6), ("test", 2)))
    reference = tmp_path / "reference"
    convert(root, reference, examples_per_shard=2)

    out = tmp_path / "interrupted"
    original = scene_files.load_scene
    calls = {"count": 0}

    def failing_load(scene, header):
        calls["count"] += 1
        if calls["count"] == 4:
            raise KeyboardInterrupt("simulated interruption")
        return original(scene, header)

    monkeypatch.setattr(scene_files, "load_scene", failing_load)
    with pytest.raises(KeyboardInterrupt):
        dpdd.convert_dpdd(root, out, num_workers=1, show_progress=False, examples_per_shard=2)
    monkeypatch.undo()
    left = {p.name for p in out.iterdir()}
    assert "dataset_summary.json" not in left and ".conversion_in_progress.json" in left
    assert "train-00000-of-00003.tfrecord" in left and not any(n.endswith(".tmp") for n in left)

    convert(root, out, examples_per_shard=2)  # no --overwrite needed to finish the same conversion
    assert file_digests(out) == file_digests(reference)


def test_interrupted_output_of_another_conversion_is_protected(make_dpdd_tree, tmp_path):
    root, _ = make_dpdd_tree()
    out = tmp_path / "records"
    out.mkdir()
    (out / ".conversion_in_progress.json").write_text('{"fingerprint": "other"}')
    (out / "train-00000-of-00002.tfrecord").write_bytes(b"partial")
    with pytest.raises(dataset_writer.OutputExistsError):
        convert(root, out)
    convert(root, out, overwrite=True)
    assert dataset_writer.load_summary(out)["splits"]["train"]["num_examples"] == 3


def test_converts_the_dpdd_folders_of_the_synthesizer_losslessly(tmp_path):
    from ifan_tf.data import pipeline
    from tests.synthesis.test_synthetic_dataset import make_sixteen_bit_folders

    out = make_sixteen_bit_folders(tmp_path)
    dpdd.convert_dpdd(out, tmp_path / "converted", show_progress=False, num_workers=1)
    synthesized = {e["name"]: e for e in pipeline.make_eval_dataset(str(out / "train-*.tfrecord"))
                   .as_numpy_iterator()}
    converted = list(pipeline.make_eval_dataset(str(tmp_path / "converted" / "train-*.tfrecord"))
                     .as_numpy_iterator())
    assert len(converted) == 2
    for example in converted:
        assert example["bit_depth"] == 16
        for key in ("image", "left", "right", "target"):
            np.testing.assert_array_equal(example[key], synthesized[example["name"]][key])
