"""LiteRT (TFLite) export and inference: a fixed-size tile model for phones and edge devices."""
