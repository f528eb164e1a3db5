"""The loopback stand-ins' HTTP side: a JSON reply with its status, as TF Serving's REST API sends it."""
import json


def send_json(handler, status, reply):
    """Writes ``reply`` (JSON-serialisable) with HTTP ``status`` through ``handler`` (a ``BaseHTTPRequestHandler``)."""
    payload = json.dumps(reply).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)
