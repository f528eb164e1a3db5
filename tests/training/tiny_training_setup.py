"""Tiny synthetic data and tiny training configs shared by the training tests (not a test module)."""
import os
import pathlib
import subprocess
import sys

from configs import ifan as ifan_configs

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS_DIR = pathlib.Path(__file__).resolve().parent


def load_config(variant=None):
    """``configs/ifan.py:variant`` (the module ``configs.ifan``; main.py loads the same file by path)."""
    return ifan_configs.get_config(variant)


def make_tiny_dataset(directory, train_scenes=4, val_scenes=2, size=64, seed=0):
    """Synthetic dual-pixel TFRecords (train/val from disjoint photographs); returns (train glob, val glob)."""
    from ifan_tf.synthesis.synthetic_dataset import synthesize_dataset

    directory = pathlib.Path(directory)
    if not (directory / "dataset_summary.json").exists():
        synthesize_dataset(directory, splits={"train": train_scenes, "val": val_scenes}, image_size=(size, size),
                           seed=seed, num_workers=1, show_progress=False)
    return str(directory / "train-*.tfrecord"), str(directory / "val-*.tfrecord")


TINY_OVERRIDES = {
    "model.width": 8, "model.num_iterations": 2, "model.reblur_iterations": 2,
    "data.crop_size": 32, "data.cache": True, "data.shuffle_buffer": 8,
    "train.batch_size": 2, "train.num_steps": 4, "train.learning_rate": 1e-3, "train.log_every": 1,
    "train.image_every": 0, "train.checkpoint_every": 1000, "train.checkpoint_every_minutes": 0.0,
    "train.precision": "float32", "train.max_minutes": 0.0,
    "eval.every": 0, "eval.every_minutes": 0.0, "eval.max_images": 1,
}


def tiny_config(train_glob, val_glob="", **overrides):
    """The paper config shrunk to seconds per run (width 8, N 2, 32x32 crops, batch 2, float32)."""
    config = load_config()
    values = dict(TINY_OVERRIDES, **{"data.train": train_glob, "data.val": val_glob})
    values.update({key.replace("__", "."): value for key, value in overrides.items()})
    for dotted, value in values.items():
        section, field = dotted.split(".")
        config[section][field] = value
    return config


def flag_overrides(train_glob, val_glob="", **overrides):
    """The same settings as ``--config.FIELD=VALUE`` command-line flags."""
    values = dict(TINY_OVERRIDES, **{"data.train": train_glob, "data.val": val_glob})
    values.update({key.replace("__", "."): value for key, value in overrides.items()})
    return [f"--config.{key}={value}" for key, value in values.items()]


def subprocess_env(**extra):
    """Environment for a child python: CPU only, quiet TF, repo importable."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(SCRIPTS_DIR)]))
    env.update(extra)
    return env


def run_python(args, timeout=300, **env):
    """Runs ``sys.executable args`` from the repo root; returns the CompletedProcess (text)."""
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=subprocess_env(**env), capture_output=True,
                          text=True, timeout=timeout)


def learning_rates(schedule, learning_rate_factor, updates):
    """The learning rate of each update in ``updates``, the ``stability.LearningRateFactor`` applied first
    (as the trainer does before each step)."""
    rates = []
    for update in updates:
        learning_rate_factor.apply(update)
        rates.append(float(schedule(update)))
    return rates
