"""ifan_tf entry point: ``python main.py --mode=MODE [flags]``.

Modes:
  train    train on TFRecords:          --config=configs/FILE.py[:variant] --workdir=DIR [--config.FIELD=VALUE]
  eval     the paper's protocol:        --model_dir=DIR --data=GLOB --output_dir=DIR
  export   SavedModel for TF Serving:   --model_dir=DIR --export_dir=DIR [--precision --max_pixels --max_batch --tile
                                         --nowarmup_requests]
           LiteRT (.tflite) for phones:  --format=litert --model_dir=DIR --export_dir=DIR [--tile=512 --quantize=...]
  serving_config
           TF Serving's models.config,  --export_dir=DIR[,DIR] [--version_labels=stable=3,canary=4 --version_policy
           batching_parameters.txt,      --versions --model_name --batching_max_batch_size --output_dir
           monitoring.config:            --server_model_root ...]  (docs/serving.md)
  predict  deblur files or folders:     --model_dir=DIR --input=FILE_OR_DIR --output=FILE_OR_DIR [--tile=N ...]
           with a LiteRT export:        --model=FILE.tflite --input=FILE_OR_DIR --output=FILE_OR_DIR
  demo     synthesize data from the bundled photographs, train the small config on CPU, evaluate
  web      a browser page on 127.0.0.1: --model=FILE.tflite [--port=8000 --serving_url=http://127.0.0.1:8501
           (LiteRT.js or TF Serving)  --serving_model=ifan --max_pixels --proxy_max_mb]  (docs/web.md)

Errors print ``error: <message>`` on stderr; exit codes: 0 done, 1 the run failed or was partial,
2 nothing was done (bad flags or inputs). The modes are in ifan_tf/modes (its docstring: the details).
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from ifan_tf.model.precision import INFERENCE_PRECISIONS
from ifan_tf.modes import USAGE, ModeError, report_error, run_mode

MODES = ("train", "eval", "export", "serving_config", "predict", "demo", "web")

flags.DEFINE_enum("mode", None, MODES, "What to do.")
config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py[:variant]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Training work directory (checkpoints, TensorBoard, model/).")
flags.DEFINE_string("model_dir", None, "A model directory (from training or `python -m ifan_tf.weights.convert`).")
flags.DEFINE_string("data", None, "Evaluation TFRecords: a glob or comma-separated globs.")
flags.DEFINE_string("output_dir", None, "Evaluation output directory (CSV, JSON, optional images); serving_config: "
                    "where the operator files go (default: the folder holding the export folders).")
flags.DEFINE_string("export_dir", None, "TF Serving base directory; the export goes to EXPORT_DIR/<version>. "
                    "serving_config: one or more export folders, comma-separated.")
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
flags.DEFINE_integer("max_pixels", None, "export: largest height * width a request may have; web: largest photo "
                     "the page accepts (default 40000000).")
flags.DEFINE_integer("max_batch", None, "export: largest batch a request may have (default 16).")
flags.DEFINE_float("memory_budget_gb", 4.0, "Memory budget (GB) used to choose the tile size automatically; an image "
                   "that cannot fit it even in the smallest tiles is refused (pass --tile to force tiling).")
flags.DEFINE_bool("warmup_requests", True, "export: write assets.extra/tf_serving_warmup_requests, which TF "
                  "Serving replays before serving a version (--nowarmup_requests: leave it out).")
flags.DEFINE_string("model_name", None, "serving_config: model names, comma-separated, one per --export_dir "
                    "(default: each export folder's name).")
flags.DEFINE_enum("version_policy", None, ("latest", "all", "specific"), "serving_config: versions TF Serving "
                  "loads (default: specific when --versions or --version_labels are given, else latest).")
flags.DEFINE_list("versions", None, "serving_config --version_policy=specific: versions to serve, [MODEL:]N,... "
                  "(default: the labelled ones).")
flags.DEFINE_integer("num_latest_versions", 1, "serving_config --version_policy=latest: how many of the newest.")
flags.DEFINE_list("version_labels", None, "serving_config: version labels, [MODEL:]LABEL=N,... e.g. stable=3,canary=4.")
flags.DEFINE_integer("batching_max_batch_size", None, "serving_config: batching max_batch_size (default and "
                     "maximum: the smallest max_batch of the served versions).")
flags.DEFINE_integer("batch_timeout_micros", 2000, "serving_config: how long a partial batch waits for more requests.")
flags.DEFINE_integer("num_batch_threads", 2, "serving_config: batches run at once (each holds one tile's activations).")
flags.DEFINE_integer("max_enqueued_batches", None, "serving_config: queued batches before requests are refused "
                     "(default: 2 * --num_batch_threads).")
flags.DEFINE_string("server_model_root", "/models", "serving_config: where the server sees --output_dir (Docker: the "
                    "mount target); '' writes host paths for a tensorflow_model_server on this machine.")
flags.DEFINE_bool("save_images", False, "eval: also save the deblurred images.")
flags.DEFINE_bool("overwrite", False, "Allow replacing existing outputs.")
flags.DEFINE_integer("port", None, "web: TCP port on 127.0.0.1 (default 8000; 0 picks a free one).")
flags.DEFINE_string("serving_url", None, "web: TF Serving REST address for the page's server mode, e.g. "
                    "http://127.0.0.1:8501 (requests go through the page's own /proxy route).")
flags.DEFINE_string("serving_model", None, "web: TF Serving model name for server mode (default ifan).")
flags.DEFINE_float("proxy_max_mb", 256, "web: largest request (MB) the /proxy route forwards to TF Serving.")


def parse_flags(argv):
    """absl's flag parsing; a flag error is reported as the modes report theirs (``error: ...``, exit code 2)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        sys.exit(report_error(ModeError(f"{error}\nPass --helpshort or --helpfull to see help on flags.", USAGE)))


def mode_arguments(mode):
    """What ``run`` of ``mode`` takes besides the flags: the demo's default configuration, ``configs/ifan.py:demo``
    (main.py reads ``configs``; the library ``ifan_tf`` does not)."""
    if mode != "demo":
        return {}
    from configs import ifan as ifan_configs

    return {"default_config": ifan_configs.get_config("demo")}


def main(argv):
    if len(argv) > 1:
        return report_error(ModeError(f"unexpected arguments: {argv[1:]}", USAGE))
    if flags.FLAGS.mode is None:
        return report_error(ModeError(f"--mode is required, one of {', '.join(MODES)}", USAGE))
    return run_mode(flags.FLAGS.mode, flags.FLAGS, **mode_arguments(flags.FLAGS.mode))


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
