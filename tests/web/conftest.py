"""Web page test fixtures: a tiny LiteRT export (tile 64, float32 + dynamic_int8), the page's
server on a free loopback port, and one headless Chromium per session.

The browser tests need Debian's chromium + chromium-driver, Node and ``npm ci`` in web/ (``make
test`` installs all of them); when one is missing they fail with what to install, they do not skip.
"""
import keras
import pytest

from ifan_tf.litert.export import export_network
from ifan_tf.model.config import ModelConfig
from ifan_tf.model.ifan import build_ifan
from ifan_tf.web.server import WebServer
from ifan_tf.web.site import WebSite

from web_helpers import console_errors, missing_tools, start_chromium

TINY = ModelConfig(width=8, num_iterations=2)
TILE, OVERLAP = 64, 16


@pytest.fixture(scope="session")
def tiny_network():
    keras.utils.set_random_seed(3)
    return build_ifan(TINY)


@pytest.fixture(scope="session")
def litert_exports(tiny_network, tmp_path_factory):
    """``{"float32": path, "float16": path, "dynamic_int8": path}``: the tiny network exported side by side
    (tile 64, overlap 16)."""
    folder = tmp_path_factory.mktemp("web-litert")
    return {name: export_network(tiny_network, folder, tile=TILE, tile_overlap=OVERLAP, quantize=quantize)
            for name, quantize in (("float32", "none"), ("float16", "float16"), ("dynamic_int8", "dynamic_int8"))}


@pytest.fixture(scope="session")
def tools():
    missing = missing_tools()
    if missing:
        pytest.fail(f"the browser tests need {', '.join(missing)}: run `make web browser` (npm ci in web/, and "
                    "apt-get install chromium chromium-driver)")


@pytest.fixture(scope="session")
def web_server(litert_exports, tools):
    """The page (local mode only) on 127.0.0.1; yields its URL."""
    site = WebSite(litert_exports["float32"])
    server = WebServer(site, port=0).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium(tools, tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium):
    """The session's Chromium, with its console log emptied before and checked for errors after the test."""
    console_errors(chromium)
    yield chromium
    errors = console_errors(chromium, allowed=getattr(chromium, "allowed_console_errors", ()))
    chromium.allowed_console_errors = ()
    assert not errors, f"the page logged errors: {errors}"
