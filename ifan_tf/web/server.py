"""The web page's HTTP server: Python's ``ThreadingHTTPServer`` on 127.0.0.1 only.

``GET`` serves exactly the paths of an ``ifan_tf.web.site.WebSite`` (404 for anything else, so
``/../../etc/passwd`` and its encoded forms find nothing); ``POST /proxy/...`` goes to TF Serving
through an ``ifan_tf.web.proxy.ServingProxy`` when server mode is on. Every response carries the
cross-origin isolation headers LiteRT.js' threaded WebAssembly build needs (``SharedArrayBuffer``)
and a Content-Security-Policy that allows only this origin (plus WebAssembly compilation).
"""

import shutil
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from absl import logging

from ifan_tf.web.proxy import PREFIX, error_reply

HOST = "127.0.0.1"
SECURITY_HEADERS = (
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Embedder-Policy", "require-corp"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-cache"),
    ("Content-Security-Policy", "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
                                "img-src 'self' blob: data:; connect-src 'self' blob: data:; worker-src 'self'; "
                                "style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
)


def make_handler(site, proxy=None):
    """A request handler class serving ``site`` and, if given, forwarding ``/proxy`` to ``proxy``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "ifan-web"
        sys_version = ""

        def _send(self, status, content_type, body=None, length=None):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body) if body is not None else length))
            for name, value in SECURITY_HEADERS:
                self.send_header(name, value)
            self.end_headers()
            if body is not None and self.command != "HEAD":
                self.wfile.write(body)

        def _path(self):
            return urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)

        def do_GET(self):
            resource = site.lookup(self._path())
            if resource is None:
                self._send(404, "text/plain; charset=utf-8", b"not found\n")
                return
            if resource.data is not None:
                self._send(200, resource.content_type, resource.data)
                return
            try:
                handle = open(resource.path, "rb")
            except OSError as error:
                logging.error("%s: cannot be read (%s)", resource.path, error)
                self._send(500, "text/plain; charset=utf-8", f"{resource.path.name}: cannot be read\n".encode())
                return
            with handle:
                self._send(200, resource.content_type, length=resource.path.stat().st_size)
                if self.command != "HEAD":
                    shutil.copyfileobj(handle, self.wfile, 1 << 20)

        do_HEAD = do_GET

        def do_POST(self):
            path = self._path()
            if proxy is None or not path.startswith(PREFIX + "/"):
                self._send(*error_reply(404, f"{path}: no such route (server mode is "
                                             f"{'on' if proxy else 'off: start with --serving_url'})"))
                self.close_connection = True
                return
            header = self.headers.get("Content-Length")
            try:
                length = int(header) if header is not None else None
            except ValueError:
                length = -1
            if length is not None and length < 0:
                self._send(*error_reply(400, f"{path}: bad Content-Length {header!r}"))
                self.close_connection = True
                return
            refused = proxy.check(path, length)
            if refused:
                self._send(*refused)
                self.close_connection = True  # the unread body must not be taken for the next request
                return
            body = self.rfile.read(length)
            if len(body) != length:
                self._send(*error_reply(400, f"{path}: the request body ended after {len(body)} of {length} bytes"))
                return
            self._send(*proxy.forward(path, body))

        def log_message(self, fmt, *args):
            logging.debug("web: %s " + fmt, self.address_string(), *args)

    return Handler


class WebServer:
    """The server of the page on ``127.0.0.1:port`` (0: a free port), in a background thread or not.

    Args:
      site: an ``ifan_tf.web.site.WebSite``.
      port: TCP port.
      proxy: an ``ifan_tf.web.proxy.ServingProxy`` for server mode, or None.
    """

    def __init__(self, site, port=0, proxy=None):
        self.httpd = ThreadingHTTPServer((HOST, port), make_handler(site, proxy))
        self.httpd.daemon_threads = True
        self.thread = None

    @property
    def url(self):
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self):
        """Serves in a daemon thread; returns self."""
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="ifan-web", daemon=True)
        self.thread.start()
        return self

    def serve_forever(self):
        self.httpd.serve_forever()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.thread is not None:
            self.thread.join(timeout=10)
