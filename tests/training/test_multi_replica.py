"""Two replicas (MirroredStrategy on 2 logical CPUs) train exactly like one replica on the global batch.

Losses are per-example MSEs divided by the global batch size and the optimizer sums the replicas'
gradients, so after 2 steps (clipping active, weight decay on; RAdam's last un-rectified update and
its first rectified one) the losses and weights must agree to float32 round-off: losses rtol 1e-5,
weights atol 1e-6 (the steps move weights by up to ~5e-5; the two runs differ by ~1e-8).
"""
import json

import pytest
from tiny_training_setup import run_python

LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-6


@pytest.fixture(scope="module")
def report():
    """The child process's JSON report (one run for both tests)."""
    result = run_python(["tests/training/multi_replica_script.py"], timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_two_replicas_match_one_replica_on_the_same_global_batch(report):
    assert report["replicas"] == 2
    for single, mirrored in zip(report["single"], report["mirrored"], strict=True):
        for name in ("total", "deblur", "disparity", "reblur", "grad_norm"):
            assert abs(single[name] - mirrored[name]) <= LOSS_RTOL * abs(single[name]) + 1e-9, (name, single, mirrored)
        assert single["grad_norm"] > 0.5  # clipping is active, so the summed-gradient norm matters
    assert report["max_weight_change"] > 20 * WEIGHT_ATOL  # the steps did move the weights
    assert report["max_weight_difference"] <= WEIGHT_ATOL, report


def test_two_replicas_skip_a_step_that_is_not_finite_on_one_of_them(report):
    """A non-finite loss on one replica skips the update on both (weights and step count unchanged),
    and the update before it can be undone."""
    skip = report["skip"]
    assert skip["finite"] == 0.0
    assert skip["weight_change"] == 0.0 and skip["iterations"] == 1, skip
    assert skip["undone_difference"] == 0.0 and skip["undone_iterations"] == 0, skip


def test_two_replicas_move_the_weight_average_like_one(report):
    assert report["ema_difference"] <= WEIGHT_ATOL, report
    # the average is not the weights themselves (half the second step's move, ~6e-5 here)
    assert report["ema_from_weights"] > 10 * WEIGHT_ATOL
