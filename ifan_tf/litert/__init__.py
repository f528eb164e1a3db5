"""LiteRT (TFLite) export and inference: a fixed-size tile model for phones and edge devices.

May import: ifan_tf.io, ifan_tf.model, ifan_tf.inference.
"""
