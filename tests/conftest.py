"""Shared pytest set-up: CPU only, quiet TensorFlow, fixtures folder location."""
import os
import pathlib

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Under xdist (`make test`: two workers) each worker's TensorFlow, and the processes its tests start,
# get an equal share of the cores instead of every worker starting a pool the size of the machine.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(_threads))

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES_DIR = REPO_ROOT.parent / "shared" / "fixtures"


@pytest.fixture
def fixtures_dir():
    """Path of ../shared/fixtures; skips the test with a clear message when it is absent."""
    if not FIXTURES_DIR.is_dir():
        pytest.skip(f"reference fixtures not found at {FIXTURES_DIR} (they live in ../shared/fixtures)")
    return FIXTURES_DIR


# The files that take longest, first: `make test` runs two xdist workers that take whole files in this
# order, so the long ones start early and both workers finish together (longest first).
LONGEST_FIRST = ("tests/training/test_multi_worker.py", "tests/training/test_multi_replica.py",
                 "tests/training/test_trainer_resume.py", "tests/training/test_train_step.py",
                 "tests/studies/test_ablations.py", "tests/serving/test_export_versions.py",
                 "tests/test_main_cli.py", "tests/training/test_weight_average.py", "tests/training/",
                 "tests/serving/", "tests/pipelines/")


def pytest_collection_modifyitems(config, items):
    """Orders the collected tests by ``LONGEST_FIRST`` (a stable sort: the rest keeps its order)."""
    def rank(item):
        path = item.nodeid.split("::")[0]
        path = path if path.startswith("tests/") else "tests/" + path
        return next((index for index, prefix in enumerate(LONGEST_FIRST) if path.startswith(prefix)),
                    len(LONGEST_FIRST))
    items.sort(key=rank)
