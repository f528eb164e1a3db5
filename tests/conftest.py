"""Shared pytest set-up: CPU only, quiet TensorFlow, fixtures folder location."""
import os
import pathlib

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES_DIR = REPO_ROOT.parent / "shared" / "fixtures"


@pytest.fixture
def fixtures_dir():
    """Path of ../shared/fixtures; skips the test with a clear message when it is absent."""
    if not FIXTURES_DIR.is_dir():
        pytest.skip(f"reference fixtures not found at {FIXTURES_DIR} (they live in ../shared/fixtures)")
    return FIXTURES_DIR
