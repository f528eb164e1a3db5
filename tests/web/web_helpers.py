"""Helpers for the web page tests: Node for the page's pure modules, headless Chromium driven by
Selenium, and the page's controls (upload a photo, wait for the answer, read the result PNG).

Uniquely named (``conftest`` names clash across test folders). The browser is Debian's
``/usr/bin/chromium`` with ``/usr/bin/chromedriver`` (``make test`` installs them); nothing is
downloaded at run time.
"""

import base64
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import cv2
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
NODE_CHECK = pathlib.Path(__file__).with_name("node_check.mjs")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1000")
FINAL_STATES = ("done", "error", "cancelled")


def missing_tools():
    """What the browser tests need and is not installed (empty when all is there)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if shutil.which("node") is None:
        missing.append("node")
    if not (REPO / "web" / "node_modules" / "@litertjs" / "core" / "wasm").is_dir():
        missing.append("web/node_modules (npm ci)")
    return missing


def run_node(request, timeout=120):
    """Runs ``node_check.mjs`` with a JSON ``request``; returns its JSON answer."""
    result = subprocess.run(["node", str(NODE_CHECK)], input=json.dumps(request), capture_output=True, text=True,
                            timeout=timeout, cwd=REPO)
    assert result.returncode == 0, f"node_check.mjs failed ({result.returncode}): {result.stderr[-3000:]}"
    return json.loads(result.stdout)


def start_chromium(profile_dir=None):
    """A headless Chromium WebDriver that keeps the page's console log (level ALL)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir or tempfile.mkdtemp(prefix='chromium-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def console_errors(driver, allowed=()):
    """The page's console entries of level SEVERE since the last call, minus those containing an ``allowed`` text."""
    return [entry for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and not any(text in entry["message"] for text in allowed)]


def message(driver):
    """``(state, text)`` of the page's #message."""
    element = driver.find_element("id", "message")
    return element.get_attribute("data-state"), element.text


def open_page(driver, url, timeout=60):
    """Loads the page and waits until its model is loaded; returns the runtime description text."""
    driver.get(url)
    wait_for(driver, lambda: message(driver)[0] in ("ready", "error"), timeout, "the model to load")
    state, text = message(driver)
    assert state == "ready", f"the page did not get ready: {text}"
    return driver.find_element("id", "runtime-info").text


def wait_for(driver, condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; page says {message(driver)}")


def upload(driver, path, timeout=120, final=True):
    """Gives ``path`` to the page's file input; waits for the end state unless ``final`` is False.

    Returns ``(state, text)``.
    """
    before = int(driver.find_element("id", "message").get_attribute("data-job") or 0)
    driver.find_element("id", "file-input").send_keys(str(path))
    started = lambda: int(driver.find_element("id", "message").get_attribute("data-job") or 0) > before  # noqa: E731
    wait_for(driver, started, 10, f"the page to take {path}")
    if final:
        wait_for(driver, lambda: message(driver)[0] in FINAL_STATES, timeout, f"the result of {path}")
    return message(driver)


def result_png(driver):
    """The bytes of the result PNG the page offers for download."""
    href = driver.find_element("id", "download-link").get_attribute("href")
    assert href.startswith("blob:"), href
    encoded = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then((r) => r.arrayBuffer()).then((buffer) => {
          const bytes = new Uint8Array(buffer);
          let text = '';
          for (let i = 0; i < bytes.length; i += 32768) text += String.fromCharCode(...bytes.subarray(i, i + 32768));
          done(btoa(text));
        }, (error) => done('ERROR ' + error));
    """, href)
    assert not encoded.startswith("ERROR"), encoded
    return base64.b64decode(encoded)


def decode_png(data):
    """PNG bytes -> the array OpenCV gives predict (IMREAD_UNCHANGED; colour channels as RGB)."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert pixels is not None, "not a decodable PNG"
    if pixels.ndim == 3:
        pixels = pixels[:, :, [2, 1, 0, 3][:pixels.shape[2]]]
    return pixels


def read_png(path):
    return decode_png(pathlib.Path(path).read_bytes())
