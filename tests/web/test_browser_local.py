"""The page in headless Chromium, local mode (LiteRT.js in a Web Worker): photos uploaded through the
file input come back equal to ``main.py --mode=predict --model=<the same .tflite>``; bad files and
over-limit photos get their messages and the next photo still works; cancel; model choice; viewer.
Every test also checks the page's console has no errors (the ``browser`` fixture)."""
import base64
import types

import cv2
import numpy as np
import pytest

from ifan_tf.modes import run_mode

from png_files import large_blank_png, png_bytes, smooth
from web_helpers import decode_png, message, open_page, read_png, result_png, upload, wait_for

pytestmark = pytest.mark.slow


def photo_files(folder):
    """``{file name: bytes}``: 8/16-bit RGB, gray, alpha, palette + tRNS (Adam7), gray + alpha, a JPEG."""
    rgb = smooth((97, 150, 3))
    alpha = np.linspace(0, 255, 80 * 64).reshape(64, 80, 1).astype(np.uint8)
    palette = smooth((8, 1, 3), seed=4)[:, 0]
    files = {
        "rgb8.png": png_bytes(rgb, 8, 2),
        "rgb16.png": png_bytes(smooth((90, 70, 3), np.uint16, seed=1), 16, 2),
        "gray8_small.png": png_bytes(smooth((33, 47), seed=2), 8, 0),  # smaller than the tile
        "rgba8.png": png_bytes(np.concatenate([smooth((64, 80, 3), seed=3), alpha], axis=2), 8, 6),
        "palette_trns_adam7.png": png_bytes(np.random.default_rng(5).integers(0, 8, (41, 52)), 8, 3, palette=palette,
                                            transparency=bytes([0, 90, 255, 17]), interlace=True),
        "gray_alpha16.png": png_bytes(smooth((30, 66, 2), np.uint16, seed=6), 16, 4),
    }
    ok, jpeg = cv2.imencode(".jpg", smooth((120, 72, 3), seed=7)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    files["photo.jpg"] = jpeg.tobytes()
    paths = {}
    for name, data in files.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


def predict(model, source, target):
    """``main.py --mode=predict --model=MODEL --input=SOURCE --output=TARGET`` (the same function, in process)."""
    flags = types.SimpleNamespace(model=str(model), input=str(source), output=str(target), tile=None, tile_overlap=None,
                                  num_threads=2, overwrite=True)
    assert run_mode("predict", flags) == 0


def test_photos_equal_predict(browser, web_server, litert_exports, tmp_path, record_property):
    (tmp_path / "in").mkdir()
    paths = photo_files(tmp_path / "in")
    runtime = open_page(browser, web_server)
    assert "WebAssembly (XNNPACK)" in runtime and "ifan-t64-float32.tflite" in runtime
    worst, differing, total = 0, 0, 0
    for name, path in paths.items():
        state, text = upload(browser, path)
        assert state == "done", f"{name}: {text}"
        got = decode_png(result_png(browser))
        expected_path = tmp_path / "predict" / (path.stem + ".png")
        predict(litert_exports["float32"], path, expected_path)
        expected = read_png(expected_path)
        assert got.shape == expected.shape and got.dtype == expected.dtype, (name, got.shape, expected.shape)
        step = 257 if got.dtype == np.uint16 else 1  # one 8-bit level in 16-bit units
        difference = np.abs(got.astype(np.int64) - expected.astype(np.int64))
        assert difference.max() <= step, f"{name}: differs from predict by {difference.max() / step:.2f}/255"
        if not name.endswith(".jpg"):
            worst = max(worst, difference.max() / step)
            differing += int(np.count_nonzero(difference))
            total += difference.size
        record_property(f"max_diff_{name}", float(difference.max() / step))
        print(f"{name}: max difference {difference.max() / step:.3f}/255, {np.count_nonzero(difference)} of "
              f"{difference.size} samples differ")
    record_property("png_samples_differing", f"{differing}/{total}")
    # Different CPUs' XNNPACK kernels may flip a rare rounding; a wrong blend or plan changes many samples.
    assert differing <= total // 1000, f"{differing} of {total} samples differ from predict"
    print(f"browser vs predict (PNG): max difference {worst:.3f}/255, {differing} of {total} samples differ")


def test_bad_files_and_limit_then_a_good_photo(browser, web_server, tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes(smooth((50, 60, 3), seed=8), 8, 2))
    truncated = png_bytes(smooth((50, 60, 3), seed=9), 8, 2)
    cases = {
        "notes.txt": (b"just some text, not a photo", "notes.txt: not a PNG or JPEG image"),
        "cut.png": (truncated[:len(truncated) // 2], "cut.png: truncated PNG"),
        "broken.jpg": (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x20\x00\x20\x03" + b"\x01\x11\x00" * 3 + b"\xff\xd9",
                       "broken.jpg: corrupt JPEG, the browser cannot decode it"),
        "huge.png": (large_blank_png(8000, 5001), "huge.png: 8000x5001 pixels (40.01 MP) is more than the limit of "
                                                  "40 MP for this page"),
    }
    open_page(browser, web_server)
    for name, (data, expected) in cases.items():
        (tmp_path / name).write_bytes(data)
        state, text = upload(browser, tmp_path / name)
        assert state == "error" and text.startswith(expected), (name, state, text)
        state, text = upload(browser, good)
        assert state == "done", f"after {name}: {text}"
    assert browser.find_element("id", "download-link").get_attribute("download") == "good_deblurred.png"


FRAME_GAPS = """
    window.frameGap = 0;
    let last = performance.now();
    const tick = (now) => { window.frameGap = Math.max(window.frameGap, now - last); last = now;
                            requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
"""


def test_progress_cancel_and_responsive(browser, web_server, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes(smooth((960, 960, 3), seed=10), 8, 2))  # 20 x 20 tiles of 64
    open_page(browser, web_server)
    browser.execute_script(FRAME_GAPS)
    upload(browser, big, final=False)
    text = lambda: browser.find_element("id", "progress-text").text  # noqa: E731
    wait_for(browser, lambda: text().startswith("tile ") and "left" in text(), 60, "progress with time left")
    assert text().split(" / ")[1].startswith("400"), text()
    # The model runs in the Web Worker: the page itself never fetched LiteRT.js or the model, and
    # its frames keep coming while the tiles run.
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map((e) => e.name);")
    assert fetched and not [url for url in fetched if "/vendor/litert/" in url or url.endswith(".tflite")], fetched
    wait_for(browser, lambda: int(text().split()[1]) >= 20, 60, "20 tiles")
    assert browser.execute_script("return window.frameGap;") < 2000
    browser.find_element("id", "cancel-button").click()
    wait_for(browser, lambda: message(browser)[0] in ("cancelled", "done", "error"), 60, "the cancel")
    assert message(browser)[0] == "cancelled", message(browser)
    small = tmp_path / "small.png"
    small.write_bytes(png_bytes(smooth((40, 40, 3), seed=11), 8, 2))
    state, text = upload(browser, small)
    assert state == "done", text


def test_choose_quantization(browser, web_server, litert_exports, tmp_path):
    photo = tmp_path / "q.png"
    photo.write_bytes(png_bytes(smooth((70, 90, 3), seed=12), 8, 2))
    open_page(browser, web_server)
    options = [o.text for o in browser.find_elements("css selector", "#model-select option")]
    assert [o.split()[0] for o in options] == ["float32", "float16", "dynamic_int8"], options
    for index, variant in ((1, "float16"), (2, "dynamic_int8")):
        browser.find_element("css selector", f"#model-select option[value='{index}']").click()
        wait_for(browser, lambda: f"ifan-t64-{variant}.tflite" in browser.find_element("id", "runtime-info").text
                 and message(browser)[0] == "ready", 60, f"the {variant} model")
        state, text = upload(browser, photo)
        assert state == "done", text
        got = decode_png(result_png(browser))
        predict(litert_exports[variant], photo, tmp_path / f"q_{variant}.png")
        difference = np.abs(got.astype(int) - read_png(tmp_path / f"q_{variant}.png").astype(int)).max()
        print(f"{variant}: browser vs predict max difference {difference}/255")
        assert difference <= 1, (variant, difference)
    # WebGPU asked for where the browser has none (headless, --disable-gpu): a message, then wasm works.
    browser.find_element("css selector", "#accelerator-select option[value='webgpu']").click()
    wait_for(browser, lambda: message(browser)[0] == "error", 60, "the WebGPU refusal")
    assert message(browser)[1] == "WebGPU is not available in this browser (no adapter); choose wasm"
    browser.find_element("css selector", "#accelerator-select option[value='wasm']").click()
    wait_for(browser, lambda: message(browser)[0] == "ready", 60, "the wasm model")
    assert "WebAssembly (XNNPACK)" in browser.find_element("id", "runtime-info").text
    assert upload(browser, photo)[0] == "done"


def test_viewer_controls(browser, web_server, tmp_path):
    photo = tmp_path / "v.png"
    photo.write_bytes(png_bytes(smooth((300, 500, 3), seed=13), 8, 2))
    open_page(browser, web_server)
    assert upload(browser, photo)[0] == "done"
    assert browser.find_element("id", "result").is_displayed()
    browser.find_element("id", "zoom-1").click()
    assert browser.find_element("id", "zoom-level").text == "100 %"
    assert "scale(1)" in browser.find_element("id", "after-image").get_attribute("style")
    browser.find_element("id", "zoom-in").click()
    assert browser.find_element("id", "zoom-level").text == "150 %"
    viewer = browser.find_element("id", "viewer")
    browser.find_element("css selector", "#view-mode option[value='side']").click()
    assert "side-mode" in viewer.get_attribute("class") and not browser.find_element("id", "split").is_enabled()
    browser.find_element("css selector", "#view-mode option[value='slider']").click()
    assert "slider-mode" in viewer.get_attribute("class")
    natural = browser.execute_script("const i = document.getElementById('after-image'); "
                                     "return [i.naturalWidth, i.naturalHeight];")
    assert natural == [500, 300]
    # Drag-and-drop: a photo dropped on the page is taken like a chosen file.
    dropped = png_bytes(smooth((20, 30, 3), seed=14), 8, 2)
    browser.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
        document.getElementById('drop-zone').dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));
    """, base64.b64encode(dropped).decode())
    wait_for(browser, lambda: message(browser)[0] == "done" and "dropped.png" in message(browser)[1], 60, "the drop")
    assert browser.find_element("id", "download-link").get_attribute("download") == "dropped_deblurred.png"
