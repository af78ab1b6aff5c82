"""Statistics over seeds: per grid point summaries and the best setting per optimizer.

Statistics use the runs that finished (`ok`); diverged and failed seeds are counted, never
averaged, and a point with any of them ranks below every point without.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# Two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30 (scipy is not a dependency).
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
_Z975 = 1.959963984540054

METRICS = ("final_val_loss", "final_val_accuracy", "best_val_loss", "best_val_accuracy",
           "final_test_loss", "final_test_accuracy", "final_loss")
POINT_KEYS = ("point_id", "optimizer", "variant", "learning_rate", "batch_size", "batch", "args",
              "train_size", "validation")


def t975(df: int) -> float:
    """t_{0.975, df}: a table up to 30, then the Cornish-Fisher expansion (error < 1e-7)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    g = ((z**3 + z) / 4,
         (5 * z**5 + 16 * z**3 + 3 * z) / 96,
         (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
         (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160)
    return z + sum(gi / df ** (i + 1) for i, gi in enumerate(g))


def mean_std_ci95(values: pd.Series | list[float]) -> tuple[float, float, float]:
    """Mean, sample std (ddof=1) and the Student-t 95% CI half-width of the finite values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    if len(x) == 1:
        return float(x[0]), math.nan, math.nan
    std = float(np.std(x, ddof=1))
    return float(np.mean(x)), std, t975(len(x) - 1) * std / math.sqrt(len(x))


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per grid point: seed counts and mean/std/ci95 of each final metric over ok seeds."""
    rows = []
    for _, group in runs.groupby("point_id", sort=False):
        first = group.iloc[0]
        row = {k: first[k] for k in POINT_KEYS}
        ok = group[group["status"] == "ok"]
        row.update(n_seeds=len(group), n_ok=len(ok),
                   n_diverged=int((group["status"] == "diverged").sum()),
                   n_failed=int((group["status"] == "failed").sum()))
        for m in METRICS:
            row[f"{m}_mean"], row[f"{m}_std"], row[f"{m}_ci95"] = mean_std_ci95(ok[m])
        reached = ok[ok["target_epoch"].notna()]
        row.update(n_reached=len(reached),
                   target_epoch_mean=_mean(reached["target_epoch"]),
                   target_time_mean=_mean(reached["target_time"]),
                   wall_time_mean=_mean(ok["wall_time"]))
        rows.append(row)
    return pd.DataFrame(rows)


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else math.nan


def rank_points(summary: pd.DataFrame, metric: str, goal: str) -> pd.DataFrame:
    """`summary` sorted best first on the final value of `metric` (validation or training).

    Points where a seed diverged or failed come after all clean points; a point without
    any finished seed comes last.
    """
    key = summary[f"final_{metric}_mean"]
    ranked = summary.assign(
        _unclean=(summary["n_diverged"] + summary["n_failed"] > 0).astype(int),
        _missing=key.isna().astype(int),
        _key=key if goal == "minimize" else -key,
    )
    ranked = ranked.sort_values(["_unclean", "_missing", "_key"], kind="stable")
    return ranked.drop(columns=["_unclean", "_missing", "_key"])


def best_settings(summary: pd.DataFrame, metric: str, goal: str) -> pd.DataFrame:
    """The best grid point per optimizer (and per train size), chosen on `metric` only."""
    ranked = rank_points(summary, metric, goal)
    best = ranked.groupby(["train_size", "optimizer"], sort=False).head(1)
    best = best.sort_values("train_size", kind="stable")
    best = best.assign(selected_on=f"final {metric} ({goal}, mean over ok seeds)")
    best.insert(0, "rank", best.groupby("train_size").cumcount() + 1)
    return best.reset_index(drop=True)


def best_per_batch(summary: pd.DataFrame, metric: str, goal: str) -> pd.DataFrame:
    """Each variant's best learning rate at each batch size (and train size)."""
    ranked = rank_points(summary, metric, goal)
    return ranked.groupby(["train_size", "variant", "batch_size"], sort=False).head(1)
