"""Training engines: each turns RunSpecs into RunResults, streaming them as they finish."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from ..config import RunSpec

# Called after every trained epoch with the run and its 1-based epoch number.
EpochCallback = Callable[[RunSpec, int], None]

EVAL_BATCH = 1000  # batch size for validation/test evaluation, identical in every engine


@dataclass
class RunResult:
    spec: RunSpec
    status: str  # "ok", "diverged" or "failed"
    history: list[dict[str, float]]
    engine: str
    wall_time: float
    error: str | None = None
    traceback: str | None = None
    group: dict[str, Any] | None = None  # for runs trained together: group id, size, wall time
    deterministic: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    name: str

    def run(self, specs: list[RunSpec], splits, on_epoch: EpochCallback) -> Iterator[RunResult]:
        ...


def batch_size_for(spec: RunSpec, n_train: int) -> int:
    """`full` is batch gradient descent: one step per epoch over the whole training set."""
    return n_train if spec.batch_size == "full" else min(int(spec.batch_size), n_train)


def planned_n_train(spec: RunSpec) -> int:
    """The training-set size a run will use, known before the data is loaded (for planning)."""
    return spec.train_size or (50_000 if spec.validation == "holdout" else 60_000)


def is_finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def get_engine(name: str) -> Engine:
    if name == "keras":
        from .reference import KerasEngine

        return KerasEngine()
    if name in ("stacked", "auto"):  # runs the stacked engine cannot train go to the reference
        from .stacked import StackedEngine

        return StackedEngine()
    raise ValueError(f"unknown engine {name!r}; valid: auto, stacked, keras")
