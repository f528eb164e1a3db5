"""The page's same-origin route to TF Serving's REST API (TF Serving sends no CORS headers).

``POST /proxy/v1/models/<model>[/versions/<n>]:predict`` is forwarded to
``<serving_url>/v1/models/<model>[/versions/<n>]:predict`` for the one configured model name only;
the request body must declare its size (``Content-Length``) and stay under a cap. TF Serving's own
answers (200, or 400 with ``{"error": "..."}``) go back to the page unchanged; a server that cannot
be reached gives 502 and one that does not answer in time 504, each with an ``error`` text.
"""

import json
import re
import socket
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_MAX_REQUEST_BYTES = 256 * 1024 * 1024  # base64 of a 40 MP 8-bit PNG fits
DEFAULT_TIMEOUT = 600.0
PREFIX = "/proxy"
_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(/versions/(?P<version>\d+))?:predict$")


def error_reply(status, message):
    """``(status, content_type, body)`` carrying ``{"error": message}`` like TF Serving."""
    return status, "application/json", json.dumps({"error": message}).encode()


class ServingProxy:
    """Forwards predict requests to one TF Serving model.

    Args:
      serving_url: ``http://host:port`` of TF Serving's REST API.
      model: the only model name requests may name.
      max_request_bytes: the largest request body accepted.
      timeout: seconds to wait for TF Serving.
    """

    def __init__(self, serving_url, model, max_request_bytes=DEFAULT_MAX_REQUEST_BYTES, timeout=DEFAULT_TIMEOUT):
        parts = urllib.parse.urlsplit(serving_url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") or parts.query:
            raise ValueError(f"--serving_url must be like http://127.0.0.1:8501 (scheme, host, port), "
                             f"got {serving_url!r}")
        if not model or not re.fullmatch(r"[A-Za-z0-9_.-]+", model):
            raise ValueError(f"--serving_model must be a TF Serving model name, got {model!r}")
        if int(max_request_bytes) < 1:
            raise ValueError(f"--proxy_max_mb must be positive, got a cap of {max_request_bytes} bytes")
        self.url = serving_url.rstrip("/")
        self.model = model
        self.max_request_bytes = int(max_request_bytes)
        self.timeout = timeout

    def check(self, path, length):
        """``None`` if a request to ``path`` with ``length`` body bytes may be forwarded, else an error reply."""
        match = _ROUTE.match(path[len(PREFIX):]) if path.startswith(PREFIX + "/") else None
        if not match:
            return error_reply(404, f"{path}: not a predict route (POST {PREFIX}/v1/models/{self.model}:predict)")
        if match["name"] != self.model:
            return error_reply(404, f"{path}: this page serves TF Serving model {self.model!r} only")
        if length is None:
            return error_reply(411, f"{path}: the request must give its Content-Length")
        if length > self.max_request_bytes:
            return error_reply(413, f"{path}: the request is {length} bytes, more than this proxy's limit of "
                                    f"{self.max_request_bytes} bytes (--proxy_max_mb)")
        return None

    def forward(self, path, body):
        """Sends ``body`` (JSON bytes) to TF Serving; returns ``(status, content_type, body)``."""
        request = urllib.request.Request(self.url + path[len(PREFIX):], data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.headers.get("Content-Type", "application/json"), response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers.get("Content-Type", "application/json"), error.read()
        except urllib.error.URLError as error:
            if isinstance(error.reason, (socket.timeout, TimeoutError)):
                return error_reply(504, f"TF Serving at {self.url} did not answer within {self.timeout:g} s")
            return error_reply(502, f"TF Serving at {self.url} cannot be reached ({error.reason})")
        except (socket.timeout, TimeoutError):
            return error_reply(504, f"TF Serving at {self.url} did not answer within {self.timeout:g} s")
        except (ConnectionError, OSError) as error:
            return error_reply(502, f"TF Serving at {self.url}: connection failed ({error})")
