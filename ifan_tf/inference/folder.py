"""Predicting files and folders: plan input -> output paths safely, then deblur them one by one.

Rules (checked before any work starts):
- ``--input`` is an image file or a folder (searched recursively; hidden files are skipped).
- For a file, ``--output`` is the output file, or a folder (existing, or given with a trailing
  ``/``) that receives a file of the same name. For a folder, ``--output`` is a folder that
  mirrors the input's sub-folders and file names.
- An output never replaces an input (refused even with ``overwrite``); existing outputs are
  refused unless ``overwrite``. The output format follows the file suffix (same as the input for
  folders), with the input's bit depth, size and channel layout (``ifan_tf.io.image_io``).
- Each output is written to a temporary name and renamed when complete.

Planning reads no pixels: it lists names, stats each input and output once, and reads at most
the header of each image (for the progress bar), so a folder of 10,000 images is planned in
seconds. Then each file is handled on its own: one that is not a regular file (a FIFO, a link to
a device), too large, unreadable, corrupt, or too big for the memory budget is reported and
skipped, whatever went wrong, and the others go on (``PredictionSummary.failed``).
"""

import dataclasses
import os
import sys
import time

from absl import logging
from tqdm import tqdm

from ifan_tf.inference import memory
from ifan_tf.io import image_io
from ifan_tf.io.image_io import IMAGE_SUFFIXES, ImageFileError, ImageTooLargeError


@dataclasses.dataclass
class PredictionSummary:
    """What ``predict_files`` did: written outputs, failures ``[(input, message)]``, seconds taken."""

    written: list
    failed: list
    seconds: float


def _file_identity(path):
    """``(device, inode)`` of ``path`` (symlinks followed), or None when it does not exist."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _same_file(a, b):
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    identity = _file_identity(a)
    return identity is not None and identity == _file_identity(b)


def _inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def list_images(folder, exclude=None):
    """Sorted image files under ``folder`` (recursive), skipping hidden entries and ``exclude``'s tree.

    Only names are looked at (directories named like images are folders, not files); whether each
    file is a regular, readable image is found out when it is predicted.
    """
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not (exclude and _inside(os.path.join(root, d), exclude)))
        found += [os.path.join(root, name) for name in sorted(files) if image_io.is_image_file(name)]
    return found


def _check_no_input_is_overwritten(pairs, inputs):
    """Refuses a plan whose output is one of the inputs: one ``stat`` per input and per existing output."""
    identities = {}
    for path in inputs:
        identity = _file_identity(path)
        if identity is not None:
            identities.setdefault(identity, path)
    for _, target in pairs:
        clash = identities.get(_file_identity(target))
        if clash is not None:
            raise ValueError(f"{target}: is an input file ({clash}); refusing to overwrite inputs")


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
            raise ValueError(f"{input_path}: no image files ({', '.join(IMAGE_SUFFIXES)}) found")
        pairs = [(path, os.path.join(output_path, os.path.relpath(path, input_path))) for path in inputs]
    else:
        if not image_io.is_image_file(input_path):
            raise ValueError(f"{input_path}: not a supported image file ({', '.join(IMAGE_SUFFIXES)})")
        if os.path.isdir(output_path) or output_path.endswith(os.sep):
            output_file = os.path.join(output_path, os.path.basename(input_path))
        else:
            output_file = output_path
            if os.path.splitext(output_file)[1].lower() not in IMAGE_SUFFIXES:
                raise ValueError(f"{output_file}: unsupported output file type (use one of "
                                 f"{', '.join(IMAGE_SUFFIXES)}), or end a folder name with /")
        pairs = [(input_path, output_file)]
        inputs = [input_path]
    _check_no_input_is_overwritten(pairs, inputs)
    existing = [target for _, target in pairs if os.path.lexists(target)]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise FileExistsError(f"{existing[0]}{more}: output exists (pass --overwrite to replace outputs)")
    return pairs


def check_image_size(predictor, source, height, width):
    """Raises ``ImageTooLargeError`` naming ``source`` when an ``height x width`` image cannot be predicted.

    Two limits, both checked from the header before any pixel is decoded: the decoder's pixel
    limit (``image_io.decode_pixel_limit``), and, when the tile size is chosen automatically, the
    predictor's memory budget: the whole input and output stay in memory even when the network
    runs in tiles, so an image whose estimate exceeds the budget even with the smallest tiles is
    refused, with a message suggesting ``--tile`` (which bypasses the budget) or a larger budget.
    """
    limit = image_io.decode_pixel_limit()
    megapixels = height * width / 1e6
    if height * width > limit:
        raise ImageTooLargeError(f"{source}: {width}x{height} pixels ({megapixels:.0f} Mpx) is more than the "
                                 f"{limit / 1e6:.0f} Mpx that can be decoded (OPENCV_IO_MAX_IMAGE_PIXELS)",
                                 height, width, limit)
    budget_gb = predictor.memory_budget_gb
    if predictor.tile is not None or budget_gb is None:
        return
    tile = predictor.tile_size_for(height, width)
    needed = memory.estimated_peak_bytes(height, width, tile, predictor.precision, predictor.network.config.width)
    if needed > budget_gb * memory.GB:
        suggestion = tile or memory.MIN_TILE
        raise ImageTooLargeError(
            f"{source}: a {width}x{height} image ({megapixels:.1f} Mpx) needs about {needed / memory.GB:.1f} GB "
            f"even in {suggestion}-pixel tiles, more than --memory_budget_gb={budget_gb:g}; pass --tile={suggestion} "
            "to deblur it in tiles anyway, or raise --memory_budget_gb", height, width, None)


def predict_file(predictor, source, target, progress=None):
    """Deblurs one image file into ``target`` (same size, bit depth and channel layout).

    The file is read with a bounded read after checking it is a regular file; its declared size
    is checked (``check_image_size``) before decoding.
    """
    data = image_io.read_file_bytes(source)
    header = image_io.header_from_bytes(data, str(source))
    if header is not None:
        check_image_size(predictor, source, header.height, header.width)
    image = image_io.decode_with_layout(data, str(source))
    del data
    if header is None:  # a format without a header parser (TIFF): checked once decoded
        check_image_size(predictor, source, *image.rgb.shape[:2])
    deblurred = predictor.deblur(image.rgb, progress=progress)
    image.rgb = None  # free the input before the output is quantised and encoded
    pixels = image_io.to_pixels(deblurred, image)
    del deblurred
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    image_io.write_pixels(target, pixels)


def plan_network_runs(predictor, sources):
    """How many network runs (tiles) each source takes, from headers only (never decodes; 1 if unknown)."""
    runs = []
    for source in sources:
        try:
            header = image_io.peek_image_header(source)
            runs.append(1 if header is None else predictor.tile_count(header.height, header.width))
        except Exception:  # noqa: BLE001 - reported when the file itself is predicted
            runs.append(1)
    return runs


def predict_files(predictor, pairs, show_progress=True):
    """Deblurs every ``(input, output)`` pair with a tqdm progress bar counting network runs (tiles).

    A file that cannot be read, decoded, predicted or written is logged and skipped, whatever the
    error; the others go on. Returns a ``PredictionSummary``.
    """
    started = time.time()
    written, failed = [], []
    runs = plan_network_runs(predictor, [source for source, _ in pairs])
    unit = "tile" if sum(runs) > len(pairs) else "image"
    with tqdm(total=sum(runs), unit=unit, disable=not show_progress, dynamic_ncols=True) as bar:
        for (source, target), expected in zip(pairs, runs):
            bar.set_postfix_str(os.path.basename(source))
            done_before = bar.n
            try:
                predict_file(predictor, source, target, progress=lambda: bar.update(1))
            except Exception as error:  # noqa: BLE001 - one bad file must not stop the others
                message = str(error) if isinstance(error, (ImageFileError, OSError, ValueError)) \
                    else f"{type(error).__name__}: {error}"
                logging.error("%s: %s", source, message)
                failed.append((source, message))
            else:
                written.append(target)
            bar.update(max(0, expected - (bar.n - done_before)))
    return PredictionSummary(written=written, failed=failed, seconds=time.time() - started)


def report_summary(summary, total, what, output, stream=None):
    """Prints the end of a predict run: what was written, then each skipped file; returns the exit status.

    ``what`` describes the model (e.g. ``"float32"``); the status is 1 when any file failed, else 0.
    """
    stream = sys.stderr if stream is None else stream
    print(f"deblurred {len(summary.written)} of {total} images in {summary.seconds:.1f} s ({what}) -> {output}")
    if summary.failed:
        print(f"{len(summary.failed)} of {total} images failed and were skipped:", file=stream)
    for source, message in summary.failed:
        print(f"failed: {message}" if message.startswith(str(source)) else f"failed: {source}: {message}",
              file=stream)
    return 1 if summary.failed else 0
