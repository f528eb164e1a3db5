"""TensorBoard summaries and the console progress line of a training run.

Event files go to ``WORKDIR/tensorboard/train`` (losses, learning rate, gradient norm, step rate,
training images) and ``WORKDIR/tensorboard/val`` (validation PSNR / SSIM / MAE, input scores).
Only the chief writes; other workers get no-op writers. Events are written with
``tf.summary.write`` in the formats of TensorBoard's scalar and image plugins, so training does
not need the ``tensorboard`` package; viewing does (``pip install tensorboard``).

Training images (``visual_batch``): the defocused input C, the deblurred output (clipped), the
ground truth, the predicted disparity map of C (1/8 scale, min-max normalised per image, shown
in gray and enlarged to the input size) and the reblurred image SB (1/8 scale, enlarged).
"""

import math
import os
import time

import tensorflow as tf
from absl import logging
from tensorflow.core.framework import summary_pb2

SUMMARY_DIR = "tensorboard"


def _plugin_metadata(plugin_name, content=b""):
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin_name
    metadata.plugin_data.content = content
    return metadata


def write_scalar(name, value, step):
    """A scalar event readable by TensorBoard's ``scalars`` plugin (default writer)."""
    return tf.summary.write(name, tf.constant(float(value), tf.float32), step=step,
                            metadata=_plugin_metadata("scalars"))


def write_images(name, images, step, max_outputs=4):
    """Up to ``max_outputs`` images ``[B, H, W, 3]`` float in [0, 1] for TensorBoard's ``images`` plugin."""
    images = tf.image.convert_image_dtype(tf.clip_by_value(tf.cast(images[:max_outputs], tf.float32), 0.0, 1.0),
                                          tf.uint8, saturate=True)
    shape = tf.shape(images)
    encoded = tf.map_fn(tf.image.encode_png, images, fn_output_signature=tf.string)
    tensor = tf.concat([tf.strings.as_string([shape[2], shape[1]]), encoded], axis=0)
    return tf.summary.write(name, tensor, step=step, metadata=_plugin_metadata("images"))


class Summaries:
    """TensorBoard writers of a run (``train`` and ``val``).

    Args:
      workdir: the run's work directory.
      enabled: False for non-chief workers (nothing is written).
    """

    def __init__(self, workdir, enabled=True):
        self.enabled = enabled
        if enabled:
            root = os.path.join(workdir, SUMMARY_DIR)
            self.writers = {split: tf.summary.create_file_writer(os.path.join(root, split))
                            for split in ("train", "val")}
        else:
            self.writers = {split: tf.summary.create_noop_writer() for split in ("train", "val")}

    def scalars(self, step, values, split="train"):
        """Writes ``{name: float}`` at ``step``; non-finite values are written too (TensorBoard shows them)."""
        with self.writers[split].as_default(step=int(step)):
            for name, value in values.items():
                if value is not None:
                    write_scalar(name, value, int(step))

    def images(self, step, images, split="train", max_outputs=4):
        """Writes ``{name: [B, H, W, 3] float in [0, 1]}`` images at ``step``."""
        with self.writers[split].as_default(step=int(step)):
            for name, batch in images.items():
                write_images(name, batch, int(step), max_outputs)

    def flush(self):
        for writer in self.writers.values():
            writer.flush()

    def close(self):
        for writer in self.writers.values():
            writer.close()


def _enlarge(images, factor):
    """Nearest-neighbour upscaling by an integer ``factor`` ([B, h, w, C] -> [B, h*f, w*f, C])."""
    images = tf.repeat(images, factor, axis=1)
    return tf.repeat(images, factor, axis=2)


def normalise_map(values):
    """Per-image min-max normalisation of ``[B, h, w, 1]`` to [0, 1], as a 3-channel gray image."""
    values = tf.cast(values, tf.float32)
    low = tf.reduce_min(values, axis=[1, 2, 3], keepdims=True)
    high = tf.reduce_max(values, axis=[1, 2, 3], keepdims=True)
    return tf.tile((values - low) / tf.maximum(high - low, 1e-8), [1, 1, 1, 3])


def visual_batch(batch, outputs, reblurred, factor=8):
    """Images for TensorBoard from one training forward pass.

    Args:
      batch: dict with ``image`` and ``target`` ``[B, H, W, 3]``.
      outputs: the network's training outputs (``deblurred``, ``disparity``).
      reblurred: SB ``[B, H/8, W/8, 3]`` or None.
    Returns:
      dict name -> ``[B, H, W, 3]`` float32 in [0, 1].
    """
    images = {"input": batch["image"], "output": tf.clip_by_value(outputs["deblurred"], 0.0, 1.0),
              "ground_truth": batch["target"]}
    disparity = outputs.get("disparity")
    if disparity is not None and disparity.shape[-1] == 1:
        images["disparity"] = _enlarge(normalise_map(disparity), factor)
    if reblurred is not None:
        images["reblurred"] = _enlarge(tf.clip_by_value(tf.cast(reblurred, tf.float32), 0.0, 1.0), factor)
    return images


def format_duration(seconds):
    """``3d 04h``, ``2h 05m``, ``4m 10s`` or ``12s``."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


class ProgressLine:
    """Step rate and ETA for the console: ``step 1200/600000 (0.2%) | total 0.0123 ... | 1.9 steps/s | ETA 3d 15h``.

    Args:
      total_steps: the step the run stops at.
      start_step: the step it starts from (after a restore).
      deadline: ``time.monotonic()`` value at which a time budget ends, or None.
    """

    def __init__(self, total_steps, start_step, deadline=None):
        self.total_steps = int(total_steps)
        self.deadline = deadline
        self._last_time = time.monotonic()
        self._last_step = int(start_step)

    def rate(self, step):
        """Steps per second since the previous call (and resets the window)."""
        now = time.monotonic()
        elapsed = max(now - self._last_time, 1e-9)
        rate = (int(step) - self._last_step) / elapsed
        self._last_time, self._last_step = now, int(step)
        return rate

    def line(self, step, metrics, rate):
        """The progress text for ``step`` with ``metrics`` (``{name: float}``) at ``rate`` steps/s."""
        remaining = (self.total_steps - int(step)) / rate if rate > 0 else math.inf
        if self.deadline is not None:
            remaining = min(remaining, max(0.0, self.deadline - time.monotonic()))
        percent = 100.0 * int(step) / max(1, self.total_steps)
        losses = " ".join(f"{name} {metrics[name]:.5f}" for name in ("total", "deblur", "disparity", "reblur")
                          if name in metrics)
        return (f"step {int(step)}/{self.total_steps} ({percent:.1f}%) | {losses} | lr {metrics.get('learning_rate', 0):.3g}"
                f" | gnorm {metrics.get('grad_norm', 0):.3g} | {rate:.3g} steps/s ({1 / rate if rate > 0 else math.inf:.2f} s/step)"
                f" | ETA {format_duration(remaining)}")

    def log(self, step, metrics):
        """Logs the progress line (absl INFO) and returns the step rate."""
        rate = self.rate(step)
        logging.info("%s", self.line(step, metrics, rate))
        return rate
