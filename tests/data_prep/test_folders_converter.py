"""Tests of the RealDOF / PixelDP / defocused-folder converter."""
import numpy as np
import pytest
import tensorflow as tf

from data_prep import folders, scene_files
from ifan_tf.data import schema
from ifan_tf.io import image_io


def records(output_dir, split="test"):
    scenes = {}
    for path in sorted(output_dir.glob(f"{split}-*.tfrecord")):
        for record in tf.data.TFRecordDataset(str(path)):
            scene = schema.record_to_scene(record.numpy())
            scenes[scene.name] = scene
    return scenes


def write(path, pixels, bit_depth=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    image_io.write_image(path, pixels, bit_depth)


def convert(layout, root, out, **kwargs):
    return folders.convert_folder(layout, root, out, num_workers=2, show_progress=False, **kwargs)


def test_realdof_pairs(tmp_path):
    rng = np.random.default_rng(0)
    expected = {}
    for name in ("a", "b", "c"):
        source, target = (rng.integers(0, 65536, (16, 24, 3), dtype=np.uint16) for _ in range(2))
        write(tmp_path / "realdof" / "source" / f"{name}.png", source, 16)
        write(tmp_path / "realdof" / "target" / f"{name}.png", target, 16)
        expected[name] = {"c": source, "target": target}
    summary = convert("realdof", tmp_path / "realdof", tmp_path / "out")
    assert summary["splits"]["test"]["views"] == ["c", "target"] and summary["dataset"] == "realdof"
    scenes = records(tmp_path / "out")
    assert sorted(scenes) == ["a", "b", "c"]
    for name, scene in scenes.items():
        assert set(scene.views) == {"c", "target"} and scene.bit_depth == 16
        for view in ("c", "target"):
            np.testing.assert_array_equal(scene.views[view], expected[name][view])


def test_realdof_unmatched_pair_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    write(tmp_path / "realdof" / "source" / "a.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    write(tmp_path / "realdof" / "target" / "b.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    with pytest.raises(scene_files.DatasetLayoutError, match="scene 'a' has no file for target"):
        convert("realdof", tmp_path / "realdof", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("with_source_subfolder", [True, False])
def test_pixeldp_views_without_ground_truth(tmp_path, with_source_subfolder):
    rng = np.random.default_rng(2)
    expected = {}
    for view, suffix in (("c", ""), ("l", "_L"), ("r", "_R")):
        folder = tmp_path / "pixeldp" / f"test_{view}"
        folder = folder / "source" if with_source_subfolder else folder
        pixels = rng.integers(0, 256, (20, 12, 3), dtype=np.uint8)
        write(folder / f"img1{suffix}.png", pixels)
        expected[view] = pixels
    convert("pixeldp", tmp_path / "pixeldp", tmp_path / "out", split="pixel")
    scene = records(tmp_path / "out", "pixel")["img1"]
    assert set(scene.views) == {"c", "l", "r"}
    for view, pixels in expected.items():
        np.testing.assert_array_equal(scene.views[view], pixels)


def test_defocused_folder_of_jpegs(tmp_path):
    rng = np.random.default_rng(3)
    for index in range(3):
        write(tmp_path / "cuhk" / f"motion{index:04d}.jpg", rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    (tmp_path / "cuhk" / "notes.txt").write_text("not an image")
    convert("defocused", tmp_path / "cuhk", tmp_path / "out")
    scenes = records(tmp_path / "out")
    assert sorted(scenes) == ["motion0000", "motion0001", "motion0002"]
    for name, scene in scenes.items():
        assert set(scene.views) == {"c"} and scene.bit_depth == 8
        decoded, _ = image_io.read_pixels(tmp_path / "cuhk" / f"{name}.jpg")
        np.testing.assert_array_equal(scene.views["c"], decoded)  # lossless from the decoded JPEG


def test_empty_folder_and_unknown_layout(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(scene_files.DatasetLayoutError, match="holds no images"):
        convert("defocused", tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ValueError, match="unknown layout"):
        convert("lytro", tmp_path / "empty", tmp_path / "out")
