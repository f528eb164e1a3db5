"""``python -m benchmarks.train_step``: bad flags are refused with a usage error before anything is timed."""
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("flag, message", [
    ("--batch_size=-1", "--batch_size must be >= 0"),
    ("--start_update=-3", "--start_update must be >= 0"),
    ("--configs=huge", "unknown config 'huge'"),
])
def test_bad_flags_are_refused_before_any_work(flag, message):
    completed = subprocess.run([sys.executable, "-m", "benchmarks.train_step", flag], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode != 0
    assert message in completed.stderr + completed.stdout
    assert "s/step" not in completed.stdout  # nothing was timed
