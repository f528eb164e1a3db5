"""Running a LiteRT export on a desktop: the interpreter as a tile function, and images of any size.

``LiteRTTileRunner`` loads ``FILE.tflite`` (+ ``FILE.json``) into the LiteRT interpreter (2 threads
and the XNNPACK CPU delegate by default, as on a phone's CPU) and exposes
``run_tile([1, t, t, 3] float32) -> [1, t, t, 3] float32``.

``deblur_with_fixed_tiles`` is the only glue to the tiling: it feeds any image through the same
tile planner and blending as the SavedModel path (``ifan_tf.inference.tiling.tiled_deblur`` with
``fixed_tile=True``: an image smaller than the model's fixed input is reflect-padded up to it).
``LiteRTPredictor`` gives ``ifan_tf.inference.folder.predict_files`` what it needs.
"""

from absl import logging
import numpy as np
import tensorflow as tf

from ifan_tf.inference.tiling import tile_count, tiled_deblur
from ifan_tf.litert import model_file
from ifan_tf.litert.model_file import LiteRTModelError

DEFAULT_NUM_THREADS = 2


def deblur_with_fixed_tiles(run_tile, image, tile, overlap, progress=None):
    """Deblurs ``image`` ``[H, W, 3]`` float32 in [0, 1] (any H, W >= 1) with a fixed-size tile model.

    The one tiling implementation (``ifan_tf.inference.tiling.tiled_deblur`` with ``fixed_tile``)
    drives ``run_tile`` through ``tf.numpy_function``, so the tile placement (evenly spaced fixed
    tiles), the reflect padding and the blending are those of the SavedModel and the predict CLI.

    Args:
      run_tile: ``[1, tile, tile, 3] float32 ndarray -> [1, tile, tile, 3] float32 ndarray`` (e.g. a
        LiteRT interpreter).
      image: the image.
      tile: the model's tile size (multiple of 8).
      overlap: minimum overlap of neighbouring tiles in pixels.
      progress: optional callable, called once per tile.
    Returns:
      ``[H, W, 3]`` float32 ndarray in [0, 1].
    """
    def run(tile_batch):  # [1, tile, tile, 3] float32 tensor
        result = tf.numpy_function(lambda batch: np.asarray(run_tile(np.ascontiguousarray(batch)), np.float32),
                                   [tile_batch], tf.float32, stateful=True)
        return tf.ensure_shape(result, [1, tile, tile, 3])

    output = tiled_deblur(run, np.asarray(image, np.float32), tile, overlap, fixed_tile=True, progress=progress)
    return np.clip(output.numpy(), 0.0, 1.0)


class LiteRTTileRunner:
    """A ``.tflite`` export in the LiteRT interpreter.

    Args:
      model_path: the ``.tflite`` file; its JSON (``model_file.sidecar_path``) must be beside it.
      num_threads: interpreter threads.
      use_xnnpack: apply LiteRT's default XNNPACK CPU delegate (False: builtin kernels only).

    Attributes: ``tile``, ``tile_overlap`` (from the JSON), ``description`` (the JSON as a dict).
    """

    def __init__(self, model_path, num_threads=DEFAULT_NUM_THREADS, use_xnnpack=True):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self.model_path = str(model_path)
        data = model_file.read_model_bytes(self.model_path)
        self.description = model_file.read_sidecar(self.model_path, data)
        resolver = OpResolverType.AUTO if use_xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self._interpreter = Interpreter(model_content=data, num_threads=num_threads,
                                            experimental_op_resolver_type=resolver)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise LiteRTModelError(f"{self.model_path}: the LiteRT interpreter cannot load it ({error})") from error
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        self.tile = self.description["tile"]
        self.tile_overlap = self.description["tile_overlap"]
        expected = [1, self.tile, self.tile, 3]
        for kind, details in (("input", inputs), ("output", outputs)):
            shapes = [[int(v) for v in d["shape"]] for d in details]
            if len(details) != 1 or shapes[0] != expected or details[0]["dtype"] != np.float32:
                raise LiteRTModelError(
                    f"{self.model_path}: expected one float32 {kind} of shape {expected} (the tile size in "
                    f"{model_file.sidecar_path(self.model_path)}), got "
                    f"{[(s, np.dtype(d['dtype']).name) for s, d in zip(shapes, details)]}")
        self._input_index = inputs[0]["index"]
        self._output_index = outputs[0]["index"]
        logging.info("loaded LiteRT model %s (tile %d, %s, %d threads)", self.model_path, self.tile,
                     self.description.get("quantize"), num_threads)

    def run_tile(self, tile_batch):
        """``[1, tile, tile, 3]`` float32 in [0, 1] -> deblurred ``[1, tile, tile, 3]`` float32 (a new array)."""
        tile_batch = np.ascontiguousarray(tile_batch, np.float32)
        if tile_batch.shape != (1, self.tile, self.tile, 3):
            raise ValueError(f"{self.model_path}: takes [1, {self.tile}, {self.tile}, 3] tiles, got {tile_batch.shape}")
        self._interpreter.set_tensor(self._input_index, tile_batch)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output_index).copy()


class LiteRTPredictor:
    """Deblurs ``[H, W, 3]`` float32 images of any size with a LiteRT tile model (``predict_files`` API).

    Args:
      runner: a ``LiteRTTileRunner`` (or any object with ``run_tile``, ``tile`` and ``tile_overlap``).
      tile_overlap: overlap in pixels; None = the one recorded in the model's JSON.
    """

    memory_budget_gb = None  # a fixed tile: memory does not grow with the image beyond its buffers

    def __init__(self, runner, tile_overlap=None):
        self.runner = runner
        self.tile = runner.tile
        self.tile_overlap = runner.tile_overlap if tile_overlap is None else int(tile_overlap)
        if not 0 <= self.tile_overlap <= self.tile - 8:
            raise ValueError(f"tile overlap must be between 0 and tile - 8 = {self.tile - 8}, got {self.tile_overlap}")

    def tile_count(self, height, width):
        """How many tiles (interpreter runs) an ``height x width`` image takes."""
        return tile_count(height, width, self.tile, self.tile_overlap, fixed_tile=True)

    def deblur(self, image, progress=None):
        """``[H, W, 3]`` float32 in [0, 1] (H, W >= 1) -> deblurred ``[H, W, 3]`` float32 in [0, 1]."""
        image = np.asarray(image, np.float32)
        if image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape[:2]:
            raise ValueError(f"expected an [H, W, 3] image with H, W >= 1, got shape {image.shape}")
        return deblur_with_fixed_tiles(self.runner.run_tile, image, self.tile, self.tile_overlap, progress)
