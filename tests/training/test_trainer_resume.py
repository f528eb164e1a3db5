"""Stop-and-resume equals an uninterrupted run in deterministic mode (same losses, same weights).

The checkpoint holds the networks, RAdam's moments and iteration count, the step and the input
iterator's position; with deterministic ops the resumed run must reproduce the uninterrupted
one exactly (bit-for-bit losses and weights, compared with a 1e-7 tolerance).
"""
import json

from tiny_training_setup import make_tiny_dataset, run_python


def test_resumed_run_continues_exactly_like_an_uninterrupted_run(tmp_path):
    train_glob, _ = make_tiny_dataset(tmp_path / "data")
    result = run_python(["tests/training/resume_script.py", train_glob, str(tmp_path / "runs")], timeout=400)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["steps"] == [4, 2, 4]
    uninterrupted, resumed = report["uninterrupted"], report["resumed"]
    assert sorted(uninterrupted) == sorted(resumed) == ["1", "2", "3", "4"]
    for step in ("3", "4"):
        for a, b in zip(uninterrupted[step], resumed[step], strict=True):
            assert abs(a - b) <= 1e-7 * max(1.0, abs(a)), (step, uninterrupted[step], resumed[step])
    assert uninterrupted["3"] != uninterrupted["4"]  # the steps see different data
    assert report["max_weight_difference"] <= 1e-7
    assert report["max_ema_difference"] <= 1e-7  # the weight average resumes exactly as well
