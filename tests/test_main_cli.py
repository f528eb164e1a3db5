"""``python main.py --mode=train`` end to end: overrides, SIGTERM saves and exits, the same command resumes."""
import json
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from ifan_tf.weights.model_dir import read_model_config
from tests.training.tiny_training_setup import flag_overrides, make_tiny_dataset, run_python, subprocess_env

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _train_command(workdir, train_glob, num_steps):
    return ["main.py", "--mode=train", "--config=configs/ifan.py", f"--workdir={workdir}",
            *flag_overrides(train_glob, **{"train.num_steps": num_steps})]


def _logged_steps(workdir):
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()]


def test_train_sigterm_checkpoints_and_the_same_command_resumes(tmp_path):
    train_glob, _ = make_tiny_dataset(tmp_path / "data")
    workdir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, *_train_command(workdir, train_glob, 100_000)], cwd=REPO_ROOT,
                               env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while len(_logged_steps(workdir)) < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert process.poll() is None, process.communicate()[1][-3000:]
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-3000:]
    assert "SIGTERM" in stderr and "stopped at step" in stdout
    stopped_at = int(stdout.split("stopped at step ")[1].split()[0])
    assert stopped_at >= 3
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith(f"ckpt-{stopped_at}")
    assert read_model_config(workdir / "model")[1]["step"] == stopped_at
    resolved = json.loads((workdir / "config.json").read_text())
    assert resolved["train"]["batch_size"] == 2 and resolved["model"]["width"] == 8  # overrides were applied

    resumed = run_python(_train_command(workdir, train_glob, stopped_at + 2), timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"restored {workdir}/checkpoints/ckpt-{stopped_at}" in resumed.stderr
    assert f"stopped at step {stopped_at + 2}" in resumed.stdout
    assert _logged_steps(workdir)[-2:] == [stopped_at + 1, stopped_at + 2]


@pytest.mark.parametrize("args, message", [
    (["--mode=train", "--config=configs/ifan.py"], "--workdir"),
    (["--mode=eval", "--model_dir=x"], "--data, --output_dir"),
    (["--mode=predict", "--no_such_flag=1"], "Unknown command line flag 'no_such_flag'"),
])
def test_missing_flags_are_usage_errors(args, message):
    result = run_python(["main.py", *args], timeout=120)
    assert result.returncode == 2  # nothing was done (ifan_tf.modes)
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert error and message in error[0], result.stderr[-3000:]
