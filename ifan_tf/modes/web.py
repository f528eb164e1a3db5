"""``main.py --mode=web``: serve the browser page on 127.0.0.1 (docs/web.md).

    python main.py --mode=web --model=exports/ifan-t512-float32.tflite [--port=8000]
        [--serving_url=http://127.0.0.1:8501 --serving_model=ifan] [--max_pixels=40000000 --proxy_max_mb=256]

The page deblurs photos on the user's device with LiteRT.js (the ``--model`` export and the other
quantizations beside it), or sends them to TF Serving through this server's ``/proxy`` route.
Exit status 2 when the page cannot be served (missing ``npm ci``, bad model, port in use; ``ifan_tf.modes``).
"""

from ifan_tf.litert.model_file import LiteRTModelError
from ifan_tf.modes import OK, ModeError
from ifan_tf.web.proxy import ServingProxy
from ifan_tf.web.server import WebServer
from ifan_tf.web.site import DEFAULT_MAX_PIXELS, WebSite, WebSiteError

DEFAULT_PORT = 8000


def run(flags):
    if not flags.model:
        raise ModeError("--mode=web needs --model=FILE.tflite (a LiteRT export, its JSON beside it)")
    serving_url, serving_model = getattr(flags, "serving_url", None), getattr(flags, "serving_model", None)
    if serving_model and not serving_url:
        raise ModeError("--serving_model needs --serving_url (TF Serving's REST address)")
    max_bytes = int(float(getattr(flags, "proxy_max_mb", 256)) * 1024 * 1024)
    port = getattr(flags, "port", None)
    if port is not None and not 0 <= port <= 65535:
        raise ModeError(f"--port must be between 0 and 65535, got {port}")
    try:
        proxy = ServingProxy(serving_url, serving_model or "ifan", max_bytes) if serving_url else None
        site = WebSite(flags.model, serving_model=proxy.model if proxy else None,
                       max_pixels=flags.max_pixels or DEFAULT_MAX_PIXELS,
                       max_request_bytes=max_bytes if proxy else None)
        server = WebServer(site, DEFAULT_PORT if port is None else port, proxy)
    except (WebSiteError, LiteRTModelError, ValueError) as error:
        raise ModeError(str(error)) from None
    except OSError as error:
        raise ModeError(f"cannot listen on 127.0.0.1:{port if port is not None else DEFAULT_PORT} ({error.strerror}); "
                        "pass another --port") from None
    variants = ", ".join(variant for variant, _, _ in site.models)
    print(f"IFAN web page: {server.url}  (models: {variants}"
          + (f"; server mode: {proxy.url} model {proxy.model}" if proxy else "") + ")", flush=True)
    print("Ctrl-C stops it.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return OK
