"""Load test: many concurrent REST requests (valid, wrong shapes, corrupt bytes, decompression bombs)
against the loopback TF Serving stand-in. Valid ones are answered correctly, bad ones are
INVALID_ARGUMENT (HTTP 400 with the graph's check message), the server lives, memory stays bounded."""
import base64
import concurrent.futures
import json
import resource
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from hostile_inputs import corrupt_ihdr_png, gif_bytes, jpeg_bytes, png_bomb
from serving_test_images import png_bytes, random_pixels
from ifan_tf.inference.predictor import Predictor
from ifan_tf.io import image_io

REQUESTS, CONCURRENCY = 96, 8
# Growth of the process's peak RSS during the load (the absolute peak depends on which tests ran
# before in the same pytest process); one decoded 16000x16000 bomb alone used to add > 6 GB.
PEAK_RSS_GROWTH_LIMIT_GB = 1.5


def _peak_rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def _post(url, body):
    request = urllib.request.Request(f"{url}/v1/models/ifan:predict", data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _encoded(data):
    return {"signature_name": "deblur_encoded", "instances": [{"b64": base64.b64encode(data).decode()}]}


@pytest.mark.slow
def test_concurrent_mixed_requests(rest_server, exported):
    url, _ = rest_server
    predictor = Predictor(exported[0])
    peak_before_gb = _peak_rss_gb()
    valid_png = png_bytes(random_pixels((24, 40, 3), seed=11))
    valid_float = random_pixels((16, 24, 3), seed=12)[None].astype(np.float32) / 255
    decoded = image_io.decode_with_layout(valid_png, "v")
    expected_png = image_io.to_pixels(predictor.run_whole(decoded.rgb), decoded)
    expected_float = predictor.run_whole(valid_float[0])
    bomb = png_bomb(16000)
    kinds = {
        "valid_png": (_encoded(valid_png), None),
        "valid_float": ({"inputs": valid_float.tolist()}, None),
        "rank3": ({"inputs": valid_float[0].tolist()}, "[batch, height, width, 3]"),
        "four_channels": ({"inputs": np.zeros((1, 8, 8, 4)).tolist()}, "3 (RGB) channels"),
        "corrupt_header": (_encoded(corrupt_ihdr_png()), "corrupt PNG header"),
        "truncated_jpeg": (_encoded(jpeg_bytes(random_pixels((64, 64, 3), seed=3))[:200]), ""),
        "gif": (_encoded(gif_bytes()), "not a PNG, JPEG or BMP image"),
        "png_bomb": (_encoded(bomb), "max_pixels"),
    }
    names = sorted(kinds)
    schedule = [names[i % len(names)] for i in range(REQUESTS)]

    def send(kind):
        return kind, _post(url, kinds[kind][0])

    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        results = list(pool.map(send, schedule))
    counts = {}
    for kind, (status, reply) in results:
        counts[kind] = counts.get(kind, 0) + 1
        message = kinds[kind][1]
        if message is None:
            assert status == 200, (kind, reply)
            if kind == "valid_png":
                png = base64.b64decode(reply["predictions"][0]["b64"])
                returned = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
                np.testing.assert_array_equal(returned, expected_png)
            else:
                np.testing.assert_allclose(np.array(reply["outputs"][0], np.float32), expected_float, atol=1e-5)
        else:
            assert status == 400 and message in reply["error"], (kind, status, str(reply)[:300])
    assert len(counts) == len(kinds) and sum(counts.values()) == REQUESTS
    assert _post(url, _encoded(valid_png))[0] == 200  # still serving
    growth_gb = _peak_rss_gb() - peak_before_gb
    assert growth_gb < PEAK_RSS_GROWTH_LIMIT_GB, (peak_before_gb, growth_gb)
