"""Test helpers shared by the predict tests (Keras model directories and LiteRT models)."""

import types

import cv2
import numpy as np


def smooth_pixels(shape, dtype=np.uint8, seed=0):
    """A smooth random image ``shape`` (``[H, W]`` or ``[H, W, C]``) at the full range of ``dtype``."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.uniform(0, 1, shape).astype(np.float32), (0, 0), 1.2).reshape(shape)
    return np.rint(image * np.iinfo(dtype).max).astype(dtype)


def predict_flags(source, target, **values):
    """The flags ``ifan_tf.modes.predict.run`` reads, with the CLI's defaults unless given."""
    flags = dict(model=None, model_dir=None, input=str(source), output=str(target), precision="float32", tile=None,
                 tile_overlap=32, memory_budget_gb=2.0, num_threads=2, overwrite=False)
    flags.update(values)
    return types.SimpleNamespace(**flags)
