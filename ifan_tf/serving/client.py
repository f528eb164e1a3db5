"""Client for an IFAN model served by TensorFlow Serving, over REST or gRPC, with a CLI.

    python -m ifan_tf.serving.client --server=http://localhost:8501 --model=ifan \\
        --input=photos/ --output=deblurred/
    python -m ifan_tf.serving.client --grpc=localhost:8500 --input=a.jpg --output=a_deblurred.png

Images are sent as encoded bytes to the ``deblur_encoded`` signature (``{"b64": ...}`` in REST
JSON) and the PNG bytes it returns are written as ``.png`` files (same size and bit depth as the
input). gRPC needs the optional ``tensorflow-serving-api`` package. Inputs are checked on the
client first, so a file that is not a PNG/JPEG/BMP image is reported without a request (the served
graph refuses GIF: its frames declare their own sizes, so its header cannot bound its memory).

Every input is read only if it is a regular file of bounded size (``ifan_tf.io.input_files``: a
FIFO or a link to a device is reported, never opened or read forever); a file that fails for any
reason is reported and skipped, and the others go on (exit status 1 and a summary at the end).
Two inputs that would give the same output (``a.jpg`` and ``a.png`` -> ``a.png``) are refused
before any request.
"""

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request

import numpy as np

from ifan_tf.io import image_io
from ifan_tf.io.image_io import ImageFileError

ENCODED_SIGNATURE, BYTES_INPUT, BYTES_OUTPUT = "deblur_encoded", "image_bytes", "png_bytes"
DEFAULT_SIGNATURE, IMAGE_INPUT, IMAGE_OUTPUT = "serving_default", "image", "deblurred"
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM")  # what the server decodes


class ServingError(RuntimeError):
    """The server refused or failed a request (its message is included)."""


def check_image_bytes(data, source):
    """Raises ``ImageFileError`` naming ``source`` unless ``data`` is a decodable PNG/JPEG/BMP image."""
    if not any(bytes(data[:len(magic)]) == magic for magic in _MAGIC):
        raise ImageFileError(f"{source}: not a PNG, JPEG or BMP image (the served model decodes only these)")
    image_io.decode_image_bytes(data, source)  # checks the declared size first; raises for corrupt data


def _predict_path(model, version):
    return f"/v1/models/{model}" + (f"/versions/{int(version)}" if version is not None else "") + ":predict"


class RestClient:
    """TF Serving REST client (``POST /v1/models/<model>[/versions/<v>]:predict``)."""

    def __init__(self, url="http://localhost:8501", model="ifan", version=None, timeout=600.0):
        self.url = url.rstrip("/")
        self.model, self.version, self.timeout = model, version, timeout

    def predict(self, body):
        """POSTs a predict request (a JSON-able dict); returns the decoded JSON response."""
        request = urllib.request.Request(self.url + _predict_path(self.model, self.version),
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("error", detail)
            except (ValueError, AttributeError):
                pass
            raise ServingError(f"{self.url}: HTTP {error.code}: {detail}") from None
        except urllib.error.URLError as error:
            raise ServingError(f"{self.url}: cannot reach TF Serving ({error.reason})") from None

    def deblur_encoded(self, images):
        """``[bytes]`` encoded images -> ``[bytes]`` PNG images (signature ``deblur_encoded``)."""
        body = {"signature_name": ENCODED_SIGNATURE,
                "instances": [{"b64": base64.b64encode(data).decode("ascii")} for data in images]}
        predictions = self.predict(body)["predictions"]
        return [base64.b64decode(item["b64"] if isinstance(item, dict) and "b64" in item
                                 else item[BYTES_OUTPUT]["b64"]) for item in predictions]

    def deblur(self, images):
        """``[B, H, W, 3]`` float32 in [0, 1] -> same (signature ``serving_default``; JSON numbers)."""
        body = {"signature_name": DEFAULT_SIGNATURE, "instances": np.asarray(images, np.float32).tolist()}
        return np.asarray(self.predict(body)["predictions"], np.float32)


class GrpcClient:
    """TF Serving gRPC client (``PredictionService/Predict``); needs ``tensorflow-serving-api``."""

    def __init__(self, target="localhost:8500", model="ifan", version=None, timeout=600.0):
        try:
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc
        except ImportError as error:
            raise ImportError("gRPC needs `pip install tensorflow-serving-api==2.21.0` "
                              f"(or use the REST client): {error}") from None
        self._grpc = grpc
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        self._channel = grpc.insecure_channel(target, options=options)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self.target, self.model, self.version, self.timeout = target, model, version, timeout

    def _request(self, signature, name, tensor_proto):
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model
        request.model_spec.signature_name = signature
        if self.version is not None:
            request.model_spec.version.value = int(self.version)
        request.inputs[name].CopyFrom(tensor_proto)
        try:
            return self._stub.Predict(request, timeout=self.timeout)
        except self._grpc.RpcError as error:
            raise ServingError(f"{self.target}: {error.code().name}: {error.details()}") from None

    def deblur_encoded(self, images):
        """``[bytes]`` encoded images -> ``[bytes]`` PNG images (signature ``deblur_encoded``)."""
        import tensorflow as tf

        response = self._request(ENCODED_SIGNATURE, BYTES_INPUT, tf.make_tensor_proto(list(images), dtype=tf.string))
        return list(response.outputs[BYTES_OUTPUT].string_val)

    def deblur(self, images):
        """``[B, H, W, 3]`` float32 in [0, 1] -> same (signature ``serving_default``)."""
        import tensorflow as tf

        response = self._request(DEFAULT_SIGNATURE, IMAGE_INPUT, tf.make_tensor_proto(np.asarray(images, np.float32)))
        return tf.make_ndarray(response.outputs[IMAGE_OUTPUT])

    def close(self):
        self._channel.close()


def plan_png_outputs(input_path, output_path, overwrite=False):
    """Like ``ifan_tf.inference.folder.plan_outputs`` but every output is a ``.png`` file."""
    from ifan_tf.inference.folder import plan_outputs

    if not os.path.isdir(input_path) and not (os.path.isdir(output_path) or output_path.endswith(os.sep)):
        if os.path.splitext(output_path)[1].lower() != ".png":
            raise ValueError(f"{output_path}: the server returns PNG images; name the output file .png")
    pairs = plan_outputs(input_path, output_path, overwrite=True)
    pairs = [(source, os.path.splitext(target)[0] + ".png") for source, target in pairs]
    _refuse_shared_outputs(pairs)
    sources = {os.path.realpath(source) for source, _ in pairs}
    for source, target in pairs:
        if os.path.realpath(target) in sources:
            raise ValueError(f"{target}: is an input file; refusing to overwrite inputs")
        if os.path.exists(target) and not overwrite:
            raise FileExistsError(f"{target}: output exists (pass --overwrite to replace outputs)")
    return pairs


def _refuse_shared_outputs(pairs):
    """ValueError listing every output that two or more inputs would be written to."""
    by_target = {}
    for source, target in pairs:
        by_target.setdefault(os.path.normpath(target), []).append(source)
    shared = {target: sources for target, sources in by_target.items() if len(sources) > 1}
    if shared:
        lines = [f"{target} <- {' and '.join(sources)}" for target, sources in sorted(shared.items())]
        raise ValueError(f"{len(shared)} output file(s) would each be written from several inputs (results are "
                         "always .png): " + "; ".join(lines) + ". Rename the inputs or deblur them separately.")


def deblur_files(client, pairs, show_progress=True):
    """Sends each input file, writes each result; returns ``[(input, error message)]`` failures.

    A file that fails for any reason (special or oversized file, corrupt image, server error, write
    error) is reported in the result and the others go on.
    """
    from tqdm import tqdm

    failures = []
    for source, target in tqdm(pairs, unit="image", dynamic_ncols=True, disable=not show_progress):
        try:
            data = image_io.read_file_bytes(source)  # regular files only, bounded read
            check_image_bytes(data, source)
            (png,) = client.deblur_encoded([data])
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
            image_io.atomic_write_bytes(target, png)
        except Exception as error:  # noqa: BLE001 - one bad file must not stop the others
            known = isinstance(error, (ImageFileError, ServingError, OSError, ValueError))
            failures.append((source, str(error) if known else f"{type(error).__name__}: {error}"))
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ifan_tf.serving.client", description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--server", default="http://localhost:8501", help="TF Serving REST URL")
    where.add_argument("--grpc", help="TF Serving gRPC address HOST:PORT (needs tensorflow-serving-api)")
    parser.add_argument("--model", default="ifan", help="model name (MODEL_NAME of the server)")
    parser.add_argument("--version", type=int, help="model version (default: the server's latest)")
    parser.add_argument("--input", required=True, help="image file or folder")
    parser.add_argument("--output", required=True, help="output .png file or folder")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    args = parser.parse_args(argv)
    try:
        pairs = plan_png_outputs(args.input, args.output, args.overwrite)
        client = (GrpcClient(args.grpc, args.model, args.version, args.timeout) if args.grpc
                  else RestClient(args.server, args.model, args.version, args.timeout))
    except (ValueError, OSError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failures = deblur_files(client, pairs)
    for source, message in failures:
        print(f"error: {message}" if message.startswith(source) else f"error: {source}: {message}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} of {len(pairs)} images failed and were skipped (see the errors above)", file=sys.stderr)
    print(f"deblurred {len(pairs) - len(failures)} of {len(pairs)} images -> {args.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
