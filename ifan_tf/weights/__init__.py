"""Weights on disk: the authors' reference checkpoints and their conversion, and the model directory.

``pytorch_zip`` (torch.save zips read without torch) and ``checked_npz`` (``.npz`` checked before
it is decompressed) read files nobody vouched for; ``reference_checkpoint`` maps the reference
state_dict names onto the Keras models; ``model_dir`` is the on-disk format every mode loads;
``convert`` is ``python -m ifan_tf.weights.convert``.

May import: ifan_tf.io, ifan_tf.model.
"""
