"""One worker of test_multi_worker.py: MultiWorkerMirroredStrategy from TF_CONFIG (2 local processes).

argv: weights.npz (shared initial weights), train glob, workdir, output JSON path.
1. the fixed 2-step problem (each worker holds half of every global batch) -> metrics, weights;
2. a 2-step run of the real trainer on tiny TFRecords into the shared workdir (only the chief
   writes checkpoints and the model directory).
"""
import json
import sys

import numpy as np

from distributed_equivalence import make_batches, run_steps
from tiny_training_setup import tiny_config

from ifan_tf.training.strategy import choose_strategy, is_chief
from ifan_tf.training.trainer import train

weights_path, train_glob, workdir, output_path = sys.argv[1:5]
strategy = choose_strategy()
stored = np.load(weights_path)
count = int(stored["network_count"])
weights = {"network": [stored[f"w{i}"] for i in range(count)],
           "reblur": [stored[f"w{i}"] for i in range(count, len(stored.files) - 1)]}
config = tiny_config("unused")
metrics, final = run_steps(strategy, config, make_batches(), weights)
result = train(tiny_config(train_glob, train__num_steps=2), workdir, strategy=strategy)
with open(output_path, "w") as handle:
    json.dump({"replicas": strategy.num_replicas_in_sync, "chief": is_chief(strategy), "metrics": metrics,
               "weights_sum": float(np.sum(np.abs(final))), "weights": final.tolist()[:2000],
               "trainer_metrics": result.metrics, "trainer_step": result.step}, handle)
