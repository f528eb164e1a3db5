"""The page in headless Chromium, server mode: photos go through the page server's /proxy route to
the project's loopback TF Serving stand-in (``deblur_encoded`` over a real SavedModel export); the
result equals what ``ifan_tf.serving.client.RestClient`` gets; TF Serving's HTTP 400 and its error
text reach the user; the proxy's size cap is told before uploading; the next photo still works."""
import keras
import numpy as np
import pytest

from ifan_tf.model.config import ModelConfig
from ifan_tf.model.ifan import build_ifan
from ifan_tf.serving.client import RestClient, ServingError
from ifan_tf.serving.export import export_network
from ifan_tf.web.proxy import ServingProxy
from ifan_tf.web.server import WebServer
from ifan_tf.web.site import WebSite

from fake_serving import LoopbackServer, fake_serving_class
from png_files import png_bytes, smooth
from web_helpers import decode_png, open_page, result_png, upload

pytestmark = pytest.mark.slow
MAX_REQUEST = 400_000  # bytes: the proxy cap of this test's page


@pytest.fixture(scope="module")
def serving(tmp_path_factory):
    """TF Serving's REST API over a tiny SavedModel export, on loopback: yields its URL."""
    keras.utils.set_random_seed(4)
    network = build_ifan(ModelConfig(width=8, num_iterations=2))
    version_dir = export_network(network, tmp_path_factory.mktemp("serving-export"), warmup_requests=False)
    fake = fake_serving_class()(version_dir, "ifan", int(str(version_dir).rstrip("/").rsplit("/", 1)[-1]))
    server = LoopbackServer(fake.predict)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server_page(serving, litert_exports, tools):
    proxy = ServingProxy(serving, "ifan", max_request_bytes=MAX_REQUEST)
    site = WebSite(litert_exports["float32"], serving_model="ifan", max_request_bytes=MAX_REQUEST)
    server = WebServer(site, port=0, proxy=proxy).start()
    try:
        yield server.url
    finally:
        server.stop()


def use_server_mode(browser, url):
    open_page(browser, url)
    assert "(model ifan)" in browser.find_element("id", "server-name").text
    browser.find_element("id", "mode-server").click()


def test_server_mode_equals_rest_client(browser, server_page, serving, tmp_path):
    use_server_mode(browser, server_page)
    for name, data in (("s8.png", png_bytes(smooth((60, 90, 3), seed=20), 8, 2)),
                       ("s16.png", png_bytes(smooth((40, 30, 3), np.uint16, seed=21), 16, 2))):
        (tmp_path / name).write_bytes(data)
        state, text = upload(browser, tmp_path / name)
        assert state == "done", f"{name}: {text}"
        assert "on TF Serving (model ifan)" in text
        got = decode_png(result_png(browser))
        (expected,) = RestClient(serving, "ifan").deblur_encoded([data])
        np.testing.assert_array_equal(got, decode_png(expected), err_msg=name)


def test_server_errors_are_shown_then_a_photo_works(browser, server_page, serving, tmp_path):
    use_server_mode(browser, server_page)
    browser.allowed_console_errors = ("the server responded with a status of 400",)  # the refused request itself
    whole = png_bytes(smooth((50, 50, 3), seed=22), 8, 2)
    cut = whole[:len(whole) // 2]  # a valid header: the page sends it, the server cannot decode it
    (tmp_path / "cut.png").write_bytes(cut)
    with pytest.raises(ServingError) as refused:
        RestClient(serving, "ifan").deblur_encoded([cut])
    detail = str(refused.value).split("HTTP 400: ", 1)[1]
    state, text = upload(browser, tmp_path / "cut.png")
    assert state == "error", text
    assert " ".join(text.split()) == " ".join(f"cut.png: TF Serving answered HTTP 400: {detail}".split())
    (tmp_path / "noise.png").write_bytes(png_bytes(np.random.default_rng(0).integers(0, 256, (400, 400, 3)), 8, 2))
    state, text = upload(browser, tmp_path / "noise.png")
    assert state == "error" and "more than the page's proxy limit of 0.4 MB" in text, text
    (tmp_path / "notes.txt").write_bytes(b"not a photo")
    state, text = upload(browser, tmp_path / "notes.txt")
    assert state == "error" and text.startswith("notes.txt: not a PNG or JPEG image"), text
    (tmp_path / "fine.png").write_bytes(whole)
    state, text = upload(browser, tmp_path / "fine.png")
    assert state == "done", text
