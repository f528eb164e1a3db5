"""What the web page's server may serve: a fixed map from URL path to file, built at start-up.

Only these paths exist (anything else is 404, so no request path can reach another file):

- ``/``, ``/index.html`` and ``/src/<name>``: the page, ``web/index.html`` and the files directly in
  ``web/src/`` (``.js``, ``.css``, ``.svg``, ``.html``);
- ``/vendor/litert/core.js``, ``/vendor/litert/wasm-utils.js`` and ``/vendor/litert/wasm/<name>``:
  LiteRT.js from ``web/node_modules`` (installed by ``npm ci``). ``core.js`` imports the bare name
  ``@litertjs/wasm-utils``, which a Web Worker cannot resolve (no import maps in workers), so that
  one import is rewritten to ``./wasm-utils.js``;
- ``/models/<file>``: the LiteRT export given with ``--model`` and the other quantizations of the
  same tile size found beside it (float32, float16, dynamic_int8), each ``.tflite`` with its
  ``.json``, all checked with ``ifan_tf.litert.model_file`` (an invalid sibling is skipped and
  logged; an invalid ``--model`` is an error naming the file);
- ``/config.json``: what the page needs to know (models, size limit, whether server mode is on).
"""

import dataclasses
import json
import os
import pathlib
import re

from absl import logging

from ifan_tf.litert import model_file

WEB_ROOT = pathlib.Path(__file__).resolve().parents[2] / "web"
DEFAULT_MAX_PIXELS = 40_000_000
STATIC_SUFFIXES = (".js", ".css", ".svg", ".html")
VARIANTS = (("none", "float32"), ("float16", "float16"), ("dynamic_int8", "dynamic_int8"))
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
    ".json": "application/json", ".wasm": "application/wasm", ".tflite": "application/octet-stream",
    ".png": "image/png",
}
_BARE_IMPORT = re.compile(r"""from\s*(["'])@litertjs/wasm-utils\1""")
_SOURCE_MAP = re.compile(r"^//# sourceMappingURL=.*$", re.MULTILINE)


class WebSiteError(ValueError):
    """The page cannot be served: files missing (``npm ci`` not run) or a bad model."""


@dataclasses.dataclass
class Resource:
    """One servable path: a file on disk, or fixed bytes (``data``)."""

    content_type: str
    path: pathlib.Path = None
    data: bytes = None


def content_type(name):
    """The Content-Type for a file name (by its suffix)."""
    return CONTENT_TYPES.get(os.path.splitext(str(name))[1].lower(), "application/octet-stream")


def _litert_files(web_root):
    """The ``/vendor/litert/...`` resources from ``web_root/node_modules``."""
    modules = web_root / "node_modules" / "@litertjs"
    core = modules / "core" / "dist" / "index.js"
    utils = modules / "wasm-utils" / "dist" / "index.js"
    wasm_dir = modules / "core" / "wasm"
    for needed in (core, utils, wasm_dir):
        if not needed.exists():
            raise WebSiteError(f"{needed}: missing; install the page's packages first: `make web` "
                               f"(runs `npm ci` in {web_root})")
    source, count = _BARE_IMPORT.subn(r"from \1./wasm-utils.js\1", core.read_text(encoding="utf-8"))
    if count != 1:
        raise WebSiteError(f"{core}: expected exactly one import of '@litertjs/wasm-utils', found {count}; "
                           "this @litertjs/core version is not the one in web/package-lock.json (run `make web`)")
    resources = {
        "/vendor/litert/core.js": Resource(content_type("core.js"), data=_SOURCE_MAP.sub("", source).encode()),
        "/vendor/litert/wasm-utils.js": Resource(
            content_type("core.js"), data=_SOURCE_MAP.sub("", utils.read_text(encoding="utf-8")).encode()),
    }
    for entry in sorted(wasm_dir.iterdir()):
        if entry.is_file() and entry.suffix in (".js", ".wasm"):
            resources[f"/vendor/litert/wasm/{entry.name}"] = Resource(content_type(entry.name), path=entry)
    return resources


def _page_files(web_root):
    index = web_root / "index.html"
    if not index.is_file():
        raise WebSiteError(f"{index}: missing; the web page lives in {web_root}")
    resources = {"/": Resource(content_type(index.name), path=index),
                 "/index.html": Resource(content_type(index.name), path=index)}
    for entry in sorted((web_root / "src").iterdir()):
        if entry.is_file() and entry.suffix in STATIC_SUFFIXES:
            resources[f"/src/{entry.name}"] = Resource(content_type(entry.name), path=entry)
    return resources


def find_models(model_path):
    """``[(variant, tflite_path, description)]``: ``model_path`` first, then the other quantizations
    of the same tile size beside it. Raises ``LiteRTModelError`` when ``model_path`` itself is bad."""
    model_path = pathlib.Path(model_path).resolve()
    description = model_file.read_sidecar(model_path, model_file.read_model_bytes(model_path))
    variant = {quantize: name for quantize, name in VARIANTS}.get(description.get("quantize"), "float32")
    models = [(variant, model_path, description)]
    for quantize, name in VARIANTS:
        sibling = model_path.with_name(model_file.model_file_name(description["tile"], quantize))
        if sibling == model_path or not sibling.is_file():
            continue
        try:
            other = model_file.read_sidecar(sibling, model_file.read_model_bytes(sibling))
        except (model_file.LiteRTModelError, OSError) as error:
            logging.warning("not offering %s: %s", sibling, error)
            continue
        if other["tile"] != description["tile"]:
            logging.warning("not offering %s: tile %d, not %d", sibling, other["tile"], description["tile"])
            continue
        models.append((name, sibling, other))
    return models


class WebSite:
    """The URL map of the page (see the module docstring).

    Args:
      model_path: a LiteRT ``.tflite`` export (its JSON beside it).
      serving_model: TF Serving model name for server mode, or None (server mode off).
      max_pixels: the largest photo (width * height) the page accepts.
      max_request_bytes: the proxy's request size cap (told to the page too).
      web_root: the folder holding ``index.html``, ``src/`` and ``node_modules/``.
    """

    def __init__(self, model_path, serving_model=None, max_pixels=DEFAULT_MAX_PIXELS, max_request_bytes=None,
                 web_root=WEB_ROOT):
        web_root = pathlib.Path(web_root).resolve()
        if not isinstance(max_pixels, int) or max_pixels < 1:
            raise WebSiteError(f"the photo size limit must be a positive number of pixels, got {max_pixels!r}")
        self.resources = {**_page_files(web_root), **_litert_files(web_root)}
        self.models = find_models(model_path)
        entries = []
        for variant, path, description in self.models:
            for target in (path, pathlib.Path(model_file.sidecar_path(path))):
                self.resources[f"/models/{target.name}"] = Resource(content_type(target.name), path=target)
            entries.append({"variant": variant, "url": f"/models/{path.name}",
                            "description_url": f"/models/{pathlib.Path(model_file.sidecar_path(path)).name}",
                            "tile": description["tile"], "overlap": description["tile_overlap"],
                            "bytes": description.get("bytes")})
        config = {"models": entries, "max_pixels": max_pixels,
                  "serving": {"model": serving_model} if serving_model else None,
                  "max_request_bytes": max_request_bytes}
        self.resources["/config.json"] = Resource(content_type("config.json"), data=json.dumps(config).encode())
        self.config = config

    def lookup(self, path):
        """The ``Resource`` for a URL path (already split from its query), or None."""
        return self.resources.get(path)
