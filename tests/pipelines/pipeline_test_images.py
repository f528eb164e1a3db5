"""Test data of the pipeline tests: a tiny model (model directory + SavedModel) and a mixed photo folder."""
import pathlib
import types

import numpy as np

from ifan_tf.io import image_io
from ifan_tf.model.config import ModelConfig

from prediction_helpers import smooth_pixels

TINY = ModelConfig(width=8, num_iterations=2)
MAX_PIXELS = 3000  # the export's limit: HUGE (56x64 = 3584 pixels) is over it, the others are not
TILE, TILE_OVERLAP = 32, 8  # small tiles, so that most images run through the tile plan
CORRUPT, HUGE = "sub/corrupt.png", "huge.png"


def make_model(folder):
    """A tiny random-weight IFAN saved as a model directory and exported; ``(model_dir, export_dir)``."""
    import keras
    import tensorflow as tf

    from ifan_tf.model.ifan import build_ifan
    from ifan_tf.serving.export import export_network
    from ifan_tf.serving.limits import ServingLimits
    from ifan_tf.weights.model_dir import save_model_dir

    keras.utils.set_random_seed(11)
    network = build_ifan(TINY)
    network(tf.zeros([1, 16, 16, 3]))
    folder = pathlib.Path(folder)
    save_model_dir(folder / "model", network)
    export_network(network, folder / "export", limits=ServingLimits(max_pixels=MAX_PIXELS, max_batch=4, tile=TILE,
                                                                     tile_overlap=TILE_OVERLAP),
                   warmup_requests=False)
    return types.SimpleNamespace(model_dir=str(folder / "model"), export_dir=str(folder / "export"))


# relative name -> (height, width, channels or None for gray, dtype)
GOOD_IMAGES = {
    "a.png": (24, 32, 3, np.uint8), "b16.png": (40, 56, 3, np.uint16), "c.jpg": (33, 47, 3, np.uint8),
    "d.jpeg": (40, 40, 3, np.uint8), "e.bmp": (28, 36, 3, np.uint8), "f16.tif": (32, 40, 3, np.uint16),
    "gray.png": (30, 44, None, np.uint8), "gray16.png": (36, 28, None, np.uint16),
    "rgba.png": (24, 40, 4, np.uint8), "rgba16.png": (40, 32, 4, np.uint16),
    "sub/g.png": (24, 32, 3, np.uint8), "sub/h.jpg": (40, 56, 3, np.uint8), "sub/i16.png": (33, 47, 3, np.uint16),
    "sub/j.png": (24, 32, 3, np.uint8), "sub/k.tiff": (40, 40, 3, np.uint8),
    "sub/deeper/l.png": (56, 40, 3, np.uint8), "sub/deeper/m.jpg": (24, 32, 3, np.uint8),
    "sub/deeper/n16.png": (24, 32, 3, np.uint16),
}


def make_photo_folder(folder):
    """The folder of ``GOOD_IMAGES``, one corrupt PNG, one PNG over ``MAX_PIXELS``, and files that are no inputs."""
    folder = pathlib.Path(folder)
    for seed, (name, (height, width, channels, dtype)) in enumerate(sorted(GOOD_IMAGES.items())):
        shape = (height, width) if channels is None else (height, width, channels)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        image_io.write_pixels(folder / name, smooth_pixels(shape, dtype, seed))
    whole = image_io.encode_image(smooth_pixels((24, 32, 3), np.uint8, 99), ".png")
    (folder / CORRUPT).write_bytes(whole[:len(whole) // 2])  # a truncated PNG
    image_io.write_pixels(folder / HUGE, smooth_pixels((56, 64, 3), np.uint8, 98))
    (folder / ".hidden.png").write_bytes(whole)
    (folder / "notes.txt").write_text("not an image")
    return folder
