"""Test images for the serving tests (a uniquely named module: `conftest` names clash across folders)."""
import cv2
import numpy as np

from ifan_tf.io import image_io
from ifan_tf.model.config import ModelConfig

TINY = ModelConfig(width=8, num_iterations=3)


def png_bytes(pixels):
    """PNG bytes of RGB(A)/gray uint8/uint16 pixels."""
    return image_io.encode_image(pixels, ".png")


def random_pixels(shape, dtype=np.uint8, seed=0):
    """Smooth-ish random pixels (so JPEG and the network see image-like data)."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    image = cv2.GaussianBlur(rng.uniform(0, 1, shape).astype(np.float32), (0, 0), 1.5)
    image = image.reshape(shape)
    return np.clip(np.rint((image - image.min()) / (np.ptp(image) + 1e-6) * top), 0, top).astype(dtype)
