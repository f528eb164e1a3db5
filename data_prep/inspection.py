"""Inspecting every input image of a conversion, bodies included, before anything is written.

`inspect_scenes` checks each file with `image_io.verify_image_file` (readable regular file,
well-formed header, declared size within `image_io.decode_pixel_limit()` checked before the body
is read, body decoded to 8/16-bit pixels of the declared size, then dropped), in worker threads
that each hold one decoded image at a time, with a progress bar. It sorts what it finds into:

* bad images (`BadImage`): a file that the writer would refuse (unreadable, corrupt data, size
  above the limit, unsupported bit depth or channel layout), or a scene whose views differ in
  size or bit depth. Each concerns one scene, which a converter may skip (`--skip_bad_images`);
* problems of the data set as a whole (8- and 16-bit scenes mixed), never skipped.

The writer decodes every file a second time: keeping the decoded (or re-encoded) scenes from
this pass would need memory, or disk, for the whole data set, and writing anything before this
pass ends would break the promise that a refused conversion writes nothing. The cost is one
extra decode per image; `scene_files.load_scene` checks the second decode against the header
found here.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import pathlib
from typing import Mapping, Optional, Sequence

from tqdm import tqdm

from data_prep.scene_files import SceneFiles
from ifan_tf.data import integrity
from ifan_tf.io import image_io


@dataclasses.dataclass(frozen=True)
class BadImage:
    """A problem that makes one scene unconvertible.

    Attributes:
      split: split of the scene.
      scene: scene name.
      paths: the file at fault, or every file of the scene when its views disagree.
      reason: what is wrong, without the file name, e.g. "corrupt image data: ..." or
        "views differ in size: a.png 32x24, a.png 30x24".
    """

    split: str
    scene: str
    paths: tuple[pathlib.Path, ...]
    reason: str

    @property
    def message(self) -> str:
        """`split: /path/file.png: reason`, or `split: scene 'name' reason` for views that disagree."""
        if len(self.paths) == 1:
            return f"{self.split}: {self.paths[0]}: {self.reason}"
        return f"{self.split}: scene {self.scene!r} {self.reason}"

    def to_json(self, input_dir: os.PathLike) -> dict:
        """`{"split", "scene", "files" (relative to input_dir), "reason"}` for the data set summary."""
        return {"split": self.split, "scene": self.scene, "reason": self.reason,
                "files": [os.path.relpath(path, input_dir) for path in self.paths]}


@dataclasses.dataclass
class Inspection:
    """What `inspect_scenes` found.

    Attributes:
      headers: (split, scene name) -> the header shared by the views of each good scene.
      bad: the bad images, in the order of the scenes and their views.
      problems: problems of the whole data set (not tied to one scene).
    """

    headers: dict[tuple[str, str], image_io.ImageHeader]
    bad: list[BadImage]
    problems: list[str]

    @property
    def bad_scenes(self) -> set[tuple[str, str]]:
        """(split, scene name) of every scene with a bad image."""
        return {(bad.split, bad.scene) for bad in self.bad}


def _png_body_damage(path: pathlib.Path) -> Optional[str]:
    """What is broken in the body of a PNG whose header reads fine (chunk CRCs, zlib data, row
    filters: `integrity.check_png_body`), or None (not such a PNG, or no damage found there)."""
    try:
        data = image_io.read_file_bytes(path)
        image_io.png_header(data, str(path))
    except ValueError:  # unreadable, not a PNG, or a broken header: the first error says it already
        return None
    try:
        integrity.check_png_body(data, str(path))
    except ValueError as damage:
        return str(damage).removeprefix(f"{path}: ")
    return None


def inspect_file(path: pathlib.Path) -> image_io.ImageHeader:
    """The header of the decoded image (`image_io.verify_image_file`), held in memory alone.

    Raises `image_io.ImageFileError` naming the file; when a PNG with a readable header does not
    decode, the message says what in its body is corrupt.
    """
    try:
        return image_io.verify_image_file(path)
    except image_io.ImageTooLargeError:
        raise
    except image_io.ImageFileError:
        damage = _png_body_damage(path)
        if damage is None:
            raise
        raise image_io.ImageFileError(f"{path}: corrupt image data: {damage}") from None


def _inspect_all(paths: Sequence[pathlib.Path], num_workers: int, show_progress: bool
                 ) -> list[tuple[Optional[image_io.ImageHeader], Optional[str]]]:
    """(header, None) or (None, reason without the file name) per path, in order."""

    def inspect(path):
        try:
            return inspect_file(path), None
        except image_io.ImageFileError as error:
            return None, str(error).removeprefix(f"{path}: ")

    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, num_workers)) as executor, \
            tqdm(total=len(paths), desc="inspecting", unit="image", disable=not show_progress) as progress:
        for result in executor.map(inspect, paths):
            results.append(result)
            progress.update()
    return results


def inspect_scenes(splits: Mapping[str, Sequence[SceneFiles]], num_workers: int = 4,
                   show_progress: bool = True) -> Inspection:
    """Decodes every file of every scene (see module docstring); never raises for a bad file.

    Args:
      splits: split name -> scenes.
      num_workers: threads decoding files (each holds one decoded image at a time).
      show_progress: show a tqdm bar (on stderr) counting the images inspected.
    """
    jobs = [(split, scene, view, path) for split, scenes in splits.items() for scene in scenes
            for view, path in scene.paths.items()]
    results = _inspect_all([job[3] for job in jobs], num_workers, show_progress)
    bad = []
    by_scene = collections.defaultdict(dict)
    for (split, scene, view, path), (header, reason) in zip(jobs, results):
        if reason is not None:
            bad.append(BadImage(split, scene.name, (path,), reason))
        else:
            by_scene[(split, scene.name)][view] = (header, path)
    headers = {}
    depth_scenes = collections.defaultdict(list)
    for split, scenes in splits.items():
        for scene in scenes:
            found = by_scene.get((split, scene.name), {})
            if len(found) != len(scene.paths):  # a bad file, reported above
                continue
            paths = tuple(path for _, path in found.values())
            sizes = {view: (h.width, h.height) for view, (h, _) in found.items()}
            depths = {view: h.bit_depth for view, (h, _) in found.items()}
            if len(set(sizes.values())) > 1:
                listing = ", ".join(f"{found[v][1].name} {w}x{h}" for v, (w, h) in sizes.items())
                bad.append(BadImage(split, scene.name, paths, f"views differ in size: {listing}"))
                continue
            if len(set(depths.values())) > 1:
                listing = ", ".join(f"{found[v][1].name} {d}-bit" for v, d in depths.items())
                bad.append(BadImage(split, scene.name, paths, f"views differ in bit depth: {listing}"))
                continue
            header = next(iter(found.values()))[0]
            headers[(split, scene.name)] = header
            depth_scenes[header.bit_depth].append(f"{split}/{scene.name}")
    problems = []
    if len(depth_scenes) > 1:
        listing = "; ".join(f"{depth}-bit: {len(names)} scenes (e.g. {', '.join(names[:3])})"
                            for depth, names in sorted(depth_scenes.items()))
        problems.append(f"the data set mixes bit depths ({listing}); convert 8- and 16-bit copies separately")
    order = {(split, scene.name): index for index, (split, scene, _, _) in enumerate(jobs)}
    bad.sort(key=lambda item: order[(item.split, item.scene)])  # stable: a scene's files stay in view order
    return Inspection(headers, bad, problems)
