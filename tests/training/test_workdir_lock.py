"""One training per work directory: a second one is refused; a killed one does not block the next."""
import os
import signal
import subprocess
import sys
import types

import pytest

from tiny_training_setup import make_tiny_dataset, subprocess_env, tiny_config

from ifan_tf.modes import USAGE, run_mode
from ifan_tf.training import trainer
from ifan_tf.training.workdir_lock import WorkdirInUseError, WorkdirLock

HOLDER = """
import sys, time
from ifan_tf.training.workdir_lock import WorkdirLock
with WorkdirLock(sys.argv[1], "training"):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """Starts a process holding the lock of ``tmp_path / "run"`` (like a running training); yields it."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "run")], stdout=subprocess.PIPE,
                               text=True, env=subprocess_env())
    assert process.stdout.readline().strip() == "locked"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def test_a_second_training_on_the_same_workdir_is_refused_until_the_first_dies(tmp_path, holder, capsys):
    train_glob, _ = make_tiny_dataset(tmp_path / "data")
    config = tiny_config(train_glob, train__num_steps=1)
    with pytest.raises(WorkdirInUseError, match=rf"{tmp_path / 'run'} is in use by another training \(pid {holder.pid}"):
        trainer.train(config, str(tmp_path / "run"))
    assert not (tmp_path / "run" / "config.json").exists()  # refused before touching the run
    flags = types.SimpleNamespace(config=config, workdir=str(tmp_path / "run"))
    assert run_mode("train", flags) == USAGE
    assert "is in use by another training" in capsys.readouterr().err

    os.kill(holder.pid, signal.SIGKILL)  # a crash: the kernel releases the lock, the file stays
    holder.wait()
    assert (tmp_path / "run" / ".lock").exists()
    assert trainer.train(config, str(tmp_path / "run")).step == 1


def test_the_lock_is_released_on_exit_and_reentrant_runs_in_one_process_queue_up(tmp_path):
    with WorkdirLock(tmp_path, "training"):
        with pytest.raises(WorkdirInUseError, match=f"pid {os.getpid()}"):
            with WorkdirLock(tmp_path, "training"):
                pass
    with WorkdirLock(tmp_path, "training"):
        pass
