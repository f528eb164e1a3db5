"""Deblurring an image of any size with a loaded IFAN network, whole or in tiles.

``Predictor`` wraps a single-image IFAN network in one ``tf.function`` with a dynamic input
signature (``[1, None, None, 3]``), so images and tiles of any size run without retracing, and
picks between untiled prediction (reflect-pad to multiples of 8, run, crop) and tiled prediction
(``ifan_tf.inference.tiling.tiled_deblur``, the same TF implementation the exported SavedModel
runs) from a fixed tile size or a memory budget.

Runs on whatever device TensorFlow picks (a GPU when one is visible; set
``CUDA_VISIBLE_DEVICES=-1`` to force the CPU). ``precision="bfloat16"`` computes in bfloat16
with float32 weights (Keras ``mixed_bfloat16``): about twice as fast on CPUs with AVX512-BF16/AMX.
XLA (``jit_compile``) is not used: on CPU it is many times slower than TensorFlow's oneDNN kernels.
"""

from absl import logging
import numpy as np
import tensorflow as tf

from ifan_tf.inference.bounded import network_tile_runner
from ifan_tf.inference.memory import auto_tile_size
from ifan_tf.inference.padding import deblur_any_size, padded_size
from ifan_tf.inference.tiling import check_tile_arguments, tile_count, tiled_deblur
from ifan_tf.model.precision import INFERENCE_PRECISIONS, canonical_precision

DEFAULT_TILE_OVERLAP = 32


def check_single_image(config, source="the model"):
    """Raises ValueError for models export/predict cannot run (dual-pixel input, no IAC is fine)."""
    if config.dual_pixel_input:
        raise ValueError(f"{source} is a dual-pixel-input IFAN (it needs the left and right dual-pixel views, "
                         "not just an image); export and predict support single-image models only")


def load_network(model_dir, precision="float32"):
    """Loads the deblurring network of a model directory for inference at ``precision``."""
    from ifan_tf.weights import model_dir as model_dir_lib  # heavy import, only when loading from disk

    precision = canonical_precision(precision, INFERENCE_PRECISIONS, "--precision")
    network = model_dir_lib.load_network(model_dir, precision)
    check_single_image(network.config, f"{model_dir}")
    return network


class Predictor:
    """Deblurs ``[H, W, 3]`` float32 images in [0, 1] of any size with an IFAN network.

    Args:
      network: a built single-image ``IFAN`` model (any dtype policy).
      tile: tile size in pixels (multiple of 8, >= 16), or None for automatic.
      tile_overlap: minimum overlap of neighbouring tiles in pixels.
      memory_budget_gb: with ``tile=None``, tile only when the image would not fit this budget
        (``ifan_tf.inference.memory``); None = never tile automatically.

    The compute precision is the network's dtype policy (see ``from_model_dir``).
    """

    def __init__(self, network, tile=None, tile_overlap=DEFAULT_TILE_OVERLAP, memory_budget_gb=None):
        check_single_image(network.config)
        if tile is not None:
            check_tile_arguments(tile, tile_overlap)
        elif tile_overlap < 0:
            raise ValueError(f"tile overlap must be >= 0, got {tile_overlap}")
        self.network = network
        self.tile = tile
        self.tile_overlap = int(tile_overlap)
        self.memory_budget_gb = memory_budget_gb
        self.precision = "bfloat16" if network.dtype_policy.compute_dtype == "bfloat16" else "float32"
        self._run = tf.function(lambda images: deblur_any_size(network, images),
                                input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
        self._tiled_functions = {}  # tile size -> tf.function running the whole tiled loop as one graph
        self._progress = None

    @classmethod
    def from_model_dir(cls, model_dir, precision="float32", **kwargs):
        """A predictor for the network of ``model_dir`` computing in ``precision``."""
        return cls(load_network(model_dir, precision), **kwargs)

    def tile_size_for(self, height, width):
        """The tile size used for an ``height x width`` image, or None when it runs untiled."""
        if self.tile is not None:
            tile = self.tile
        elif self.memory_budget_gb is not None:
            tile = auto_tile_size(height, width, self.memory_budget_gb, self.precision, self.tile_overlap,
                                  self.network.config.width)
        else:
            return None
        if tile is None or padded_size(height) * padded_size(width) <= tile * tile:
            return None  # the padded image fits one tile's pixel budget: it runs whole
        return tile

    def tile_count(self, height, width):
        """How many network runs an ``height x width`` image takes (1 when untiled)."""
        tile = self.tile_size_for(height, width)
        return 1 if tile is None else tile_count(height, width, tile, self.tile_overlap)

    def run_whole(self, image):
        """Untiled prediction of ``[H, W, 3]`` float32 (any H, W >= 1) -> ``[H, W, 3]`` float32 in [0, 1]."""
        return self._run(tf.convert_to_tensor(np.asarray(image, np.float32)[None]))[0].numpy()

    def deblur(self, image, progress=None):
        """Deblurs ``image`` ``[H, W, 3]`` float32 in [0, 1] (any H, W >= 1).

        Args:
          image: the defocused image.
          progress: optional callable, called once per network run (tile) with no arguments.
        Returns:
          ``[H, W, 3]`` float32 in [0, 1], the same size as ``image``.
        """
        image = np.asarray(image, np.float32)
        if image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape[:2]:
            raise ValueError(f"expected an [H, W, 3] image with H, W >= 1, got shape {image.shape}")
        height, width = image.shape[:2]
        tile = self.tile_size_for(height, width)
        if tile is None:
            output = self.run_whole(image)
            if progress is not None:
                progress()
            return output
        logging.info("deblurring a %dx%d image in %d tiles of at most %dx%d pixels each (overlap %d)", height,
                     width, tile_count(height, width, tile, self.tile_overlap), tile, tile, self.tile_overlap)
        self._progress = progress
        try:
            output = self._tiled_function(tile)(tf.convert_to_tensor(image)).numpy()
        finally:
            self._progress = None
        return np.clip(output, 0.0, 1.0, out=output)

    def _report_tile(self):
        if self._progress is not None:
            self._progress()

    def _tiled_function(self, tile):
        # One graph for the whole loop: the runtime frees each tile's tensors as soon as they are used
        # (measured at 6000x4000 with 1344 tiles: 3.03 GB peak, vs >= 2.94 GB and still rising eagerly).
        if tile not in self._tiled_functions:
            run_tile = network_tile_runner(self.network)
            self._tiled_functions[tile] = tf.function(
                lambda image: tiled_deblur(run_tile, image, tile, self.tile_overlap, progress=self._report_tile),
                input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
        return self._tiled_functions[tile]
