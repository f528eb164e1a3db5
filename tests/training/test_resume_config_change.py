"""Resuming a work directory with changed settings (issue 25).

A change that the checkpoint cannot absorb (here ``train.deterministic`` switched on: the new run
would checkpoint an input position the checkpoint lacks) is refused before anything is built,
with an ``error:`` line naming the field, and leaves ``config.json`` and the checkpoints as they
were; a compatible change (more steps) resumes, and only then does ``config.json`` record it.
The runs go through ``main.py`` in child processes (deterministic ops are a process-wide switch).
"""
import hashlib
import json
import shutil

import pytest

from tiny_training_setup import flag_overrides, make_tiny_dataset, run_python


def _train(workdir, train_glob, **overrides):
    return run_python(["main.py", "--mode=train", "--config=configs/ifan.py", f"--workdir={workdir}",
                       *flag_overrides(train_glob, **overrides)], timeout=300)


def _files(directory):
    """{relative path: (sha256, mtime_ns)} of every file under ``directory``."""
    return {str(path.relative_to(directory)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for path in sorted(directory.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory):
    """(train glob, work directory) of a finished 1-step run (train.deterministic False)."""
    root = tmp_path_factory.mktemp("resume_change")
    train_glob, _ = make_tiny_dataset(root / "data")
    workdir = root / "run"
    result = _train(workdir, train_glob, **{"train.num_steps": 1})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((workdir / "config.json").read_text())["train"]["deterministic"] is False
    return train_glob, workdir


def _copy(one_step_run, tmp_path):
    train_glob, workdir = one_step_run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    return train_glob, copy


def test_switching_on_deterministic_is_refused_before_anything_is_touched(one_step_run, tmp_path):
    train_glob, workdir = _copy(one_step_run, tmp_path)
    config_before = (workdir / "config.json").read_bytes()
    checkpoints_before = _files(workdir / "checkpoints")
    assert any(name.startswith("ckpt-1") for name in checkpoints_before)

    result = _train(workdir, train_glob, **{"train.num_steps": 2, "train.deterministic": True})
    assert result.returncode == 2, result.stderr[-3000:]  # nothing was done (ifan_tf.modes)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert error, result.stderr[-3000:]
    message = result.stderr[result.stderr.index(error[0]):]
    assert str(workdir) in message and "train.deterministic: False -> True" in message, message
    assert "train.num_steps" not in message  # a compatible change is not listed
    assert "--workdir" in message and "delete" in message, message
    assert (workdir / "config.json").read_bytes() == config_before
    assert _files(workdir / "checkpoints") == checkpoints_before


def test_a_compatible_change_resumes_and_then_config_json_records_it(one_step_run, tmp_path):
    train_glob, workdir = _copy(one_step_run, tmp_path)
    result = _train(workdir, train_glob, **{"train.num_steps": 2, "train.log_every": 2})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"restored {workdir}/checkpoints/ckpt-1" in result.stderr
    assert "stopped at step 2" in result.stdout
    recorded = json.loads((workdir / "config.json").read_text())
    assert (recorded["train"]["num_steps"], recorded["train"]["log_every"]) == (2, 2)


def test_a_checkpoint_that_fails_to_restore_leaves_config_json_unwritten(one_step_run, tmp_path):
    # without config.json there is nothing to compare with: the restore itself fails, and is reported
    train_glob, workdir = _copy(one_step_run, tmp_path)
    (workdir / "config.json").unlink()
    checkpoints_before = _files(workdir / "checkpoints")
    result = _train(workdir, train_glob, **{"train.num_steps": 2, "train.deterministic": True})
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert error and "ckpt-1" in error[0], result.stderr[-3000:]
    assert not (workdir / "config.json").exists()
    assert _files(workdir / "checkpoints") == checkpoints_before


def _document(**changes):
    from tiny_training_setup import tiny_config

    config = tiny_config("train-*.tfrecord")
    for dotted, value in changes.items():
        section, name = dotted.split("__")
        config[section][name] = value
    return json.loads(config.to_json_best_effort())


@pytest.mark.parametrize("stored, new, fields", [
    ({}, {"train__deterministic": True}, ["train.deterministic"]),
    ({}, {"model__width": 4, "model__use_rbn": False}, ["model.use_rbn", "model.width"]),
    ({}, {"train__precision": "float16"}, ["train.precision"]),
    ({"train__precision": "float16"}, {"train__precision": "bfloat16"}, ["train.precision"]),
    ({"train__deterministic": True}, {"train__deterministic": True, "train__batch_size": 4, "data__cache": False,
                                      "data__train": "moved/train-*.tfrecord"}, ["train.batch_size", "data.cache"]),
    # what the checkpoint absorbs
    ({}, {"train__precision": "bfloat16"}, []),
    ({"train__precision": "float16"}, {"train__precision": "mixed_float16"}, []),
    ({"train__deterministic": True}, {}, []),  # the input position is dropped
    ({}, {"train__ema_decay": 0.5}, []),  # the average starts afresh
    ({"train__ema_decay": 0.5}, {}, []),
    ({}, {"train__batch_size": 4, "data__crop_size": 16, "train__seed": 3}, []),  # no input position stored
    ({}, {"train__num_steps": 9, "train__learning_rate": 0.1, "train__lr_boundaries": (1, 2, 3),
          "train__weight_decay": 0.0, "train__jit_compile": True, "eval__every": 5}, []),
])
def test_incompatible_changes_are_those_the_checkpoint_cannot_absorb(stored, new, fields):
    from ifan_tf.training.checkpointing import incompatible_changes

    changes = incompatible_changes(_document(**stored), _document(**new))
    assert [field for field, *_ in changes] == fields
