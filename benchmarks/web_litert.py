"""Web benchmark: seconds per megapixel of the browser page (LiteRT.js, WebAssembly in headless
Chromium) next to the Python LiteRT runner and the SavedModel, same model, one run.

    .venv/bin/python -m benchmarks.web_litert            # paper model, 512 tiles, 1280x720 (long: minutes)
    .venv/bin/python -m benchmarks.web_litert --quick    # tiny model, 64 tiles, 256x192 (seconds)
    .venv/bin/python -m benchmarks.web_litert --runs=5 --height=1080 --width=1920

One network (the paper model ``ModelConfig()`` with random Glorot weights and a fixed seed, or a
tiny one with ``--quick``) is exported as ``.tflite`` tile models (float32 and dynamic_int8) and as
a TF Serving SavedModel. The same test photo (``benchmarks/inference.py``'s natural blurred image,
saved as an 8-bit PNG) then goes, in interleaved timed runs after one warm-up each, through:

- the web page (``main.py --mode=web``'s server on 127.0.0.1) in Debian's headless Chromium
  (``--disable-gpu``: LiteRT.js on WebAssembly/XNNPACK with the threads the browser gives it):
  the tile loop alone (``tile s``: gather, model, blend) and the whole page job (decode, tiles,
  PNG encode), from the page's ``#result-info[data-stats]``;
- the Python LiteRT runner (``ifan_tf.litert.runner``: 2 threads, XNNPACK, the same tile plan);
- the SavedModel's ``serving_default`` signature with TensorFlow on 2 threads (float32 only; it
  tiles images above its own tile budget).

Printed: best and median seconds per megapixel for each, and the largest difference (in 8-bit
levels) between the page's PNG and the Python runner's output for each variant.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

THREADS = 2
VARIANTS = (("none", "float32"), ("dynamic_int8", "dynamic_int8"))


def _browser_run(driver, photo, timeout):
    """Uploads the photo to the page; returns (page seconds, tile seconds, PNG bytes, stats)."""
    import json

    from web_helpers import result_png, upload

    state, text = upload(driver, photo, timeout=timeout)
    if state != "done":
        raise RuntimeError(f"the page did not deblur {photo}: {text}")
    stats = json.loads(driver.find_element("id", "result-info").get_attribute("data-stats"))
    return stats["seconds"], stats["tileSeconds"], result_png(driver), stats


def _select_variant(driver, index, name):
    from web_helpers import message, wait_for

    driver.find_element("css selector", f"#model-select option[value='{index}']").click()
    wait_for(driver, lambda: name in driver.find_element("id", "runtime-info").text
             and message(driver)[0] == "ready", 300, f"the {name} model to load in the page")


def _summary(values, megapixels):
    return min(values) / megapixels, float(np.median(values)) / megapixels


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 64-pixel tiles, 256x192 photo")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per engine (after one warm-up)")
    parser.add_argument("--height", type=int, default=None, help="photo height (default 720; quick: 192)")
    parser.add_argument("--width", type=int, default=None, help="photo width (default 1280; quick: 256)")
    args = parser.parse_args()

    import sys

    import cv2
    import keras
    import tensorflow as tf

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "web"))
    from benchmarks.inference import _test_image
    from ifan_tf.io import image_io
    from ifan_tf.litert.export import export_network as export_litert
    from ifan_tf.litert.runner import LiteRTTileRunner, deblur_with_fixed_tiles
    from ifan_tf.model.config import ModelConfig
    from ifan_tf.model.ifan import build_ifan
    from ifan_tf.serving.export import export_network as export_saved_model
    from ifan_tf.web.server import WebServer
    from ifan_tf.web.site import WebSite
    from web_helpers import decode_png, missing_tools, open_page, start_chromium

    missing = missing_tools()
    if missing:
        raise SystemExit(f"the web benchmark needs {', '.join(missing)}: run `make web browser`")
    tile, overlap = (64, 16) if args.quick else (512, 32)
    height = args.height or (192 if args.quick else 720)
    width = args.width or (256 if args.quick else 1280)
    megapixels = height * width / 1e6
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    keras.utils.set_random_seed(0)
    network = build_ifan(ModelConfig(width=8, num_iterations=2) if args.quick else ModelConfig())
    load_before = os.getloadavg()
    print(f"model: {network.count_params():,} parameters (random weights), tile {tile}, overlap {overlap}, "
          f"photo {width}x{height}; load average {load_before[0]:.1f}", flush=True)

    folder = tempfile.mkdtemp(prefix="ifan-web-bench-")
    pixels = image_io.quantize(_test_image(height, width), 8)
    photo = os.path.join(folder, "photo.png")
    cv2.imwrite(photo, pixels[:, :, ::-1])
    image = pixels.astype(np.float32) * np.float32(1 / 255)
    paths = {name: export_litert(network, os.path.join(folder, "litert"), tile=tile, quantize=quantize,
                                 tile_overlap=overlap) for quantize, name in VARIANTS}
    serving = tf.saved_model.load(export_saved_model(network, os.path.join(folder, "saved_model"),
                                                     warmup_requests=False)).signatures["serving_default"]
    del network
    runners = {name: LiteRTTileRunner(path, num_threads=THREADS) for name, path in paths.items()}

    server = WebServer(WebSite(paths["float32"]), port=0).start()
    driver = start_chromium()
    timeout = 3600
    times, outputs, browser_stats = {}, {}, {}
    try:
        open_page(driver, server.url, timeout=300)
        for index, (_, name) in enumerate(VARIANTS):
            _select_variant(driver, index, name)
            _browser_run(driver, photo, timeout)  # warm-up
            python = lambda runner=runners[name]: deblur_with_fixed_tiles(runner.run_tile, image, tile, overlap)  # noqa
            python()
            engines = {f"Python LiteRT {name}": python}
            if name == "float32":
                saved_model = lambda: serving(image=tf.constant(image[None]))["deblurred"].numpy()  # noqa: E731
                saved_model()
                engines["SavedModel (TF) float32"] = saved_model
            for _ in range(args.runs):
                page_seconds, tile_seconds, png, stats = _browser_run(driver, photo, timeout)
                times.setdefault(f"browser page job {name}", []).append(page_seconds)
                times.setdefault(f"browser tile loop {name}", []).append(tile_seconds)
                outputs[f"browser {name}"], browser_stats[name] = decode_png(png), stats
                for label, function in engines.items():
                    started = time.perf_counter()
                    result = function()
                    times.setdefault(label, []).append(time.perf_counter() - started)
                    outputs[label] = result
            print(f"{name} done", flush=True)
    finally:
        driver.quit()
        server.stop()
    load_after = os.getloadavg()

    print(f"\n{'engine':<34} {'threads':>7} {'s/MP best':>10} {'s/MP median':>12}")
    for label, values in times.items():
        variant = label.rsplit(" ", 1)[1]
        threads = browser_stats[variant]["threads"] if label.startswith("browser") else THREADS
        best, median = _summary(values, megapixels)
        print(f"{label:<34} {threads!s:>7} {best:>10.3f} {median:>12.3f}")
    for _, name in VARIANTS:
        python = image_io.quantize_inplace(np.array(outputs[f"Python LiteRT {name}"]), 8).astype(int)  # as predict
        difference = np.abs(outputs[f"browser {name}"].astype(int) - python)
        print(f"{name}: browser PNG vs Python LiteRT: max difference {difference.max()}/255, "
              f"{np.count_nonzero(difference)} of {difference.size} samples differ")
    print(f"\n({args.runs} interleaved runs; photo {megapixels:.3f} MP; browser: headless Chromium, "
          f"{browser_stats['float32']['accelerator']}; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
