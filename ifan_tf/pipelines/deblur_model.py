"""The model of the deblurring pipeline: what it refuses before decoding, and Beam's TF model handler.

Two kinds of model (``describe_model``):

* a SavedModel export (``main.py --mode=export``; the default kind): a version folder holding
  ``saved_model.pb``, or an export base folder (its highest numbered version is used, as TF Serving
  does). Its ``serving_default`` signature takes ``image`` float32 ``[B, H, W, 3]`` in [0, 1] and
  runs the reflect padding and the tile plan (``ifan_tf.inference.tiling``, the export's ``tile`` and
  ``tile_overlap``) inside its graph; its ``max_pixels`` and ``max_batch`` limits are read from
  ``assets.extra/ifan_tf.json``. Equal to ``main.py --mode=predict --tile=<export tile>
  --tile_overlap=<export overlap>`` with the exported model directory (same tile plan, same ops).
* a model directory (``config.json`` + ``network.npz``): run by ``ifan_tf.inference.predictor.Predictor``
  with predict's own ``--precision``, ``--tile``, ``--tile_overlap`` and ``--memory_budget_gb``, so
  the outputs are predict's, bit for bit.

``SizePolicy.check`` refuses an image from its declared size before any pixel is decoded, with
predict's messages (``ifan_tf.inference.folder.check_image_size``) plus the export's ``max_pixels``.

``DeblurModelHandler`` is Beam's ``TFModelHandlerNumpy`` (wrapped in ``KeyedModelHandler`` by the
pipeline) with the model loading replaced: RunInference loads the model once per worker process
and shares it between the process's threads (``large_model=True``: once per machine, in a separate
process; ``model_copies``: exactly that many per machine). Its batches are lists of ``[H, W, 3]``
float32 arrays in [0, 1]; ``deblur_batch`` stacks only images of equal shape (in chunks of at most
the export's ``max_batch``) and returns ``PredictionResult``s whose ``inference`` is the deblurred
``[H, W, 3]`` float32 in [0, 1] (``example`` is None: the input is not carried further).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import types
from typing import Optional

import numpy as np
import tensorflow as tf
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerNumpy

from ifan_tf.inference import folder
from ifan_tf.inference.predictor import DEFAULT_TILE_OVERLAP, Predictor, check_single_image
from ifan_tf.io import image_io
from ifan_tf.io.image_io import ImageTooLargeError
from ifan_tf.model.precision import INFERENCE_PRECISIONS, canonical_precision

SAVED_MODEL, MODEL_DIR = "saved_model", "model_dir"
EXPORT_INFO = ("assets.extra", "ifan_tf.json")
SIGNATURE, INPUT, OUTPUT = "serving_default", "image", "deblurred"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Where the model is and how it runs (picklable: shipped to the workers).

    Attributes:
      path: the SavedModel version folder, or the model directory.
      kind: ``SAVED_MODEL`` or ``MODEL_DIR``.
      config: the model's ``ModelConfig`` as a dict.
      max_pixels: largest height * width the model accepts (SavedModel: its export limit, or less
        with ``--max_pixels``; model directory: ``--max_pixels`` or None).
      max_batch: largest batch one call may take (the export's ``max_batch``; 1 for a model directory).
      precision, tile, tile_overlap, memory_budget_gb: predict's settings (model directory only;
        a SavedModel's are fixed at export and listed in ``export_info``).
      export_info: the SavedModel's ``assets.extra/ifan_tf.json`` (empty for a model directory).
    """

    path: str
    kind: str
    config: dict
    max_pixels: Optional[int]
    max_batch: int
    precision: str = "float32"
    tile: Optional[int] = None
    tile_overlap: int = DEFAULT_TILE_OVERLAP
    memory_budget_gb: Optional[float] = 4.0
    export_info: dict = dataclasses.field(default_factory=dict)

    def summary(self) -> str:
        """One line for logs: kind, path and how it tiles."""
        if self.kind == SAVED_MODEL:
            limits = self.export_info.get("limits", {})
            return (f"SavedModel {self.path} ({self.export_info.get('compute_dtype', '?')}, tile {limits.get('tile')}, "
                    f"overlap {limits.get('tile_overlap')}, max_pixels {self.max_pixels})")
        tile = self.tile if self.tile is not None else f"auto for {self.memory_budget_gb:g} GB"
        return f"model directory {self.path} ({self.precision}, tile {tile}, overlap {self.tile_overlap})"


def _saved_model_version(path: str) -> str:
    """``path`` itself if it holds ``saved_model.pb``, else its highest numbered SavedModel version."""
    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = sorted(int(name.rstrip("/")) for name in tf.io.gfile.listdir(path) if name.rstrip("/").isdigit()
                      and tf.io.gfile.exists(os.path.join(path, name.rstrip("/"), "saved_model.pb")))
    if not versions:
        raise ValueError(f"{path}: neither a SavedModel (no saved_model.pb) nor an export folder of numbered "
                         "versions, nor a model directory (no config.json)")
    return os.path.join(path, str(versions[-1]))


def describe_model(path: str, *, max_pixels: Optional[int] = None, precision: str = "float32",
                   tile: Optional[int] = None, tile_overlap: int = DEFAULT_TILE_OVERLAP,
                   memory_budget_gb: Optional[float] = 4.0) -> ModelSpec:
    """The ``ModelSpec`` of ``--model`` (a SavedModel export or a model directory); ValueError naming the path."""
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"--max_pixels must be a positive integer, got {max_pixels}")
    if not tf.io.gfile.exists(path):
        raise ValueError(f"{path}: no such model (a SavedModel export or a model directory)")
    if tf.io.gfile.exists(os.path.join(path, "config.json")):
        from ifan_tf.weights import model_dir  # reads and checks config.json only; no network is built here

        config, _ = model_dir.read_model_config(path)
        check_single_image(config, path)
        return ModelSpec(path=path, kind=MODEL_DIR, config=config.to_dict(), max_pixels=max_pixels, max_batch=1,
                         precision=canonical_precision(precision, INFERENCE_PRECISIONS, "--precision"), tile=tile,
                         tile_overlap=tile_overlap, memory_budget_gb=memory_budget_gb)
    if tile is not None or precision != "float32":
        raise ValueError(f"{path}: --tile and --precision apply to a model directory; a SavedModel's were fixed "
                         "at export (main.py --mode=export --tile --precision)")
    version = _saved_model_version(path)
    info_path = os.path.join(version, *EXPORT_INFO)
    try:
        with tf.io.gfile.GFile(info_path, "rb") as stream:
            info = json.loads(stream.read(1 << 20).decode("utf-8"))
        limits = info["limits"]
        export_pixels, max_batch = int(limits["max_pixels"]), int(limits["max_batch"])
    except (OSError, tf.errors.OpError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{info_path}: cannot read the export's limits ({type(error).__name__}: {error}); "
                         "export the model with main.py --mode=export") from None
    pixels = export_pixels if max_pixels is None else min(export_pixels, max_pixels)
    return ModelSpec(path=version, kind=SAVED_MODEL, config=dict(info.get("model", {})), max_pixels=pixels,
                     max_batch=max_batch, export_info=info)


class SizePolicy:
    """Refuses images from their declared size, before decoding, like predict (``check``).

    For a model directory it is the part of a ``Predictor`` that ``folder.check_image_size`` reads
    (tile, memory budget, precision, model width, and ``Predictor.tile_size_for`` itself), built
    without loading the network.
    """

    tile_size_for = Predictor.tile_size_for

    def __init__(self, spec: ModelSpec):
        from ifan_tf.model.config import ModelConfig

        self.spec = spec
        self.tile, self.tile_overlap = spec.tile, spec.tile_overlap
        self.precision = spec.precision
        self.memory_budget_gb = spec.memory_budget_gb if spec.kind == MODEL_DIR else None
        self.network = types.SimpleNamespace(config=ModelConfig.from_dict(spec.config) if spec.kind == MODEL_DIR else None)

    def check(self, source: str, height: int, width: int) -> None:
        """Raises ``ImageTooLargeError`` naming ``source`` when an ``height x width`` image must be refused."""
        limit = self.spec.max_pixels
        if limit is not None and height * width > limit:
            where = "the SavedModel's max_pixels" if self.spec.kind == SAVED_MODEL else "--max_pixels"
            raise ImageTooLargeError(f"{source}: {width}x{height} pixels ({height * width / 1e6:.2f} Mpx) is more than "
                                     f"{where}={limit}", height, width, limit)
        if self.spec.kind == MODEL_DIR:
            folder.check_image_size(self, source, height, width)
        else:
            image_io.check_declared_size(image_io.ImageHeader(height=height, width=width, bit_depth=8), source)


class Deblurrer:
    """A loaded model: ``deblur_batch([N, H, W, 3] float32 in [0, 1]) -> [N, H, W, 3] float32 in [0, 1]``."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        if spec.kind == SAVED_MODEL:
            self._loaded = tf.saved_model.load(spec.path)  # keeps the signature's variables alive
            self._signature = self._loaded.signatures[SIGNATURE]
            self._predictor = None
        else:
            self._predictor = Predictor.from_model_dir(spec.path, precision=spec.precision, tile=spec.tile,
                                                       tile_overlap=spec.tile_overlap,
                                                       memory_budget_gb=spec.memory_budget_gb)

    def deblur_batch(self, images: np.ndarray) -> np.ndarray:
        if self._predictor is not None:
            return np.stack([self._predictor.deblur(image) for image in images])
        return self._signature(**{INPUT: tf.constant(images, tf.float32)})[OUTPUT].numpy()


def deblur_batch(model: Deblurrer, batch, inference_args, model_id=None) -> list[PredictionResult]:
    """RunInference's ``inference_fn``: images of equal shape run together (at most ``max_batch`` per call)."""
    del inference_args
    by_shape = collections.defaultdict(list)
    for index, image in enumerate(batch):
        by_shape[np.shape(image)].append(index)
    outputs = [None] * len(batch)
    chunk = max(1, model.spec.max_batch)
    for indices in by_shape.values():
        for start in range(0, len(indices), chunk):
            part = indices[start:start + chunk]
            deblurred = model.deblur_batch(np.stack([np.asarray(batch[i], np.float32) for i in part]))
            for position, index in enumerate(part):
                outputs[index] = deblurred[position]
    return [PredictionResult(None, output, model_id) for output in outputs]


class DeblurModelHandler(TFModelHandlerNumpy):
    """``TFModelHandlerNumpy`` loading a ``Deblurrer`` from a ``ModelSpec`` (see the module docstring).

    Args:
      spec: the model.
      batch_size: most images per RunInference batch (only equal shapes are stacked); 1 gives
        predict's exact numbers, larger batches may differ by float rounding (~1e-7).
      large_model, model_copies: Beam's settings for sharing one model between processes.
    """

    def __init__(self, spec: ModelSpec, batch_size: int = 1, large_model: bool = False,
                 model_copies: Optional[int] = None):
        if batch_size < 1:
            raise ValueError(f"--batch_size must be at least 1, got {batch_size}")
        extra = {"model_copies": model_copies} if model_copies else {}
        super().__init__(spec.path, inference_fn=deblur_batch, min_batch_size=1, max_batch_size=batch_size,
                         large_model=large_model, **extra)
        self.spec = spec

    def load_model(self) -> Deblurrer:
        return Deblurrer(self.spec)

    def get_metrics_namespace(self) -> str:
        return "ifan_tf.deblur.inference"
