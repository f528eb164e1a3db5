"""``main.py --mode=demo --workdir=DIR [--config=configs/ifan.py:demo] [--config.FIELD=VALUE ...]``.

The main job on a fresh machine, on CPU, in about a quarter of an hour:

1. synthesize a small dual-pixel set from scikit-image's bundled photographs into ``DIR/data``
   (``data_prep.synthesize``; the validation photographs are never used for training; reused
   when it already exists with the same settings);
2. train the small demo configuration for ``train.max_minutes`` into ``DIR/train`` (a fresh run:
   an earlier demo run there is replaced), validating on the held-out photographs every
   ``eval.every_minutes``;
3. evaluate the final model on the held-out scenes (``DIR/eval``: CSV, JSON) and print input vs
   output PSNR / SSIM and the held-out PSNR curve against training minutes.
"""

import json
import os
import pathlib
import shutil

from absl import logging

DEFAULT_CONFIG = pathlib.Path(__file__).resolve().parents[2] / "configs" / "ifan.py"
SUMMARY_FILE = "demo_summary.json"


def load_demo_config():
    """``configs/ifan.py:demo`` loaded by path (the demo runs without ``--config``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ifan_demo_config", DEFAULT_CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config("demo")


def synthesize_demo_data(demo_config, data_dir):
    """Creates (or reuses) the demo's synthetic train/val shards in ``data_dir``; returns the glob pair."""
    from data_prep import dataset_writer
    from data_prep.synthesize import synthesize_dataset

    val_photos = list(demo_config.val_photos)
    train_photos = list(demo_config.train_photos)
    overlap = sorted(set(train_photos) & set(val_photos))
    if overlap:
        raise ValueError(f"demo.train_photos and demo.val_photos share {overlap}: the held-out photographs must be unseen")
    size = int(demo_config.image_size)
    request = dict(splits={"train": int(demo_config.train_scenes), "val": int(demo_config.val_scenes)},
                   photos={"train": train_photos, "val": val_photos}, image_size=(size, size),
                   max_coc=float(demo_config.max_coc) or None, seed=int(demo_config.seed))
    summary_path = os.path.join(data_dir, dataset_writer.SUMMARY_FILE)
    reuse = False
    if os.path.isfile(summary_path):
        with open(summary_path) as handle:
            generator = json.load(handle).get("generator", {})
        reuse = (generator.get("splits") == request["splits"] and generator.get("photos") == request["photos"]
                 and generator.get("seed") == request["seed"]
                 and generator.get("config", {}).get("image_size") == [size, size]
                 and generator.get("config", {}).get("max_coc") == request["max_coc"])
    if reuse:
        logging.info("reusing the synthetic data in %s", data_dir)
    else:
        print(f"synthesizing {request['splits']} scenes of {size}x{size} into {data_dir} "
              f"(held-out photographs: {', '.join(val_photos)})", flush=True)
        synthesize_dataset(data_dir, overwrite=True, **request)
    return os.path.join(data_dir, "train-*.tfrecord"), os.path.join(data_dir, "val-*.tfrecord")


def run(flags):
    from ifan_tf.evaluation.evaluate import evaluate, format_summary
    from ifan_tf.training.trainer import NonFiniteLossError, train

    workdir = flags.workdir or "runs/demo"
    config = flags.config if flags.config is not None else load_demo_config()
    if "demo" not in config:
        raise SystemExit("error: --mode=demo needs the demo configuration (--config=configs/ifan.py:demo)")
    train_glob, val_glob = synthesize_demo_data(config.demo, os.path.join(workdir, "data"))
    with config.unlocked():
        config.data.train, config.data.val = train_glob, val_glob
    train_dir = os.path.join(workdir, "train")
    if os.path.exists(train_dir):
        logging.info("replacing the previous demo run in %s", train_dir)
        shutil.rmtree(train_dir)
    print(f"training the demo model for up to {config.train.max_minutes:g} minutes (progress below; "
          f"TensorBoard: tensorboard --logdir {train_dir}/tensorboard)", flush=True)
    try:
        result = train(config, train_dir)
    except NonFiniteLossError as error:
        raise SystemExit(f"demo training stopped: {error}") from None
    summary = evaluate(result.state.network, [val_glob], output_dir=os.path.join(workdir, "eval"),
                       show_progress=False, description={"demo": True, "step": result.step})

    print("\nheld-out PSNR during training (photographs never seen in training):")
    print(f"{'minutes':>8s} {'step':>7s} {'PSNR':>8s} {'input':>8s} {'gain':>7s} {'SSIM':>7s}")
    for record in result.validations:
        print(f"{record['train_minutes']:8.1f} {record['step']:7d} {record['psnr']:8.3f} {record['input_psnr']:8.3f} "
              f"{record['psnr'] - record['input_psnr']:+7.3f} {record['ssim']:7.4f}")
    print(f"\nfinal model after {result.step} steps ({result.stop_reason}), on {summary['count']} held-out scenes:")
    for line in format_summary(summary):
        print("  " + line)
    document = {"step": result.step, "stop_reason": result.stop_reason, "curve": result.validations,
                "final": summary, "model_dir": os.path.join(train_dir, "model")}
    with open(os.path.join(workdir, SUMMARY_FILE), "w") as handle:
        json.dump(document, handle, indent=2)
    print(f"\nmodel directory: {os.path.join(train_dir, 'model')}; summary: {os.path.join(workdir, SUMMARY_FILE)}")
    return 0
