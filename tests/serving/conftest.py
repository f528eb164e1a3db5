"""Serving test fixtures: one tiny exported model per session, test images, a loopback TF Serving stand-in."""
import base64
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import keras
import numpy as np
import pytest
import tensorflow as tf

from ifan_tf.model.ifan import build_ifan
from ifan_tf.serving.export import export_network

from json_http import send_json
from serving_test_images import TINY
from warmup_replay import replay_warmup


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``(network, export_base_dir, version_dir)`` for a tiny random-weight IFAN exported once."""
    keras.utils.set_random_seed(4)
    network = build_ifan(TINY)
    base = tmp_path_factory.mktemp("export")
    return network, base, export_network(network, base)


_LOADED = {}  # saved model dir -> (model, warm-up records replayed): loaded once per session, like a server


class _FakeServing:
    """TF Serving's REST predict endpoint over a SavedModel (row and columnar formats, b64 binaries).

    At load it replays the version's warm-up requests, if any (``warmup_records`` counts them).
    """

    route = re.compile(r"^/v1/models/(?P<name>[^/:]+)(/versions/(?P<version>\d+))?:predict$")

    def __init__(self, saved_model_dir, name, version):
        key = os.path.abspath(str(saved_model_dir))
        if key not in _LOADED:
            model = tf.saved_model.load(key)
            _LOADED[key] = model, replay_warmup(model, key)
        self.model, self.warmup_records = _LOADED[key]
        self.name, self.version = name, str(version)
        self.requests = 0

    @staticmethod
    def _decode(value):
        if isinstance(value, dict) and set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        if isinstance(value, list):
            return [_FakeServing._decode(v) for v in value]
        return value

    @staticmethod
    def _encode(name, value):
        if name.endswith("_bytes"):
            if isinstance(value, bytes):
                return {"b64": base64.b64encode(value).decode("ascii")}
            return [_FakeServing._encode(name, v) for v in value]
        return value.tolist() if isinstance(value, np.ndarray) else value

    def predict(self, path, body):
        """Returns ``(http_status, json_dict)`` like TF Serving."""
        match = self.route.match(path)
        if not match or match["name"] != self.name or match["version"] not in (None, self.version):
            return 404, {"error": f"Servable not found for request: {path}"}
        try:
            request = json.loads(body)
            function = self.model.signatures[request.get("signature_name", "serving_default")]
        except (ValueError, KeyError) as error:
            return 400, {"error": f"bad request: {error}"}
        (input_name,) = function.structured_input_signature[1].keys()
        spec = function.structured_input_signature[1][input_name]
        rows = "instances" in request
        data = request["instances"] if rows else request.get("inputs")
        if isinstance(data, dict):
            data = data[input_name]
        if rows:
            data = [row[input_name] if isinstance(row, dict) and input_name in row else row for row in data]
        try:
            tensor = tf.constant(self._decode(data), dtype=spec.dtype)
            outputs = function(**{input_name: tensor})
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            return 400, {"error": getattr(error, "message", str(error))}
        outputs = {k: v.numpy() for k, v in outputs.items()}
        (out_name, value), = outputs.items()
        if rows:
            return 200, {"predictions": [self._encode(out_name, v) for v in value]}
        return 200, {"outputs": self._encode(out_name, value)}


@pytest.fixture
def rest_server(exported):
    """A loopback HTTP server (127.0.0.1, free port, own thread) serving ``exported`` as model ``ifan``."""
    _, _, version_dir = exported
    version = int(str(version_dir).rstrip("/").rsplit("/", 1)[-1])
    fake = _FakeServing(version_dir, "ifan", version)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            if length > 64 * 1024 * 1024:
                status, reply = 413, {"error": "request too large"}
            else:
                fake.requests += 1
                status, reply = fake.predict(self.path, self.rfile.read(length))
            send_json(self, status, reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
