"""IFAN training configurations (ml_collections), paper settings by default.

Use as ``--config=configs/ifan.py[:VARIANT[,VARIANT...]]``; any field can then be overridden,
e.g. ``--config.train.batch_size=4 --config.data.train=/data/dpdd/train-*.tfrecord``.

Default (no variant): the paper's final model trained on DPDD (spec "Optimisation and data"):
N = 17, RAdam lr 1e-4, betas (0.9, 0.999), eps 1e-8, decoupled weight decay 0.01, gradient
clipping at global norm 0.5, 600k iterations with the lr halved after 500k and 550k, batch 8,
256x256 crops with the spec's augmentation, float32.

Variants (combine with commas, e.g. ``:n26,dual``):
  n8, n17, n26, n35, n44   number of IAC iterations N (paper Table 4)
  B, D, F, FD, FR          ablations of paper Table 1 (B: baseline without IAC, DME and RBN;
                           D: + disparity supervision; F: + IAC; FD: IAC + DME; FR: IAC + RBN;
                           the default is IFAN = F + D + R)
  dual                     dual-pixel-input model (filter encoder on concat[R, L]; supplementary)
  16bit                    16-bit DPDD records (``data_prep.dpdd`` on the 16-bit PNGs)
  synthetic                the synthetic dual-pixel set of ``data_prep.synthesize``
  demo                     small CPU configuration of ``main.py --mode=demo`` (minutes, not days)
  bf16 / fp16              mixed precision (bfloat16: CPUs with AMX and TPUs/GPUs; float16 with
                           loss scaling: GPUs)
  xla                      compile the step with XLA (GPUs only; ~15x slower on CPU)
"""

import dataclasses

import ml_collections

from ifan_tf.model.config import ModelConfig

ABLATIONS = {
    "b": dict(use_iac=False, use_dme=False, use_rbn=False),
    "d": dict(use_iac=False, use_dme=True, use_rbn=False),
    "f": dict(use_iac=True, use_dme=False, use_rbn=False),
    "fd": dict(use_iac=True, use_dme=True, use_rbn=False),
    "fr": dict(use_iac=True, use_dme=False, use_rbn=True),
    "ifan": dict(use_iac=True, use_dme=True, use_rbn=True),
}
NUM_ITERATIONS = {f"n{n}": n for n in (8, 17, 26, 35, 44)}


def base_config():
    """The paper's settings (see module docstring)."""
    config = ml_collections.ConfigDict()
    config.variant = ""
    config.model = ml_collections.ConfigDict(dataclasses.asdict(ModelConfig()))

    config.data = ml_collections.ConfigDict()
    config.data.train = "data/dpdd/train-*.tfrecord"  # glob(s), comma separated
    config.data.val = "data/dpdd/val-*.tfrecord"  # "" = no validation
    config.data.crop_size = 256
    config.data.augment = True
    config.data.cache = False  # True: decoded images in memory (small sets)
    config.data.shuffle_buffer = 32
    config.data.bit_depth = 8  # 8 or 16; 0 accepts any
    config.data.skip_corrupt = False

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 8  # global, summed over replicas
    config.train.num_steps = 600_000
    config.train.max_minutes = 0.0  # wall-clock training budget per run; 0 = none
    config.train.learning_rate = 1e-4
    config.train.lr_boundaries = (500_000, 550_000)
    config.train.lr_decay_factor = 0.5
    config.train.beta_1 = 0.9
    config.train.beta_2 = 0.999
    config.train.epsilon = 1e-8
    config.train.weight_decay = 0.01
    config.train.clip_norm = 0.5
    # Steps with a non-finite loss or gradient are skipped (no update); this many in a row stop the
    # run. 0 = stop at the first (the reference would apply it). Not multi-worker: there the first
    # non-finite step stops the run. (ifan_tf.training.stability)
    config.train.max_skipped_steps = 20
    config.train.precision = "float32"  # float32 | bfloat16 | float16 (ifan_tf.model.precision)
    config.train.jit_compile = False  # XLA: GPUs only
    config.train.seed = 0
    config.train.deterministic = False  # deterministic ops + input position in checkpoints
    config.train.log_every = 100  # steps between progress lines / scalar summaries
    config.train.image_every = 5000  # steps between image summaries; 0 = never
    config.train.checkpoint_every = 5000  # steps between checkpoints
    config.train.checkpoint_every_minutes = 30.0  # also checkpoint after this long; 0 = off
    config.train.keep_checkpoints = 3

    config.eval = ml_collections.ConfigDict()
    config.eval.every = 10_000  # steps between validations; 0 = only at the end
    config.eval.every_minutes = 0.0  # also validate after this long; 0 = off
    config.eval.max_images = 0  # 0 = all validation records
    return config


def apply_variant(config, name):
    """Applies one variant (see module docstring) to ``config`` in place."""
    key = name.strip().lower()
    if key in NUM_ITERATIONS:
        config.model.num_iterations = NUM_ITERATIONS[key]
    elif key in ABLATIONS:
        config.model.update(ABLATIONS[key])
    elif key == "dual":
        config.model.dual_pixel_input = True
    elif key == "16bit":
        config.data.train = "data/dpdd_16bit/train-*.tfrecord"
        config.data.val = "data/dpdd_16bit/val-*.tfrecord"
        config.data.bit_depth = 16
    elif key == "synthetic":
        config.data.train = "data/synthetic/train-*.tfrecord"
        config.data.val = "data/synthetic/val-*.tfrecord"
    elif key == "demo":
        apply_demo(config)
    elif key == "bf16":
        config.train.precision = "bfloat16"
    elif key == "fp16":
        config.train.precision = "float16"
    elif key == "xla":
        config.train.jit_compile = True
    else:
        known = sorted(NUM_ITERATIONS) + ["B", "D", "F", "FD", "FR", "IFAN", "dual", "16bit", "synthetic", "demo",
                                          "bf16", "fp16", "xla"]
        raise ValueError(f"unknown config variant {name!r}; known variants: {', '.join(known)}")


def apply_demo(config):
    """The CPU demo: a narrow IFAN with N = 8 learning from small synthetic scenes for minutes.

    Width 16 (c = 64 at 1/8 scale), N = 8, RBN N_r = 8, without the disparity supervision (the
    ablation study's FR), 128x128 crops, batch 4 cached in memory, bfloat16 compute, RAdam at
    lr 1.2e-3 with beta_2 = 0.99, two cuts to 0.3x near the end, on synthetic scenes from 13 of
    scikit-image's photographs. It adds settings the paper does not have (``config.train``):

      lr_boundaries_follow_time  the cuts move earlier when max_minutes will end the run first
      reblur_lr_scale            factor on the learning rate of the RBN's own weights
      ema_decay                  validate and save a moving average of the weights (0 = off)
      undo_overflowing_updates   also undo the update before a skipped non-finite step
                                 (ifan_tf.training.stability; False = skip only)
      undo_cooldown_steps        > 0: after an undo, run this many updates one cut lower

    Why each value: docs/results/demo.md.
    """
    config.model.width = 16
    config.model.num_iterations = 8
    config.model.reblur_iterations = 8
    config.model.use_dme = False
    config.data.train = "runs/demo/data/train-*.tfrecord"
    config.data.val = "runs/demo/data/val-*.tfrecord"
    config.data.crop_size = 128
    config.data.cache = True
    config.data.shuffle_buffer = 64
    config.train.batch_size = 4
    config.train.num_steps = 5000  # max_minutes stops it first
    config.train.max_minutes = 13.3  # + synthesis, evaluation and figures: under 15 minutes in all
    config.train.learning_rate = 1.2e-3
    config.train.beta_2 = 0.99  # RAdam's rectification reaches the full rate by update ~500 (0.999: ~2000)
    config.train.lr_boundaries = (3680, 4560)
    config.train.lr_decay_factor = 0.3
    config.train.lr_boundaries_follow_time = True
    config.train.reblur_lr_scale = 0.2
    config.train.ema_decay = 0.99
    config.train.undo_overflowing_updates = True
    config.train.undo_cooldown_steps = 250
    config.train.precision = "bfloat16"
    config.train.log_every = 25
    config.train.image_every = 1000
    config.train.checkpoint_every = 5000  # by time only: each costs ~3 s (~15 steps)
    config.train.checkpoint_every_minutes = 4.0
    config.eval.every = 0
    config.eval.every_minutes = 2.0
    config.eval.max_images = 0
    config.demo = ml_collections.ConfigDict()
    config.demo.train_scenes = 96
    config.demo.val_scenes = 8
    config.demo.image_size = 384
    # scikit-image's bundled photographs (no download); the held-out ones are never trained on
    config.demo.train_photos = ("astronaut", "chelsea", "rocket", "camera", "grass", "gravel", "brick", "clock",
                                "coins", "moon", "immunohistochemistry", "hubble_deep_field", "retina")
    config.demo.val_photos = ("motorcycle", "coffee")
    config.demo.max_coc = 20.0  # largest blur diameter in pixels (DPDD-like input PSNR); 0 = generator default
    config.demo.seed = 0
    # Realism switches of the synthesis (ifan_tf.synthesis.synthetic_dataset.SynthesisConfig); off: in the
    # ablation study (docs/results/ablations.md) none helped on both held-out test sets.
    config.demo.layout = "blobs"  # or "segments": depth edges on the photograph's own region boundaries
    config.demo.highlight_gain = 1.0  # > 1: clipped highlights bloom into bokeh discs
    config.demo.noise_level = 0.0  # > 0: sensor noise on the defocused views
    config.demo.jpeg_quality = 0  # 1-100: JPEG on the defocused views


def get_config(variant=None):
    """The config for ``variant`` (None or "" = paper defaults; comma-separated variants combine)."""
    config = base_config()
    names = [name for name in (variant or "").split(",") if name.strip()]
    for name in names:
        apply_variant(config, name)
    config.variant = ",".join(names)
    return config
