"""The REST client and its CLI against a loopback stand-in for TF Serving running the exported SavedModel.

TF Serving itself ships only as a Docker image / apt package, so ``rest_server`` (conftest.py)
implements its documented ``POST /v1/models/<name>[/versions/<v>]:predict`` endpoint.
"""
import base64
import json
import urllib.request

import cv2
import numpy as np
import pytest

from serving_test_images import png_bytes, random_pixels
from ifan_tf.inference.predictor import Predictor
from ifan_tf.io import image_io
from ifan_tf.io.image_io import ImageFileError
from ifan_tf.serving.client import RestClient, ServingError, check_image_bytes, main


def _post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_documented_json_formats(rest_server, exported):
    url, _ = rest_server
    network = exported[0]
    data = png_bytes(random_pixels((10, 12, 3), seed=7))
    # row format: instances of {"b64": ...} -> predictions of {"b64": ...} (output name ends in _bytes)
    status, reply = _post(f"{url}/v1/models/ifan:predict",
                          {"signature_name": "deblur_encoded", "instances": [{"b64": base64.b64encode(data).decode()}]})
    assert status == 200 and set(reply) == {"predictions"}
    row_png = base64.b64decode(reply["predictions"][0]["b64"])
    # columnar format with a version in the URL
    status, reply = _post(f"{url}/v1/models/ifan/versions/1:predict",
                          {"signature_name": "deblur_encoded", "inputs": {"image_bytes": [{"b64": base64.b64encode(data).decode()}]}})
    assert status == 200 and base64.b64decode(reply["outputs"][0]["b64"]) == row_png
    source = image_io.decode_with_layout(data, "x")
    expected = image_io.to_pixels(Predictor(network).run_whole(source.rgb), source)
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(row_png, np.uint8), cv2.IMREAD_UNCHANGED)[:, :, ::-1], expected)
    # float signature as JSON numbers
    image = random_pixels((5, 7, 3), seed=8).astype(np.float32) / 255
    status, reply = _post(f"{url}/v1/models/ifan:predict", {"instances": [image.tolist()]})
    assert status == 200
    np.testing.assert_allclose(np.asarray(reply["predictions"][0]), Predictor(network).run_whole(image), atol=1e-5)


def test_client_round_trip_and_server_errors(rest_server, exported):
    url, fake = rest_server
    client = RestClient(url, model="ifan")
    images = [png_bytes(random_pixels((9, 14, 3), seed=9)), png_bytes(random_pixels((6, 6), np.uint16, seed=10))]
    results = client.deblur_encoded(images)
    assert [cv2.imdecode(np.frombuffer(r, np.uint8), cv2.IMREAD_UNCHANGED).shape for r in results] == [(9, 14, 3), (6, 6)]
    assert cv2.imdecode(np.frombuffer(results[1], np.uint8), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    floats = client.deblur(np.full((1, 3, 5, 3), 0.5, np.float32))
    assert floats.shape == (1, 3, 5, 3)
    # bad bytes: an INVALID_ARGUMENT-style error for that request, and the server keeps serving
    with pytest.raises(ServingError, match="(?s)HTTP 400.*not a PNG, JPEG or BMP"):
        client.deblur_encoded([b"GIF-but-not-really"])
    with pytest.raises(ServingError, match="HTTP 404"):
        RestClient(url, model="other").deblur_encoded(images[:1])
    assert client.deblur_encoded(images[:1]) == results[:1]


def test_cli_folder_round_trip(rest_server, tmp_path, capsys):
    url, fake = rest_server
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    (inputs / "a.png").write_bytes(png_bytes(random_pixels((12, 10, 3), seed=11)))
    rgb = random_pixels((8, 9, 3), seed=12)
    cv2.imwrite(str(inputs / "sub" / "b.jpg"), rgb[:, :, ::-1])
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    requests_before = fake.requests
    code = main(["--server", url, "--input", str(inputs), "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 1  # one input failed
    assert "broken.png" in captured.err and "not a readable image" in captured.err  # client-side error
    assert fake.requests - requests_before == 2  # the broken file was never sent
    assert cv2.imread(str(out / "a.png")).shape == (12, 10, 3)
    assert cv2.imread(str(out / "sub" / "b.png")).shape == (8, 9, 3)  # results are PNG files
    assert not (out / "broken.png").exists()
    # outputs exist now: refused without --overwrite; inputs are never outputs
    assert main(["--server", url, "--input", str(inputs / "a.png"), "--output", str(out / "a.png")]) == 2
    assert main(["--server", url, "--input", str(inputs / "a.png"), "--output", str(inputs / "a.png")]) == 2
    assert "refusing to overwrite inputs" in capsys.readouterr().err


def test_client_side_validation():
    with pytest.raises(ImageFileError, match="x.txt: not a PNG, JPEG"):
        check_image_bytes(b"hello", "x.txt")
    check_image_bytes(png_bytes(random_pixels((3, 3, 3))), "ok.png")
    gif = cv2.imencode(".gif", random_pixels((3, 3, 3)))[1].tobytes() if cv2.haveImageWriter(".gif") else \
        b"GIF89a\x03\x00\x03\x00\x00\x00\x00;"
    with pytest.raises(ImageFileError, match="a.gif: not a PNG, JPEG or BMP"):  # the served graph refuses GIF
        check_image_bytes(gif, "a.gif")
    with pytest.raises(ServingError, match="cannot reach"):
        RestClient("http://127.0.0.1:9", timeout=5).deblur_encoded([b""])


def test_two_inputs_never_share_an_output(tmp_path):
    from ifan_tf.serving.client import plan_png_outputs

    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.jpg").write_bytes(b"x")
    (inputs / "a.png").write_bytes(b"x")
    (inputs / "b.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"out/a.png <- .*in/a.jpg and .*in/a.png"):
        plan_png_outputs(str(inputs), str(tmp_path / "out"))
    (inputs / "a.jpg").unlink()
    assert [target.rsplit("/", 1)[1] for _, target in plan_png_outputs(str(inputs), str(tmp_path / "out"))] == \
        ["a.png", "b.png"]


class _EchoClient:
    """Stands in for the server: returns each (valid) input unchanged."""

    def deblur_encoded(self, images):
        return list(images)


@pytest.mark.timeout(60, method="thread")
def test_bad_files_are_skipped_without_hanging(tmp_path):
    import os
    import struct
    import zlib

    from ifan_tf.serving.client import deblur_files

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    (tmp_path / "bomb.png").write_bytes(bomb)  # above OpenCV's pixel limit: cv2.error when decoded
    os.mkfifo(tmp_path / "fifo.png")
    os.symlink("/dev/zero", tmp_path / "zero.png")
    (tmp_path / "folder.png").mkdir()
    good = png_bytes(random_pixels((4, 5, 3), seed=1))
    (tmp_path / "good.png").write_bytes(good)
    names = ["bomb", "fifo", "zero", "folder", "good"]
    pairs = [(str(tmp_path / f"{name}.png"), str(tmp_path / "out" / f"{name}.png")) for name in names]
    failures = dict(deblur_files(_EchoClient(), pairs, show_progress=False))
    assert sorted(failures) == sorted(source for source, _ in pairs[:4])
    assert "can be decoded" in failures[pairs[0][0]] or "may be decoded" in failures[pairs[0][0]]
    assert "FIFO" in failures[pairs[1][0]] and "character device" in failures[pairs[2][0]]
    assert "directory" in failures[pairs[3][0]]
    assert (tmp_path / "out" / "good.png").read_bytes() == good
