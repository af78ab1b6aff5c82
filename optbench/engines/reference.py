"""The reference engine: each run is the recipe's own `model.fit`, one run at a time."""

from __future__ import annotations

import time
import traceback
from typing import Iterator

import numpy as np

from ..config import RunSpec
from ..model import build_model, epoch_order, make_optimizer, steps_per_epoch
from . import EVAL_BATCH, EpochCallback, RunResult, batch_size_for, is_finite


class KerasEngine:
    name = "keras"

    def run(self, specs: list[RunSpec], splits, on_epoch: EpochCallback) -> Iterator[RunResult]:
        for spec in specs:
            yield train_one(spec, splits, on_epoch)


def train_one(spec: RunSpec, splits, on_epoch: EpochCallback | None = None,
              initial_weights: list[np.ndarray] | None = None,
              keep_weights: bool = False) -> RunResult:
    """Train one run; failures and divergence are returned as data, never raised.

    `keep_weights` puts the final weights in `extra["weights"]` (for fidelity checks).
    """
    start = time.perf_counter()
    history: list[dict[str, float]] = []
    extra: dict = {}
    try:
        status, model = _fit(spec, splits, history, on_epoch, initial_weights)
        if keep_weights:
            extra["weights"] = model.get_weights()
    except Exception as e:  # noqa: BLE001 - a failed run is recorded, the sweep goes on
        return RunResult(spec, "failed", history, "keras", time.perf_counter() - start,
                         error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(),
                         deterministic=True)
    return RunResult(spec, status, history, "keras", time.perf_counter() - start,
                     deterministic=True, extra=extra)


def _fit(spec, splits, history, on_epoch, initial_weights):
    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(spec.seed)
    model = build_model()
    if initial_weights is not None:
        model.set_weights(initial_weights)
    model.compile(optimizer=make_optimizer(spec.optimizer, spec.learning_rate, spec.args),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    n = len(splits.x_train)
    batch = batch_size_for(spec, n)
    for epoch in range(spec.epochs):
        t0 = time.perf_counter()
        order = epoch_order(spec.seed, epoch, n)
        fit = model.fit(splits.x_train[order], splits.y_train[order], batch_size=batch, epochs=1,
                        shuffle=False, verbose=0, validation_data=(splits.x_val, splits.y_val),
                        validation_batch_size=EVAL_BATCH,
                        callbacks=[keras.callbacks.TerminateOnNaN()])
        row = {k: float(v[-1]) for k, v in fit.history.items()}
        if splits.x_test is not None:
            loss, acc = model.evaluate(splits.x_test, splits.y_test, batch_size=EVAL_BATCH,
                                       verbose=0)
            row.update(test_loss=float(loss), test_accuracy=float(acc))
        row.update(epoch=epoch + 1, steps=(epoch + 1) * steps_per_epoch(n, batch),
                   time=time.perf_counter() - t0)
        history.append(row)
        if on_epoch:
            on_epoch(spec, epoch + 1)
        if model.stop_training or not is_finite(row["loss"]):
            return "diverged", model
    return "ok", model
