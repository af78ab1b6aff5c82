"""A small results folder with hand-chosen numbers, written without training (no TensorFlow).

The grid: sgd and adam x learning rate 0.1, 0.01 x batch 32, full x seeds 0, 1, 2; 3 epochs on
1,000 training examples; target val_accuracy 0.9. Each point has a base final val_loss; seed s
ends at base * (0.5, 1, 1.5)[s], so a point's final values are exactly (b/2, b, 3b/2).

- sgd lr 0.1 bs 32: val_loss finals (0.1, 0.2, 0.3): mean 0.2, std 0.1; the best sgd point.
- adam lr 0.01 bs 32 has the lowest validation loss of adam's clean points, but adam lr 0.1 bs 32
  has the lowest *test* loss: choosing on test would pick a different setting.
- adam lr 0.1 full, seed 2 diverges (loss nan at epoch 2, history stops); its two finished
  seeds have the lowest validation loss of all, yet the point must rank below clean ones.
- sgd lr 0.01 full, seed 1 fails (empty history, error text).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from optbench.config import Experiment, RunSpec, expand, parse_experiment
from optbench.engines import RunResult
from optbench.runner import make_record
from optbench.store import ResultsDir

SEED_FACTOR = (0.5, 1.0, 1.5)
N_TRAIN = 1000
# (optimizer, learning_rate, batch_size) -> (base final val_loss, base final test_loss)
BASES: dict[tuple[str, float, Any], tuple[float, float]] = {
    ("sgd", 0.1, 32): (0.2, 0.25),
    ("sgd", 0.01, 32): (0.4, 0.45),
    ("sgd", 0.1, "full"): (0.5, 0.55),
    ("sgd", 0.01, "full"): (0.9, 0.95),
    ("adam", 0.1, 32): (0.3, 0.10),
    ("adam", 0.01, 32): (0.15, 0.30),
    ("adam", 0.1, "full"): (0.05, 0.08),
    ("adam", 0.01, "full"): (0.6, 0.65),
}
DIVERGED = ("adam", 0.1, "full", 2)
FAILED = ("sgd", 0.01, "full", 1)
FAILED_ERROR = "ValueError: learning_rate_power must be <= 0\nsecond line of the message"
EPOCH_TIME = {32: 2.0, "full": 0.5}


def config(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "synth",
        "data": {"train_size": N_TRAIN, "validation": "holdout"},
        "epochs": 3,
        "seeds": [0, 1, 2],
        "grid": {"optimizer": ["sgd", "adam"], "learning_rate": [0.1, 0.01],
                 "batch_size": [32, "full"]},
        "metric": {"name": "val_loss", "goal": "minimize"},
        "target": {"val_accuracy": 0.9},
    }
    data.update(overrides)
    return data


def history(spec: RunSpec, val: float, test: float | None) -> list[dict[str, float]]:
    """Loss falls to its final value: 2x, 1.5x, 1x over three epochs (accuracy = 1 - loss/2)."""
    rows = []
    n_train = spec.train_size or N_TRAIN
    steps = 1 if spec.batch_size == "full" else math.ceil(n_train / spec.batch_size)
    for epoch in range(1, spec.epochs + 1):
        scale = 1 + (spec.epochs - epoch) * 0.5
        row = {"loss": 0.9 * val * scale, "accuracy": 1 - 0.9 * val * scale / 2,
               "val_loss": val * scale, "val_accuracy": 1 - val * scale / 2}
        if test is not None:
            row.update(test_loss=test * scale, test_accuracy=1 - test * scale / 2)
        row.update(epoch=epoch, steps=epoch * steps, time=EPOCH_TIME[spec.batch_size])
        rows.append(row)
    return rows


def record(exp: Experiment, spec: RunSpec, rows: list[dict[str, float]], status: str = "ok",
           error: str | None = None) -> dict[str, Any]:
    """A run record with exactly the keys the runner writes."""
    result = RunResult(spec, status, rows, "keras", sum(r["time"] for r in rows) + 0.1,
                       error=error, traceback="Traceback (most recent call last): ..."
                       if error else None, deterministic=True)
    validation = spec.validation
    data_info = {"source": "synthetic (tests)", "validation": validation,
                 "n_train": spec.train_size or N_TRAIN,
                 "n_val": 10_000, "n_test": 10_000 if validation == "holdout" else None}
    env = {"versions": {"optbench": "0.1.0", "python": "3.11.7", "tensorflow": "2.20.0",
                        "keras": "3.11.0", "numpy": "2.1.0"}, "host": "synthetic"}
    return make_record(exp, result, data_info, env)


def make_results(folder: Path, **overrides: Any) -> Experiment:
    """Write experiment.yaml and one record per run of the synthetic grid into `folder`."""
    exp = parse_experiment(config(**overrides))
    results = ResultsDir(folder)
    results.write_config(exp.model_dump(mode="json"))
    holdout = exp.data.validation == "holdout"
    for spec in expand(exp):
        key = (spec.optimizer, spec.learning_rate, spec.batch_size)
        val, test = BASES[key]
        factor = SEED_FACTOR[spec.seed % 3]
        rows = history(spec, val * factor, test * factor if holdout else None)
        if (*key, spec.seed) == FAILED:
            results.write_record(record(exp, spec, [], "failed", FAILED_ERROR))
        elif (*key, spec.seed) == DIVERGED:
            rows = rows[:2]
            rows[1].update(loss=math.nan, accuracy=0.1, val_loss=math.nan, val_accuracy=0.1)
            results.write_record(record(exp, spec, rows, "diverged"))
        else:
            results.write_record(record(exp, spec, rows))
    return exp
