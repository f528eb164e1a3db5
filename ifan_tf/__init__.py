"""ifan_tf: IFAN (Iterative Filter Adaptive Network, CVPR 2021) defocus deblurring in TensorFlow 2 / Keras 3.

The library's parts, lowest first. A part imports only parts listed above it: each sub-package's
docstring names them in its "May import:" paragraph, and tests/test_layering.py checks that
paragraph against the code (no cycles, nothing imported from further down).

  io          files and safe writing: the image codec, image headers, bounded input files, atomic writes
  model       the IFAN network (IAC, deblurring and reblurring networks), its configuration, precisions
  weights     reference checkpoints and their conversion (python -m ifan_tf.weights.convert), model directories
  data        the TFRecord schema, record inspection, augmentation, tf.data pipelines
  synthesis   synthetic dual-pixel data from sharp photographs, and the demo's data set
  evaluation  the paper's protocol: metrics and the runner over a TFRecord set
  inference   images of any size: padding, tiling, memory budgets, files and folders
  training    losses, optimiser, schedule, checkpoints, the distributed training loop
  litert      LiteRT (TFLite) export and inference with a fixed tile
  serving     TF Serving: SavedModel export, operator files, REST/gRPC client
  web         the browser page's local server and TF Serving proxy
  pipelines   Apache Beam pipelines (optional extra); the only part that imports data_prep
  modes       the command lines of main.py, one module per --mode

Nothing in ifan_tf imports configs/ (main.py passes configurations in), benchmarks/, studies/ or
main.py, and the package root holds no modules besides this one.
"""
