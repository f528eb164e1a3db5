"""MultiWorkerMirroredStrategy with 2 local worker processes on 127.0.0.1 (TF_CONFIG), CPU only.

Checks that (1) the two workers, each holding half of every global batch, make the same 2
steps as one replica on the whole batch (losses rtol 1e-5, weights atol 1e-6), and (2) the real
trainer runs under the strategy: identical metrics on both workers, checkpoints and model
directory written by the chief only.
"""
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from distributed_equivalence import initial_weights, make_batches, run_steps
from tiny_training_setup import REPO_ROOT, make_tiny_dataset, subprocess_env, tiny_config

from ifan_tf.training.trainer import build_train_state


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.mark.slow
def test_two_workers_on_loopback_train_like_one_replica(tmp_path):
    train_glob, _ = make_tiny_dataset(tmp_path / "data")
    config = tiny_config("unused")
    keras.utils.set_random_seed(0)
    start = initial_weights(build_train_state(config, tf.distribute.get_strategy()))
    arrays = start["network"] + start["reblur"]
    np.savez(tmp_path / "weights.npz", network_count=len(start["network"]),
             **{f"w{i}": array for i, array in enumerate(arrays)})
    reference_metrics, reference_weights = run_steps(tf.distribute.get_strategy(), config, make_batches(), start)

    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, "tests/training/multi_worker_script.py", str(tmp_path / "weights.npz"), train_glob,
             str(tmp_path / "run"), str(tmp_path / f"worker{index}.json")],
            cwd=REPO_ROOT, env=subprocess_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    outputs = []
    try:
        for process in processes:
            _, stderr = process.communicate(timeout=400)
            assert process.returncode == 0, stderr[-4000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for index in range(2):
        with open(tmp_path / f"worker{index}.json") as handle:
            outputs.append(json.load(handle))

    assert [o["replicas"] for o in outputs] == [2, 2]
    assert [o["chief"] for o in outputs] == [True, False]
    for output in outputs:
        for got, want in zip(output["metrics"], reference_metrics, strict=True):
            for name in ("total", "deblur", "disparity", "reblur", "grad_norm"):
                assert abs(got[name] - want[name]) <= 1e-5 * abs(want[name]) + 1e-9, (name, got, want)
        np.testing.assert_allclose(output["weights"], reference_weights[:2000], atol=1e-6, rtol=0)
    assert outputs[0]["trainer_step"] == outputs[1]["trainer_step"] == 2
    trained = [{k: v for k, v in o["trainer_metrics"].items() if k != "steps_per_second"} for o in outputs]
    assert trained[0] == trained[1] and trained[0]["finite"] == 1.0
    run = tmp_path / "run"
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-2")
    assert (run / "model" / "network.npz").is_file()
    assert not any(name.startswith("worker") for name in os.listdir(run))
