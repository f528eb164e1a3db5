"""End-to-end runs of the command lines, as users and scripts call them (python -m ...)."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from ifan_tf.io import image_io

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1")
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_synthesize_then_convert_its_folders_with_the_dpdd_command(tmp_path):
    result = run("data_prep.synthesize", f"--output_dir={tmp_path / 'syn'}", "--splits=train:2,test:1",
                 "--height=40", "--width=56", "--seed=3", "--write_folders", "--num_workers=2")
    assert result.returncode == 0, result.stderr
    assert "train: 2 scenes in 1 shards (56x40 x2)" in result.stdout
    summary = json.loads((tmp_path / "syn" / "dataset_summary.json").read_text())
    assert summary["generator"]["seed"] == 3 and summary["splits"]["test"]["num_examples"] == 1

    result = run("data_prep.dpdd", f"--input_dir={tmp_path / 'syn'}", f"--output_dir={tmp_path / 'dpdd'}")
    assert result.returncode == 0, result.stderr
    assert "train: 2 scenes, 1 shards, views c/l/r/target, 8-bit" in result.stdout
    assert (tmp_path / "dpdd" / "test-00000-of-00001.tfrecord").exists()

    again = run("data_prep.dpdd", f"--input_dir={tmp_path / 'syn'}", f"--output_dir={tmp_path / 'dpdd'}")
    assert again.returncode != 0 and "pass --overwrite" in again.stderr


@pytest.mark.slow
def test_folders_command_and_its_refusal(tmp_path):
    rng = np.random.default_rng(0)
    for folder in ("source", "target"):
        (tmp_path / "realdof" / folder).mkdir(parents=True)
        image_io.write_image(tmp_path / "realdof" / folder / "pair.png",
                             rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), 8)
    result = run("data_prep.folders", "--layout=realdof", f"--input_dir={tmp_path / 'realdof'}",
                 f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    assert "test: 1 scenes, 1 shards, views c/target" in result.stdout

    (tmp_path / "realdof" / "target" / "pair.png").unlink()
    result = run("data_prep.folders", "--layout=realdof", f"--input_dir={tmp_path / 'realdof'}",
                 f"--output_dir={tmp_path / 'out2'}")
    assert result.returncode != 0 and "scene 'pair' has no file for target" in result.stderr
    assert not (tmp_path / "out2").exists()
