"""Fidelity of the stacked engine: a member of a stack computes what `model.fit` computes alone.

Tolerance: 2e-5 absolute on every weight and every per-epoch metric. Both paths run the same
float32 arithmetic in a different order (batched vs per-run matmuls, the optimizer's update fused
by XLA), so they differ by float32 rounding (eps = 1.2e-7 per op, sums of up to 784 terms),
compounded over the 14 steps trained here; weights are O(0.1), so this is 2e-4 relative. Training
from another seed, learning rate or batch order moves weights by more than 1e-3 (checked below).
"""

from __future__ import annotations

import numpy as np
import pytest

from optbench.config import RunSpec
from optbench.model import NOT_STACKABLE, OPTIMIZERS

from conftest import synthetic_mnist

TOL = 2e-5
DIVERGES = 1e20  # blows every optimizer's weights up to inf within the first epoch
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
STACKABLE = [name for name in OPTIMIZERS if name not in NOT_STACKABLE]
LEARNING_RATES = {"sgd": (0.05, 0.01), "ftrl": (0.05, 0.01), "adadelta": (1.0, 0.3)}


@pytest.fixture(scope="module")
def small():
    from optbench.data import make_splits

    mnist = synthetic_mnist(n_train=10_300, n_test=300, seed=3)
    return {"test": make_splits(mnist, 200, "test"), "holdout": make_splits(mnist, 200, "holdout")}


def spec(opt, lr, seed, batch=30, args=(), validation="test") -> RunSpec:
    return RunSpec(opt, lr, batch, seed, 2, args, 200, validation)


def reference(s: RunSpec, splits):
    from optbench.engines.reference import train_one

    return train_one(s, splits, keep_weights=True)


def assert_same_run(stacked, ref, metrics=METRICS):
    assert (stacked.status, stacked.engine, ref.status) == ("ok", "stacked", "ok")
    assert len(stacked.history) == len(ref.history) == stacked.spec.epochs
    for a, b in zip(stacked.history, ref.history):
        assert a["steps"] == b["steps"]
        for m in metrics:
            assert abs(a[m] - b[m]) <= TOL, (m, a[m], b[m])
    for a, b in zip(stacked.extra["weights"], ref.extra["weights"]):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL)


@pytest.mark.parametrize("opt", STACKABLE)
def test_member_of_a_stack_equals_its_run_alone(opt, small):
    """Batch 30 over 200 examples also exercises the short last batch (20)."""
    from optbench.engines.stacked import train_bundle

    lr_a, lr_b = LEARNING_RATES.get(opt, (0.003, 0.001))
    specs = [spec(opt, lr_a, 0), spec(opt, lr_b, 1), spec(opt, DIVERGES, 2)]
    results = train_bundle(specs, small["test"], keep_weights=True)
    for member in results[:2]:
        assert_same_run(member, reference(member.spec, small["test"]))
    blown, blown_ref = results[2], reference(specs[2], small["test"])
    assert blown.status == blown_ref.status == "diverged"
    assert len(blown.history) == len(blown_ref.history) == 1
    assert results[0].group["size"] == 3


def test_groups_sharing_a_step_and_holdout_test_metrics(small):
    """Two optimizer groups (one with its own arguments) in one compiled step, tested on holdout."""
    from optbench.engines.stacked import StackedEngine, train_bundle

    nesterov = (("momentum", 0.9), ("nesterov", True))
    specs = [spec("adam", 0.002, 4, 20, validation="holdout"),
             spec("sgd", 0.02, 5, 20, nesterov, validation="holdout"),
             spec("sgd", 0.05, 4, 20, nesterov, validation="holdout")]
    assert [len(u) for u in StackedEngine().plan(specs)] == [3]
    results = train_bundle(specs, small["holdout"], keep_weights=True)
    for member in results:
        assert_same_run(member, reference(member.spec, small["holdout"]),
                        METRICS + ("test_loss", "test_accuracy"))
    assert results[0].group["optimizers"] == ["adam", "sgd"]


def test_full_batch(small):
    from optbench.engines.stacked import train_bundle

    specs = [spec("sgd", 0.5, 0, "full"), spec("rmsprop", 0.001, 1, "full")]
    for member in train_bundle(specs, small["test"], keep_weights=True):
        assert member.history[-1]["steps"] == 2
        assert_same_run(member, reference(member.spec, small["test"]))


def test_other_settings_give_clearly_different_weights(small):
    """The tolerance has teeth: a wrong seed or learning rate is far outside it."""
    from optbench.engines.stacked import train_bundle

    a, b = train_bundle([spec("adam", 0.003, 0), spec("adam", 0.002, 1)], small["test"],
                        keep_weights=True)
    other_lr = reference(spec("adam", 0.002, 0), small["test"])
    for w, v in zip(a.extra["weights"], other_lr.extra["weights"]):
        assert np.max(np.abs(w - v)) > 50 * TOL
    assert max(np.max(np.abs(w - v)) for w, v in zip(a.extra["weights"], b.extra["weights"])) > 1e-3


def test_norm_based_optimizers_go_to_the_reference_engine(small):
    from optbench.engines.stacked import StackedEngine

    specs = [spec("lamb", 0.001, 0), spec("adam", 0.001, 0, args=(("clipnorm", 1.0),)),
             spec("adam", 0.001, 0), spec("adam", 0.002, 1)]
    engine = StackedEngine()
    assert sorted(len(u) for u in engine.plan(specs)) == [1, 1, 2]
    results = {r.spec: r for r in engine.run(specs, small["test"], lambda s, e: None)}
    assert [results[s].engine for s in specs] == ["keras", "keras", "stacked", "stacked"]
    assert all(r.status == "ok" for r in results.values())


def test_large_bundles_are_split():
    from optbench.engines.stacked import MAX_MEMBERS, StackedEngine

    specs = [RunSpec("sgd", lr, 20, seed, 1) for lr in (0.1, 0.01) for seed in range(40)]
    units = StackedEngine().plan(specs)
    assert [len(u) for u in units] == [MAX_MEMBERS, 80 - MAX_MEMBERS]
    full = [RunSpec("sgd", lr, "full", seed, 1) for lr in (0.1, 0.01) for seed in range(40)]
    assert max(len(u) for u in StackedEngine().plan(full)) < 40  # 60k-example batches are big


def test_stacked_sweeps_are_bit_identical(small):
    from optbench.engines.stacked import train_bundle

    specs = [spec("adam", 0.003, 0), spec("adam", 0.001, 1)]
    first, second = (train_bundle(specs, small["test"], keep_weights=True) for _ in range(2))
    for a, b in zip(first, second):
        untimed = [[{k: v for k, v in h.items() if k != "time"} for h in r.history] for r in (a, b)]
        assert untimed[0] == untimed[1]
        assert all(np.array_equal(w, v) for w, v in zip(a.extra["weights"], b.extra["weights"]))
