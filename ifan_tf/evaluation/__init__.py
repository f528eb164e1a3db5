"""Evaluation protocol of IFAN (spec "Data sets and evaluation protocol"): crop to a multiple of 8,
per-image PSNR / SSIM / MAE / LPIPS and their aggregation (``metrics``, ``lpips_metric``), and
the runner over a TFRecord set used by ``--mode=eval`` and training validation (``evaluate``).

May import: ifan_tf.io, ifan_tf.model, ifan_tf.data.
"""
