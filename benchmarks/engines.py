"""Reference engine vs stacked engine on one grid, side by side in one process run.

    python benchmarks/engines.py [CONFIG] [--epochs 1] [--data PATH] [--no-reference]

Trains every run of CONFIG (default configs/optimizers.yaml, shortened to --epochs) with:
the reference engine (plain `model.fit`, in this process), the stacked engine in this process,
and the stacked engine on 2 local worker processes (1 TensorFlow thread each). Prints wall times,
their ratios, the achieved training GFLOP/s per stacked bundle against this machine's matmul
rate (measured here, same run), and every run's final validation accuracy under both engines.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from optbench.config import expand, load_experiment  # noqa: E402
from optbench.data import load_mnist, make_splits  # noqa: E402
from optbench.model import PARAM_COUNT  # noqa: E402
from optbench.parallel import by_data, plan_units, run_local  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def matmul_gflops(size: int = 2048, repeats: int = 20) -> float:
    """The machine's float32 matmul rate with TensorFlow's default threads (best of 3)."""
    import tensorflow as tf

    a, b = tf.random.normal([size, size]), tf.random.normal([size, size])
    mm = tf.function(lambda a, b: tf.matmul(a, b))
    mm(a, b).numpy()
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            c = mm(a, b)
        c.numpy()
        best = max(best, repeats * 2 * size**3 / (time.perf_counter() - t0) / 1e9)
    return best


def run_flops(spec, splits) -> float:
    """Training (6 flop per parameter per example) plus evaluation (2) over the run's epochs."""
    n_eval = len(splits.y_val) + (0 if splits.y_test is None else len(splits.y_test))
    return spec.epochs * PARAM_COUNT * (6 * len(splits.y_train) + 2 * n_eval)


def in_process(engine_name: str, specs, mnist):
    from optbench.engines import get_engine

    engine, results = get_engine(engine_name), []
    t0 = time.perf_counter()
    for (size, validation), group in by_data(specs).items():
        results += engine.run(group, make_splits(mnist, size, validation), lambda s, e: None)
    return results, time.perf_counter() - t0


def on_workers(specs, mnist, workers: int):
    t0 = time.perf_counter()
    results = list(run_local("stacked", plan_units("stacked", specs), mnist, workers))
    return results, time.perf_counter() - t0


def bundle_rates(results, mnist, peak: float) -> None:
    bundles: dict[str, list] = {}
    for r in results:
        if r.group:
            bundles.setdefault(r.group["id"], []).append(r)
    print(f"\n{'bundle':<12}{'K':>4}{'batch':>7}{'seconds':>9}{'GFLOP/s':>9}{'of matmul':>11}")
    for gid, members in bundles.items():
        spec, wall = members[0].spec, members[0].group["wall_time"]
        splits = make_splits(mnist, spec.train_size, spec.validation)
        flops = sum(run_flops(m.spec, splits) for m in members)
        rate = flops / wall / 1e9
        print(f"{gid:<12}{len(members):>4}{spec.batch_size!s:>7}{wall:>9.1f}{rate:>9.1f}"
              f"{rate / peak:>10.0%}")


def side_by_side(reference, stacked) -> None:
    by_id = {r.spec.run_id: r for r in stacked}
    print(f"\n{'run':<34}{'keras':>8}{'stacked':>9}{'diff':>10}")
    worst = 0.0
    for r in reference:
        s = by_id[r.spec.run_id]
        a, b = r.history[-1]["val_accuracy"], s.history[-1]["val_accuracy"]
        worst = max(worst, abs(a - b))
        print(f"{r.spec.run_id[:33]:<34}{a:>8.4f}{b:>9.4f}{b - a:>10.1e}")
    print(f"largest |difference| in final val_accuracy: {worst:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(REPO / "configs" / "optimizers.yaml"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--data", default=None, help="mnist.npz (default: optbench's search)")
    parser.add_argument("--no-reference", action="store_true", help="skip the slow side")
    args = parser.parse_args()

    exp = load_experiment(args.config)
    specs = [dataclasses.replace(s, epochs=args.epochs) for s in expand(exp)]
    mnist = load_mnist(args.data)
    peak = matmul_gflops()
    print(f"{exp.name}: {len(specs)} runs x {args.epochs} epoch(s); "
          f"matmul rate here: {peak:.0f} GFLOP/s")

    stacked, t_stacked = in_process("stacked", specs, mnist)
    print(f"stacked, 1 process:   {t_stacked:8.1f} s", flush=True)
    _, t_workers = on_workers(specs, mnist, 2)
    print(f"stacked, 2 workers:   {t_workers:8.1f} s  ({t_stacked / t_workers:.2f}x vs 1 process)",
          flush=True)
    bundle_rates(stacked, mnist, peak)
    if args.no_reference:
        return
    reference, t_ref = in_process("keras", specs, mnist)
    best = min(t_stacked, t_workers)
    print(f"\nreference (model.fit): {t_ref:8.1f} s")
    print(f"speed-up of stacked over reference: {t_ref / t_stacked:.1f}x (1 process), "
          f"{t_ref / best:.1f}x (best of 1 process / 2 workers)")
    side_by_side(reference, stacked)


if __name__ == "__main__":
    main()
