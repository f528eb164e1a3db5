"""Predicting files and folders: plan input -> output paths safely, then deblur them one by one.

Rules (checked before any work starts):
- ``--input`` is an image file or a folder (searched recursively; hidden files are skipped).
- For a file, ``--output`` is the output file, or a folder (existing, or given with a trailing
  ``/``) that receives a file of the same name. For a folder, ``--output`` is a folder that
  mirrors the input's sub-folders and file names.
- An output never replaces an input (refused even with ``overwrite``); existing outputs are
  refused unless ``overwrite``. The output format follows the file suffix (same as the input for
  folders), with the input's bit depth, size and channel layout (``ifan_tf.inference.image_files``).
- Each output is written to a temporary name and renamed when complete.
"""

import dataclasses
import os
import time

from absl import logging
from tqdm import tqdm

from ifan_tf.image_io import ImageFileError, read_image_header
from ifan_tf.inference import image_files


@dataclasses.dataclass
class PredictionSummary:
    """What ``predict_files`` did: written outputs, failures ``[(input, message)]``, seconds taken."""

    written: list
    failed: list
    seconds: float


def _same_file(a, b):
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def list_images(folder, exclude=None):
    """Sorted image files under ``folder`` (recursive), skipping hidden entries and ``exclude``'s tree."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not (exclude and _inside(os.path.join(root, d), exclude)))
        found += [os.path.join(root, name) for name in sorted(files) if image_files.is_image_file(name)]
    return found


def plan_outputs(input_path, output_path, overwrite=False):
    """``[(input_file, output_file)]`` for ``--input``/``--output``; ValueError for unsafe or empty plans."""
    if not input_path or not output_path:
        raise ValueError("both --input and --output are required")
    if not os.path.exists(input_path):
        raise FileNotFoundError(f"{input_path}: no such file or folder")
    if os.path.isdir(input_path):
        if os.path.exists(output_path) and not os.path.isdir(output_path):
            raise ValueError(f"{output_path}: the input {input_path} is a folder, so the output must be a folder")
        if _same_file(input_path, output_path):
            raise ValueError(f"{output_path}: the output folder is the input folder; refusing to overwrite the inputs")
        inputs = list_images(input_path, exclude=output_path)
        if not inputs:
            raise ValueError(f"{input_path}: no image files ({', '.join(image_files.IMAGE_SUFFIXES)}) found")
        pairs = [(path, os.path.join(output_path, os.path.relpath(path, input_path))) for path in inputs]
    else:
        if not image_files.is_image_file(input_path):
            raise ValueError(f"{input_path}: not a supported image file ({', '.join(image_files.IMAGE_SUFFIXES)})")
        if os.path.isdir(output_path) or output_path.endswith(os.sep):
            output_file = os.path.join(output_path, os.path.basename(input_path))
        else:
            output_file = output_path
            if os.path.splitext(output_file)[1].lower() not in image_files.IMAGE_SUFFIXES:
                raise ValueError(f"{output_file}: unsupported output file type (use one of "
                                 f"{', '.join(image_files.IMAGE_SUFFIXES)}), or end a folder name with /")
        pairs = [(input_path, output_file)]
        inputs = [input_path]
    for source, target in pairs:
        clash = next((path for path in inputs if _same_file(path, target)), None)
        if clash is not None:
            raise ValueError(f"{target}: is an input file ({clash}); refusing to overwrite inputs")
    existing = [target for _, target in pairs if os.path.exists(target)]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise FileExistsError(f"{existing[0]}{more}: output exists (pass --overwrite to replace outputs)")
    return pairs


def predict_file(predictor, source, target, progress=None):
    """Deblurs one image file into ``target`` (same size, bit depth and channel layout)."""
    image = image_files.read(source)
    deblurred = predictor.deblur(image.rgb, progress=progress)
    image.rgb = None  # free the input before the output is quantised and encoded
    pixels = image_files.to_pixels(deblurred, image)
    del deblurred
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    image_files.write(target, pixels)


def _network_runs(predictor, path):
    try:
        header = read_image_header(path)
    except (ImageFileError, OSError, ValueError):
        return 1  # reported when the file is read
    return predictor.tile_count(header.height, header.width)


def predict_files(predictor, pairs, show_progress=True):
    """Deblurs every ``(input, output)`` pair with a tqdm progress bar counting network runs (tiles).

    A file that cannot be read or written is logged and skipped; the others go on.
    Returns a ``PredictionSummary``.
    """
    started = time.time()
    written, failed = [], []
    runs = [_network_runs(predictor, source) for source, _ in pairs]
    unit = "tile" if sum(runs) > len(pairs) else "image"
    with tqdm(total=sum(runs), unit=unit, disable=not show_progress, dynamic_ncols=True) as bar:
        for (source, target), expected in zip(pairs, runs):
            bar.set_postfix_str(os.path.basename(source))
            done_before = bar.n
            try:
                predict_file(predictor, source, target, progress=lambda: bar.update(1))
            except (ImageFileError, OSError, ValueError) as error:
                logging.error("%s: %s", source, error)
                failed.append((source, str(error)))
            else:
                written.append(target)
            bar.update(max(0, expected - (bar.n - done_before)))
    return PredictionSummary(written=written, failed=failed, seconds=time.time() - started)
