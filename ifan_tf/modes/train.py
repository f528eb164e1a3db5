"""``main.py --mode=train --config=configs/FILE.py[:variant] --workdir=DIR [--config.FIELD=VALUE ...]``.

Trains (or resumes) the run in DIR and leaves the model directory DIR/model (and DIR/model_best).
Resuming with settings that DIR's checkpoints cannot absorb (see ``training.checkpointing``) stops
with ``error:`` naming each such field (old -> new), and leaves DIR as it was (exit code 2, as for
missing training files or a DIR in use by another training); a training stopped on non-finite
losses exits with 1 (``ifan_tf.modes``).
"""

from absl import logging

from ifan_tf.modes import FAILED, OK, ModeError
from ifan_tf.training.trainer import CheckpointMismatchError, NonFiniteLossError, WorkdirInUseError, train


def run(flags):
    if flags.config is None:
        raise ModeError("--mode=train needs --config=configs/ifan.py[:variant]")
    if not flags.workdir:
        raise ModeError("--mode=train needs --workdir=DIR")
    try:
        result = train(flags.config, flags.workdir)
    except NonFiniteLossError as error:
        logging.error("%s", error)
        raise ModeError(f"training stopped: {error}", FAILED) from None
    except (CheckpointMismatchError, FileNotFoundError, ValueError, WorkdirInUseError) as error:
        raise ModeError(str(error)) from None
    print(f"stopped at step {result.step} ({result.stop_reason}); model directory: {flags.workdir}/model")
    if result.validations:
        last = result.validations[-1]
        print(f"validation PSNR {last['psnr']:.3f} dB (input {last['input_psnr']:.3f}), "
              f"SSIM {last['ssim']:.4f} (input {last['input_ssim']:.4f})")
    return OK
