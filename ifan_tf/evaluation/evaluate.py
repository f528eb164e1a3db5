"""The paper's evaluation protocol over a TFRecord set (``main.py --mode=eval`` and validation).

For every record (spec "Data sets and evaluation protocol"): crop all views to a multiple of 8 at
the bottom/right, deblur C (inference mode: the output is clipped to [0, 1]), then score the
output against the ground truth (PSNR, SSIM as scikit-image computes it, MAE, LPIPS when
available) and, for comparison as in the paper's tables, the input C against the ground truth.
Scores are means over images.

Outputs (``output_dir``): ``per_image.csv`` (one row per image: output scores, then the same
scores of the input prefixed ``input_``), ``summary.json`` and optionally ``images/NAME.png``
(deblurred images at the record's bit depth, 8 or 16).
"""

import math
import os
import time

import tensorflow as tf
from absl import logging
from tqdm import tqdm

from ifan_tf import image_io
from ifan_tf.atomic_write import write_json_atomic
from ifan_tf.data.pipeline import make_eval_dataset
from ifan_tf.evaluation.lpips_metric import LpipsStatus, default_lpips
from ifan_tf.evaluation.metrics import MetricAccumulator, crop_to_multiple, score_image, unavailable_metrics
from ifan_tf.model.ifan import SIZE_MULTIPLE

PER_IMAGE_FILE = "per_image.csv"
SUMMARY_FILE = "summary.json"
IMAGES_DIR = "images"
INPUT_PREFIX = "input_"


def make_deblur_fn(network):
    """``deblur(image, right, left) -> [H, W, 3] float32 numpy in [0, 1]`` for one image.

    Arguments are ``[H, W, 3]`` float arrays in [0, 1] with H, W multiples of 8 (``right``/``left``
    are used only by the dual-pixel-input model). One graph serves every image size.
    """
    dual = network.config.dual_pixel_input
    spec = tf.TensorSpec([1, None, None, 3], tf.float32)

    @tf.function(input_signature=[spec, spec, spec], reduce_retracing=True)
    def run(image, right, left):
        inputs = {"image": image, "right": right, "left": left} if dual else image
        return network(inputs, training=False)

    def deblur(image, right=None, left=None):
        image = tf.convert_to_tensor(image[None], tf.float32)
        if dual and (right is None or left is None):
            raise ValueError("the dual-pixel-input model needs the left and right views (records with views l and r)")
        right = image if right is None else tf.convert_to_tensor(right[None], tf.float32)
        left = image if left is None else tf.convert_to_tensor(left[None], tf.float32)
        return run(image, right, left)[0].numpy()

    return deblur


def _safe_file_name(name):
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return cleaned.strip(".") or "image"


def evaluate(network, file_patterns, *, output_dir=None, save_images=False, max_images=None, lpips=None,
             show_progress=True, skip_corrupt=False, description=None):
    """Runs the evaluation protocol of ``network`` on TFRecords.

    Args:
      network: a built IFAN (``training=False`` returns the clipped image).
      file_patterns: glob(s) of TFRecord shards (``ifan_tf.data.schema``).
      output_dir: where to write the CSV, the JSON and the images; None writes nothing.
      save_images: also write the deblurred images (needs ``output_dir``).
      max_images: evaluate only the first this many records (None or 0: all).
      lpips: an ``LpipsStatus``; default ``default_lpips()`` (scored only when available).
      show_progress: show a progress bar.
      skip_corrupt: skip corrupt records (logged) instead of failing.
      description: free text stored in the summary (e.g. the model directory).
    Returns:
      The summary dict: ``count``, ``output`` and ``input`` (mean scores), ``gain`` (output minus
      input), ``psnr_infinite``, ``unavailable`` (metric -> reason), ``seconds_per_image``.
      Without ground truth in the records only the images are saved and ``count`` is set.
    """
    if save_images and not output_dir:
        raise ValueError("save_images needs an output_dir")
    lpips = default_lpips() if lpips is None else lpips
    dual = network.config.dual_pixel_input
    dataset = make_eval_dataset(file_patterns, views=None, skip_corrupt=skip_corrupt)
    views = set(dataset.element_spec)
    has_target = "target" in views
    if "image" not in views:
        raise ValueError(f"{file_patterns}: the records have no defocused image (view c)")
    if dual and not {"left", "right"} <= views:
        raise ValueError(f"{file_patterns}: the dual-pixel-input model needs views l and r in every record")
    if not has_target and not save_images:
        raise ValueError(f"{file_patterns}: the records have no ground truth (view target), e.g. PixelDP or CUHK; "
                         "nothing to score. Pass --save_images to only write the deblurred images.")
    if max_images:
        dataset = dataset.take(int(max_images))

    deblur = make_deblur_fn(network)
    unavailable = unavailable_metrics(lpips) if has_target else {}
    accumulator = MetricAccumulator(unavailable)  # CSV rows: output scores, then input_ scores
    output_scores, input_scores = MetricAccumulator(unavailable), MetricAccumulator(unavailable)
    images_dir = os.path.join(output_dir, IMAGES_DIR) if save_images else None
    if images_dir:
        os.makedirs(images_dir, exist_ok=True)
    count, seconds = 0, 0.0
    progress = tqdm(dataset.as_numpy_iterator(), desc="evaluating", unit="image", disable=not show_progress,
                    total=int(max_images) if max_images else None)
    for record in progress:
        name = record["name"].decode("utf-8", errors="replace")
        image = crop_to_multiple(record["image"], SIZE_MULTIPLE)
        right = crop_to_multiple(record["right"], SIZE_MULTIPLE) if "right" in record else None
        left = crop_to_multiple(record["left"], SIZE_MULTIPLE) if "left" in record else None
        start = time.perf_counter()
        output = deblur(image, right, left)
        seconds += time.perf_counter() - start
        count += 1
        if has_target:
            target = crop_to_multiple(record["target"], SIZE_MULTIPLE)
            scores, given = score_image(output, target, lpips), score_image(image, target, lpips)
            output_scores.add(name, scores)
            input_scores.add(name, given)
            scores.update({INPUT_PREFIX + key: value for key, value in given.items()})
            accumulator.add(name, scores)
            progress.set_postfix(psnr=f"{scores['psnr']:.2f}", input_psnr=f"{scores['input_psnr']:.2f}")
        if images_dir:
            image_io.write_image(os.path.join(images_dir, _safe_file_name(name) + ".png"), output,
                                 int(record["bit_depth"]))
    if count == 0:
        raise ValueError(f"{file_patterns}: no records to evaluate")

    summary = {"count": count, "seconds_per_image": seconds / count, "description": description,
               "has_ground_truth": has_target}
    if has_target:
        raw = output_scores.summary()
        summary["output"] = raw["mean"]
        summary["input"] = input_scores.summary()["mean"]
        summary["gain"] = {name: (value - summary["input"][name])
                           if value is not None and summary["input"].get(name) is not None else None
                           for name, value in summary["output"].items()}
        summary["psnr_infinite"] = raw["psnr_infinite"]  # identical to the target: left out of the mean
        summary["unavailable"] = raw["unavailable"]
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        if has_target:
            accumulator.write_csv(os.path.join(output_dir, PER_IMAGE_FILE))
        write_json_atomic(os.path.join(output_dir, SUMMARY_FILE), summary, allow_nan=False)
    return summary


def skipped_lpips(reason="not computed during training validation"):
    """An ``LpipsStatus`` that makes ``evaluate`` skip LPIPS with ``reason``."""
    return LpipsStatus(reason=reason)


def format_summary(summary):
    """Human-readable lines: output and input scores side by side, and what was skipped."""
    if not summary.get("has_ground_truth", True):
        return [f"{summary['count']} images deblurred (no ground truth: not scored)"]
    lines = [f"{'metric':8s} {'input':>10s} {'output':>10s} {'gain':>10s}   ({summary['count']} images)"]
    for name, value in summary["output"].items():
        before = summary["input"].get(name)
        gain = summary["gain"].get(name)
        fmt = (lambda v: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}")
        lines.append(f"{name:8s} {fmt(before):>10s} {fmt(value):>10s} {fmt(gain):>10s}")
    for name, reason in summary.get("unavailable", {}).items():
        lines.append(f"{name}: skipped ({reason})")
    logging.debug("evaluation summary %s", summary)
    return lines
