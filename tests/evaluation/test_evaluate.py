"""The evaluation runner and ``--mode=eval`` on constructed TFRecords with known scores."""
import csv
import json
import math
import types

import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import structural_similarity

from ifan_tf.data import schema
from ifan_tf.evaluation import evaluate as evaluate_lib
from ifan_tf.evaluation.lpips_metric import LpipsStatus
from ifan_tf.io import image_io
from ifan_tf.model.config import ModelConfig
from ifan_tf.model.ifan import build_ifan
from ifan_tf.modes import USAGE, ModeError
from ifan_tf.modes import eval as eval_mode
from ifan_tf.weights.model_dir import save_model_dir

HEIGHT, WIDTH = 37, 45  # cropped to 32 x 40 by the protocol
NO_LPIPS = LpipsStatus(reason="not under test")


class IdentityNetwork:
    """Stands in for IFAN: returns the input image, so output scores equal the input's."""

    config = ModelConfig()

    def __call__(self, inputs, training=False):
        return inputs


def _write_records(path, scenes):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for scene in scenes:
            writer.write(schema.scene_to_record(scene))
    return str(path)


def _scenes(with_target=True, bit_depth=8):
    rng = np.random.default_rng(0)
    top = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    image = rng.integers(0, int(top * 0.8), size=(HEIGHT, WIDTH, 3)).astype(dtype)
    offset = dtype(round(top * 10 / 255))
    scenes = []
    for name, target in (("same", image), ("offset", image + offset)):
        views = {"c": image, "l": image, "r": image}
        if with_target:
            views["target"] = target
        scenes.append(schema.Scene(name, views, bit_depth))
    return scenes


def test_scores_equal_known_values_on_constructed_images(tmp_path):
    records = _write_records(tmp_path / "set.tfrecord", _scenes())
    summary = evaluate_lib.evaluate(IdentityNetwork(), [records], output_dir=str(tmp_path / "out"), save_images=True,
                                    lpips=NO_LPIPS, show_progress=False)
    with open(tmp_path / "out" / evaluate_lib.PER_IMAGE_FILE) as handle:
        rows = {row["name"]: {k: float(v) for k, v in row.items() if k != "name"} for row in csv.DictReader(handle)}
    # identical images: infinite PSNR (left out of the mean and counted), SSIM 1, MAE 0
    assert math.isinf(rows["same"]["psnr"]) and rows["same"]["ssim"] == pytest.approx(1.0) and rows["same"]["mae"] == 0
    # a constant error of 10/255: MSE (10/255)^2, PSNR 20 log10(25.5), MAE 10/255
    assert rows["offset"]["psnr"] == pytest.approx(20 * math.log10(25.5), abs=1e-6)
    assert rows["offset"]["mae"] == pytest.approx(10 / 255, abs=1e-7)
    scene = _scenes()[1]
    # the pipeline decodes to float32 (pixels / 255); SSIM is then computed in float64
    image = (scene.views["c"][:32, :40].astype(np.float32) / np.float32(255)).astype(np.float64)
    target = (scene.views["target"][:32, :40].astype(np.float32) / np.float32(255)).astype(np.float64)
    assert rows["offset"]["ssim"] == pytest.approx(structural_similarity(image, target, data_range=1, channel_axis=-1),
                                                   abs=1e-12)
    assert rows["offset"]["input_psnr"] == rows["offset"]["psnr"]  # identity: input scores = output scores
    assert summary["count"] == 2 and summary["psnr_infinite"] == 1
    assert summary["output"]["psnr"] == pytest.approx(20 * math.log10(25.5), abs=1e-6)
    assert summary["gain"]["psnr"] == 0.0 and summary["unavailable"] == {"lpips": "not under test"}
    with open(tmp_path / "out" / evaluate_lib.SUMMARY_FILE) as handle:
        assert json.load(handle)["output"]["mae"] == pytest.approx(5 / 255, abs=1e-7)
    saved, bit_depth = image_io.read_pixels(tmp_path / "out" / "images" / "offset.png")
    assert bit_depth == 8 and saved.shape == (32, 40, 3)
    np.testing.assert_array_equal(saved, scene.views["c"][:32, :40])


def test_sixteen_bit_records_give_sixteen_bit_outputs(tmp_path):
    records = _write_records(tmp_path / "set16.tfrecord", _scenes(bit_depth=16))
    evaluate_lib.evaluate(IdentityNetwork(), [records], output_dir=str(tmp_path / "out"), save_images=True,
                          lpips=NO_LPIPS, show_progress=False)
    saved, bit_depth = image_io.read_pixels(tmp_path / "out" / "images" / "same.png")
    assert bit_depth == 16
    np.testing.assert_array_equal(saved, _scenes(bit_depth=16)[0].views["c"][:32, :40])


def _flags(**values):
    defaults = dict(model_dir=None, data=None, output_dir=None, save_images=False, overwrite=False,
                    precision="float32")
    defaults.update(values)
    return types.SimpleNamespace(**defaults)


def test_eval_mode_scores_a_released_style_model_directory(tmp_path, capsys):
    """A model dir like `python -m ifan_tf.weights.convert` writes (iac_mode="checkpoint") evaluates the same way."""
    config = ModelConfig(width=8, num_iterations=2, iac_mode="checkpoint", reblur_iterations=2)
    network = build_ifan(config)
    save_model_dir(tmp_path / "released", network, metadata={"source": "test"})
    records = _write_records(tmp_path / "set.tfrecord", _scenes())
    output_dir = tmp_path / "eval"
    assert eval_mode.run(_flags(model_dir=str(tmp_path / "released"), data=records, output_dir=str(output_dir))) == 0
    printed = capsys.readouterr().out
    assert "psnr" in printed and "input" in printed
    with open(output_dir / evaluate_lib.SUMMARY_FILE) as handle:
        summary = json.load(handle)
    scene = _scenes()[1]
    image = scene.views["c"][:32, :40].astype(np.float32) / 255
    target = scene.views["target"][:32, :40].astype(np.float64) / 255
    output = network(image[None], training=False)[0].numpy().astype(np.float64)
    expected = 10 * math.log10(1 / np.mean((output - target) ** 2))
    with open(output_dir / evaluate_lib.PER_IMAGE_FILE) as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    assert float(rows["offset"]["psnr"]) == pytest.approx(expected, abs=1e-4)
    assert summary["description"]["model"]["iac_mode"] == "checkpoint"
    with pytest.raises(ModeError, match="--overwrite") as refused:
        eval_mode.run(_flags(model_dir=str(tmp_path / "released"), data=records, output_dir=str(output_dir)))
    assert refused.value.exit_code == USAGE


def test_sets_without_ground_truth_are_refused_unless_only_saving_images(tmp_path):
    records = _write_records(tmp_path / "pixeldp.tfrecord", _scenes(with_target=False))
    with pytest.raises(ValueError, match="no ground truth"):
        evaluate_lib.evaluate(IdentityNetwork(), [records], lpips=NO_LPIPS, show_progress=False)
    summary = evaluate_lib.evaluate(IdentityNetwork(), [records], output_dir=str(tmp_path / "out"), save_images=True,
                                    lpips=NO_LPIPS, show_progress=False)
    assert summary["count"] == 2 and not summary["has_ground_truth"]
    assert (tmp_path / "out" / "images" / "same.png").is_file()
