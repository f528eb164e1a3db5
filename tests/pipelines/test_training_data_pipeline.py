"""Training data as Beam pipelines: the single-process writers' files, whatever the number of workers."""
import hashlib
import json

import numpy as np
import pytest

from data_prep import dpdd, folders
from ifan_tf.data import dataset_writer
from ifan_tf.io import image_io
from ifan_tf.pipelines import training_data
from ifan_tf.synthesis import synthetic_dataset

from prediction_helpers import smooth_pixels

SYNTHESIS = dict(splits={"train": 5, "val": 2}, seed=3, image_size=(32, 48), examples_per_shard=2)
SYNTHESIS_FLAGS = ["--splits=train:5,val:2", "--seed=3", "--height=32", "--width=48", "--examples_per_shard=2"]


def files(folder):
    """Every file of a data set folder -> SHA-256 (shards, summary; nothing hidden may be left)."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


@pytest.mark.slow
def test_synthesis_gives_the_same_files_with_one_and_two_workers(tmp_path, capsys):
    synthetic_dataset.synthesize_dataset(tmp_path / "single", show_progress=False, **SYNTHESIS)
    assert training_data.run(["synthesize", f"--output_dir={tmp_path / 'one'}"] + SYNTHESIS_FLAGS) == 0
    assert training_data.run(["synthesize", f"--output_dir={tmp_path / 'two'}", "--direct_num_workers=2",
                              "--direct_running_mode=multi_processing"] + SYNTHESIS_FLAGS) == 0
    expected = files(tmp_path / "single")
    assert len(expected) == 5 and dataset_writer.SUMMARY_FILE in expected
    assert files(tmp_path / "one") == expected
    assert files(tmp_path / "two") == expected
    out = capsys.readouterr().out
    assert "train: 5 scenes in 3 shards" in out and "multi_processing, 2 worker(s)" in out
    summary = json.loads((tmp_path / "two" / dataset_writer.SUMMARY_FILE).read_text())
    shard = summary["splits"]["train"]["shards"][0]
    assert shard["sha256"] == expected[shard["file"]]


def test_an_interrupted_synthesis_resumes_and_keeps_finished_shards(tmp_path):
    synthetic_dataset.synthesize_dataset(tmp_path / "single", show_progress=False, **SYNTHESIS)
    expected = files(tmp_path / "single")
    out = tmp_path / "out"
    plan = synthetic_dataset.plan_synthesis(out, **SYNTHESIS)
    plan.open_writer(overwrite=False)  # the progress marker of a run that was then interrupted
    kept = out / "train-00001-of-00003.tfrecord"
    kept.write_bytes((tmp_path / "single" / kept.name).read_bytes())
    (out / f".{kept.name}.123.ab.tmp").write_bytes(b"half a shard")  # left by the interrupted worker
    inode = kept.stat().st_ino
    assert training_data.run(["synthesize", f"--output_dir={out}"] + SYNTHESIS_FLAGS) == 0
    assert files(out) == expected
    assert kept.stat().st_ino == inode
    assert training_data.run(["synthesize", f"--output_dir={out}"] + SYNTHESIS_FLAGS) == 1  # finished: protected


def write_scene_folder(folder, names, size=(24, 32), dtype=np.uint8):
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        image_io.write_pixels(folder / name, smooth_pixels(size + (3,), dtype, seed + len(str(folder))))


def test_folder_conversion_refuses_bad_images_first_then_matches_the_converter(tmp_path, capsys):
    source = tmp_path / "cuhk"
    write_scene_folder(source, [f"img{i}.png" for i in range(5)])
    (source / "broken.png").write_bytes(image_io.encode_image(smooth_pixels((24, 32, 3)), ".png")[:90])
    flags = ["convert", "--layout=defocused", f"--input_dir={source}", "--examples_per_shard=2"]
    assert training_data.run(flags + [f"--output_dir={tmp_path / 'refused'}"]) == 1
    assert "broken.png" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists(), "something was written before the inspection refused the input"
    folders.convert_folder("defocused", source, tmp_path / "single", examples_per_shard=2, show_progress=False,
                           skip_bad_images=True)
    assert training_data.run(flags + [f"--output_dir={tmp_path / 'beam'}", "--skip_bad_images"]) == 0
    assert files(tmp_path / "beam") == files(tmp_path / "single")
    summary = json.loads((tmp_path / "beam" / dataset_writer.SUMMARY_FILE).read_text())
    assert summary["splits"]["test"]["num_examples"] == 5 and summary["skipped_bad_images"][0]["scene"] == "broken"


def test_dpdd_conversion_matches_the_converter(tmp_path):
    root = tmp_path / "dpdd"
    for split, names in (("train", ["a", "b", "c"]), ("test", ["d"])):
        for folder in (f"{split}_c/source", f"{split}_c/target", f"{split}_l/source", f"{split}_r/source"):
            write_scene_folder(root / folder, [f"{name}.png" for name in names], dtype=np.uint16)
    dpdd.convert_dpdd(root, tmp_path / "single", examples_per_shard=2, show_progress=False)
    assert training_data.run(["convert", "--layout=dpdd", f"--input_dir={root}", f"--output_dir={tmp_path / 'beam'}",
                              "--examples_per_shard=2"]) == 0
    assert files(tmp_path / "beam") == files(tmp_path / "single")
    assert set(files(tmp_path / "beam")) == {"train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord",
                                             "test-00000-of-00001.tfrecord", dataset_writer.SUMMARY_FILE}
