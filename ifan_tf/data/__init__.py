"""Data for ifan_tf: the TFRecord schema, record inspection, augmentation and tf.data pipelines.

Modules: `schema` (the one record format), `shard_inspection` (corrupt/truncated record checks),
`augment` (the spec's training augmentation), `pipeline` (`make_train_dataset`,
`make_eval_dataset`).

May import: ifan_tf.io.
"""
