"""The steps of the deblurring pipeline around RunInference: naming, decoding, writing, dead letters.

Data between the steps:
  ``ImageKey``: the RunInference key of one image: input path, output path, and what is needed to
    lay the output out like the input (bit depth 8/16, gray, alpha ``[H, W]`` uint8/uint16 or None).
  decoded image: ``(ImageKey, [H, W, 3] float32 in [0, 1])`` (``image_io.decode_with_layout``,
    predict's decoding).
  inference result: ``(ImageKey, PredictionResult)`` whose ``inference`` is ``[H, W, 3]`` float32
    in [0, 1].
  dead letter: ``{"path", "stage" ("read", "inference" or "write"), "reason"}``, one JSON line each.

Every step handles each image on its own, like predict: whatever goes wrong with one file (not a
regular file, too large, unreadable, corrupt, above the pixel limits, failed inference, failed
write) sends it to the dead letters with the reason, and the others go on. Counters (namespace
``METRICS``): ``inputs``, ``skipped_existing``, ``written``, ``pixels`` (of written images),
``failed``.
"""
from __future__ import annotations

import json
import os
from typing import NamedTuple, Optional

import apache_beam as beam
import numpy as np
from apache_beam import pvalue

from ifan_tf.io import image_io
from ifan_tf.io.image_io import ImageFileError
from ifan_tf.pipelines import deblur_model, storage

METRICS = "ifan_tf.deblur"
FAILED = "failed"
_WILDCARDS = "*?["


class ImageKey(NamedTuple):
    """One image's RunInference key (see the module docstring)."""

    source: str
    target: str
    bit_depth: int
    gray: bool
    alpha: Optional[np.ndarray]


class OutputPlan:
    """Which matched files are inputs, and the output path of each (predict's folder rules).

    ``input_spec`` is a folder (recursive), a file pattern (``*``, ``?``, ``[...]``, ``**``) or one
    file, on any Beam filesystem. Output names mirror the input's relative names below the folder,
    or below the pattern's last folder without wildcards, inside ``output`` (same name, same
    format). Hidden files and files below hidden folders are left out, as are files without an image
    suffix and everything under ``output`` when it lies inside the input folder.
    """

    def __init__(self, input_spec: str, output: str):
        if storage.is_local(input_spec):
            folder_input = os.path.isdir(input_spec)
            input_spec = os.path.abspath(input_spec) + (os.sep if folder_input else "")
            output = os.path.abspath(output)
        else:
            folder_input = input_spec.endswith("/")
        self.output = output.rstrip("/") if not storage.is_local(output) else output
        if folder_input:
            self.base = input_spec.rstrip("/" + os.sep)
            self.pattern = self.base + "/**"
        elif any(char in input_spec for char in _WILDCARDS):
            parts = input_spec.split("/")
            first = next(index for index, part in enumerate(parts) if any(char in part for char in _WILDCARDS))
            self.base, self.pattern = "/".join(parts[:first]), input_spec
        else:
            self.base, self.pattern = storage.parent(input_spec), input_spec
        self.base = self.base or "."

    def check(self) -> None:
        """ValueError when the output folder is the input folder (outputs would replace inputs)."""
        if storage.is_local(self.base) and storage.is_local(self.output):
            same = os.path.exists(self.output) and os.path.samefile(self.base, self.output)
        else:
            same = self.base.rstrip("/") == self.output.rstrip("/")
        if same:
            raise ValueError(f"{self.output}: the output folder is the input folder; refusing to overwrite the inputs")
        if storage.is_local(self.output) and os.path.exists(self.output) and not os.path.isdir(self.output):
            raise ValueError(f"{self.output}: the output must be a folder")

    def target_for(self, source: str) -> Optional[str]:
        """The output path for the matched file ``source``, or None when it is not an input."""
        prefix = self.base.rstrip("/" + os.sep) + ("/" if not storage.is_local(self.base) else os.sep)
        if not source.startswith(prefix):
            return None
        relative = source[len(prefix):].replace(os.sep, "/")
        parts = relative.split("/")
        if any(not part or part.startswith(".") for part in parts) or not image_io.is_image_file(parts[-1]):
            return None
        output_prefix = self.output.rstrip("/" + os.sep) + ("/" if not storage.is_local(self.output) else os.sep)
        if source.startswith(output_prefix):
            return None  # earlier outputs inside the input folder are not inputs
        return storage.join(self.output, relative)


def failure(source: str, stage: str, error: BaseException) -> dict:
    """A dead letter for ``source``: predict's message for the error, without the leading file name."""
    message = str(error) if isinstance(error, (ImageFileError, OSError, ValueError)) \
        else f"{type(error).__name__}: {error}"
    return {"path": source, "stage": stage, "reason": message.removeprefix(f"{source}: ")}


class DecodeImage(beam.DoFn):
    """``ReadableFile`` -> decoded image (main output) or dead letter (``FAILED``); skips existing outputs.

    The declared size is checked (``deblur_model.SizePolicy``) before any pixel is decoded; a format
    without a header parser (TIFF) is checked once decoded, as predict does.
    """

    def __init__(self, plan: OutputPlan, spec: deblur_model.ModelSpec, overwrite: bool):
        self._plan, self._spec, self._overwrite = plan, spec, overwrite
        self._inputs = beam.metrics.Metrics.counter(METRICS, "inputs")
        self._skipped = beam.metrics.Metrics.counter(METRICS, "skipped_existing")
        self._failed = beam.metrics.Metrics.counter(METRICS, "failed")

    def setup(self):
        self._policy = deblur_model.SizePolicy(self._spec)

    def process(self, readable):
        source = readable.metadata.path
        target = self._plan.target_for(source)
        if target is None:
            return
        self._inputs.inc()
        if not self._overwrite and storage.exists(target):
            self._skipped.inc()
            return
        try:
            data = storage.read_bytes(source, readable.metadata.size_in_bytes)
            header = image_io.header_from_bytes(data, source)
            if header is not None:
                self._policy.check(source, header.height, header.width)
            image = image_io.decode_with_layout(data, source)
            del data
            if header is None:
                self._policy.check(source, *image.rgb.shape[:2])
        except Exception as error:  # noqa: BLE001 - one bad file must not stop the others
            self._failed.inc()
            yield pvalue.TaggedOutput(FAILED, failure(source, "read", error))
            return
        yield ImageKey(source, target, image.bit_depth, image.gray, image.alpha), image.rgb


class WriteImage(beam.DoFn):
    """Inference result -> the output file (atomic, idempotent); yields dead letters only (``FAILED``).

    The deblurred image is quantised and laid out like the input (``image_io.to_pixels``) and encoded
    in the output's format (``image_io.encode_image``: PNG at compression 1, JPEG at quality 95), the
    bytes predict writes; ``storage.write_bytes_atomically`` puts them in place.
    """

    def __init__(self):
        self._written = beam.metrics.Metrics.counter(METRICS, "written")
        self._pixels = beam.metrics.Metrics.counter(METRICS, "pixels")
        self._failed = beam.metrics.Metrics.counter(METRICS, "failed")

    def process(self, element):
        key, result = element
        try:
            deblurred = np.array(result.inference, dtype=np.float32, copy=True)  # to_pixels quantises in place
            like = image_io.DecodedImage(rgb=None, bit_depth=key.bit_depth, gray=key.gray, alpha=key.alpha)
            pixels = image_io.to_pixels(deblurred, like)
            if storage.is_local(key.target) and os.path.exists(key.target) and os.path.exists(key.source) \
                    and os.path.samefile(key.source, key.target):
                raise ValueError(f"{key.target}: is the input file; refusing to overwrite inputs")
            data = image_io.encode_image(pixels, os.path.splitext(key.target)[1], key.target)
            storage.write_bytes_atomically(key.target, data)
        except Exception as error:  # noqa: BLE001 - one bad file must not stop the others
            self._failed.inc()
            yield pvalue.TaggedOutput(FAILED, failure(key.source, "write", error))
            return
        self._written.inc()
        self._pixels.inc(int(pixels.shape[0]) * int(pixels.shape[1]))


def inference_error_message(error_type, error_repr: str, trace: list) -> str:
    """A one-line reason from RunInference's ``(type, repr, formatted traceback)`` of a failed batch.

    The last traceback entry holds ``module.Type: message``; for TensorFlow's errors the message's
    first line and the failed assertion (e.g. the SavedModel's ``max_pixels`` check) are kept.
    """
    name = getattr(error_type, "__name__", str(error_type))
    lines = [line.strip() for line in (trace[-1] if trace else error_repr).splitlines() if line.strip()]
    first = lines[0] if lines else error_repr
    if ": " in first and first.split(": ", 1)[0].endswith(name):
        first = f"{name}: {first.split(': ', 1)[1]}"
    assertion = next((line for line in lines if "assertion failed" in line), None)
    message = first if assertion is None else f"{first} {assertion}"
    return f"inference failed: {message[:600]}"


class InferenceFailures(beam.DoFn):
    """RunInference's failed batches ``(batch of (ImageKey, image), (type, repr, traceback))`` -> dead letters."""

    def __init__(self):
        self._failed = beam.metrics.Metrics.counter(METRICS, "failed")

    def process(self, element):
        batch, (error_type, error_repr, trace) = element
        reason = inference_error_message(error_type, error_repr, trace)
        for key, _ in batch:
            self._failed.inc()
            yield {"path": key.source, "stage": "inference", "reason": reason}


def dead_letter_line(record: dict) -> str:
    """One JSON line of the dead-letter file (keys sorted)."""
    return json.dumps(record, sort_keys=True)


def read_dead_letters(path: str) -> list[dict]:
    """The records of a dead-letter file written by the pipeline, sorted by path."""
    if not storage.exists(path):
        return []
    records = [json.loads(line) for line in storage.read_text(path).splitlines() if line.strip()]
    return sorted(records, key=lambda record: record["path"])
