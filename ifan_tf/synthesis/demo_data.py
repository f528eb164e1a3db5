"""The demo's synthetic data set: train/val shards from scikit-image's bundled photographs.

``synthesize_demo_data(demo_config, data_dir)`` makes the data set that ``main.py --mode=demo``
trains and validates on (and the ablation study, ``studies/``, one per set of realism switches),
from a ``config.demo`` section (``configs/ifan.py``, variant ``demo``): ``train_scenes``,
``val_scenes``, ``image_size``, ``train_photos``, ``val_photos`` (held out: they may not be
trained on), ``max_coc`` (0 = the generator's default), ``seed`` and the realism switches
(``SWITCHES_OFF``; a missing one is off). A folder already made with the same settings is reused.

Nothing here imports TensorFlow at import time (the ablation study's workers pin their CPU first).
"""

import os

from absl import logging

#: The realism switches of the synthesis (``config.demo`` fields) and their "off" values.
SWITCHES_OFF = {"layout": "blobs", "highlight_gain": 1.0, "noise_level": 0.0, "jpeg_quality": 0}


def switches_of(demo_config):
    """``{switch: value}`` of a ``config.demo`` (all four switches; missing ones are off)."""
    return {name: demo_config.get(name, off) for name, off in SWITCHES_OFF.items()}


def made_with(data_dir, request):
    """True if ``data_dir`` holds a data set synthesized with ``request`` (``synthesize_dataset``'s arguments:
    ``splits``, ``photos``, ``seed``, ``image_size``, ``max_coc`` and the realism switches)."""
    from ifan_tf.data import dataset_writer

    if not os.path.isfile(os.path.join(data_dir, dataset_writer.SUMMARY_FILE)):
        return False
    generator = dataset_writer.load_summary(data_dir).get("generator", {})
    made = generator.get("config", {})
    return (generator.get("splits") == request["splits"] and generator.get("photos") == request["photos"]
            and generator.get("seed") == request["seed"]
            and made.get("image_size") == list(request["image_size"])
            and made.get("max_coc") == request["max_coc"]
            and all(made.get(name, off) == request[name] for name, off in SWITCHES_OFF.items()))


def synthesize_demo_data(demo_config, data_dir, announce=logging.info):
    """Creates (or reuses) the demo's synthetic train/val shards in ``data_dir``; returns the glob pair.

    ``announce(message)`` is told what is synthesized before it starts (the demo prints it).

    Raises:
      ValueError: ``demo_config`` trains on a held-out photograph.
    """
    from ifan_tf.synthesis.synthetic_dataset import synthesize_dataset

    val_photos = list(demo_config.val_photos)
    train_photos = list(demo_config.train_photos)
    overlap = sorted(set(train_photos) & set(val_photos))
    if overlap:
        raise ValueError(f"demo.train_photos and demo.val_photos share {overlap}: the held-out photographs must be unseen")
    size = int(demo_config.image_size)
    request = dict(splits={"train": int(demo_config.train_scenes), "val": int(demo_config.val_scenes)},
                   photos={"train": train_photos, "val": val_photos}, image_size=(size, size),
                   max_coc=float(demo_config.max_coc) or None, seed=int(demo_config.seed), **switches_of(demo_config))
    if made_with(data_dir, request):
        logging.info("reusing the synthetic data in %s", data_dir)
    else:
        announce(f"synthesizing {request['splits']} scenes of {size}x{size} into {data_dir} "
                 f"(held-out photographs: {', '.join(val_photos)})")
        synthesize_dataset(data_dir, overwrite=True, **request)
    return os.path.join(data_dir, "train-*.tfrecord"), os.path.join(data_dir, "val-*.tfrecord")
