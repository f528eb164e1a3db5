"""Evaluation protocol of IFAN (spec "Data sets and evaluation protocol"): crop to a multiple of 8,
per-image PSNR / SSIM / MAE / LPIPS, and their aggregation over a data set."""
