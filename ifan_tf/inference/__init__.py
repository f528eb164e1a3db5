"""Inference on images of any size: padding, tiling, memory budgets, files and folders."""
