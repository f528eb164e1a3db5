"""Data preparation command lines: converters of DPDD and other data sets to the ifan_tf TFRecord
schema (`data_prep.dpdd`, `data_prep.folders`, sharing `conversion`, `inspection` and `scene_files`) and the
synthetic dual-pixel defocus generator (`data_prep.synthesize`, a front end of `ifan_tf.synthesis`).
Run them as modules, e.g. `python -m data_prep.dpdd` (from the repository root, or anywhere once
the package is installed). `data_prep` depends on `ifan_tf`, never the other way round.
"""
