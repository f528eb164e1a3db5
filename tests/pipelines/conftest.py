"""Fixtures of the Beam pipeline tests: one tiny model and one photo folder per session."""
import pytest

from pipeline_test_images import make_model, make_photo_folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory):
    return make_photo_folder(tmp_path_factory.mktemp("photos"))
