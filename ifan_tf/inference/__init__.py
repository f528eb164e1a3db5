"""Inference on images of any size: padding, tiling, memory budgets, files and folders.

May import: ifan_tf.io, ifan_tf.model, ifan_tf.weights.
"""
