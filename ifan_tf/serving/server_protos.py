"""TF Serving's configuration messages, and their text format, for the operator files (``server_config``).

- ``ModelServerConfig`` (``--model_config_file``) comes from the ``tensorflow-serving-api``
  package (``tensorflow_serving.config.model_server_config_pb2``).
- ``BatchingParameters`` (``--batching_parameters_file``) and ``MonitoringConfig``
  (``--monitoring_config_file``) are not in that pip package (2.21). They are taken from it when a
  future version ships them (``tensorflow_serving.servables.tensorflow.session_bundle_config_pb2``,
  ``tensorflow_serving.config.monitoring_config_pb2``); otherwise they are built here from
  ``_FALLBACK_SCHEMA``, a transcription of every field of the two messages in tensorflow/serving
  (``tensorflow_serving/servables/tensorflow/session_bundle_config.proto`` and
  ``tensorflow_serving/config/monitoring_config.proto``, master of 2026): same package, names,
  numbers and types, so the text written and parsed here is what the server reads, and a
  misspelt field fails to parse.

Every file is written with ``to_text`` and read back with ``parse_text`` (protobuf's
``text_format``: an unknown field or a wrong type raises ``text_format.ParseError``).
"""

import functools

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

PACKAGE = "tensorflow.serving"
# message -> [(field number, name, type, repeated)]; ".google.protobuf.X" types are the wrappers.
_FALLBACK_SCHEMA = {
    "BatchingParameters": [
        (1, "max_batch_size", ".google.protobuf.Int64Value", False),
        (2, "batch_timeout_micros", ".google.protobuf.Int64Value", False),
        (3, "max_enqueued_batches", ".google.protobuf.Int64Value", False),
        (4, "num_batch_threads", ".google.protobuf.Int64Value", False),
        (5, "thread_pool_name", ".google.protobuf.StringValue", False),
        (6, "allowed_batch_sizes", "int64", True),
        (7, "pad_variable_length_inputs", "bool", False),
        (8, "enable_large_batch_splitting", ".google.protobuf.BoolValue", False),
        (9, "max_execution_batch_size", ".google.protobuf.Int64Value", False),
    ],
    "PrometheusConfig": [
        (1, "enable", "bool", False),
        (2, "path", "string", False),
    ],
    "MonitoringConfig": [
        (1, "prometheus_config", ".tensorflow.serving.PrometheusConfig", False),
    ],
}
_SCALAR_TYPES = {"int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                 "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                 "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING}


@functools.lru_cache(maxsize=None)
def _fallback_classes():
    """Message classes built from ``_FALLBACK_SCHEMA`` in a private descriptor pool."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    schema = descriptor_pb2.FileDescriptorProto(name="ifan_tf/tensorflow_serving_config_subset.proto",
                                                package=PACKAGE, syntax="proto3",
                                                dependency=[wrappers_pb2.DESCRIPTOR.name])
    for message_name, fields in _FALLBACK_SCHEMA.items():
        message = schema.message_type.add(name=message_name)
        for number, name, type_name, repeated in fields:
            field = message.field.add(name=name, number=number, json_name=_json_name(name))
            field.label = (descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED if repeated
                           else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
            if type_name.startswith("."):
                field.type, field.type_name = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE, type_name
            else:
                field.type = _SCALAR_TYPES[type_name]
    pool.Add(schema)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in _FALLBACK_SCHEMA}


def _json_name(name):
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def model_server_config_class():
    """``tensorflow.serving.ModelServerConfig`` (needs the tensorflow-serving-api package)."""
    try:
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError as error:
        raise ImportError("writing models.config needs the tensorflow-serving-api package "
                          "(pip install 'ifan_tf[serving]' or tensorflow-serving-api==2.21.*)") from error
    return model_server_config_pb2.ModelServerConfig


def batching_parameters_class():
    """``tensorflow.serving.BatchingParameters``: TF Serving's own when installed, else the transcription."""
    try:
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2
    except ImportError:
        return _fallback_classes()["BatchingParameters"]
    return session_bundle_config_pb2.BatchingParameters


def monitoring_config_class():
    """``tensorflow.serving.MonitoringConfig``: TF Serving's own when installed, else the transcription."""
    try:
        from tensorflow_serving.config import monitoring_config_pb2
    except ImportError:
        return _fallback_classes()["MonitoringConfig"]
    return monitoring_config_pb2.MonitoringConfig


def to_text(message, comments=()):
    """``message`` in protobuf text format, after ``comments`` as ``#`` lines (text format allows them)."""
    header = "".join(f"# {line}".rstrip() + "\n" for line in comments)
    return header + text_format.MessageToString(message)


def parse_text(text, message_class):
    """Parses protobuf text format into a new ``message_class``; ``text_format.ParseError`` if invalid."""
    return text_format.Parse(text, message_class())
