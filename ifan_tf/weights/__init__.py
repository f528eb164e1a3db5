"""Weights on disk: the authors' reference checkpoints, their conversion, and the model directory."""
