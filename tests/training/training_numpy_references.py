"""Plain numpy (float64) transcriptions shared by the training tests (not collected by pytest).

``spec_radam`` is the spec's RAdam rule ("Optimisation and data"): decoupled weight decay p <- p - wd*lr*p, then
m <- b1 m + (1-b1) g, v <- b2 v + (1-b2) g^2; rho_inf = 2/(1-b2) - 1,
rho_t = rho_inf - 2 t b2^t / (1-b2^t); if rho_t >= 5:
p <- p - lr sqrt((1-b2^t)(rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t)) / (1-b1^t) * m / (sqrt(v)+eps),
else p <- p - lr / (1-b1^t) * m.
``torch_style_clip`` is ``torch.nn.utils.clip_grad_norm_`` (the reference's gradient clipping).
"""
import math

import numpy as np


def spec_radam(params, gradients, learning_rate_of, beta_1, beta_2, epsilon, weight_decay, decayed=None):
    """The spec's RAdam rule, written out in numpy float64; returns the parameters after each step.

    ``learning_rate_of(t)`` gives lr for update t (1-based); ``decayed[i]`` whether param i decays.
    """
    params = [np.array(p, np.float64) for p in params]
    decayed = decayed or [True] * len(params)
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    rho_inf = 2.0 / (1.0 - beta_2) - 1.0
    trajectory = []
    for t, step_gradients in enumerate(gradients, start=1):
        lr = learning_rate_of(t)
        rho_t = rho_inf - 2.0 * t * beta_2**t / (1.0 - beta_2**t)
        for i, g in enumerate(step_gradients):
            g = np.asarray(g, np.float64)
            if decayed[i]:
                params[i] = params[i] - weight_decay * lr * params[i]
            first[i] = beta_1 * first[i] + (1.0 - beta_1) * g
            second[i] = beta_2 * second[i] + (1.0 - beta_2) * g * g
            if rho_t >= 5.0:
                rectifier = math.sqrt(
                    (1.0 - beta_2**t) * (rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                    / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
                )
                step = lr * rectifier / (1.0 - beta_1**t)
                params[i] = params[i] - step * first[i] / (np.sqrt(second[i]) + epsilon)
            else:
                params[i] = params[i] - lr / (1.0 - beta_1**t) * first[i]
        trajectory.append([p.copy() for p in params])
    return trajectory


def torch_style_clip(gradients, max_norm):
    """numpy float64: norm of all gradients; scale by min(1, max_norm / (norm + 1e-6))."""
    present = [np.asarray(g, np.float64) for g in gradients if g is not None]
    norm = np.sqrt(sum(np.sum(g * g) for g in present))
    coefficient = min(1.0, max_norm / (norm + 1e-6))
    return [None if g is None else np.asarray(g, np.float64) * coefficient for g in gradients], norm
