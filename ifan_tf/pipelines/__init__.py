"""Apache Beam pipelines: batch deblurring of a photo archive and training data at scale.

This package owns everything that runs under Apache Beam, and it is the only part of the
project that imports ``apache_beam`` (an optional extra: ``pip install ".[beam]"``). It uses
the ``ifan_tf`` library (image codec, model directories, predictor, TFRecord schema and writer,
synthesis) and, for the converters, ``data_prep`` (scene listing and the inspection pass);
nothing in ``ifan_tf`` or ``data_prep`` imports it.

Modules:
  runner          pipeline options and the local runner (pure Python, offline; see there)
  storage         reading and writing files through Beam's FileSystems, atomically
  deblur_model    the RunInference model handler (SavedModel export or model directory)
  deblur_steps    the DoFns of the deblurring pipeline: listing, decoding, writing, dead letters
  deblur          ``python -m ifan_tf.pipelines.deblur``: deblur a folder or pattern of images
  shards          TFRecord shards written by Beam workers, with the single-process writer's
                  names, bytes and summary
  training_data   ``python -m ifan_tf.pipelines.training_data``: synthesize or convert data sets

May import: ifan_tf.io, ifan_tf.model, ifan_tf.weights, ifan_tf.data, ifan_tf.synthesis,
ifan_tf.inference, data_prep.
"""
