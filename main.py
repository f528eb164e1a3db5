"""ifan_tf entry point: ``python main.py --mode=MODE [flags]``.

Modes:
  train    train on TFRecords:          --config=configs/FILE.py[:variant] --workdir=DIR [--config.FIELD=VALUE]
  eval     the paper's protocol:        --model_dir=DIR --data=GLOB --output_dir=DIR
  export   SavedModel for TF Serving:   --model_dir=DIR --export_dir=DIR [--precision --max_pixels --max_batch --tile]
           LiteRT (.tflite) for phones:  --format=litert --model_dir=DIR --export_dir=DIR [--tile=512 --quantize=...]
  predict  deblur files or folders:     --model_dir=DIR --input=FILE_OR_DIR --output=FILE_OR_DIR [--tile=N ...]
           with a LiteRT export:        --model=FILE.tflite --input=FILE_OR_DIR --output=FILE_OR_DIR
  demo     synthesize data from the bundled photographs, train the small config on CPU, evaluate
"""

import importlib

from absl import app, flags
from ml_collections import config_flags

from ifan_tf.precision import INFERENCE_PRECISIONS

MODES = ("train", "eval", "export", "predict", "demo")

flags.DEFINE_enum("mode", None, MODES, "What to do.")
config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py[:variant]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Training work directory (checkpoints, TensorBoard, model/).")
flags.DEFINE_string("model_dir", None, "A model directory (from training or `python -m ifan_tf.convert`).")
flags.DEFINE_string("data", None, "Evaluation TFRecords: a glob or comma-separated globs.")
flags.DEFINE_string("output_dir", None, "Evaluation output directory (CSV, JSON, optional images).")
flags.DEFINE_string("export_dir", None, "TF Serving base directory; the export goes to EXPORT_DIR/<version>.")
flags.DEFINE_integer("export_version", None, "SavedModel version number (default: next free).")
flags.DEFINE_enum("format", "saved_model", ("saved_model", "litert"), "export: TF Serving SavedModel or LiteRT .tflite.")
flags.DEFINE_enum("quantize", "none", ("none", "float16", "dynamic_int8"), "export --format=litert: weight quantization.")
flags.DEFINE_string("model", None, "predict: a LiteRT .tflite export (instead of --model_dir).")
flags.DEFINE_integer("num_threads", 2, "predict --model: LiteRT interpreter threads.")
flags.DEFINE_string("input", None, "Image file or folder to deblur.")
flags.DEFINE_string("output", None, "Output file or folder.")
flags.DEFINE_enum("precision", "float32", INFERENCE_PRECISIONS, "Compute precision for export/predict/eval.")
flags.DEFINE_integer("tile", None, "Tile size N for large images: each network call gets at most N x N pixels "
                     "(balanced tiles; an image whose area fits runs whole). Predict default: automatic from "
                     "--memory_budget_gb; SavedModel export default: 1024; LiteRT: the fixed N x N input.")
flags.DEFINE_integer("tile_overlap", 32, "Overlap between tiles in pixels.")
flags.DEFINE_integer("max_pixels", None, "export: largest height * width a request may have (default 40000000).")
flags.DEFINE_integer("max_batch", None, "export: largest batch a request may have (default 16).")
flags.DEFINE_float("memory_budget_gb", 4.0, "Memory budget (GB) used to choose the tile size automatically; an image "
                   "that cannot fit it even in the smallest tiles is refused (pass --tile to force tiling).")
flags.DEFINE_bool("save_images", False, "eval: also save the deblurred images.")
flags.DEFINE_bool("overwrite", False, "Allow replacing existing outputs.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if flags.FLAGS.mode is None:
        raise app.UsageError(f"--mode is required, one of {', '.join(MODES)}")
    module = importlib.import_module(f"ifan_tf.modes.{flags.FLAGS.mode}")
    return module.run(flags.FLAGS)


if __name__ == "__main__":
    app.run(main)
