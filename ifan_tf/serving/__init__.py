"""TensorFlow Serving: SavedModel export with two signatures, and a REST/gRPC client."""
