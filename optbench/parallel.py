"""Units of work and where they run: in this process, in local worker processes, or on Ray.

A unit is what one engine call trains at once: a single run for the reference engine, a stacked
group for the stacked engine. Workers only train and return RunResults; the driver alone writes
the results folder, so Ray workers on other machines need no shared filesystem.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from typing import Iterator

from .config import RunSpec
from .engines import RunResult, batch_size_for, get_engine, planned_n_train
from .model import steps_per_epoch

Unit = list[RunSpec]


def plan_units(engine_name: str, specs: list[RunSpec]) -> list[Unit]:
    """Split specs into independent units, grouping only runs that share their data split.

    Longest first, so that no worker starts a long unit after the others have run dry.
    """
    engine = get_engine(engine_name)
    units: list[Unit] = []
    for group in by_data(specs).values():
        units.extend(engine.plan(group) if hasattr(engine, "plan") else [[s] for s in group])
    return sorted(units, key=unit_cost, reverse=True)


def unit_cost(unit: Unit) -> float:
    """A unit's relative cost in member-steps: each step updates every member's weights (about
    70 us per member here), each example costs about 4 us of arithmetic, so ~20 examples = 1 step."""
    spec = unit[0]
    n = planned_n_train(spec)
    return spec.epochs * len(unit) * (steps_per_epoch(n, batch_size_for(spec, n)) + n / 20)


def by_data(specs: list[RunSpec]) -> dict[tuple, list[RunSpec]]:
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault((spec.train_size, spec.validation), []).append(spec)
    return groups


def train_unit(engine_name: str, unit: Unit, mnist) -> list[RunResult]:
    """Train one unit to completion (in whatever process this runs in)."""
    from .data import make_splits

    spec = unit[0]
    splits = make_splits(mnist, spec.train_size, spec.validation)
    return list(get_engine(engine_name).run(unit, splits, lambda s, e: None))


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def _limit_threads(threads: int) -> None:
    """Size TensorFlow's pools so that N workers together use the cores once, not N times."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TF already initialized in this (reused) worker: keep its pools
        pass


_WORKER_MNIST = None


def _init_local_worker(mnist, threads: int) -> None:
    global _WORKER_MNIST
    _WORKER_MNIST = mnist
    _limit_threads(threads)


def _local_task(engine_name: str, unit: Unit) -> list[RunResult]:
    return train_unit(engine_name, unit, _WORKER_MNIST)


def run_local(engine_name: str, units: list[Unit], mnist, workers: int) -> Iterator[RunResult]:
    """Train units in `workers` fresh processes; yield results as units finish."""
    ctx = mp.get_context("spawn")  # TF is not fork-safe once initialized
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_local_worker,
                                initargs=(mnist, threads_per_worker(workers))) as pool:
        futures = [pool.submit(_local_task, engine_name, unit) for unit in units]
        try:
            for future in cf.as_completed(futures):
                yield from future.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def run_ray(engine_name: str, units: list[Unit], mnist, address: str | None,
            cpus_per_unit: int) -> Iterator[RunResult]:
    """Train units as Ray tasks; the data goes to the object store once, not once per task."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0

    @ray.remote(num_cpus=cpus_per_unit, num_gpus=gpus, max_retries=3)
    def task(unit: Unit, data) -> list[RunResult]:
        _limit_threads(cpus_per_unit)
        return train_unit(engine_name, unit, data)

    data_ref = ray.put(mnist)
    pending = [task.remote(unit, data_ref) for unit in units]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield from ray.get(done[0])
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
