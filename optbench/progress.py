"""Progress over a sweep: a tqdm bar on a terminal, one plain line per finished run otherwise."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

from .config import RunSpec
from .engines import RunResult


class SweepProgress:
    """Counts epochs for the bar (ETA) and reports each run as it lands."""

    def __init__(self, n_runs: int, total_epochs: int, stream: TextIO = sys.stderr):
        self.n_runs = n_runs
        self.finished = 0
        self.stream = stream
        self.bar = tqdm(total=total_epochs, unit="epoch", file=stream, dynamic_ncols=True,
                        disable=not stream.isatty(), desc="training")

    def on_epoch(self, spec: RunSpec, epoch: int) -> None:
        self.bar.update(1)

    def on_epochs(self, n: int) -> None:
        """Epochs trained elsewhere (a worker process), counted when their run comes back."""
        self.bar.update(n)

    def on_result(self, result: RunResult) -> None:
        self.finished += 1
        self.bar.set_postfix_str(f"runs {self.finished}/{self.n_runs}")
        line = f"[{self.finished}/{self.n_runs}] {describe(result)}"
        if self.bar.disable:
            print(line, file=self.stream, flush=True)
        else:
            self.bar.write(line, file=self.stream)

    def close(self) -> None:
        self.bar.close()


def describe(result: RunResult) -> str:
    """One line: run id, status, final validation accuracy, time."""
    last = result.history[-1] if result.history else {}
    acc = last.get("val_accuracy")
    metric = f" val_accuracy={acc:.4f}" if acc is not None else ""
    why = f" ({result.error.splitlines()[0]})" if result.error else ""
    return (f"{result.spec.run_id} {result.status}{why}{metric} "
            f"[{result.engine}, {result.wall_time:.1f}s]")
