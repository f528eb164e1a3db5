"""TFRecord shards written by Beam workers: the single-process writer's files, names and summary.

``write_dataset`` takes a prepared ``dataset_writer.DatasetWriter`` (its checks of the output
folder, overwrite rule and progress marker have run) and, per split, the scene jobs
``(index, payload)`` in record order. Each scene is made by ``produce(split, index, payload)`` ->
``schema.EncodedScene`` on any worker, in any order; the scenes are grouped by shard
(``dataset_writer.shard_ranges``: the same contiguous index ranges), sorted by index, and each
shard is written by one worker with ``tf.io.TFRecordWriter`` (the same records in the same order
as ``DatasetWriter.write_split``), so the files are byte-identical to the single-process writer's
whatever the number of workers, and for a given seed.

A shard goes to a hidden temporary name in the output folder (``.NAME.PID.RANDOM.tmp``, which the
writer removes as leftovers) and is renamed when complete: a retried or duplicated bundle writes
the same bytes again under the same final name. When the writer resumes an interrupted run, the
shards already complete are read back (counted and hashed) instead of being made again.

Each shard yields its summary entry (file, records, bytes, SHA-256, scene names, sizes, bit depths,
views); the launching process collects them through a hidden JSON-lines file, checks them and
writes ``dataset_summary.json`` with ``DatasetWriter.finish``. Output folders are local (or a
filesystem mounted at the same path on every worker).
"""
from __future__ import annotations

import bisect
import dataclasses
import json
import os
import pathlib
from typing import Callable

import apache_beam as beam
import tensorflow as tf

from ifan_tf.data import dataset_writer, schema
from ifan_tf.pipelines import runner

RESULTS_FILE = ".beam_shard_results.jsonl"
METRICS = "ifan_tf.training_data"


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``num_shards`` of ``split``: the scenes ``[start, end)``."""

    split: str
    index: int
    num_shards: int
    start: int
    end: int

    @property
    def file_name(self) -> str:
        return dataset_writer.shard_file_name(self.split, self.index, self.num_shards)


def plan_shards(split: str, num_examples: int, examples_per_shard: int) -> list[Shard]:
    """The shards of a split, exactly as ``DatasetWriter.write_split`` cuts it."""
    ranges = dataset_writer.shard_ranges(num_examples, examples_per_shard)
    return [Shard(split, index, len(ranges), start, end) for index, (start, end) in enumerate(ranges)]


def _entry(shard: Shard, path: pathlib.Path, scenes: list) -> dict:
    """The summary entry of a written or kept shard (scenes: ``EncodedScene``s, PNG bytes not needed)."""
    sizes = {}
    for scene in scenes:
        key = f"{scene.width}x{scene.height}"
        sizes[key] = sizes.get(key, 0) + 1
    return {"split": shard.split, "index": shard.index, "file": shard.file_name, "num_examples": len(scenes),
            "bytes": path.stat().st_size, "sha256": dataset_writer.file_sha256(path),
            "names": [scene.name for scene in scenes], "sizes": sizes,
            "bit_depths": sorted({scene.bit_depth for scene in scenes}),
            "views": sorted({view for scene in scenes for view in scene.views})}


class ProduceScene(beam.DoFn):
    """``(split, index, payload)`` -> ``((split, shard index), (index, EncodedScene))``."""

    def __init__(self, produce: Callable, shards: dict[str, list[Shard]]):
        self._produce = produce
        self._starts = {split: [shard.start for shard in plan] for split, plan in shards.items()}
        self._scenes = beam.metrics.Metrics.counter(METRICS, "scenes")

    def process(self, job):
        split, index, payload = job
        shard = bisect.bisect_right(self._starts[split], index) - 1
        encoded = self._produce(split, index, payload)
        self._scenes.inc()
        yield (split, shard), (index, encoded)


class WriteShard(beam.DoFn):
    """``((split, shard index), [(index, EncodedScene)])`` -> the shard file, atomically; yields its entry."""

    def __init__(self, output_dir: str, shards: dict[str, list[Shard]]):
        self._output_dir = output_dir
        self._shards = shards
        self._written = beam.metrics.Metrics.counter(METRICS, "shards_written")

    def process(self, element):
        (split, index), scenes = element
        shard = self._shards[split][index]
        scenes = sorted(scenes, key=lambda item: item[0])
        indices = [item[0] for item in scenes]
        if indices != list(range(shard.start, shard.end)):
            raise ValueError(f"{shard.file_name}: got scenes {indices[:5]}..., expected {shard.start}..{shard.end - 1}")
        path = pathlib.Path(self._output_dir) / shard.file_name
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            with tf.io.TFRecordWriter(str(temporary)) as writer:
                for _, encoded in scenes:
                    writer.write(schema.serialize_scene(encoded))
            os.replace(temporary, path)
        except BaseException:
            if temporary.exists():
                temporary.unlink()
            raise
        self._written.inc()
        yield _entry(shard, path, [encoded for _, encoded in scenes])


class KeepShard(beam.DoFn):
    """A shard completed by an interrupted run of the same job -> its entry (records parsed and counted)."""

    def __init__(self, output_dir: str):
        self._output_dir = output_dir

    def process(self, shard: Shard):
        path = pathlib.Path(self._output_dir) / shard.file_name
        scenes = [schema.parse_scene_bytes(record.numpy(), str(path)) for record in tf.data.TFRecordDataset(str(path))]
        if len(scenes) != shard.end - shard.start:
            raise ValueError(f"{path}: holds {len(scenes)} records, expected {shard.end - shard.start}; "
                             "rerun with --overwrite")
        yield _entry(shard, path, scenes)


def split_summary(split: str, shards: list[Shard], entries: list[dict]) -> dict:
    """The split's entry of ``dataset_summary.json`` (``DatasetWriter.write_split``'s) from its shard entries."""
    by_index = {entry["index"]: entry for entry in entries}
    missing = [shard.file_name for shard in shards if shard.index not in by_index]
    if missing:
        raise RuntimeError(f"split {split}: no result for shards {missing[:5]} (the pipeline lost them)")
    names, sizes, bit_depths, views = [], {}, set(), set()
    for shard in shards:
        entry = by_index[shard.index]
        for name in entry["names"]:
            if name in names:
                raise ValueError(f"split {split}: scene name {name!r} occurs twice")
        names += entry["names"]
        for size, count in entry["sizes"].items():
            sizes[size] = sizes.get(size, 0) + count
        bit_depths.update(entry["bit_depths"])
        views.update(entry["views"])
    return {
        "num_examples": shards[-1].end,
        "num_shards": len(shards),
        "file_pattern": f"{split}-*-of-{len(shards):05d}.tfrecord",
        "sizes": dict(sorted(sizes.items())),
        "bit_depths": sorted(bit_depths),
        "views": [view for view in schema.VIEWS if view in views],
        "shards": [{key: by_index[shard.index][key] for key in ("file", "num_examples", "bytes", "sha256")}
                   for shard in shards],
        "scenes": names,
    }


def write_dataset(writer: dataset_writer.DatasetWriter, jobs: dict[str, list], produce: Callable,
                  examples_per_shard: int, options, extra: dict) -> dict:
    """Writes every split with a Beam pipeline on ``options``' runner, then the summary; returns it.

    Args:
      writer: a prepared ``DatasetWriter`` (``writer.resuming`` keeps the completed shards).
      jobs: split -> ``[payload]`` of its scenes in record order (scene ``i`` is ``payload[i]``).
      produce: picklable ``(split, index, payload) -> schema.EncodedScene``, deterministic.
      examples_per_shard: records per shard at most.
      options: Beam ``PipelineOptions``.
      extra: what the summary holds besides the splits.
    """
    for split in jobs:
        problem = dataset_writer.split_name_problem(split)
        if problem:
            raise ValueError(problem)
    output_dir = str(writer.output_dir)
    shards = {split: plan_shards(split, len(payloads), examples_per_shard) for split, payloads in jobs.items()}
    kept = [shard for plan in shards.values() for shard in plan
            if writer.resuming and (writer.output_dir / shard.file_name).exists()]
    kept_names = {(shard.split, shard.index) for shard in kept}
    todo = [(split, index, payload) for split, payloads in jobs.items() for index, payload in enumerate(payloads)
            if (split, bisect.bisect_right([s.start for s in shards[split]], index) - 1) not in kept_names]
    results = writer.output_dir / RESULTS_FILE
    pipeline = runner.new_pipeline(options)
    written = (pipeline
               | "Scenes" >> beam.Create(todo, reshuffle=False)
               | "Spread" >> beam.Reshuffle()
               | "Produce" >> beam.ParDo(ProduceScene(produce, shards))
               | "GroupByShard" >> beam.GroupByKey()
               | "WriteShard" >> beam.ParDo(WriteShard(output_dir, shards)))
    reread = pipeline | "KeptShards" >> beam.Create(kept, reshuffle=False) | "Keep" >> beam.ParDo(KeepShard(output_dir))
    _ = ((written, reread) | "Entries" >> beam.Flatten()
         | "ToJson" >> beam.Map(lambda entry: json.dumps(entry, sort_keys=True))
         | "Results" >> beam.io.WriteToText(str(results), shard_name_template="", num_shards=1))
    runner.run_to_completion(pipeline)
    entries = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    for split, plan in shards.items():
        writer.splits[split] = split_summary(split, plan, [entry for entry in entries if entry["split"] == split])
    summary = writer.finish(extra)
    results.unlink()
    return summary
