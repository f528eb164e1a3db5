"""Training-side optimisation pieces of IFAN (spec "Optimisation and data"): RAdam, step-decay
learning-rate schedule and global-norm gradient clipping."""
