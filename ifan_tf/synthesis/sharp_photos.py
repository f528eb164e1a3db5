"""Sharp source photographs for the synthetic generator: skimage's bundled photos or a folder.

`skimage.data` ships real colour photographs that need no download; they are the default
source (`DEFAULT_PHOTOS`). Any folder of images can be used instead (`folder_photos`).
`sample_sharp_image` cuts a randomly placed, randomly flipped and rescaled view of the requested
size out of a photo.
"""
from __future__ import annotations

import functools
import os
import pathlib
from typing import Optional, Sequence

import cv2
import numpy as np

from ifan_tf.io import image_io

# Colour photographs bundled with scikit-image (no download needed).
DEFAULT_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
                  "retina", "motorcycle")
# Further bundled images that may be selected by name (gray ones are replicated to RGB).
EXTRA_PHOTOS = ("colorwheel", "camera", "moon", "coins", "grass", "gravel", "brick", "clock")


@functools.lru_cache(maxsize=None)
def load_skimage_photo(name: str) -> np.ndarray:
    """A bundled photograph as `[H, W, 3] uint8` RGB (read-only; cached)."""
    import skimage.data

    if name not in DEFAULT_PHOTOS + EXTRA_PHOTOS:
        raise ValueError(f"unknown skimage photo {name!r}; choose from {DEFAULT_PHOTOS + EXTRA_PHOTOS}")
    image = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)
    image.setflags(write=False)
    return image


def folder_photos(source_dir: os.PathLike) -> dict[str, pathlib.Path]:
    """Images under `source_dir` (recursively), keyed by their path relative to it, sorted."""
    source_dir = pathlib.Path(source_dir)
    if not source_dir.is_dir():
        raise FileNotFoundError(f"{source_dir}: no such folder")
    photos = {}
    for path in sorted(source_dir.rglob("*")):
        if path.is_file() and path.suffix.lower() in image_io.IMAGE_SUFFIXES and not path.name.startswith("."):
            photos[str(path.relative_to(source_dir).with_suffix("")).replace(os.sep, "_")] = path
    if not photos:
        raise FileNotFoundError(f"{source_dir}: no images found (suffixes {image_io.IMAGE_SUFFIXES})")
    return photos


class PhotoSource:
    """Named sharp photos from skimage (default) or a folder, loaded lazily as float RGB."""

    def __init__(self, source_dir: Optional[os.PathLike] = None):
        self.source_dir = None if source_dir is None else pathlib.Path(source_dir)
        self._paths = folder_photos(source_dir) if source_dir is not None else None
        self._cache: dict[str, np.ndarray] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """Names selectable by default: the folder's images, or `DEFAULT_PHOTOS`."""
        return tuple(self._paths) if self._paths is not None else DEFAULT_PHOTOS

    def check(self, names: Sequence[str]) -> None:
        known = set(self._paths) if self._paths is not None else set(DEFAULT_PHOTOS + EXTRA_PHOTOS)
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"unknown photos {unknown}; available: {sorted(known)}")

    def fingerprint(self) -> list:
        """JSON-able description of the source (for resuming interrupted runs)."""
        if self._paths is None:
            return ["skimage"]
        return [[name, path.stat().st_size, path.stat().st_mtime_ns] for name, path in self._paths.items()]

    def load(self, name: str) -> np.ndarray:
        """`[H, W, 3] float32 in [0, 1]` RGB."""
        if name not in self._cache:
            if self._paths is None:
                pixels, bit_depth = load_skimage_photo(name), 8
            else:
                if name not in self._paths:
                    raise ValueError(f"unknown photo {name!r} in {self.source_dir}")
                pixels, bit_depth = image_io.read_pixels(self._paths[name])
            self._cache[name] = pixels.astype(np.float32) / image_io.max_value(bit_depth)
        return self._cache[name]


def sample_sharp_image(photo: np.ndarray, rng: np.random.Generator,
                       size: Optional[tuple[int, int]] = None, multiple: int = 8) -> np.ndarray:
    """A random view of a photo: `[H, W, 3] float32 in [0, 1]`.

    With `size=(H, W)`: a region of the photo with that aspect ratio, covering a random 67-100 %
    of the largest such region, at a random place, resized to (H, W) (area interpolation when
    shrinking, cubic when enlarging) and flipped left-right with probability 1/2.
    Without `size`: the whole photo cut to a multiple of `multiple` on each side, randomly flipped.
    """
    photo_h, photo_w = photo.shape[:2]
    if size is None:
        height, width = photo_h // multiple * multiple, photo_w // multiple * multiple
        if height == 0 or width == 0:
            raise ValueError(f"photo of {photo_w}x{photo_h} is smaller than {multiple} pixels")
        top, left = int(rng.integers(0, photo_h - height + 1)), int(rng.integers(0, photo_w - width + 1))
        image = photo[top:top + height, left:left + width]
    else:
        height, width = size
        largest = min(photo_h / height, photo_w / width)  # photo pixels per output pixel, whole fit
        ratio = largest * rng.uniform(0.67, 1.0)
        region_h = min(photo_h, max(1, int(round(height * ratio))))
        region_w = min(photo_w, max(1, int(round(width * ratio))))
        top = int(rng.integers(0, photo_h - region_h + 1))
        left = int(rng.integers(0, photo_w - region_w + 1))
        region = np.ascontiguousarray(photo[top:top + region_h, left:left + region_w])
        interpolation = cv2.INTER_AREA if ratio >= 1.0 else cv2.INTER_CUBIC
        image = np.clip(cv2.resize(region, (width, height), interpolation=interpolation), 0.0, 1.0)
    if rng.uniform() < 0.5:
        image = image[:, ::-1]
    return np.ascontiguousarray(image, dtype=np.float32)

