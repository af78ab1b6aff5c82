"""The reference 784-128-10 model, the optimizer registry, and the per-run batch order.

The registry is static data so that config validation, `validate` and `--dry-run` never import
TensorFlow; `tests/test_model.py` checks it against the installed Keras's own signatures.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INPUT_DIM = 784
HIDDEN = 128
CLASSES = 10
PARAM_COUNT = INPUT_DIM * HIDDEN + HIDDEN + HIDDEN * CLASSES + CLASSES  # 101,770

# Keras-3 optimizer arguments shared by every optimizer that optbench lets a config set.
_COMMON: dict[str, Any] = {
    "weight_decay": None,
    "clipnorm": None,
    "clipvalue": None,
    "global_clipnorm": None,
}

# lowercase name -> (class name in keras.optimizers, tunable arguments with Keras's defaults).
# `learning_rate` is not listed: it is a grid axis of its own.
OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("SGD", {"momentum": 0.0, "nesterov": False}),
    "adam": ("Adam", {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False}),
    "adamw": (
        "AdamW",
        {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": False,
         "weight_decay": 0.004},
    ),
    "rmsprop": ("RMSprop", {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-07, "centered": False}),
    "adagrad": ("Adagrad", {"initial_accumulator_value": 0.1, "epsilon": 1e-07}),
    "adadelta": ("Adadelta", {"rho": 0.95, "epsilon": 1e-07}),
    "adamax": ("Adamax", {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}),
    "nadam": ("Nadam", {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}),
    "ftrl": (
        "Ftrl",
        {"learning_rate_power": -0.5, "initial_accumulator_value": 0.1,
         "l1_regularization_strength": 0.0, "l2_regularization_strength": 0.0,
         "l2_shrinkage_regularization_strength": 0.0, "beta": 0.0},
    ),
    "lion": ("Lion", {"beta_1": 0.9, "beta_2": 0.99}),
    "lamb": ("Lamb", {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}),
    "adafactor": (
        "Adafactor",
        {"beta_2_decay": -0.8, "epsilon_1": 1e-30, "epsilon_2": 0.001, "clip_threshold": 1.0,
         "relative_step": True},
    ),
    "muon": (
        "Muon",
        {"adam_beta_1": 0.9, "adam_beta_2": 0.999, "adam_weight_decay": 0.004,
         "epsilon": 1e-07, "weight_decay": 0.004, "muon_a": 3.4445, "muon_b": -4.775,
         "muon_c": 2.0315, "adam_lr_ratio": 1, "momentum": 0.95, "ns_steps": 5,
         "nesterov": True, "rms_rate": 0.2},
    ),
}

# Optimizers whose update uses a norm over a whole variable: a stacked variable would mix members.
NOT_STACKABLE = frozenset({"lamb", "muon", "adafactor"})
NORM_ARGS = frozenset({"clipnorm", "global_clipnorm"})


def optimizer_defaults(name: str) -> dict[str, Any]:
    """Every argument a config may set for optimizer `name`, with Keras's default."""
    return {**_COMMON, **OPTIMIZERS[name][1]}


def is_stackable(name: str, args: dict[str, Any]) -> bool:
    """Whether runs of this optimizer can be trained as slices of one stacked variable."""
    return name not in NOT_STACKABLE and not any(args.get(a) is not None for a in NORM_ARGS)


def optimizer_class(name: str):
    """The Keras optimizer class registered under `name` (imports Keras)."""
    import keras

    return getattr(keras.optimizers, OPTIMIZERS[name][0])


def make_optimizer(name: str, learning_rate, args: dict[str, Any]):
    """A fresh Keras optimizer; `learning_rate` may be a float or a callable."""
    return optimizer_class(name)(learning_rate=learning_rate, **args)


def available_optimizers() -> list[str]:
    """Registered names that the installed Keras actually ships."""
    import keras

    return [n for n, (cls, _) in OPTIMIZERS.items() if hasattr(keras.optimizers, cls)]


def build_model():
    """The reference network: 784 inputs -> Dense(128, relu) -> Dense(10, softmax)."""
    import keras

    return keras.Sequential(
        [
            keras.Input(shape=(INPUT_DIM,)),
            keras.layers.Dense(HIDDEN, activation="relu"),
            keras.layers.Dense(CLASSES, activation="softmax"),
        ]
    )


def initial_weights(seed: int) -> list[np.ndarray]:
    """The weights a run with `seed` starts from: seed everything, then build, as the recipe does."""
    import keras

    keras.utils.set_random_seed(seed)
    return [w.copy() for w in build_model().get_weights()]


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which a run with `seed` visits the `n` training examples in `epoch`.

    Drawn from numpy's PCG64 seeded by (seed, epoch) so that every engine, the reference
    `model.fit` path included, can replay exactly the same batches.
    """
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int32)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)
