"""Claim verdicts on hand-made results: each claim supported, not supported, inconclusive and
not tested."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from optbench.report.claims import ClaimVerdict, claims_apply, evaluate_claims, t95

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SEEDS = (0, 1, 2)
SPREAD = {0: -1.0, 1: 0.0, 2: 1.0}  # seed offsets: sd 1, so a point's sd is its `noise`
EPOCHS = 4


def build(value, *, optimizers=("sgd",), lrs=(0.01,), batches=(20,), sizes=(1000,),
          trend=lambda *point: 0.0):
    """Runs and history per the report contract; `value(opt, lr, batch, n, seed)` is the final
    val_accuracy (None: diverged); `trend(opt, lr, batch, n)` its gain per epoch before the end."""
    runs, history = [], []
    for opt, lr, b, n, seed in itertools.product(optimizers, lrs, batches, sizes, SEEDS):
        point_id = f"{opt}_lr{lr:g}_bs{b}_n{n}"
        run_id = f"{point_id}_s{seed}"
        final = value(opt, lr, b, n, seed)
        acc = np.nan if final is None else final
        reached = next((e for e in range(1, EPOCHS + 1)
                        if acc - trend(opt, lr, b, n) * (EPOCHS - e) >= 0.9), np.nan)
        common = {"run_id": run_id, "point_id": point_id, "optimizer": opt,
                  "learning_rate": lr, "batch_size": b, "batch": n if b == "full" else min(b, n),
                  "seed": seed, "train_size": n}
        runs.append(common | {
            "validation": "holdout", "args": "", "engine": "stacked", "epochs_trained": EPOCHS,
            "status": "diverged" if final is None else "ok",
            "final_loss": 1 - acc, "final_accuracy": acc, "final_val_loss": 1 - acc,
            "final_val_accuracy": acc, "final_test_loss": 1 - acc, "final_test_accuracy": acc,
            "best_val_loss": 1 - acc, "best_val_accuracy": acc, "best_epoch": EPOCHS,
            "wall_time": 2.0, "target_metric": "val_accuracy", "target_value": 0.9,
            "target_epoch": reached, "target_steps": np.nan, "target_time": np.nan})
        for epoch in range(1, EPOCHS + 1):
            val = acc - trend(opt, lr, b, n) * (EPOCHS - epoch)
            history.append(common | {
                "epoch": epoch, "steps": epoch * 10, "time": 0.5, "cum_time": 0.5 * epoch,
                "loss": 1 - val, "accuracy": val, "val_loss": 1 - val, "val_accuracy": val,
                "test_loss": 1 - val, "test_accuracy": val})
    return pd.DataFrame(runs), pd.DataFrame(history)


def experiment(*, optimizers=("sgd",), lrs=(0.01,), batches=(20,), sizes=(1000,)):
    return {"name": "t", "data": {"train_size": list(sizes), "validation": "holdout"},
            "epochs": EPOCHS, "seeds": list(SEEDS),
            "grid": {"optimizer": list(optimizers), "learning_rate": list(lrs),
                     "batch_size": list(batches)},
            "optimizers": {}, "metric": {"name": "val_accuracy", "goal": "maximize"},
            "target": {"val_accuracy": 0.9}}


def verdicts(value, **grid) -> dict[str, ClaimVerdict]:
    runs, history = build(value, **grid)
    out = evaluate_claims(runs, history, experiment(**grid))
    assert [v.key for v in out] == ["a", "b", "c", "d"]
    return {v.key: v for v in out}


def noisy(mean: float, noise: float, seed: int) -> float:
    return mean + noise * SPREAD[seed]


# --- (a) Adam best at small sizes -----------------------------------------------------------------

A_GRID = {"optimizers": ("adam", "rmsprop", "sgd"), "lrs": (0.1, 0.01), "sizes": (1000, 50000)}


def a_value(means: dict[str, float], noise: float = 0.001):
    return lambda opt, lr, b, n, seed: noisy(means[opt] - (lr == 0.1) * 0.05, noise, seed)


def test_a_supported_when_adam_is_clearly_best_and_evidence_has_the_interval():
    v = verdicts(a_value({"adam": 0.95, "rmsprop": 0.92, "sgd": 0.90}), **A_GRID)["a"]
    assert v.verdict == "supported"
    ev = v.evidence.set_index("optimizer")
    assert list(ev.train_size.unique()) == [1000]  # 50,000 is the largest size: not small
    assert ev.loc["adam", "mean"] == pytest.approx(0.95)
    assert ev.loc["adam", "lr"] == 0.01
    assert ev.loc["adam", "ci"] == pytest.approx(4.303 * 0.001 / np.sqrt(3))
    assert ev.loc["adam", "runs"] == 6 and ev.loc["adam", "diverged_runs"] == 0
    assert "n=1,000: 0.95 ± 0.0025 (adam lr 0.01, batch 20, n=3)" in v.how
    assert "Adam clearly better" in v.how


def test_a_not_supported_when_a_rival_is_clearly_better():
    v = verdicts(a_value({"adam": 0.90, "rmsprop": 0.92, "sgd": 0.96}), **A_GRID)["a"]
    assert v.verdict == "not supported"
    assert "sgd lr 0.01" in v.how
    ev = v.evidence.set_index("optimizer")
    assert ev.loc["sgd", "epochs_to_target"] == 1  # every seed at 0.959-0.961 from epoch 1
    assert np.isnan(ev.loc["adam", "epochs_to_target"])  # seed 0 ends at 0.899, short of 0.9


def test_a_inconclusive_when_intervals_overlap():
    v = verdicts(a_value({"adam": 0.905, "rmsprop": 0.90, "sgd": 0.80}, noise=0.01), **A_GRID)["a"]
    assert v.verdict == "inconclusive"
    ci = v.evidence.set_index("optimizer").loc["adam", "ci"]
    assert ci == pytest.approx(4.303 * 0.01 / np.sqrt(3))


def test_a_diverged_settings_are_never_best_and_are_counted():
    def value(opt, lr, b, n, seed):
        if opt == "adam" and lr == 0.1:
            return None if seed == 0 else 0.99  # one diverged seed disqualifies the point
        return noisy({"adam": 0.95, "rmsprop": 0.90, "sgd": 0.90}[opt], 0.001, seed)
    v = verdicts(value, **A_GRID)["a"]
    ev = v.evidence.set_index("optimizer")
    assert ev.loc["adam", "lr"] == 0.01 and ev.loc["adam", "mean"] == pytest.approx(0.95)
    assert ev.loc["adam", "diverged_runs"] == 1
    assert v.verdict == "supported"


def test_a_not_tested_without_adam_or_without_a_small_size():
    no_adam = verdicts(a_value({"rmsprop": 0.9, "sgd": 0.9}), optimizers=("rmsprop", "sgd"))["a"]
    assert no_adam.verdict == "not tested" and "optimizers rmsprop, sgd" in no_adam.how
    full_only = verdicts(a_value({"adam": 0.95, "sgd": 0.9}), optimizers=("adam", "sgd"),
                         sizes=(50000,))["a"]
    assert full_only.verdict == "not tested" and "train sizes 50000" in full_only.how


# --- (b) best batch size in [10, 50] --------------------------------------------------------------

B_GRID = {"optimizers": ("adam", "sgd"), "lrs": (0.1, 0.01), "batches": (1, 20, 128),
          "sizes": (1000, 50000)}


def b_value(best_batch, noise=0.001, gap=0.05):
    return lambda opt, lr, b, n, seed: noisy(0.9 + gap * (b == best_batch) - 0.01 * (lr == 0.1),
                                             noise, seed)


def test_b_supported_when_an_in_range_batch_clearly_wins_and_evidence_shows_both_sides():
    v = verdicts(b_value(20), **B_GRID)["b"]
    assert v.verdict == "supported"
    assert len(v.evidence) == 2  # (1000, adam), (1000, sgd)
    row = v.evidence.iloc[0]
    assert row.in_batch_size == 20 and row.in_mean == pytest.approx(0.95)
    assert row.out_mean == pytest.approx(0.90) and row.out_lr == 0.01
    assert row.result == "in range"
    assert "In-range clearly better in 2 of 2 cells" in v.how


def test_b_not_supported_when_an_outside_batch_clearly_wins():
    v = verdicts(b_value(128), **B_GRID)["b"]
    assert v.verdict == "not supported"
    assert list(v.evidence.out_batch_size) == [128, 128]


def test_b_inconclusive_when_intervals_overlap():
    v = verdicts(b_value(20, noise=0.02, gap=0.01), **B_GRID)["b"]
    assert v.verdict == "inconclusive"
    assert set(v.evidence.result) == {"overlap"}


def test_b_not_tested_without_batches_on_both_sides():
    v = verdicts(b_value(20), **(B_GRID | {"batches": (10, 20)}))["b"]
    assert v.verdict == "not tested"


# --- (c) mini-batch vs batch GD and batch 1 -------------------------------------------------------

C_GRID = {"optimizers": ("sgd",), "lrs": (0.1, 0.01), "batches": (1, 20, "full"), "sizes": (1000,)}


def c_value(full_mean=0.80, one_noise=0.02, one_diverges=True, mini_noise=0.001):
    def value(opt, lr, b, n, seed):
        if b == 1:
            return None if one_diverges and lr == 0.1 else noisy(0.93, one_noise, seed)
        if b == "full":
            return noisy(full_mean, 0.001, seed)
        return noisy(0.95 - 0.01 * (lr == 0.01), mini_noise, seed)
    return value


def test_c_supported_when_mini_beats_full_and_is_steadier_than_batch_1():
    v = verdicts(c_value(), **C_GRID)["c"]
    assert v.verdict == "supported"
    row = v.evidence.iloc[0]
    assert row.vs_full == "mini" and row.vs_one == "mini"
    assert row.one_diverged_frac == pytest.approx(0.5) and row.mini_diverged_frac == 0
    assert row.one_std == pytest.approx(0.02) and row.mini_std == pytest.approx(0.001)
    assert row.full_ci == pytest.approx(4.303 * 0.001 / np.sqrt(3))


def test_c_not_supported_when_full_batch_is_clearly_better():
    v = verdicts(c_value(full_mean=0.99), **C_GRID)["c"]
    assert v.verdict == "not supported"
    assert v.evidence.iloc[0].vs_full == "full"


def test_c_not_supported_when_batch_1_is_steadier():
    v = verdicts(c_value(one_noise=0.0005, one_diverges=False), **C_GRID)["c"]
    assert v.evidence.iloc[0].vs_one == "one"
    assert v.verdict == "not supported"


def test_c_inconclusive_when_mini_and_full_overlap():
    v = verdicts(c_value(full_mean=0.949, mini_noise=0.01), **C_GRID)["c"]
    assert v.evidence.iloc[0].vs_full == "overlap"
    assert v.verdict == "inconclusive"


def test_c_one_part_alone_cannot_support_it():
    v = verdicts(c_value(), **(C_GRID | {"batches": (20, "full")}))["c"]
    assert v.verdict == "inconclusive" and "vs_one" not in v.evidence
    assert "(2) more stable" in v.how and "no cell has both" in v.how


def test_c_not_tested_with_only_mini_batches():
    v = verdicts(c_value(), **(C_GRID | {"batches": (20, 50)}))["c"]
    assert v.verdict == "not tested" and "batch 'full' or batch 1" in v.how


# --- (d) learning rate too large / too small ------------------------------------------------------

D_GRID = {"optimizers": ("sgd", "adam"), "lrs": (1.0, 0.1, 0.01, 0.001), "batches": (20,),
          "sizes": (1000,)}


def d_value(small_mean=0.85, noise=0.001):
    def value(opt, lr, b, n, seed):
        if lr == 1.0:
            return None
        return noisy({0.1: 0.95, 0.01: 0.93, 0.001: small_mean}[lr], noise, seed)
    return value


def d_verdict(value, small_trend: float) -> ClaimVerdict:
    runs, history = build(value, **D_GRID,
                          trend=lambda opt, lr, b, n: small_trend if lr == 0.001 else 0.0)
    return {v.key: v for v in evaluate_claims(runs, history, experiment(**D_GRID))}["d"]


def test_d_supported_when_the_largest_diverges_and_the_smallest_is_still_improving():
    v = d_verdict(d_value(), small_trend=0.02)
    assert v.verdict == "supported"
    ev = v.evidence.set_index("optimizer")
    assert ev.loc["sgd", "cells"] == 1 and ev.loc["sgd", "overshoot"] == 1
    assert ev.loc["sgd", "small_still_improving"] == 1 and ev.loc["sgd", "both"] == 1
    assert "Both held in 2 of 2 cells" in v.how


def test_d_not_supported_when_the_smallest_rate_is_stuck():
    v = d_verdict(d_value(), small_trend=0.0)
    assert v.verdict == "not supported"
    assert v.evidence.small_stuck.sum() == 2


def test_d_inconclusive_when_the_smallest_rate_overlaps_the_best():
    v = d_verdict(d_value(small_mean=0.95, noise=0.01), small_trend=0.02)
    assert v.verdict == "inconclusive"
    assert v.evidence.overshoot.sum() == 2 and v.evidence.both.sum() == 0


def test_d_not_tested_with_two_learning_rates():
    v = verdicts(d_value(), **(D_GRID | {"lrs": (0.1, 0.01)}))["d"]
    assert v.verdict == "not tested" and "at least 3 learning rates" in v.how


# --- the grid as a whole --------------------------------------------------------------------------

def test_failed_runs_are_left_out():
    runs, history = build(a_value({"adam": 0.95, "rmsprop": 0.92, "sgd": 0.90}), **A_GRID)
    runs.loc[runs.optimizer == "adam", "status"] = "failed"
    v = {c.key: c for c in evaluate_claims(runs, history, experiment(**A_GRID))}["a"]
    assert v.verdict == "not tested"


def test_no_runs_tests_nothing():
    runs, history = build(a_value({"adam": 0.95, "rmsprop": 0.92, "sgd": 0.90}), **A_GRID)
    out = evaluate_claims(runs.iloc[:0], history.iloc[:0], experiment(**A_GRID))
    assert [v.verdict for v in out] == ["not tested"] * 4
    assert all(v.evidence.empty for v in out)


def test_t_quantiles():
    assert t95(2) == 4.303 and t95(30) == 2.042 and t95(31) == 1.96


@pytest.mark.parametrize("config,applies", [
    ("seed.yaml", False), ("quickstart.yaml", True), ("optimizers.yaml", True),
    ("claims.yaml", True)])
def test_claims_apply_to_the_shipped_configs(config, applies):
    assert claims_apply(yaml.safe_load((CONFIGS / config).read_text())) is applies


def test_claims_yaml_tests_every_claim():
    """A `report` on claims.yaml's grid shape, with flat outcomes, tests all four claims."""
    exp = yaml.safe_load((CONFIGS / "claims.yaml").read_text())
    sizes = [1000, 50000]
    grid = {"optimizers": tuple(exp["grid"]["optimizer"]),
            "lrs": tuple(exp["grid"]["learning_rate"]),
            "batches": tuple(exp["grid"]["batch_size"]), "sizes": tuple(sizes)}
    runs, history = build(lambda *a: noisy(0.9, 0.01, a[-1]), **grid)
    out = evaluate_claims(runs, history, exp)
    assert all(v.verdict != "not tested" for v in out)
    assert all(len(v.evidence) <= 20 for v in out)
