"""A loopback TF Serving stand-in for the web tests: the serving tests' ``_FakeServing`` (REST predict
over a SavedModel, in ``tests/serving/conftest.py``), imported from that file and served over HTTP
like its ``rest_server`` fixture, plus a stub upstream that answers fixed replies."""

import importlib.util
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from web_helpers import REPO

SERVING_TESTS = REPO / "tests" / "serving"
if str(SERVING_TESTS) not in sys.path:
    sys.path.insert(0, str(SERVING_TESTS))  # the serving tests' helpers (json_http, serving_test_images)

from json_http import send_json  # noqa: E402


def fake_serving_class():
    """``_FakeServing`` from tests/serving/conftest.py (loaded under another module name)."""
    spec = importlib.util.spec_from_file_location("serving_conftest_for_web_tests", SERVING_TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "_FakeServing"):
        raise AssertionError(f"{SERVING_TESTS / 'conftest.py'}: no _FakeServing class any more; update tests/web")
    return module._FakeServing


class LoopbackServer:
    """``reply(path, body) -> (status, dict)`` served on 127.0.0.1 (free port) in a thread; ``.url``, ``.requests``."""

    def __init__(self, reply):
        self.requests = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.requests.append((self.path, body))
                status, answer = reply(self.path, body)
                send_json(self, status, answer)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
