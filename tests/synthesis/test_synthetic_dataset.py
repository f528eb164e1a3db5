"""Tests of the synthetic dual-pixel data set generator."""
import hashlib
import json

import cv2

import numpy as np
import pytest

from ifan_tf.data import dataset_writer, pipeline
from ifan_tf.synthesis import sharp_photos
from ifan_tf.synthesis import synthetic_dataset as synthesize

SIZE = (48, 64)


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tfrecord"))}


def make(out, **kwargs):
    defaults = dict(splits={"train": 3, "val": 2}, seed=7, image_size=SIZE, examples_per_shard=2,
                    num_workers=2, show_progress=False)
    defaults.update(kwargs)
    return synthesize.synthesize_dataset(out, **defaults)


def test_records_hold_views_and_true_defocus_maps(tmp_path):
    summary = make(tmp_path / "syn")
    assert summary["dataset"] == "synthetic"
    assert summary["splits"]["train"]["num_shards"] == 2 and summary["splits"]["val"]["num_examples"] == 2
    examples = list(pipeline.make_eval_dataset(str(tmp_path / "syn" / "train-*.tfrecord"),
                                               include_defocus=True).as_numpy_iterator())
    assert len(examples) == 3
    for example in examples:
        assert example["name"].decode().startswith("train_")
        for key in ("image", "left", "right", "target"):
            assert example[key].shape == SIZE + (3,)
        coc, disparity = example["coc"], example["disparity"]
        assert coc.shape == disparity.shape == SIZE
        # Away from depth edges, disparity has the CoC's sign and about a quarter of its size.
        square = np.ones((3, 3), np.uint8)
        smooth = (cv2.dilate(coc, square) - cv2.erode(coc, square)) < 0.5
        chosen = smooth & (np.abs(coc) > 2)
        assert np.all(np.sign(disparity[chosen]) == np.sign(coc[chosen]))
        assert np.all(np.abs(disparity[chosen]) <= 0.3 * np.abs(coc[chosen]))
        assert np.all(np.abs(disparity[chosen]) >= 0.2 * np.abs(coc[chosen]))
        # Blur only where the CoC exceeds a pixel; the combined view averages the two views.
        still_sharp = np.abs(coc) < 0.5
        if still_sharp.any():
            assert np.abs(example["image"] - example["target"])[still_sharp].mean() < 0.1
        assert np.abs(example["image"] - (example["left"] + example["right"]) / 2).mean() < 0.02


def test_generation_is_reproducible_and_seeded(tmp_path):
    make(tmp_path / "a")
    make(tmp_path / "b")
    make(tmp_path / "c", seed=8)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert digests(tmp_path / "a") != digests(tmp_path / "c")
    one_worker = make(tmp_path / "d", num_workers=1)
    assert digests(tmp_path / "d") == digests(tmp_path / "a") and one_worker["splits"]


def test_held_out_splits_use_other_photographs(tmp_path):
    summary = make(tmp_path / "syn", splits={"train": 4, "val": 2})
    photos = summary["generator"]["photos"]
    assert set(photos["train"]) and set(photos["val"]) and not set(photos["train"]) & set(photos["val"])
    assert set(photos["train"]) | set(photos["val"]) == set(sharp_photos.DEFAULT_PHOTOS)
    names = summary["splits"]["val"]["scenes"]
    assert all(any(name.endswith(photo) for photo in photos["val"]) for name in names)
    chosen = make(tmp_path / "chosen", splits={"train": 2, "test": 1},
                  photos={"train": ["astronaut"], "test": ["coffee"]})
    assert chosen["splits"]["test"]["scenes"] == ["test_00000_coffee"]


def test_photo_assignment():
    names = [f"p{i}" for i in range(8)]
    plan = synthesize.assign_photos({"train": 60, "val": 10, "test": 10}, names)
    assert [len(plan[s]) for s in ("train", "val", "test")] == [6, 1, 1]
    assert sum(plan.values(), []) == names
    assert synthesize.assign_photos({"train": 5, "val": 5}, names, disjoint_photos=False)["val"] == names
    with pytest.raises(ValueError, match="at least one photo per split"):
        synthesize.assign_photos({"a": 1, "b": 1, "c": 1}, ["x", "y"])


def make_sixteen_bit_folders(tmp_path):
    """A 2-scene 16-bit synthetic set from a folder of photos, with DPDD-style folders; returns its folder."""
    from ifan_tf.io import image_io
    source = tmp_path / "photos"
    source.mkdir()
    rng = np.random.default_rng(0)
    for name in ("one", "two"):
        image_io.write_image(source / f"{name}.png", rng.integers(0, 65536, (70, 90, 3), dtype=np.uint16), 16)
    out = tmp_path / "syn"
    make(out, splits={"train": 2}, source_dir=source, bit_depth=16, write_folders=True)
    return out


def test_folder_source_sixteen_bits_and_dpdd_folders(tmp_path):
    out = make_sixteen_bit_folders(tmp_path)
    assert sorted(p.name for p in (out / "train_l" / "source").iterdir()) == ["train_00000_one.png",
                                                                              "train_00001_two.png"]
    assert (out / "train_defocus" / "train_00000_one.npz").exists()
    examples = list(pipeline.make_eval_dataset(str(out / "train-*.tfrecord")).as_numpy_iterator())
    assert [e["bit_depth"] for e in examples] == [16, 16]
    maps = np.load(out / "train_defocus" / "train_00000_one.npz")
    assert maps["coc"].shape == maps["disparity"].shape == SIZE


def test_existing_output_is_protected(tmp_path):
    make(tmp_path / "syn", splits={"train": 1})
    with pytest.raises(dataset_writer.OutputExistsError):
        make(tmp_path / "syn", splits={"train": 2})
    summary = make(tmp_path / "syn", splits={"train": 2}, overwrite=True)
    assert summary["splits"]["train"]["num_examples"] == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_scenes or splits"):
        synthesize.synthesize_dataset("unused")
    with pytest.raises(ValueError, match="unknown photos"):
        synthesize.synthesize_dataset("unused", 1, photos=["not_a_photo"])
    with pytest.raises(ValueError, match="bit_depth"):
        synthesize.synthesize_dataset("unused", 1, bit_depth=12)


def test_make_scene_at_a_requested_size():
    source = sharp_photos.PhotoSource()
    config = synthesize.SynthesisConfig(image_size=(256, 256))
    scene, images = synthesize.make_scene("train", 0, "astronaut", 0, source, config)
    assert scene.views["c"].shape == (256, 256, 3) and scene.views["c"].dtype == np.uint8
    assert np.abs(images.coc).max() <= synthesize.default_max_coc(256, 256) + 1e-4


@pytest.mark.parametrize("split, scene", [("train", "../../../victim"), ("../outside", "victim"),
                                          ("train", "../../../../victim")])
def test_overwrite_never_deletes_outside_the_output_folder(tmp_path, split, scene):
    """A summary file is data, not instructions: its scene and split names cannot point elsewhere."""
    out = tmp_path / "a" / "syn"
    make(out, splits={"train": 1}, write_folders=True)
    victims = [tmp_path / "victim.png", tmp_path / "a" / "victim.png", tmp_path / "a" / "outside_c" / "source" / "victim.png"]
    for victim in victims:
        victim.parent.mkdir(parents=True, exist_ok=True)
        victim.write_bytes(b"user data")
    summary = json.loads((out / dataset_writer.SUMMARY_FILE).read_text())
    summary["splits"][split] = {"scenes": [scene]}
    (out / dataset_writer.SUMMARY_FILE).write_text(json.dumps(summary))
    make(out, splits={"train": 1}, write_folders=True, overwrite=True)
    assert all(victim.read_bytes() == b"user data" for victim in victims)


def test_overwrite_removes_the_previous_folder_copies(tmp_path):
    out = tmp_path / "syn"
    make(out, splits={"train": 2}, write_folders=True)
    make(out, splits={"train": 1}, write_folders=True, overwrite=True)
    assert len(list((out / "train_c" / "source").iterdir())) == 1
    assert len(list((out / "train_defocus").iterdir())) == 1
