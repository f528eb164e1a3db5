"""Fixtures for the data_prep tests: small DPDD-shaped trees made by the test."""
import numpy as np
import pytest

from ifan_tf.io import image_io

DPDD_VIEW_FOLDERS = {"c": "{split}_c/source", "target": "{split}_c/target", "l": "{split}_l/source",
                     "r": "{split}_r/source"}


@pytest.fixture
def make_dpdd_tree(tmp_path):
    """Writes a DPDD-shaped tree; returns (root, {(split, name): {view: pixels}})."""

    def make(splits=(("train", 3), ("test", 2)), bit_depth=8, height=24, width=32, lr_suffixes=True, seed=0,
             root_name="dpdd"):
        rng = np.random.default_rng(seed)
        root = tmp_path / root_name
        dtype = np.uint8 if bit_depth == 8 else np.uint16
        contents = {}
        for split, count in splits:
            for index in range(count):
                name = f"1P0A{index:04d}"
                views = {}
                for view, pattern in DPDD_VIEW_FOLDERS.items():
                    folder = root / pattern.format(split=split)
                    folder.mkdir(parents=True, exist_ok=True)
                    suffix = {"l": "_L", "r": "_R"}.get(view, "") if lr_suffixes else ""
                    pixels = rng.integers(0, 2 ** bit_depth, (height, width, 3), dtype=dtype)
                    image_io.write_image(folder / f"{name}{suffix}.png", pixels, bit_depth)
                    views[view] = pixels
                contents[(split, name)] = views
        return root, contents

    return make
