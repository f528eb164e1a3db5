"""The gRPC client against a loopback PredictionService running the exported SavedModel.

Needs the optional ``tensorflow-serving-api`` package (skipped without it).
"""
from concurrent import futures

import cv2
import numpy as np
import pytest
import tensorflow as tf

from serving_test_images import png_bytes, random_pixels

grpc = pytest.importorskip("grpc")
pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc")
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

from ifan_tf.serving.client import GrpcClient, ServingError  # noqa: E402


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, saved_model_dir):
        self.model = tf.saved_model.load(str(saved_model_dir))

    def Predict(self, request, context):
        if request.model_spec.name != "ifan":
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found: {request.model_spec.name}")
        function = self.model.signatures[request.model_spec.signature_name or "serving_default"]
        inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        try:
            outputs = function(**inputs)
        except tf.errors.InvalidArgumentError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)
        response = predict_pb2.PredictResponse()
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response


@pytest.fixture
def grpc_target(exported):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(exported[2]), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def test_grpc_round_trip_and_invalid_argument(grpc_target):
    client = GrpcClient(grpc_target, model="ifan")
    try:
        data = png_bytes(random_pixels((11, 6, 3), seed=13))
        (png,) = client.deblur_encoded([data])
        assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED).shape == (11, 6, 3)
        assert client.deblur(np.zeros((1, 3, 4, 3), np.float32)).shape == (1, 3, 4, 3)
        with pytest.raises(ServingError, match="(?s)INVALID_ARGUMENT.*not a PNG"):
            client.deblur_encoded([b"nope"])
        assert client.deblur_encoded([data]) == [png]  # still serving
    finally:
        client.close()
