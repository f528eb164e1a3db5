"""The page's server without a browser: only its own files (hostile paths get 404), MIME types, the
cross-origin isolation headers, 127.0.0.1 only, the /proxy route (model name, size cap, errors
passed through, unreachable server) and ``main.py --mode=web``."""
import http.client
import json
import pathlib
import shutil
import socket
import subprocess
import sys

import pytest

from ifan_tf.litert.model_file import LiteRTModelError
from ifan_tf.web.proxy import ServingProxy
from ifan_tf.web.server import WebServer
from ifan_tf.web.site import WebSite, WebSiteError

from fake_serving import LoopbackServer
from web_helpers import REPO

HOSTILE = ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd", "/src/../../main.py",
           "/src/%2e%2e/%2e%2e/main.py", "/src/..\\..\\main.py", "//etc/passwd", "/etc/passwd", "/main.py",
           "/models/../../etc/passwd", "/models/ifan-t64-float32.tflite/../../../etc/passwd",
           "/vendor/litert/wasm/../../package.json", "/vendor/litert/wasm/%2e%2e/package.json",
           "/node_modules/@litertjs/core/package.json", "/web/index.html", "/.git/config", "/src/", "/src",
           "/models/", "/proxy/v1/models/ifan:predict", "/src/app.js%00.png", "/index.html/..")


def request(url, path, method="GET", body=None, headers=None):
    """``(status, headers, body)`` of a raw request (the path is sent exactly as given)."""
    host, port = url.split("//", 1)[1].strip("/").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None and "Content-Length" not in (headers or {}):
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def page(litert_exports, tools):
    server = WebServer(WebSite(litert_exports["float32"]), port=0).start()
    try:
        yield server
    finally:
        server.stop()


def test_serves_the_page_litert_and_models_with_headers(page, litert_exports):
    assert page.httpd.server_address[0] == "127.0.0.1"
    expected = {"/": "text/html; charset=utf-8", "/src/app.js": "text/javascript; charset=utf-8",
                "/src/worker.js": "text/javascript; charset=utf-8", "/src/style.css": "text/css; charset=utf-8",
                "/src/icon.svg": "image/svg+xml", "/vendor/litert/core.js": "text/javascript; charset=utf-8",
                "/vendor/litert/wasm/litert_wasm_threaded_internal.wasm": "application/wasm",
                "/vendor/litert/wasm/litert_wasm_internal.js": "text/javascript; charset=utf-8",
                "/models/ifan-t64-float32.tflite": "application/octet-stream",
                "/models/ifan-t64-dynamic_int8.json": "application/json", "/config.json": "application/json"}
    for path, content_type in expected.items():
        status, headers, body = request(page.url, path)
        assert status == 200 and headers["Content-Type"] == content_type, (path, status, headers)
        assert int(headers["Content-Length"]) == len(body) > 0, path
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin", path
        assert headers["Cross-Origin-Embedder-Policy"] == "require-corp", path
        assert "script-src 'self' 'wasm-unsafe-eval'" in headers["Content-Security-Policy"], path
    _, _, core = request(page.url, "/vendor/litert/core.js")
    assert b'from "./wasm-utils.js"' in core and b"@litertjs/wasm-utils" not in core
    _, _, model = request(page.url, "/models/ifan-t64-float32.tflite")
    assert model == pathlib.Path(litert_exports["float32"]).read_bytes()
    _, _, config = request(page.url, "/config.json")
    config = json.loads(config)
    assert [m["variant"] for m in config["models"]] == ["float32", "float16", "dynamic_int8"]
    assert config["models"][0]["tile"] == 64 and config["models"][0]["overlap"] == 16
    assert config["max_pixels"] == 40_000_000 and config["serving"] is None


def test_hostile_paths_are_404(page):
    for path in HOSTILE:
        status, headers, body = request(page.url, path)
        assert status == 404 and b"root:" not in body and b"import" not in body, (path, status)
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    status, _, body = request(page.url, "/proxy/v1/models/ifan:predict", "POST", b"{}")
    assert status == 404 and "server mode is off" in json.loads(body)["error"]


def test_proxy_forwards_checks_and_reports(litert_exports, tools):
    def reply(path, body):
        if json.loads(body).get("instances") == ["bad"]:
            return 400, {"error": "Invalid PNG data, size 3"}
        return 200, {"predictions": [{"b64": "iVBORw=="}], "path": path}

    upstream = LoopbackServer(reply)
    site = WebSite(litert_exports["float32"], serving_model="ifan", max_request_bytes=1000)
    server = WebServer(site, port=0, proxy=ServingProxy(upstream.url, "ifan", max_request_bytes=1000)).start()
    try:
        good = json.dumps({"signature_name": "deblur_encoded", "instances": [{"b64": "AAAA"}]}).encode()
        status, headers, body = request(server.url, "/proxy/v1/models/ifan:predict", "POST", good)
        assert status == 200 and json.loads(body)["path"] == "/v1/models/ifan:predict"
        assert upstream.requests[-1] == ("/v1/models/ifan:predict", good)
        status, _, body = request(server.url, "/proxy/v1/models/ifan/versions/3:predict", "POST", good)
        assert status == 200 and json.loads(body)["path"] == "/v1/models/ifan/versions/3:predict"
        status, _, body = request(server.url, "/proxy/v1/models/ifan:predict", "POST", b'{"instances": ["bad"]}')
        assert status == 400 and json.loads(body) == {"error": "Invalid PNG data, size 3"}
        count = len(upstream.requests)
        refusals = {
            "/proxy/v1/models/other:predict": (404, "serves TF Serving model 'ifan' only"),
            "/proxy/v1/models/ifan:classify": (404, "not a predict route"),
            "/proxy/../v1/models/ifan:predict": (404, "not a predict route"),
        }
        for path, (code, text) in refusals.items():
            status, _, body = request(server.url, path, "POST", good)
            assert status == code and text in json.loads(body)["error"], (path, status, body)
        status, _, body = request(server.url, "/proxy/v1/models/ifan:predict", "POST", b"x" * 1001)
        assert status == 413 and "more than this proxy's limit of 1000 bytes" in json.loads(body)["error"]
        status, _, body = request(server.url, "/proxy/v1/models/ifan:predict", "POST", b"{}",
                                  headers={"Content-Length": "-5"})
        assert status == 400 and "bad Content-Length" in json.loads(body)["error"]
        assert len(upstream.requests) == count  # nothing refused reached TF Serving
        assert json.loads(request(server.url, "/config.json")[2])["serving"] == {"model": "ifan"}
    finally:
        server.stop()
        upstream.stop()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    status, content_type, body = ServingProxy(f"http://127.0.0.1:{closed}", "ifan").forward(
        "/proxy/v1/models/ifan:predict", b"{}")
    assert status == 502 and f"TF Serving at http://127.0.0.1:{closed} cannot be reached" in json.loads(body)["error"]
    for bad in ("127.0.0.1:8501", "http://127.0.0.1:8501/v1", "ftp://host:1"):
        with pytest.raises(ValueError, match="--serving_url must be like"):
            ServingProxy(bad, "ifan")


def test_site_errors_name_the_file(litert_exports, tmp_path, tools):
    lonely = tmp_path / "ifan-t64-float32.tflite"
    shutil.copy(litert_exports["float32"], lonely)
    with pytest.raises(LiteRTModelError, match=r"ifan-t64-float32\.json: missing"):
        WebSite(lonely)
    with pytest.raises(LiteRTModelError, match="no such LiteRT model file"):
        WebSite(tmp_path / "nothing.tflite")
    web_root = tmp_path / "web"
    shutil.copytree(REPO / "web", web_root, ignore=shutil.ignore_patterns("node_modules"))
    with pytest.raises(WebSiteError, match=r"node_modules/@litertjs/core/dist/index\.js: missing; .*make web"):
        WebSite(litert_exports["float32"], web_root=web_root)
    folder = tmp_path / "exports"
    folder.mkdir()
    for name in ("ifan-t64-float32", "ifan-t64-dynamic_int8"):
        for suffix in (".tflite", ".json"):
            shutil.copy(pathlib.Path(litert_exports["float32"]).with_name(name + suffix), folder)
    (folder / "ifan-t64-float16.tflite").write_bytes(b"1234TFL3" + b"\0" * 64)  # its JSON describes another file
    shutil.copy(folder / "ifan-t64-float32.json", folder / "ifan-t64-float16.json")
    site = WebSite(folder / "ifan-t64-float32.tflite")
    assert [variant for variant, _, _ in site.models] == ["float32", "dynamic_int8"]
    assert site.lookup("/models/ifan-t64-float16.tflite") is None
    assert site.lookup("/models/ifan-t64-dynamic_int8.tflite") is not None


def test_main_web_mode(litert_exports, tools):
    command = [sys.executable, "main.py", "--mode=web", f"--model={litert_exports['float32']}", "--port=0"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("IFAN web page: http://127.0.0.1:"), (line, process.poll())
        url = line.split()[3]
        status, _, body = request(url, "/config.json")
        assert status == 200 and json.loads(body)["models"][0]["variant"] == "float32"
    finally:
        process.terminate()
        process.wait(timeout=30)
    result = subprocess.run([sys.executable, "main.py", "--mode=web", "--model=/nonexistent/m.tflite"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "error: /nonexistent/m.tflite: no such LiteRT model file" in result.stderr
