"""Evaluation protocol: crop, PSNR / SSIM / MAE, LPIPS availability, aggregation and files."""
import contextlib
import csv
import json
import math
import sys
import types

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from ifan_tf.evaluation import lpips_metric
from ifan_tf.evaluation.metrics import (
    MetricAccumulator,
    crop_to_multiple,
    mae,
    psnr,
    score_image,
    ssim,
    unavailable_metrics,
)

UNAVAILABLE = lpips_metric.LpipsStatus(reason="not installed in this test")


def random_pair(seed, shape=(21, 30, 3)):
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.0, 1.0, shape)
    output = np.clip(target + rng.normal(0.0, 0.1, shape), 0.0, 1.0)
    return output.astype(np.float32), target.astype(np.float32)


@pytest.mark.parametrize("height, width", [(16, 24), (17, 31), (1120, 1680), (721, 1283)])
def test_crop_to_multiple_cuts_bottom_and_right(height, width):
    image = np.arange(height * width * 3).reshape(height, width, 3)
    cropped = crop_to_multiple(image)
    assert cropped.shape == (height // 8 * 8, width // 8 * 8, 3)
    np.testing.assert_array_equal(cropped, image[: cropped.shape[0], : cropped.shape[1]])
    assert crop_to_multiple(image[..., 0], multiple=5).shape == (height // 5 * 5, width // 5 * 5)


def test_crop_to_multiple_rejects_too_small_images():
    with pytest.raises(ValueError):
        crop_to_multiple(np.zeros((7, 16, 3)))


def test_identical_images_score_perfectly():
    _, target = random_pair(0)
    scores = score_image(target, target.copy(), lpips=UNAVAILABLE)
    assert scores == {"psnr": math.inf, "ssim": pytest.approx(1.0, abs=1e-12), "mae": 0.0}


def test_psnr_of_a_constructed_error_is_exact():
    # Off by 0.1 in one channel of a quarter of the pixels: MSE = 0.01 / 12, MAE = 0.1 / 12.
    target = np.full((16, 16, 3), 0.5)
    output = target.copy()
    output[:8, :8, 1] += 0.1
    assert psnr(output, target) == pytest.approx(10.0 * math.log10(1200.0), rel=1e-9)
    assert mae(output, target) == pytest.approx(0.1 / 12.0, rel=1e-9)


def test_ssim_and_mae_equal_direct_computations():
    output, target = random_pair(1)
    direct_ssim = structural_similarity(
        output.astype(np.float64), target.astype(np.float64), data_range=1, channel_axis=-1
    )
    assert ssim(output, target) == direct_ssim
    assert mae(output, target) == np.mean(np.abs(output.astype(np.float64) - target.astype(np.float64)))
    assert score_image(output, target, lpips=UNAVAILABLE) == {
        "psnr": psnr(output, target),
        "ssim": direct_ssim,
        "mae": mae(output, target),
    }


@pytest.mark.parametrize(
    "output",
    [
        np.full((8, 8, 3), 1.5),
        np.full((8, 8, 3), 128, np.uint8),
        np.zeros((8, 8)),
        np.zeros((8, 9, 3)),
        np.full((8, 8, 3), np.nan),
    ],
)
def test_invalid_images_are_rejected(output):
    with pytest.raises(ValueError):
        score_image(output, np.zeros((8, 8, 3)), lpips=UNAVAILABLE)


def test_lpips_is_unavailable_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "lpips", None)  # makes `import lpips` raise ImportError
    status = lpips_metric.probe_lpips()
    assert not status.available and status.distance is None
    assert "lpips" in status.reason
    output, target = random_pair(2)
    assert "lpips" not in score_image(output, target, lpips=status)
    assert unavailable_metrics(status) == {"lpips": status.reason}


def install_fake_lpips(monkeypatch, tmp_path, lpips_class, backbone_cached):
    """Fake torch / torchvision / lpips modules; lpips ships its v0.1 AlexNet linear weights."""
    (tmp_path / "lpips" / "weights" / "v0.1").mkdir(parents=True)
    (tmp_path / "lpips" / "weights" / "v0.1" / "alex.pth").write_bytes(b"")
    backbone = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    if backbone_cached:
        backbone.parent.mkdir(parents=True)
        backbone.write_bytes(b"")
    fake_lpips = types.ModuleType("lpips")
    fake_lpips.__file__ = str(tmp_path / "lpips" / "__init__.py")
    fake_lpips.LPIPS = lpips_class
    fake_torch = types.ModuleType("torch")
    fake_torch.hub = types.SimpleNamespace(get_dir=lambda: str(tmp_path / "hub"))
    fake_torch.from_numpy = np.asarray
    fake_torch.no_grad = contextlib.nullcontext
    fake_torchvision = types.ModuleType("torchvision")
    weights = types.SimpleNamespace(url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth")
    fake_torchvision.models = types.SimpleNamespace(AlexNet_Weights=types.SimpleNamespace(IMAGENET1K_V1=weights))
    for name, module in [("lpips", fake_lpips), ("torch", fake_torch), ("torchvision", fake_torchvision)]:
        monkeypatch.setitem(sys.modules, name, module)
    return backbone


def test_lpips_is_unavailable_when_backbone_weights_are_not_cached(monkeypatch, tmp_path):
    def must_not_build(**kwargs):
        pytest.fail("must not build the network (torchvision would download AlexNet)")

    backbone = install_fake_lpips(monkeypatch, tmp_path, must_not_build, backbone_cached=False)
    status = lpips_metric.probe_lpips()
    assert not status.available
    assert str(backbone) in status.reason


def test_default_lpips_never_stops_scoring():
    # lpips / PyTorch are not dependencies of ifan_tf: without them LPIPS is reported, not scored.
    status = lpips_metric.default_lpips()
    output, target = random_pair(3)
    scores = score_image(output, target)
    if status.available:
        assert set(scores) == {"psnr", "ssim", "mae", "lpips"} and unavailable_metrics() == {}
    else:
        assert set(scores) == {"psnr", "ssim", "mae"} and unavailable_metrics() == {"lpips": status.reason}


def test_lpips_distance_gets_nchw_inputs_in_minus_one_to_one(monkeypatch, tmp_path):
    seen = {}

    class FakeLpips:
        def __init__(self, **kwargs):
            seen["kwargs"] = kwargs

        def eval(self):
            return self

        def __call__(self, a, b):
            seen["inputs"] = (a, b)
            return np.array([[[[0.25]]]])

    install_fake_lpips(monkeypatch, tmp_path, FakeLpips, backbone_cached=True)
    status = lpips_metric.probe_lpips()
    assert status.available, status.reason
    assert seen["kwargs"]["net"] == "alex" and seen["kwargs"]["version"] == "0.1"
    output, target = random_pair(4)
    assert score_image(output, target, lpips=status)["lpips"] == 0.25
    for given, image in zip(seen["inputs"], (output, target)):
        assert given.shape == (1, 3) + image.shape[:2]
        np.testing.assert_allclose(given[0].transpose(1, 2, 0), image * 2.0 - 1.0, rtol=1e-6, atol=1e-6)


def test_accumulator_summary_csv_and_json_round_trip(tmp_path):
    accumulator = MetricAccumulator(unavailable={"lpips": "no torch"})
    per_image = {}
    for seed in range(3):
        output, target = random_pair(10 + seed)
        per_image[f"img_{seed}"] = score_image(output, target, lpips=UNAVAILABLE)
        accumulator.add(f"img_{seed}", per_image[f"img_{seed}"])
    _, target = random_pair(13)
    per_image["identical"] = score_image(target, target, lpips=UNAVAILABLE)
    accumulator.add("identical", per_image["identical"])

    assert accumulator.per_image() == list(per_image.items())
    summary = accumulator.summary()
    finite = [s for s in per_image.values() if math.isfinite(s["psnr"])]
    assert summary["count"] == 4 and summary["psnr_infinite"] == 1
    assert summary["mean"]["psnr"] == pytest.approx(np.mean([s["psnr"] for s in finite]), rel=1e-12)
    for metric in ("ssim", "mae"):
        assert summary["mean"][metric] == pytest.approx(np.mean([s[metric] for s in per_image.values()]), rel=1e-12)
    assert summary["unavailable"] == {"lpips": "no torch"}

    csv_path, json_path = tmp_path / "out" / "scores.csv", tmp_path / "out" / "summary.json"
    accumulator.write_csv(csv_path)
    accumulator.write_summary_json(json_path)
    assert sorted(p.name for p in csv_path.parent.iterdir()) == ["scores.csv", "summary.json"]  # no temp left
    with open(csv_path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["name"] for row in rows] == list(per_image)
    for row in rows:
        assert {k: float(v) for k, v in row.items() if k != "name"} == per_image[row["name"]]
    assert json.loads(json_path.read_text()) == summary


def test_accumulator_rejects_duplicates_and_mismatched_metrics():
    accumulator = MetricAccumulator()
    accumulator.add("a", {"psnr": 30.0, "ssim": 0.9, "mae": 0.01})
    with pytest.raises(ValueError, match="already"):
        accumulator.add("a", {"psnr": 30.0, "ssim": 0.9, "mae": 0.01})
    with pytest.raises(ValueError, match="metrics"):
        accumulator.add("b", {"psnr": 30.0, "ssim": 0.9})
    assert len(accumulator) == 1


def test_summary_of_only_identical_images_is_valid_json(tmp_path):
    accumulator = MetricAccumulator()
    accumulator.add("same", {"psnr": math.inf, "ssim": 1.0, "mae": 0.0})
    accumulator.write_summary_json(tmp_path / "summary.json")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["mean"] == {"psnr": None, "ssim": 1.0, "mae": 0.0} and summary["psnr_infinite"] == 1
