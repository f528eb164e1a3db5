"""Per-image scores of the IFAN evaluation protocol and their aggregation over a data set.

Spec "Data sets and evaluation protocol" (reference ``eval.py``): each image is cropped to a
multiple of 8 at the bottom/right before inference; then, per image, on HxWx3 arrays in [0, 1]:

* PSNR = 10 log10(1 / MSE), MSE over all pixels and channels (``inf`` when MSE = 0, where the
  reference would divide by zero);
* SSIM = ``skimage.metrics.structural_similarity(a, b, data_range=1, channel_axis=-1)`` (7x7
  uniform window; the reference's ``multichannel=True`` is the same call in scikit-image < 0.19);
* MAE = mean absolute error over all pixels and channels (the reference's mean of per-channel
  sklearn MAEs is the same number);
* LPIPS (AlexNet, v0.1) on inputs scaled to [-1, 1], only if available (``lpips_metric``).

Data-set scores are the means over images. Everything here is computed in float64.
"""

import csv
import io
import math
import os

import numpy as np
from skimage.metrics import structural_similarity

from ifan_tf.evaluation.lpips_metric import default_lpips
from ifan_tf.io.atomic_write import atomic_write_bytes, write_json_atomic


def crop_to_multiple(image, multiple=8):
    """Crops the bottom rows and right columns so that height and width are multiples.

    Args:
        image: array of shape ``[H, W, ...]`` (any dtype).
        multiple: the required divisor of the output height and width (8 for IFAN).

    Returns:
        The view ``image[:H - H % multiple, :W - W % multiple]``.
    """
    image = np.asarray(image)
    if image.ndim < 2:
        raise ValueError(f"expected an image of shape [H, W, ...], got shape {image.shape}")
    height = image.shape[0] - image.shape[0] % multiple
    width = image.shape[1] - image.shape[1] % multiple
    if height == 0 or width == 0:
        raise ValueError(f"image of shape {image.shape} is smaller than {multiple} pixels")
    return image[:height, :width]


def _float64_pair(output, target):
    """Checks two HxWx3 float images in [0, 1] of equal shape; returns them as float64."""
    pair = []
    for label, image in (("output", output), ("target", target)):
        image = np.asarray(image)
        if not np.issubdtype(image.dtype, np.floating):
            raise ValueError(f"{label} must be a float array in [0, 1], got dtype {image.dtype}")
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"{label} must have shape [H, W, 3], got {image.shape}")
        if not (np.all(np.isfinite(image)) and image.min() >= 0.0 and image.max() <= 1.0):
            raise ValueError(f"{label} values must be finite and in [0, 1]")
        pair.append(image.astype(np.float64))
    if pair[0].shape != pair[1].shape:
        raise ValueError(f"shapes differ: output {pair[0].shape}, target {pair[1].shape}")
    return pair


def _psnr(output, target):
    mse = np.mean(np.square(output - target))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def _ssim(output, target):
    return float(structural_similarity(output, target, data_range=1.0, channel_axis=-1))


def _mae(output, target):
    return float(np.mean(np.abs(output - target)))


def psnr(output, target):
    """PSNR in dB of two HxWx3 images in [0, 1]: ``10 log10(1 / MSE)``; ``inf`` if MSE = 0."""
    return _psnr(*_float64_pair(output, target))


def ssim(output, target):
    """scikit-image SSIM (7x7 window, data_range 1, over channels) of two HxWx3 images in [0, 1]."""
    return _ssim(*_float64_pair(output, target))


def mae(output, target):
    """Mean absolute error over all pixels and channels of two HxWx3 images in [0, 1]."""
    return _mae(*_float64_pair(output, target))


def unavailable_metrics(lpips=None):
    """``{metric name: reason}`` for the protocol's metrics that cannot be scored here.

    ``lpips``: an ``LpipsStatus`` (default: ``default_lpips()``).
    """
    lpips = default_lpips() if lpips is None else lpips
    return {} if lpips.available else {"lpips": lpips.reason}


def score_image(output, target, lpips=None):
    """Scores one image pair (the caller crops both to a multiple of 8 before inference).

    Args:
        output: the network output, HxWx3 float array in [0, 1] (clipped, as at inference).
        target: the ground truth, same shape, float in [0, 1].
        lpips: an ``LpipsStatus`` (default: ``default_lpips()``, loaded once per process).

    Returns:
        ``{"psnr", "ssim", "mae"}`` floats, plus ``"lpips"`` when LPIPS is available (see
        ``unavailable_metrics`` for why it is not).
    """
    output, target = _float64_pair(output, target)
    scores = {"psnr": _psnr(output, target), "ssim": _ssim(output, target), "mae": _mae(output, target)}
    lpips = default_lpips() if lpips is None else lpips
    if lpips.available:
        scores["lpips"] = lpips.distance(output, target)
    return scores


def _write_atomically(path, text):
    """Writes ``text`` (UTF-8) to ``path`` atomically, creating its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_bytes(path, text.encode("utf-8"))


class MetricAccumulator:
    """Collects per-image scores of a data set; summarises and writes them.

    Args:
        unavailable: ``{metric name: reason}`` of protocol metrics that are not scored (e.g.
            ``unavailable_metrics()``); reported in the summary.

    Every image must carry the same metric names as the first one added. PSNR values of ``inf``
    (identical images) are left out of the PSNR mean and counted in ``psnr_infinite``.
    """

    def __init__(self, unavailable=None):
        self.unavailable = dict(unavailable or {})
        self._names = []
        self._scores = []

    def __len__(self):
        return len(self._names)

    @property
    def metric_names(self):
        """Metric names in column order (those of the first image), empty before any image."""
        return list(self._scores[0]) if self._scores else []

    def add(self, name, scores):
        """Adds the ``scores`` (``{metric: float}``, e.g. from ``score_image``) of image ``name``."""
        name = str(name)
        if name in self._names:
            raise ValueError(f"image {name!r} was already added")
        scores = {metric: float(value) for metric, value in scores.items()}
        if self._scores and set(scores) != set(self._scores[0]):
            raise ValueError(f"image {name!r} has metrics {sorted(scores)}, expected {sorted(self._scores[0])}")
        self._names.append(name)
        self._scores.append({metric: scores[metric] for metric in (self.metric_names or scores)})

    def per_image(self):
        """List of ``(name, {metric: float})`` in the order added."""
        return [(name, dict(scores)) for name, scores in zip(self._names, self._scores)]

    def summary(self):
        """JSON-ready summary.

        Returns:
            ``{"count": int, "mean": {metric: float or None}, "psnr_infinite": int,
            "unavailable": {metric: reason}}``; a mean is ``None`` when it has no finite value.
        """
        means = {}
        for metric in self.metric_names:
            values = [scores[metric] for scores in self._scores]
            if metric == "psnr":
                values = [value for value in values if value != math.inf]
            mean = math.fsum(values) / len(values) if values else math.nan
            means[metric] = mean if math.isfinite(mean) else None
        return {
            "count": len(self),
            "mean": means,
            "psnr_infinite": sum(scores.get("psnr") == math.inf for scores in self._scores),
            "unavailable": dict(self.unavailable),
        }

    def write_csv(self, path):
        """Writes ``name,<metrics...>`` rows (floats at full precision, ``inf`` as ``inf``)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["name"] + self.metric_names)
        for name, scores in zip(self._names, self._scores):
            writer.writerow([name] + [repr(scores[metric]) for metric in self.metric_names])
        _write_atomically(path, buffer.getvalue())

    def write_summary_json(self, path):
        """Writes ``summary()`` as JSON (strict: no NaN or Infinity literals)."""
        write_json_atomic(path, self.summary(), allow_nan=False)
