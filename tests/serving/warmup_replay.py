"""The loopback TF Serving stand-in's warm-up: replays ``assets.extra/tf_serving_warmup_requests`` at load."""
import os

import tensorflow as tf

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def replay_warmup(model, saved_model_dir):
    """Replays ``assets.extra/tf_serving_warmup_requests`` like TF Serving at load (if present).

    Every record must be a ``PredictionLog`` with a predict request (at most 1000) that succeeds,
    or the load fails, as in TF Serving. Returns the number of records replayed.
    """
    path = os.path.join(str(saved_model_dir), WARMUP_FILE)
    if not os.path.exists(path):
        return 0
    from tensorflow_serving.apis import prediction_log_pb2

    count = 0
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        assert log.WhichOneof("log_type") == "predict_log", f"{path}: unsupported warm-up record {log}"
        request = log.predict_log.request
        function = model.signatures[request.model_spec.signature_name or "serving_default"]
        function(**{name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()})
        count += 1
        assert count <= 1000, f"{path}: more than 1000 warm-up records"
    return count
