"""LPIPS (AlexNet, v0.1) for the evaluation protocol, only if it can run without downloading.

Spec "Data sets and evaluation protocol": LPIPS (AlexNet, v0.1) on inputs scaled to [-1, 1]; the
reference evaluates with its bundled copy of the ``lpips`` package
(``PerceptualLoss(model='net-lin', net='alex')``, version 0.1). That needs PyTorch, the ``lpips``
package (which ships the v0.1 linear-layer weights) and torchvision's ImageNet AlexNet weights,
which torchvision would download into the torch hub cache. None of these is a dependency of
ifan_tf: LPIPS is scored when all are already present and otherwise reported as unavailable with
the reason. Nothing is ever downloaded, and a failure never raises.
"""

import dataclasses
import functools
import importlib
import os
import urllib.parse

import numpy as np
from absl import logging


@dataclasses.dataclass(frozen=True)
class LpipsStatus:
    """Whether LPIPS can be scored here. ``distance`` is ``None`` exactly when ``reason`` is set.

    ``distance(output, target)``: two HxWx3 float arrays in [0, 1] -> LPIPS distance (float).
    """

    distance: object = None
    reason: str = None

    @property
    def available(self):
        return self.distance is not None


def _alexnet_weights_file(torch, torchvision):
    """Path where torchvision looks for the ImageNet AlexNet weights (torch hub cache)."""
    try:
        url = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    except AttributeError:  # torchvision < 0.13
        url = importlib.import_module("torchvision.models.alexnet").model_urls["alexnet"]
    filename = os.path.basename(urllib.parse.urlparse(url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


def probe_lpips():
    """Loads LPIPS (AlexNet, v0.1) if possible without any download; never raises.

    Returns:
        ``LpipsStatus``: with ``distance`` set, or with ``reason`` saying what is missing.
    """
    try:
        torch = importlib.import_module("torch")
        torchvision = importlib.import_module("torchvision")
        lpips = importlib.import_module("lpips")
    except ImportError as error:
        return LpipsStatus(reason=f"LPIPS needs PyTorch, torchvision and the lpips package: {error}")
    try:
        linear_weights = os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", "alex.pth")
        if not os.path.isfile(linear_weights):
            return LpipsStatus(reason=f"lpips v0.1 AlexNet linear weights not found at {linear_weights}")
        backbone_weights = _alexnet_weights_file(torch, torchvision)
        if not os.path.isfile(backbone_weights):
            return LpipsStatus(
                reason=f"torchvision AlexNet weights not in the torch hub cache ({backbone_weights}); "
                "not downloading them"
            )
        try:
            model = lpips.LPIPS(net="alex", version="0.1", verbose=False)
        except TypeError:  # lpips < 0.1.4 has no ``verbose``
            model = lpips.LPIPS(net="alex", version="0.1")
        model.eval()
    except Exception as error:  # noqa: BLE001 -- an optional metric must never stop an evaluation
        return LpipsStatus(reason=f"LPIPS could not be loaded: {type(error).__name__}: {error}")

    def distance(output, target):
        def to_torch(image):
            nchw = np.ascontiguousarray(np.asarray(image, np.float32).transpose(2, 0, 1)[None])
            return torch.from_numpy(nchw) * 2.0 - 1.0

        with torch.no_grad():
            return float(model(to_torch(output), to_torch(target)).item())

    logging.info("LPIPS (AlexNet, v0.1) available")
    return LpipsStatus(distance=distance)


@functools.lru_cache(maxsize=1)
def default_lpips():
    """``probe_lpips()`` run once per process (loading the network is slow)."""
    status = probe_lpips()
    if not status.available:
        logging.info("LPIPS unavailable: %s", status.reason)
    return status
