"""TensorFlow Serving: SavedModel export with two signatures, and a REST/gRPC client.

May import: ifan_tf.io, ifan_tf.inference.
"""
