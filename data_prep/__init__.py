"""Data preparation command lines: converters of DPDD and other data sets to the ifan_tf TFRecord
schema (`data_prep.dpdd`, `data_prep.folders`) and the synthetic dual-pixel defocus generator
(`data_prep.synthesize`). Run them from the repository root, e.g. `python -m data_prep.dpdd`.
"""
