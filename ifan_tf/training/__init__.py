"""Training of IFAN (spec "Training-only parts", "Optimisation and data").

Optimisation pieces: RAdam (``optimizer``), the step-decay schedule (``schedule``), global-norm
clipping (``gradient_clipping``). The run: strategy choice (``strategy``), the per-replica step
(``train_step``), checkpoints and signals (``checkpointing``), TensorBoard and progress
(``summaries``) and the loop itself (``trainer``). What happens to non-finite steps (the guard for
every run; the demo's undo and cool-down) is all in ``stability``; the demo's moving average of
the weights in ``weight_average``.

Losses (``losses``, with the resampling they need, ``resampling``) are training-only.

May import: ifan_tf.io, ifan_tf.model, ifan_tf.weights, ifan_tf.data, ifan_tf.evaluation.
"""
