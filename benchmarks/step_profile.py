"""Where a stacked training step spends its time: forward+backward vs the optimizer's update.

    python benchmarks/step_profile.py [--batch 20] [--members 9 27] [--optimizers sgd adam]

Times, per step of one stacked group (the engine's own functions, random data): the forward and
backward pass alone, the optimizer's XLA-fused update alone, and the whole step; prints each as
microseconds per step and as GFLOP/s of training arithmetic (6 flop per parameter per example)
against the machine's matmul rate measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from optbench.config import RunSpec  # noqa: E402
from optbench.model import PARAM_COUNT  # noqa: E402

STEPS = 200


def timed_loop(body, steps: int = STEPS) -> float:
    """Seconds per step of `body(step)` inside one compiled while loop (after a warm-up)."""
    import tensorflow as tf

    @tf.function
    def loop():
        def step(s, total):  # carrying body's value keeps its work from being pruned
            return s + 1, total + body(s)

        # parallel_iterations=1: steps run one after another, as they do in training
        return tf.while_loop(lambda s, _: s < steps, step, [tf.constant(0), tf.constant(0.0)],
                             parallel_iterations=1)

    loop()
    t0 = time.perf_counter()
    loop()
    return (time.perf_counter() - t0) / steps


def profile(optimizer: str, members: int, batch: int, n: int = 10_000) -> list[tuple[str, float]]:
    import tensorflow as tf

    from optbench.engines.stacked import _build_groups, _loss_and_gradients

    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((n, 784), dtype=np.float32))
    y = tf.constant(rng.integers(0, 10, n).astype(np.int32))
    specs = [RunSpec(optimizer, 10.0 ** -(1 + k % 3), batch, k, 1) for k in range(members)]
    (group,) = _build_groups(specs)
    idx = tf.constant(np.stack([rng.permutation(n) for _ in range(members)]).astype(np.int32))

    def grads_at(s):
        rows = idx[:, (s * batch) % (n - batch):(s * batch) % (n - batch) + batch]
        return _loss_and_gradients(tf.gather(x, rows), tf.gather(y, rows), group.variables)[2]

    def fwd_bwd(s):
        return tf.add_n([tf.reduce_sum(g) for g in grads_at(s)])

    def update(grads):
        group.apply(grads)
        return tf.constant(0.0)

    fixed = [tf.fill(v.shape, 1e-3) for v in group.variables]
    return [("forward+backward", timed_loop(fwd_bwd)),
            ("optimizer update", timed_loop(lambda s: update(fixed))),
            ("whole step", timed_loop(lambda s: update(grads_at(s))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--members", type=int, nargs="+", default=[9, 27])
    parser.add_argument("--optimizers", nargs="+", default=["sgd", "adam"])
    args = parser.parse_args()

    from engines import matmul_gflops

    peak = matmul_gflops()
    print(f"matmul rate here: {peak:.0f} GFLOP/s; batch {args.batch}")
    print(f"{'optimizer':<10}{'K':>4}  {'part':<18}{'us/step':>9}{'GFLOP/s':>9}{'of matmul':>11}")
    for opt in args.optimizers:
        for k in args.members:
            flops = 6 * PARAM_COUNT * args.batch * k
            for part, seconds in profile(opt, k, args.batch):
                rate = flops / seconds / 1e9
                print(f"{opt:<10}{k:>4}  {part:<18}{seconds * 1e6:>9.0f}{rate:>9.1f}"
                      f"{rate / peak:>10.0%}", flush=True)


if __name__ == "__main__":
    main()
