"""The sweep: expand a config, skip finished runs, train the rest, store each record as it lands."""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .config import Experiment, RunSpec, expand
from .engines import RunResult
from .store import ResultsDir, sweep_lock


@dataclass
class SweepSummary:
    out: Path
    planned: int
    skipped: int
    results: list[RunResult] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def exit_code(self) -> int:
        """1 when a run raised; a diverged run is a finding about its settings, not a failure."""
        return 1 if self.count("failed") else 0

    @property
    def text(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s}" for s in ("ok", "diverged", "failed"))
        trained = f"trained {len(self.results)} runs ({counts})" if self.results else "trained nothing"
        report = next((p for p in self.reports if p.name == "report.html"), None)
        where = f"; report: {report}" if report else ""
        return (f"{self.out}: {self.planned} runs planned, {self.skipped} already done, "
                f"{trained}{where}")


def pending_specs(exp: Experiment, results: ResultsDir, force: bool) -> tuple[list[RunSpec], int]:
    """The runs still to train, and how many are already done."""
    specs = expand(exp)
    if force:
        return specs, 0
    done = results.done_ids()
    todo = [s for s in specs if s.run_id not in done]
    return todo, len(specs) - len(todo)


def versions() -> dict[str, str]:
    import keras
    import numpy
    import tensorflow as tf

    from . import __version__

    return {"optbench": __version__, "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": numpy.__version__}


def make_record(exp: Experiment, result: RunResult, data_info: dict, env: dict) -> dict:
    """The self-describing record of one run: enough to trace any reported number back."""
    spec = result.spec
    finished = dt.datetime.now(dt.timezone.utc)
    return {
        "run_id": spec.run_id,
        "point_id": spec.point_id,
        "experiment": exp.name,
        "spec": spec.to_dict(),
        "status": result.status,
        "error": result.error,
        "traceback": result.traceback,
        "engine": result.engine,
        "deterministic": result.deterministic,
        "group": result.group,
        "wall_time": result.wall_time,
        "epochs_trained": len(result.history),
        "history": result.history,
        "data": data_info,
        "versions": env["versions"],
        "host": env["host"],
        "started_at": (finished - dt.timedelta(seconds=result.wall_time)).isoformat(),
        "finished_at": finished.isoformat(),
    }


@dataclass(frozen=True)
class Backend:
    """Where units of work run: `local` with N worker processes (1: in this process) or `ray`."""

    kind: str = "local"
    workers: int | None = 1  # None: default_workers
    address: str | None = None


def default_workers(n_units: int) -> int:
    """One single-threaded worker per core, but no more workers than units of work.

    Measured on the 2-core reference machine (benchmarks/engines.py, configs/optimizers.yaml,
    one epoch): 2 workers of 1 thread each beat 1 process of 2 threads by 1.27x, because the
    optimizer's fused update and the small per-step ops do not use a second thread well.
    """
    return max(1, min(os.cpu_count() or 1, n_units))


def run_sweep(exp: Experiment, results: ResultsDir, specs: list[RunSpec], mnist,
              engine_name: str, backend: Backend, progress) -> list[RunResult]:
    """Train `specs`, writing each run's record the moment its result reaches this process."""
    env = {"versions": versions(), "host": socket.gethostname()}
    done = []
    for result in _results(specs, mnist, engine_name, backend, progress):
        results.write_record(make_record(exp, result, _data_info(mnist, result.spec), env))
        done.append(result)
        progress.on_result(result)
    return done


def _results(specs, mnist, engine_name: str, backend: Backend, progress) -> Iterator[RunResult]:
    from . import parallel

    units = parallel.plan_units(engine_name, specs)
    workers = backend.workers or default_workers(len(units))
    if backend.kind == "local" and workers == 1:
        from .data import make_splits
        from .engines import get_engine

        engine = get_engine(engine_name)
        for (size, validation), group in parallel.by_data(specs).items():
            splits = make_splits(mnist, size, validation)
            yield from engine.run(group, splits, progress.on_epoch)
        return
    if backend.kind == "ray":
        results = parallel.run_ray(engine_name, units, mnist, backend.address,
                                   parallel.threads_per_worker(workers))
    else:
        results = parallel.run_local(engine_name, units, mnist, workers)
    for result in results:
        progress.on_epochs(len(result.history))
        yield result


def _data_info(mnist, spec: RunSpec) -> dict:
    from .data import make_splits

    splits = make_splits(mnist, spec.train_size, spec.validation)  # views: cheap
    return {"source": mnist.source, "validation": spec.validation,
            "n_train": len(splits.y_train), "n_val": len(splits.y_val),
            "n_test": None if splits.y_test is None else len(splits.y_test)}


def execute(exp: Experiment, out: Path, data_path: Path | None, engine_name: str,
            force: bool, wait: bool = False, backend: Backend = Backend()) -> SweepSummary:
    """The whole `optbench run`: plan, load data, train what is pending, report.

    Everything that can reject the input (config, results folder, data) is checked before the
    first write, so a bad invocation leaves the folder as it was.
    """
    from .data import load_mnist
    from .progress import SweepProgress

    results = ResultsDir(out)
    specs, _ = pending_specs(exp, results, force)
    mnist = load_mnist(data_path) if specs else None
    with sweep_lock(out, wait, log=_log):
        results.remove_partial_writes()
        specs, skipped = pending_specs(exp, results, force)  # another sweep may have finished some
        summary = SweepSummary(out, planned=len(specs) + skipped, skipped=skipped)
        results.write_config(exp.model_dump(mode="json"))
        if specs:
            progress = SweepProgress(len(specs), sum(s.epochs for s in specs))
            try:
                summary.results = run_sweep(exp, results, specs, mnist or load_mnist(data_path),
                                            engine_name, backend, progress)
            finally:
                progress.close()
        summary.reports = write_report(out)
    return summary


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_report(out: Path) -> list[Path]:
    from .report import write_report as _write

    return _write(Path(out))
