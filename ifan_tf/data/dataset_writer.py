"""Writing a converted data set: sharded TFRecords per split plus a JSON summary, safely.

Layout of an output folder:
  <split>-00000-of-000NN.tfrecord ...   records in the `ifan_tf.data.schema` format
  dataset_summary.json                   counts, sizes, bit depth, views, per-shard checksums

Guarantees:
* every shard is written under a temporary name and renamed when complete, so a final shard
  name always holds a complete shard;
* a complete output (one with a summary) is never replaced without `overwrite=True`, nor are
  shards from an unknown origin;
* an interrupted run leaves a progress marker recording a fingerprint of its inputs and
  settings; rerunning with the same inputs keeps the shards already completed and writes the
  rest, and since writing is deterministic (fixed order, fixed encoding, no timestamps) the
  result is byte-identical to an uninterrupted run.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import pathlib
from typing import Callable, Iterator, Optional, Sequence

import tensorflow as tf
from absl import logging
from tqdm import tqdm

from ifan_tf.data import schema
from ifan_tf.io.atomic_write import write_json_atomic

SUMMARY_FILE = "dataset_summary.json"
PROGRESS_FILE = ".conversion_in_progress.json"
SHARD_GLOB = "*-of-*.tfrecord"
# Temporary files of this module: shards being written and atomically written JSON files.
TEMP_GLOBS = (".*.tfrecord.*.tmp", f".{SUMMARY_FILE}.*.tmp", f".{PROGRESS_FILE}.*.tmp")


class OutputExistsError(RuntimeError):
    """The output folder already holds a data set and overwriting was not asked for."""


def shard_file_name(split: str, index: int, num_shards: int) -> str:
    """`<split>-00000-of-00004.tfrecord`."""
    return f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"


def split_name_problem(split: str) -> Optional[str]:
    """Why `split` cannot name a split's shards (empty, or holding '/' or '-'), or None if it can."""
    if not split or "/" in split or "-" in split:
        return f"split name must be non-empty without '/' or '-', got {split!r}"
    return None


def shard_ranges(num_examples: int, examples_per_shard: int) -> list[tuple[int, int]]:
    """Consecutive `[start, end)` example ranges of near-equal size, at most `examples_per_shard` each."""
    if examples_per_shard < 1:
        raise ValueError(f"examples_per_shard must be positive, got {examples_per_shard}")
    num_shards = max(1, -(-num_examples // examples_per_shard))
    bounds = [round(i * num_examples / num_shards) for i in range(num_shards + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def file_sha256(path: os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_of(settings: dict) -> str:
    """Stable hash of JSON-serialisable conversion settings (inputs, options)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


@dataclasses.dataclass
class _SplitStats:
    names: list = dataclasses.field(default_factory=list)
    sizes: dict = dataclasses.field(default_factory=dict)
    bit_depths: set = dataclasses.field(default_factory=set)
    views: set = dataclasses.field(default_factory=set)

    def add(self, encoded: schema.EncodedScene) -> None:
        self.names.append(encoded.name)
        key = f"{encoded.width}x{encoded.height}"
        self.sizes[key] = self.sizes.get(key, 0) + 1
        self.bit_depths.add(encoded.bit_depth)
        self.views.update(encoded.views)


def _in_order(producers: Sequence[Callable[[], schema.EncodedScene]], executor, window: int
              ) -> Iterator[schema.EncodedScene]:
    """Runs producers on the executor, at most `window` ahead, yielding results in order."""
    pending = []
    next_index = 0
    while next_index < len(producers) or pending:
        while next_index < len(producers) and len(pending) < window:
            pending.append(executor.submit(producers[next_index]))
            next_index += 1
        yield pending.pop(0).result()


class DatasetWriter:
    """Writes the splits of one data set into `output_dir` (see module docstring).

    Usage: `writer = DatasetWriter(dir, settings, overwrite)`, then `writer.write_split(...)` per
    split, then `writer.finish(extra)` which writes the summary and returns it.
    """

    def __init__(self, output_dir: os.PathLike, settings: dict, overwrite: bool = False):
        self.output_dir = pathlib.Path(output_dir)
        self.fingerprint = fingerprint_of(settings)
        self.resuming = False
        self.splits: dict[str, dict] = {}
        self._prepare(overwrite)

    def _our_files(self) -> list[pathlib.Path]:
        patterns = (SHARD_GLOB, SUMMARY_FILE, PROGRESS_FILE) + TEMP_GLOBS
        found = set()
        for pattern in patterns:
            found.update(self.output_dir.glob(pattern))
        return sorted(found)

    def _prepare(self, overwrite: bool) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        summary = self.output_dir / SUMMARY_FILE
        marker = self.output_dir / PROGRESS_FILE
        shards = sorted(self.output_dir.glob(SHARD_GLOB))
        same_interrupted_run = False
        if marker.exists():
            try:
                same_interrupted_run = json.loads(marker.read_text()).get("fingerprint") == self.fingerprint
            except (OSError, json.JSONDecodeError):
                same_interrupted_run = False
        existing = summary.exists() or (shards and not same_interrupted_run) or (marker.exists()
                                                                                   and not same_interrupted_run)
        if existing and not overwrite:
            listing = ", ".join(path.name for path in ([summary] if summary.exists() else []) + shards[:5])
            raise OutputExistsError(
                f"{self.output_dir} already holds a converted data set ({listing or PROGRESS_FILE}"
                f"{' ...' if len(shards) > 5 else ''}); pass --overwrite (overwrite=True) to replace it")
        if existing:
            for path in self._our_files():
                path.unlink()
            logging.info("Removed the previous data set in %s (overwrite)", self.output_dir)
        else:
            for pattern in TEMP_GLOBS:
                for path in self.output_dir.glob(pattern):
                    path.unlink()  # leftovers of an interrupted run
            self.resuming = same_interrupted_run
            if self.resuming:
                logging.info("Resuming an interrupted conversion in %s", self.output_dir)
        write_json_atomic(marker, {"fingerprint": self.fingerprint}, sort_keys=True)

    def write_split(self, split: str, producers: Sequence[Callable[[], schema.EncodedScene]], *,
                    examples_per_shard: int = 16, num_workers: int = 1, show_progress: bool = True) -> dict:
        """Writes one split; `producers[i]()` returns the i-th scene, encoded (run in worker threads).

        Producers are called in parallel (threads: OpenCV and numpy release the GIL) but written in
        order. Returns the split's summary.
        """
        problem = split_name_problem(split)
        if problem:
            raise ValueError(problem)
        ranges = shard_ranges(len(producers), examples_per_shard)
        stats = _SplitStats()
        shard_entries = []
        names_seen = set()
        progress = tqdm(total=len(producers), desc=f"{split}", unit="scene", disable=not show_progress)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, num_workers)) as executor:
            for index, (start, end) in enumerate(ranges):
                path = self.output_dir / shard_file_name(split, index, len(ranges))
                if self.resuming and path.exists():
                    encoded_scenes = self._read_back(path, end - start)
                else:
                    encoded_scenes = self._write_shard(path, _in_order(producers[start:end], executor,
                                                                       2 * max(1, num_workers)))
                for encoded in encoded_scenes:
                    if encoded.name in names_seen:
                        raise ValueError(f"split {split}: scene name {encoded.name!r} occurs twice")
                    names_seen.add(encoded.name)
                    stats.add(encoded)
                progress.update(end - start)
                shard_entries.append({"file": path.name, "num_examples": end - start,
                                      "bytes": path.stat().st_size, "sha256": file_sha256(path)})
        progress.close()
        self.splits[split] = {
            "num_examples": len(producers),
            "num_shards": len(ranges),
            "file_pattern": f"{split}-*-of-{len(ranges):05d}.tfrecord",
            "sizes": dict(sorted(stats.sizes.items())),
            "bit_depths": sorted(stats.bit_depths),
            "views": [view for view in schema.VIEWS if view in stats.views],
            "shards": shard_entries,
            "scenes": stats.names,
        }
        return self.splits[split]

    def _write_shard(self, path: pathlib.Path, scenes: Iterator[schema.EncodedScene]) -> list[schema.EncodedScene]:
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        summaries = []
        try:
            with tf.io.TFRecordWriter(str(temp)) as writer:
                for encoded in scenes:
                    writer.write(schema.serialize_scene(encoded))
                    summaries.append(dataclasses.replace(encoded, png={v: b"" for v in encoded.png}, defocus={}))
            os.replace(temp, path)
        except BaseException:
            if temp.exists():
                temp.unlink()
            raise
        return summaries

    def _read_back(self, path: pathlib.Path, expected: int) -> list[schema.EncodedScene]:
        """Parses a shard completed by an interrupted run of the same conversion."""
        scenes = [schema.parse_scene_bytes(record.numpy(), str(path))
                  for record in tf.data.TFRecordDataset(str(path))]
        if len(scenes) != expected:
            raise ValueError(f"{path}: holds {len(scenes)} records, expected {expected}; "
                             "rerun with --overwrite")
        logging.info("Kept %s from the interrupted run", path.name)
        return scenes

    def finish(self, extra: Optional[dict] = None) -> dict:
        """Writes `dataset_summary.json` (atomically), removes the progress marker, returns the summary."""
        summary = {"schema_version": schema.SCHEMA_VERSION, "splits": self.splits}
        summary.update(extra or {})
        write_json_atomic(self.output_dir / SUMMARY_FILE, summary, sort_keys=True)
        (self.output_dir / PROGRESS_FILE).unlink()
        return summary


def load_summary(output_dir: os.PathLike) -> dict:
    """The `dataset_summary.json` of a converted data set."""
    path = pathlib.Path(output_dir) / SUMMARY_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no data set summary (conversion not run or not finished)")
    return json.loads(path.read_text())
