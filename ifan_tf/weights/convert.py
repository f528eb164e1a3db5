"""Import the authors' released PyTorch checkpoints into an ifan_tf model directory.

Usage::

    python -m ifan_tf.weights.convert --checkpoint=IFAN.pytorch --output=models/ifan_released
    python -m ifan_tf.weights.convert --checkpoint=weights.npz --output=DIR --iac_mode=separable

Reads a state_dict (``.pytorch``/``.pth``/``.pt``: zips with the checked torch-free reader, the
legacy format via torch when installed; or ``.npz`` with the same names), strips
``module.``/``Network.`` prefixes, routes ``reblurNet.`` to the RBN, infers N, the channel width
and the RBN size from the shapes, checks every name and shape, and writes a model directory
(``ifan_tf.weights.model_dir``). Released weights need ``--iac_mode=checkpoint`` (the default here): they
were trained with the IAC quirk described in the spec.
"""

import os
import sys

from absl import app, flags, logging

from ifan_tf.model.iac import IAC_MODES
from ifan_tf.model.ifan import build_ifan
from ifan_tf.model.reblur import build_reblurring_network
from ifan_tf.weights.model_dir import write_model_dir
from ifan_tf.weights.reference_checkpoint import (TORCH_SUFFIXES, CheckpointError, check_and_assign, check_fits,
                                                  export_state, infer_model_config, read_state_dict,
                                                  read_state_dict_headers, split_state_dict)

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "Reference state_dict: .pytorch/.pth/.pt (needs torch) or .npz.")
flags.DEFINE_string("output", None, "Model directory to write.")
flags.DEFINE_enum("iac_mode", "checkpoint", IAC_MODES,
                  "IAC horizontal pass: 'checkpoint' reuses kernel1 as the released weights were trained; "
                  "'separable' uses kernel2 (the intended layer).")
flags.DEFINE_integer("filter_size", None, "IAC filter size k when the shapes are ambiguous (default: 3 if it fits).")
flags.DEFINE_bool("overwrite", False, "Replace an existing output directory.")


def convert_checkpoint(checkpoint, output, iac_mode="checkpoint", filter_size=None, overwrite=False):
    """Converts ``checkpoint`` into the model directory ``output``; returns the ``ModelConfig``.

    Everything is checked before anything is written; the directory appears only when complete.
    Raises ``CheckpointError`` (message names the file and every problem) or ``FileExistsError``.
    """
    checkpoint = os.fspath(checkpoint)
    if os.path.exists(output) and not overwrite:
        raise FileExistsError(f"{output}: already exists (use --overwrite to replace it)")
    # an .npz or a torch.save zip is sized from its headers (declared views) first: the model they imply
    # is built and compared with them before any array is decompressed or materialised; only a file that
    # needs torch (legacy format) is read whole first, with the reader's caps
    headers = read_state_dict_headers(checkpoint) if checkpoint.endswith((".npz",) + TORCH_SUFFIXES) else None
    state = headers if headers is not None else read_state_dict(checkpoint)
    if not state:
        raise CheckpointError(f"{checkpoint}: holds no weights")
    network_state, reblur_state = split_state_dict(state)
    try:
        config = infer_model_config(network_state, reblur_state, filter_size=filter_size, iac_mode=iac_mode)
    except CheckpointError as error:
        raise CheckpointError(f"{checkpoint}: {error}") from error
    network = build_ifan(config)
    check_fits(network, network_state, checkpoint)
    reblur_network = build_reblurring_network(config) if reblur_state else None
    if reblur_network is not None:
        check_fits(reblur_network, reblur_state, checkpoint)
    if headers is not None:  # the arrays, each exactly as large as the header the model was checked against
        network_state, reblur_state = split_state_dict(read_state_dict(
            checkpoint, expected_shapes={name: tuple(header.shape) for name, header in headers.items()}))
    check_and_assign(network, network_state, checkpoint)
    if reblur_network is not None:
        check_and_assign(reblur_network, reblur_state, checkpoint)
    metadata = {"source": os.path.abspath(checkpoint), "converted_by": "ifan_tf.weights.convert"}
    write_model_dir(output, config, export_state(network),
                    export_state(reblur_network) if reblur_network is not None else None,
                    metadata=metadata, overwrite=overwrite)
    logging.info("converted %s -> %s (%s, %d network params%s)", checkpoint, output, config,
                 network.count_params(),
                 f", {reblur_network.count_params()} RBN params" if reblur_network is not None else "")
    return config


def main(argv):
    del argv
    if not FLAGS.checkpoint or not FLAGS.output:
        raise app.UsageError("--checkpoint and --output are required")
    try:
        config = convert_checkpoint(FLAGS.checkpoint, FLAGS.output, FLAGS.iac_mode, FLAGS.filter_size, FLAGS.overwrite)
    except (CheckpointError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {FLAGS.output}: {config}")
    return 0


if __name__ == "__main__":
    app.run(main)
