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
import sys
import time

import tensorflow as tf
from absl import logging
from tqdm import tqdm

from ifan_tf.data.pipeline import make_eval_dataset, resolve_files
from ifan_tf.evaluation.lpips_metric import LpipsStatus, default_lpips
from ifan_tf.evaluation.metrics import MetricAccumulator, crop_to_multiple, score_image, unavailable_metrics
from ifan_tf.io import image_io, input_files
from ifan_tf.io.atomic_write import write_json_atomic
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


def _first_line(error, limit=400):
    """A one-line message for ``error`` (TensorFlow's multi-line messages are joined and shortened)."""
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    lines = [line.strip() for line in str(text).splitlines()
             if line.strip() and not line.strip().startswith(("Detected at node", "File ", "[["))]
    joined = " ".join(lines)
    return joined if len(joined) <= limit else joined[:limit] + "..."


def _open_shards(file_patterns, skip_corrupt, failed):
    """``[(shard, dataset)]`` for every shard that is a regular file and passes inspection.

    A shard that is a FIFO, a device, a directory, unreadable or corrupt is appended to ``failed``
    as ``(shard, message)`` and left out; the others go on.
    """
    opened = []
    for path in resolve_files(file_patterns):
        try:
            if "://" not in path:  # local: never open a FIFO or read a device
                input_files.check_regular_file(path, max_bytes=sys.maxsize)
            opened.append((path, make_eval_dataset([path], views=None, skip_corrupt=skip_corrupt)))
        except Exception as error:  # noqa: BLE001 - one bad shard must not stop the others
            logging.error("%s: skipped (%s)", path, _first_line(error))
            failed.append((path, _first_line(error)))
    return opened


def _records(opened, failed):
    """Yields ``(shard, record)`` over all shards; a shard whose reading fails is reported and left."""
    for path, dataset in opened:
        iterator, read = dataset.as_numpy_iterator(), 0
        while True:
            try:
                record = next(iterator)
            except StopIteration:
                break
            except Exception as error:  # noqa: BLE001
                message = f"reading stopped after {read} records: {_first_line(error)}"
                logging.error("%s: %s", path, message)
                failed.append((path, message))
                break
            read += 1
            yield path, record


def evaluate(network, file_patterns, *, output_dir=None, save_images=False, max_images=None, lpips=None,
             show_progress=True, skip_corrupt=False, description=None):
    """Runs the evaluation protocol of ``network`` on TFRecords.

    Each shard is read on its own: one that is not a regular file, unreadable or corrupt, and any
    record that fails (reading, deblurring, scoring, saving), is reported in ``summary["failed"]``
    and skipped; the others go on. Only when nothing could be evaluated does it raise.

    Args:
      network: a built IFAN (``training=False`` returns the clipped image).
      file_patterns: glob(s) of TFRecord shards (``ifan_tf.data.schema``).
      output_dir: where to write the CSV, the JSON and the images; None writes nothing.
      save_images: also write the deblurred images (needs ``output_dir``).
      max_images: evaluate only the first this many records (None or 0: all).
      lpips: an ``LpipsStatus``; default ``default_lpips()`` (scored only when available).
      show_progress: show a progress bar.
      skip_corrupt: skip corrupt records (logged) instead of skipping their whole shard.
      description: free text stored in the summary (e.g. the model directory).
    Returns:
      The summary dict: ``count``, ``output`` and ``input`` (mean scores), ``gain`` (output minus
      input), ``psnr_infinite``, ``unavailable`` (metric -> reason), ``seconds_per_image``,
      ``failed`` (``[{"source", "error"}]``: shards or records skipped).
      Without ground truth in the records only the images are saved and ``count`` is set.
    """
    if save_images and not output_dir:
        raise ValueError("save_images needs an output_dir")
    lpips = default_lpips() if lpips is None else lpips
    dual = network.config.dual_pixel_input
    failed = []
    opened = _open_shards(file_patterns, skip_corrupt, failed)
    if not opened:
        raise ValueError(f"{file_patterns}: no readable shard; " + "; ".join(f"{s}: {m}" for s, m in failed))
    views = frozenset.intersection(*[frozenset(dataset.element_spec) for _, dataset in opened])
    has_target = "target" in views
    if "image" not in views:
        raise ValueError(f"{file_patterns}: the records have no defocused image (view c)")
    if dual and not {"left", "right"} <= views:
        raise ValueError(f"{file_patterns}: the dual-pixel-input model needs views l and r in every record")
    if not has_target and not save_images:
        raise ValueError(f"{file_patterns}: the records have no ground truth (view target), e.g. PixelDP or CUHK; "
                         "nothing to score. Pass --save_images to only write the deblurred images.")

    deblur = make_deblur_fn(network)
    unavailable = unavailable_metrics(lpips) if has_target else {}
    accumulator = MetricAccumulator(unavailable)  # CSV rows: output scores, then input_ scores
    output_scores, input_scores = MetricAccumulator(unavailable), MetricAccumulator(unavailable)
    images_dir = os.path.join(output_dir, IMAGES_DIR) if save_images else None
    if images_dir:
        os.makedirs(images_dir, exist_ok=True)
    count, seconds = 0, 0.0
    progress = tqdm(desc="evaluating", unit="image", disable=not show_progress,
                    total=int(max_images) if max_images else None)
    for path, record in _records(opened, failed):
        if max_images and count >= int(max_images):
            break
        name = record["name"].decode("utf-8", errors="replace")
        try:
            image = crop_to_multiple(record["image"], SIZE_MULTIPLE)
            right = crop_to_multiple(record["right"], SIZE_MULTIPLE) if dual else None
            left = crop_to_multiple(record["left"], SIZE_MULTIPLE) if dual else None
            start = time.perf_counter()
            output = deblur(image, right, left)
            elapsed = time.perf_counter() - start
            if has_target:
                target = crop_to_multiple(record["target"], SIZE_MULTIPLE)
                scores, given = score_image(output, target, lpips), score_image(image, target, lpips)
            if images_dir:
                image_io.write_image(os.path.join(images_dir, _safe_file_name(name) + ".png"), output,
                                     int(record["bit_depth"]))
        except Exception as error:  # noqa: BLE001 - one bad record must not stop the others
            logging.error("%s (scene %r): %s", path, name, _first_line(error))
            failed.append((f"{path} (scene {name!r})", _first_line(error)))
            continue
        seconds += elapsed
        count += 1
        progress.update(1)
        if has_target:
            output_scores.add(name, scores)
            input_scores.add(name, given)
            scores.update({INPUT_PREFIX + key: value for key, value in given.items()})
            accumulator.add(name, scores)
            progress.set_postfix(psnr=f"{scores['psnr']:.2f}", input_psnr=f"{scores['input_psnr']:.2f}")
    progress.close()
    if count == 0:
        raise ValueError(f"{file_patterns}: no records to evaluate"
                         + "".join(f"; {source}: {message}" for source, message in failed))

    summary = {"count": count, "seconds_per_image": seconds / count, "description": description,
               "has_ground_truth": has_target,
               "failed": [{"source": source, "error": message} for source, message in failed]}
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
