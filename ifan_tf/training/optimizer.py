"""RAdam (rectified Adam) with decoupled weight decay, as used to train IFAN.

Spec "Optimisation and data": lr 1e-4, betas (0.9, 0.999), eps 1e-8, weight decay 0.01 applied
decoupled. The reference trains with ``torch_optimizer.RAdam`` (pytorch-optimizer 0.1.0); this is
that update rule, step for step. With t = number of this update (1-based), g the gradient:

    p   <- p - wd * lr * p                                  (decoupled weight decay)
    m   <- b1 * m + (1 - b1) * g
    v   <- b2 * v + (1 - b2) * g * g
    rho_inf = 2 / (1 - b2) - 1
    rho_t   = rho_inf - 2 t b2^t / (1 - b2^t)
    if rho_t >= 5:
        r = sqrt((1 - b2^t)(rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        p <- p - lr * r / (1 - b1^t) * m / (sqrt(v) + eps)
    else:
        p <- p - lr / (1 - b1^t) * m

Details that differ from other RAdam implementations and are kept on purpose:

* ``v`` is *not* bias-corrected before the square root: ``sqrt(1 - b2^t)`` sits inside ``r`` and
  ``eps`` is added to ``sqrt(v)``. ``torch.optim.RAdam`` instead adds ``eps`` to
  ``sqrt(v / (1 - b2^t))``, which differs when ``sqrt(v)`` is comparable to ``eps``.
* The switch is ``rho_t >= 5`` (``torch.optim.RAdam`` uses ``> 5``; no integer t hits 5 exactly
  for b2 = 0.999). With b2 = 0.999, rho_t ~ t - small, so updates t = 1..5 are the un-adapted
  momentum steps (rho_5 = 4.996) and the adaptive step starts at t = 6 (rho_6 = 5.994).
* Weight decay multiplies the parameter *before* the Adam step is subtracted, with the learning
  rate of the current step (``p_new = p - wd*lr*p - step``), as in ``torch_optimizer.RAdam`` and
  ``torch.optim.RAdam(decoupled_weight_decay=True)`` / AdamW. The Adam step does not read ``p``,
  so this is exactly Keras' ``_apply_weight_decay`` (``p -= p * wd * lr`` on all variables before
  ``update_step``); the per-variable update applies it itself, right before its step
  (``exclude_from_weight_decay`` is honoured). Applying the decay after the step would differ by
  ``wd * lr * step``.

Rectified updates (all but the first few) run as two fused TF kernels per variable: the decay
(``ResourceApplyGradientDescent`` with ``delta = p``) and ``ResourceApplyAdam`` with both bias
powers 0, whose step ``lr * sqrt(1 - 0) / (1 - 0) * m / (sqrt(v) + eps)`` is exactly the rectified
step above with ``lr = lr * r / (1 - b1^t)``. That is one pass over ``p``, ``m``, ``v`` and the
gradient instead of ~12 elementwise ops, each a pass with its temporary; the numbers are the same
up to float32 rounding order (tested against the float64 spec at 1e-6).

The scalar terms (b^t, rho_t, r) are computed in float64, as the reference computes them in
Python floats: in float32, ``1 - b2^t`` and ``rho_t`` lose several digits for small t.
"""

import keras
import tensorflow as tf

#: Rectification is used from the first step whose rho_t reaches this value (spec: ``rho_t >= 5``).
RECTIFICATION_THRESHOLD = 5.0


@keras.saving.register_keras_serializable(package="ifan_tf")
class RAdam(keras.optimizers.Optimizer):
    """Rectified Adam with decoupled weight decay (spec "Optimisation and data"; TF backend).

    Slots per trained variable: ``m`` (first moment) and ``v`` (second moment, not
    bias-corrected), same shape and dtype as the variable; plus the base ``iterations`` counter
    (int64, number of updates already applied) and, for a constant learning rate, the
    ``learning_rate`` variable. All are tracked, so ``tf.train.Checkpoint(optimizer=...)`` saves
    and restores them; build the optimizer (``optimizer.build(variables)``) before restoring.

    Under a ``tf.distribute`` strategy create and build the optimizer inside
    ``strategy.scope()``; ``apply_gradients`` in a replica context sums the per-replica gradients
    (Keras convention), so per-replica losses must be scaled by the global batch size.

    Args:
        learning_rate: float or ``keras.optimizers.schedules.LearningRateSchedule`` (called with
            ``iterations``, the 0-based index of the update being computed).
        beta_1: b1, decay of the first moment.
        beta_2: b2, decay of the second moment.
        epsilon: eps, added to ``sqrt(v)``.
        weight_decay: wd, decoupled decay factor (``p <- p - wd * lr * p`` every update);
            ``None`` or 0 disables it. Use ``exclude_from_weight_decay`` (before building) to
            exempt variables; the reference decays everything.
        name: optimizer name (prefix of its variable names).
        **kwargs: remaining ``keras.optimizers.Optimizer`` arguments (e.g. ``use_ema``,
            ``gradient_accumulation_steps``). Prefer ``ifan_tf.training.gradient_clipping`` over
            Keras' ``global_clipnorm``, which matches neither the reference's clipping formula nor
            (under ``tf.distribute``) clips the summed gradient.
    """

    def __init__(
        self,
        learning_rate=1e-4,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.01,
        name="radam",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay if weight_decay else None,
            name=name,
            **kwargs,
        )
        if not 0.0 <= beta_1 < 1.0 or not 0.0 <= beta_2 < 1.0:
            raise ValueError(f"betas must be in [0, 1), got beta_1={beta_1}, beta_2={beta_2}")
        if epsilon < 0.0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon}")
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self._update_terms = None  # (step_size, rectified) of the update being applied (``apply``)
        self._learning_rate_scales = {}  # variable index -> factor on its learning rate

    def build(self, var_list):
        """Creates the ``m`` and ``v`` slots (zeros) for every variable of ``var_list``."""
        if self.built:
            return
        super().build(var_list)
        self._m, self._v = self.add_optimizer_variables(var_list, ["m", "v"])

    def scale_learning_rate(self, variables, factor):
        """Trains ``variables`` at ``factor`` times the learning rate (step and weight decay).

        For every update from now on, ``p <- p - wd*(f*lr)*p - f*step``: exactly the update with the
        learning rate ``f*lr`` for these variables, the others unchanged. Call after ``build`` and
        before the update is traced (a Python constant in the graph); not saved in checkpoints
        (the training config sets it on every start, ``train.reblur_lr_scale``).

        Raises:
          ValueError: ``factor`` is not a finite number > 0, or a variable is not one the optimizer
            was built for.
        """
        factor = float(factor)
        if not 0.0 < factor < float("inf"):
            raise ValueError(f"learning-rate factor must be a finite number > 0, got {factor}")
        if not self.built:
            raise ValueError("build the optimizer (optimizer.build(variables)) before scaling learning rates")
        for variable in variables:
            try:
                index = self._get_variable_index(variable)
            except KeyError:
                name = getattr(variable, "path", None) or variable.name
                raise ValueError(f"variable {name!r} is not trained by this optimizer") from None
            if factor == 1.0:
                self._learning_rate_scales.pop(index, None)
            else:
                self._learning_rate_scales[index] = factor

    def _step_size(self, learning_rate):
        """Scalar step size and whether this update is rectified, for t = ``iterations + 1``.

        Returns ``(step_size, rectified)``: float64 scalar ``lr * r / (1 - b1^t)`` if
        ``rho_t >= 5`` else ``lr / (1 - b1^t)``, and the bool scalar ``rho_t >= 5``.
        """
        t = tf.cast(self.iterations + 1, tf.float64)
        lr = tf.cast(learning_rate, tf.float64)
        beta_1 = tf.constant(self.beta_1, tf.float64)
        beta_2 = tf.constant(self.beta_2, tf.float64)
        beta_1_power = tf.pow(beta_1, t)
        beta_2_power = tf.pow(beta_2, t)
        rho_inf = 2.0 / (1.0 - beta_2) - 1.0
        rho_t = rho_inf - 2.0 * t * beta_2_power / (1.0 - beta_2_power)
        rectified = rho_t >= RECTIFICATION_THRESHOLD
        # Clamped so that the unused branch stays finite while rho_t < 4.
        rectifier_sq = (
            (1.0 - beta_2_power)
            * tf.maximum(rho_t - 4.0, 0.0)
            * tf.maximum(rho_t - 2.0, 0.0)
            * rho_inf
            / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
        )
        step_size = tf.where(rectified, lr * tf.sqrt(rectifier_sq), lr) / (1.0 - beta_1_power)
        return step_size, rectified

    def apply(self, grads, trainable_variables=None):
        """Applies one update to every variable (Keras ``Optimizer.apply``).

        The scalar terms of ``_step_size`` depend only on the update's number and learning rate, so
        they are computed once per update here (before any variable changes, with the
        ``iterations`` and learning rate the per-variable updates would read) instead of once per
        variable: with ~180 variables that was ~4,000 scalar ops and 180 ``tf.cond`` per step, and
        tracing the step took tens of seconds.
        """
        self._update_terms = self._step_size(self._get_current_learning_rate())
        try:
            return super().apply(grads, trainable_variables)
        finally:
            self._update_terms = None

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        """Updates every variable, with fused kernels once the update is rectified.

        The rectified update ``p <- p - s * m / (sqrt(v) + eps)`` is TF's fused ``ResourceApplyAdam``
        (``lr * sqrt(1 - b2p) / (1 - b1p)`` with both powers 0 is exactly ``s``): one pass over
        ``p``, ``m``, ``v`` and the gradient instead of ~12 elementwise ops with their temporaries.
        The few un-rectified first updates take ``_momentum_update_step``. The choice is one
        ``tf.cond`` for all variables (in graph mode; a Python branch in eager mode), taken after
        the gradients were summed over replicas.
        """
        terms = self._update_terms
        step_size, rectified = terms if terms is not None else self._step_size(learning_rate)

        def update_all(update_fn):
            def branch():
                for gradient, variable in grads_and_vars:
                    distribution.extended.update(variable, update_fn, args=(gradient, learning_rate, step_size),
                                                 group=False)

            return branch

        fused, momentum = update_all(self._fused_update_step), update_all(self._momentum_update_step)
        if tf.executing_eagerly():
            (fused if bool(rectified) else momentum)()
        else:
            tf.cond(rectified, fused, momentum)

    def _variable_terms(self, variable, gradient, learning_rate, step_size):
        """``(index, gradient, step_size, decay)`` of one variable's update.

        The gradient dense (``tf.IndexedSlices`` densified) in the variable's dtype; the step size
        (and the learning rate in ``decay``) times the variable's ``scale_learning_rate`` factor;
        ``decay`` the scalar ``wd * lr`` of the decoupled weight decay, or None when the variable is
        not decayed.
        """
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        factor = self._learning_rate_scales.get(index)
        if factor is not None:
            step_size = step_size * factor
            learning_rate = learning_rate * factor
        decay = None
        if self.weight_decay is not None and self._use_weight_decay(variable):
            decay = tf.cast(self.weight_decay, dtype) * tf.cast(learning_rate, dtype)
        return index, tf.cast(gradient, dtype), tf.cast(step_size, dtype), decay

    def _fused_update_step(self, variable, gradient, learning_rate, step_size):
        """The rectified RAdam step of ``variable`` (``rho_t >= 5``): decay, then ``ResourceApplyAdam``.

        ``step_size`` is ``lr * r / (1 - b1^t)``. Same numbers as the spec's rectified step up to
        float32 rounding order (the kernel computes ``m += (g - m)(1 - b1)`` and
        ``p -= (m s) / (sqrt(v) + eps)``).
        """
        index, gradient, step_size, decay = self._variable_terms(variable, gradient, learning_rate, step_size)
        dtype = variable.dtype
        handle = (variable.value if isinstance(variable, keras.Variable) else variable).handle
        if decay is not None:
            # Keras' decoupled decay ``p -= p * wd * lr`` before the step, as one fused op.
            tf.raw_ops.ResourceApplyGradientDescent(var=handle, alpha=decay, delta=tf.convert_to_tensor(variable))
        zero = tf.constant(0.0, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=handle, m=self._m[index].value.handle, v=self._v[index].value.handle,
            beta1_power=zero, beta2_power=zero, lr=step_size,
            beta1=tf.cast(self.beta_1, dtype), beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype), grad=gradient)

    def _momentum_update_step(self, variable, gradient, learning_rate, step_size):
        """An un-rectified RAdam step of ``variable`` (``rho_t < 5``): ``p <- p - wd*lr*p - s * m``.

        ``step_size`` is ``lr / (1 - b1^t)``; both moments are updated, ``v`` only for later steps.
        """
        index, gradient, step_size, decay = self._variable_terms(variable, gradient, learning_rate, step_size)
        dtype = variable.dtype
        m, v = self._m[index], self._v[index]
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        m_new = beta_1 * m + (1.0 - beta_1) * gradient
        self.assign(m, m_new)
        self.assign(v, beta_2 * v + (1.0 - beta_2) * tf.square(gradient))
        value = tf.convert_to_tensor(variable)
        if decay is not None:
            # Keras' decoupled decay ``p -= p * wd * lr``, applied before the step, in this pass.
            value = value - value * decay
        self.assign(variable, value - step_size * m_new)

    def _apply_weight_decay(self, variables):
        """Nothing: the per-variable update applies the decoupled weight decay (same numbers, same order).

        Keras' version runs before the updates, a separate pass with the learning-rate schedule
        evaluated once per variable (~10 ops each on ~180 variables, every step).
        """
        del variables

    def get_config(self):
        """Serialisable constructor arguments (the learning-rate schedule is serialised too)."""
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
