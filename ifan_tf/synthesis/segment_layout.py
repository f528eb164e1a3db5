"""Depth layouts whose object outlines follow the photograph's own boundaries.

`scene_layout.random_layout` cuts objects out with random blobs, so depth edges run across
uniform texture and real object edges stay at one depth. Here the sharp photograph is split into
regions (Felzenszwalb's graph-based segmentation, `skimage.segmentation.felzenszwalb`, with a
minimum region size relative to the image), and a few of the mid-sized regions become the
foreground objects: each is a surface in front of the background with a hard mask that is
exactly the region, so every depth discontinuity lies on an edge of the photograph.
The depth surfaces, focus and CoC are drawn as in `scene_layout.layout_from_masks`.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ifan_tf.synthesis import scene_layout

# Felzenszwalb settings for images in [0, 1]: the scale favours regions of object size; regions
# smaller than 1/MIN_SIZE_DIVISOR of the image are merged into their neighbours.
FELZENSZWALB_SCALE = 100.0
FELZENSZWALB_SIGMA = 0.8
MIN_SIZE_DIVISOR = 150
# Regions eligible as objects cover this fraction of the image.
OBJECT_AREA = (0.02, 0.5)


def segment_regions(image: np.ndarray) -> np.ndarray:
    """`[H, W] int` region labels 0..K-1 of `image` (`[H, W, 3] float32 in [0, 1]`)."""
    from skimage.segmentation import felzenszwalb

    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"segment_regions needs an [H, W, 3] image, got shape {image.shape}")
    height, width = image.shape[:2]
    return felzenszwalb(image, scale=FELZENSZWALB_SCALE, sigma=FELZENSZWALB_SIGMA,
                        min_size=max(1, height * width // MIN_SIZE_DIVISOR))


def object_masks(labels: np.ndarray, rng: np.random.Generator, num_objects: Optional[int] = None) -> list[np.ndarray]:
    """Masks (`[H, W] float32` of 0 and 1, far to near) of randomly chosen mid-sized regions.

    Args:
      labels: `[H, W] int` region labels (`segment_regions`).
      rng: random generator.
      num_objects: regions to use (default: 1 to 3 at random); fewer if fewer are eligible.
    """
    areas = np.bincount(labels.reshape(-1)) / labels.size
    eligible = np.flatnonzero((areas >= OBJECT_AREA[0]) & (areas <= OBJECT_AREA[1]))
    if num_objects is None:
        num_objects = int(rng.integers(1, 4))
    count = min(int(num_objects), eligible.size)
    chosen = rng.choice(eligible, size=count, replace=False) if count else []
    return [(labels == region).astype(np.float32) for region in chosen]


def segment_layout(sharp: np.ndarray, rng: np.random.Generator, max_coc: float, num_objects: Optional[int] = None,
                   focus: Optional[float] = None) -> scene_layout.SceneLayout:
    """A layout for `sharp` (`[H, W, 3] float32 in [0, 1]`) whose depth edges follow its regions.

    Args:
      sharp: the sharp image the layout is for.
      rng: random generator (the only source of randomness).
      max_coc: the largest |CoC| in the image is drawn in [0.35, 1] * max_coc.
      num_objects: foreground regions (default: 1 to 3).
      focus: nearness in focus (default: drawn, usually on a visible surface).
    """
    shape = sharp.shape[:2]
    background = scene_layout.plane(shape, rng.uniform(0.0, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(-0.2, 0.7))
    background += 0.08 * scene_layout.smooth_noise(shape, rng)
    masks = object_masks(segment_regions(sharp), rng, num_objects)
    return scene_layout.layout_from_masks(background, masks, rng, max_coc, focus)
