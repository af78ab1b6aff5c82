"""Verdicts on four claims of the source document, decided from a sweep's results alone.

A grid point (one setting over its seeds) is scored by the mean over seeds of the config's metric
after the last epoch, with a 95% Student-t interval (mean ± t·sd/√n). "Clearly better" means
better with intervals that do not overlap; anything less is not evidence either way. A point where
any seed diverged is never a "best" setting. Claim (a) needs Adam clearly best at every small
train size; (b), (c) and (d) read several cells (one per train size and optimizer, say) and need a
clear result in more than half of them. pandas and numpy only.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

FULL_SIZE = 50_000  # every non-holdout training example; one train size below it counts as small
TEST_FULL_SIZE = 60_000  # validation: test trains on the whole training set
IN_RANGE = (10, 50)  # claim (b)'s batch sizes, inclusive
SLOPE_EPOCHS = 3  # claim (d): "still improving" is the metric's trend over this many last epochs
MIN_TREND = 1e-4  # per epoch; a smaller gain (or float noise on a flat curve) is not improving
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
       2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
       2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

CLAIMS = {
    "a": "Adam performed best for smaller datasets, offering the best speed and stability "
         "among Adam, RMSprop and SGD.",
    "b": "The best batch size for smaller datasets lies between 10 and 50.",
    "c": "Mini-batch GD is faster than batch GD and more stable than SGD with batch size 1.",
    "d": "Too large a step size overshoots; too small needs more iterations.",
}
RIVALS = ("rmsprop", "sgd")


@dataclass
class ClaimVerdict:
    key: str
    claim: str
    verdict: str  # "supported" | "not supported" | "inconclusive" | "not tested"
    how: str
    evidence: pd.DataFrame


@dataclass(frozen=True)
class _Metric:
    name: str
    maximize: bool

    def better(self, a: float, b: float) -> bool:
        return a > b if self.maximize else a < b

    @property
    def text(self) -> str:
        return f"final {self.name} ({'higher' if self.maximize else 'lower'} is better)"


def t95(df: int) -> float:
    """Two-sided 95% Student-t quantile; the normal 1.96 beyond 30 degrees of freedom."""
    return T95[df - 1] if df <= len(T95) else 1.96


def claims_apply(exp: dict[str, Any]) -> bool:
    """True when the experiment's grid can test at least one claim."""
    return any(gap is None for gap in _gaps(_exp_grid(exp)).values())


def evaluate_claims(runs: pd.DataFrame, history: pd.DataFrame,
                    exp: dict[str, Any]) -> list[ClaimVerdict]:
    """One verdict per claim, "a" to "d". Failed runs are left out: they say nothing of a
    setting."""
    metric = _metric(exp)
    scored = _scored(runs, metric)
    points = _points(scored)
    gaps = _gaps(scored[["optimizer", "learning_rate", "train_size", "batch"]].drop_duplicates())
    judges: dict[str, Callable[[], tuple[str, str, pd.DataFrame]]] = {
        "a": lambda: _claim_a(points, scored, history, metric, _target_text(exp)),
        "b": lambda: _claim_b(points, metric),
        "c": lambda: _claim_c(points, scored, metric),
        "d": lambda: _claim_d(points, scored, history, metric),
    }
    verdicts = []
    for key, judge in judges.items():
        if gaps[key] is not None:
            verdicts.append(ClaimVerdict(key, CLAIMS[key], "not tested", gaps[key],
                                         pd.DataFrame()))
            continue
        verdict, how, evidence = judge()
        basis = (f"Each setting is scored by the mean {metric.text} over its seeds, with a "
                 "95% t-interval (mean ± t·sd/√n); a setting where any seed diverged is never "
                 "best; 'clearly' means intervals that do not overlap. ")
        verdicts.append(ClaimVerdict(key, CLAIMS[key], verdict, basis + how,
                                     evidence.reset_index(drop=True)))
    return verdicts


# --- the grid: what each claim needs ------------------------------------------------------------

def _exp_grid(exp: dict[str, Any]) -> pd.DataFrame:
    """(optimizer, learning_rate, train_size, effective batch) of every grid point of `exp`."""
    data = exp.get("data") or {}
    full = FULL_SIZE if data.get("validation", "holdout") == "holdout" else TEST_FULL_SIZE
    sizes = [full if s is None else min(s, full) for s in _as_list(data.get("train_size", [None]))]
    grid = exp["grid"]
    rows = []
    for opt in _as_list(grid["optimizer"]):
        lrs = (exp.get("optimizers") or {}).get(opt, {}).get("learning_rate", grid["learning_rate"])
        for lr, n, b in itertools.product(_as_list(lrs), sizes, _as_list(grid["batch_size"])):
            rows.append({"optimizer": opt, "learning_rate": float(lr), "train_size": n,
                         "batch": n if b == "full" else min(int(b), n)})
    return pd.DataFrame(rows)


def _gaps(grid: pd.DataFrame) -> dict[str, str | None]:
    """Per claim: None when the grid can test it, else what is missing."""
    grid = grid.assign(kind=_kind(grid))
    small, _ = _small_sizes(grid.train_size)
    at_small = grid[grid.train_size.isin(small)]
    opts = at_small.groupby("train_size").optimizer.agg(set)
    in_out = at_small.groupby(["train_size", "optimizer"]).batch.agg(
        lambda b: _in_range(b).any() and not _in_range(b).all())
    kinds = grid.groupby(["train_size", "optimizer"]).kind.agg(set)
    n_lrs = grid.groupby(["train_size", "optimizer", "batch"]).learning_rate.nunique()
    has = _describe(grid)
    return {
        "a": None if any("adam" in o and o & set(RIVALS) for o in opts) else
        f"Needs adam and rmsprop or sgd at one small train size (below the largest, or below "
        f"{FULL_SIZE:,} when there is one size); {has}.",
        "b": None if in_out.any() else
        f"Needs, for one optimizer at a small train size, a batch size in [10, 50] and one "
        f"outside it; {has}.",
        "c": None if any({"mini", "full"} <= k or {"mini", "one"} <= k for k in kinds) else
        f"Needs a mini-batch size (between 1 and the train size) with batch 'full' or batch 1 for "
        f"the same optimizer and train size; {has}.",
        "d": None if (n_lrs >= 3).any() else
        f"Needs at least 3 learning rates for one optimizer and batch size (with 2, one end is "
        f"always the best); {has}.",
    }


def _describe(grid: pd.DataFrame) -> str:
    def values(col: str) -> str:
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v)
                         for v in sorted(grid[col].unique())) or "none"
    return (f"the grid has optimizers {values('optimizer')}; learning rates "
            f"{values('learning_rate')}; train sizes {values('train_size')}; effective batch "
            f"sizes {values('batch')}")


def _kind(df: pd.DataFrame) -> pd.Series:
    """"one" (batch 1, the document's SGD), "full" (batch GD) or "mini" for each row."""
    kind = np.where(df.batch >= df.train_size, "full", np.where(df.batch == 1, "one", "mini"))
    return pd.Series(kind, index=df.index, dtype=object)


def _in_range(batch: pd.Series) -> pd.Series:
    return (batch >= IN_RANGE[0]) & (batch <= IN_RANGE[1])


def _small_sizes(sizes: pd.Series) -> tuple[list[int], str]:
    values = sorted(int(s) for s in set(sizes))
    if len(values) > 1:
        return values[:-1], (f"small train sizes are those below the largest "
                             f"({values[-1]:,}): {', '.join(f'{v:,}' for v in values[:-1])}")
    if values and values[0] < FULL_SIZE:
        return values, (f"the one train size, {values[0]:,}, is below {FULL_SIZE:,} (all "
                        "non-holdout examples) and is treated as small")
    return [], "no train size is small"


# --- scoring runs and points --------------------------------------------------------------------

def _metric(exp: dict[str, Any]) -> _Metric:
    m = exp.get("metric") or {}
    return _Metric(m.get("name", "val_loss"), m.get("goal", "minimize") == "maximize")


def _target_text(exp: dict[str, Any]) -> str:
    target = exp.get("target") or {}
    if not target:
        return "no target in the config"
    name, value = next(iter(target.items()))
    return f"epochs to {name} {'≤' if 'loss' in name else '≥'} {value:g}"


def _scored(runs: pd.DataFrame, metric: _Metric) -> pd.DataFrame:
    """Runs that finished (ok or diverged) with `value` (the final metric) and `diverged`."""
    df = runs[runs.status != "failed"].copy()
    df["value"] = pd.to_numeric(df[f"final_{metric.name}"], errors="coerce").astype(float)
    df["diverged"] = (df.status == "diverged") | ~np.isfinite(df.value)
    df["args"] = df["args"].fillna("") if "args" in df else ""
    df["train_size"] = df.train_size.astype(int)
    df["batch"] = df.batch.astype(int)
    df["kind"] = _kind(df)
    return df


def _points(scored: pd.DataFrame) -> pd.DataFrame:
    """One row per grid point: n seeds kept, diverged count, mean, sd, CI half-width, speed."""
    rows = []
    for pid, g in scored.groupby("point_id", sort=False):
        ok = g[~g.diverged]
        n = len(ok)
        std = float(ok.value.std(ddof=1)) if n >= 2 else math.nan
        first = g.iloc[0]
        rows.append({
            "point_id": pid, "train_size": first.train_size, "optimizer": first.optimizer,
            "args": first.args, "learning_rate": float(first.learning_rate),
            "batch_size": first.batch_size, "batch": first.batch, "kind": first.kind,
            "n": n, "diverged": int(g.diverged.sum()), "runs": len(g),
            "mean": float(ok.value.mean()) if n else math.nan, "std": std,
            "ci": t95(n - 1) * std / math.sqrt(n) if n >= 2 else math.inf,
            "epochs_to_target": float(ok.target_epoch.mean())  # NaN unless every seed got there
            if n and ok.target_epoch.notna().all() else math.nan,
            "wall_time": float(ok.wall_time.mean()),
        })
    cols = ["point_id", "train_size", "optimizer", "args", "learning_rate", "batch_size", "batch",
            "kind", "n", "diverged", "runs", "mean", "std", "ci", "epochs_to_target", "wall_time"]
    return pd.DataFrame(rows, columns=cols)


def _best(points: pd.DataFrame, metric: _Metric) -> pd.Series | None:
    """The usable point (no seed diverged) with the best mean, or None."""
    usable = points[(points.diverged == 0) & (points.n > 0)]
    if usable.empty:
        return None
    return usable.loc[usable["mean"].idxmax() if metric.maximize else usable["mean"].idxmin()]


def _best_of(rows: list[pd.Series | None], metric: _Metric) -> pd.Series | None:
    found = [r for r in rows if r is not None]
    return _best(pd.DataFrame(found), metric) if found else None


def _compare(a: pd.Series | None, b: pd.Series | None, metric: _Metric) -> str:
    """"a" or "b" when that point is clearly better, else "overlap". No point loses to a point."""
    if a is None or b is None:
        return "overlap" if a is None and b is None else ("b" if a is None else "a")
    apart = a["mean"] - a.ci > b["mean"] + b.ci or b["mean"] - b.ci > a["mean"] + a.ci
    if not apart:
        return "overlap"
    return "a" if metric.better(a["mean"], b["mean"]) else "b"


def _fmt(p: pd.Series | None) -> str:
    if p is None:
        return "none usable"
    return (f"{p['mean']:.4g} ± {p.ci:.2g} ({p.optimizer} lr {p.learning_rate:g}, batch "
            f"{p.batch_size}, n={p.n})")


def _majority(clear_for: int, clear_against: int, cells: int) -> str:
    if clear_for * 2 > cells:
        return "supported"
    if clear_against * 2 > cells:
        return "not supported"
    return "inconclusive"


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


# --- the claims ---------------------------------------------------------------------------------

def _claim_a(points: pd.DataFrame, scored: pd.DataFrame, history: pd.DataFrame, metric: _Metric,
             target: str) -> tuple[str, str, pd.DataFrame]:
    small, small_text = _small_sizes(points.train_size)
    loss1 = history[history.epoch == 1].groupby("point_id").loss.mean()
    rows, outcomes, lines = [], [], []
    for n in small:
        at = points[points.train_size == n]
        present = [o for o in ("adam", *RIVALS) if o in set(at.optimizer)]
        if "adam" not in present or len(present) < 2:
            continue
        best = {o: _best(at[at.optimizer == o], metric) for o in present}
        rival = _best_of([best[o] for o in present if o != "adam"], metric)
        outcome = _compare(best["adam"], rival, metric)
        outcomes.append(outcome)
        said = {"a": "Adam clearly better", "b": "the rival clearly better", "overlap": "overlap"}
        lines.append(f"n={n:,}: {_fmt(best['adam'])} vs {_fmt(rival)}: {said[outcome]}")
        for o in present:
            runs_o = scored[(scored.train_size == n) & (scored.optimizer == o)]
            p = best[o]
            rows.append({"train_size": n, "optimizer": o, **_side("", p, (
                "learning_rate", "batch_size", "n", "mean", "ci", "std", "epochs_to_target")),
                "loss_epoch1": math.nan if p is None else loss1.get(p.point_id, math.nan),
                "diverged_runs": int(runs_o.diverged.sum()), "runs": len(runs_o)})
    if "b" in outcomes:
        verdict = "not supported"
    elif outcomes and all(o == "a" for o in outcomes):
        verdict = "supported"
    else:
        verdict = "inconclusive"
    how = (f"Among adam, rmsprop and sgd where the grid has them ({small_text}), each "
           "optimizer's best setting over learning rate and batch size; Adam's best against the "
           "best of the others. Supported if Adam is clearly better at every small size, not "
           "supported if a rival is clearly better at any, else inconclusive. "
           + "; ".join(lines) + ". Speed and stability are shown in the evidence, not scored: "
           f"{target} (blank when a seed never got there) and mean train loss after epoch 1 at "
           "each best setting (speed); diverged runs over the optimizer's whole grid at that "
           "size and the seed sd at the best setting (stability).")
    return verdict, how, pd.DataFrame(rows)


def _claim_b(points: pd.DataFrame, metric: _Metric) -> tuple[str, str, pd.DataFrame]:
    small, small_text = _small_sizes(points.train_size)
    rows = []
    for (n, opt), cell in points[points.train_size.isin(small)].groupby(
            ["train_size", "optimizer"], sort=True):
        inside = _in_range(cell.batch)
        if not inside.any() or inside.all():
            continue
        best_in, best_out = _best(cell[inside], metric), _best(cell[~inside], metric)
        outcome = _compare(best_in, best_out, metric)
        keys = ("batch_size", "learning_rate", "mean", "ci", "n")
        rows.append({"train_size": n, "optimizer": opt, **_side("in_", best_in, keys),
                     **_side("out_", best_out, keys),
                     "result": {"a": "in range", "b": "outside", "overlap": "overlap"}[outcome]})
    evidence = pd.DataFrame(rows)
    wins_in = int((evidence.result == "in range").sum())
    wins_out = int((evidence.result == "outside").sum())
    how = (f"For each small train size ({small_text}) and optimizer, the best batch size in "
           f"[{IN_RANGE[0]}, {IN_RANGE[1]}] (each batch at its best learning rate) against the "
           "best outside, after the same number of epochs (so smaller batches take more steps). "
           f"In-range clearly better in {wins_in} of {len(evidence)} cells, outside clearly "
           f"better in {wins_out}; supported when in-range wins more than half the cells, not "
           "supported when outside does.")
    return _majority(wins_in, wins_out, len(evidence)), how, evidence


def _side(prefix: str, p: pd.Series | None, keys: tuple[str, ...]) -> dict[str, Any]:
    """Evidence columns `prefix + key` from point `p` (NaN when there is no usable point)."""
    return {prefix + ("lr" if k == "learning_rate" else k): math.nan if p is None else p[k]
            for k in keys}


def _claim_c(points: pd.DataFrame, scored: pd.DataFrame,
             metric: _Metric) -> tuple[str, str, pd.DataFrame]:
    rows = []
    for (n, opt), cell in points.groupby(["train_size", "optimizer"], sort=True):
        kinds = set(cell.kind)
        if "mini" not in kinds or not kinds & {"full", "one"}:
            continue
        best = {k: _best(cell[cell.kind == k], metric) for k in ("mini", "full", "one")}
        runs = scored[(scored.train_size == n) & (scored.optimizer == opt)]
        div = {k: runs[runs.kind == k].diverged.mean() for k in ("mini", "one")}
        row = {"train_size": n, "optimizer": opt, **_side("mini_", best["mini"], (
            "batch_size", "learning_rate", "mean", "ci", "std", "epochs_to_target", "wall_time")),
            "mini_diverged_frac": div["mini"]}
        if "full" in kinds:
            outcome = _compare(best["mini"], best["full"], metric)
            row |= _side("full_", best["full"], (
                "learning_rate", "mean", "ci", "epochs_to_target", "wall_time"))
            row["vs_full"] = {"a": "mini", "b": "full", "overlap": "overlap"}[outcome]
        if "one" in kinds:
            row |= _side("one_", best["one"], ("learning_rate", "mean", "std"))
            row |= {"one_diverged_frac": div["one"], "vs_one": _steadier(best, div)}
        rows.append(row)
    evidence = pd.DataFrame(rows)
    part1 = _part(evidence, "vs_full", "full")
    part2 = _part(evidence, "vs_one", "one")
    parts = [p for p in (part1, part2) if p != "not tested"]
    if "not supported" in parts:
        verdict = "not supported"
    elif parts == ["supported", "supported"]:
        verdict = "supported"
    else:
        verdict = "inconclusive"
    how = ("Per train size and optimizer: (1) faster than batch GD: the best mini-batch setting "
           "(1 < batch < train size) against the best batch 'full' setting after the same number "
           "of epochs; mini clearly better in more than half the cells supports it, full clearly "
           f"better in more than half contradicts it; {_count(evidence, 'vs_full')} -> {part1}. "
           "(2) more stable than batch 1: the fraction of diverged runs over the whole learning "
           "rate grid and the seed sd at each side's best setting; mini-batch is steadier when it "
           "diverges no more often and its sd is lower (or batch 1 has no usable setting), batch "
           "1 is steadier when the reverse holds, else mixed; majority of cells as in (1); "
           f"{_count(evidence, 'vs_one')} -> {part2}. Overall: supported when both parts are, "
           "not supported when either is, else inconclusive. Epochs to target (blank when a seed "
           "never got there) and wall time per run are shown, not scored.")
    return verdict, how, evidence


def _steadier(best: dict[str, pd.Series | None], div: dict[str, float]) -> str:
    """Which of mini-batch and batch 1 is more stable: fewer divergences and a smaller seed sd."""
    mini, one = best["mini"], best["one"]
    if mini is None or one is None:  # a side with no usable setting diverged at every rate
        return "mixed" if mini is one else ("one" if mini is None else "mini")
    d = np.sign(div["one"] - div["mini"])
    s = np.sign(one["std"] - mini["std"])  # NaN with one seed: neither test below passes
    if d >= 0 and s > 0:
        return "mini"
    if d <= 0 and s < 0:
        return "one"
    return "mixed"


def _part(evidence: pd.DataFrame, col: str, rival: str) -> str:
    if col not in evidence:
        return "not tested"
    results = evidence[col].dropna()
    return _majority(int((results == "mini").sum()), int((results == rival).sum()), len(results))


def _count(evidence: pd.DataFrame, col: str) -> str:
    if col not in evidence:
        return "no cell has both"
    counts = evidence[col].value_counts()
    return ", ".join(f"{k} {v}" for k, v in counts.items()) + f" of {int(counts.sum())} cells"


def _claim_d(points: pd.DataFrame, scored: pd.DataFrame, history: pd.DataFrame,
             metric: _Metric) -> tuple[str, str, pd.DataFrame]:
    ok_ids = scored.run_id[~scored.diverged]
    kept = history[history.run_id.isin(ok_ids)]
    curves = kept.groupby(["point_id", "epoch"])[metric.name].mean()
    cells = []
    for (n, opt, _, _), cell in points.groupby(["train_size", "optimizer", "args", "batch"],
                                               sort=True):
        if cell.learning_rate.nunique() < 3:
            continue
        best = _best(cell, metric)
        if best is None:
            continue
        large = cell.loc[cell.learning_rate.idxmax()]
        small = cell.loc[cell.learning_rate.idxmin()]
        overshoot = large.diverged > 0 or _compare(best, large, metric) == "a"
        slow = "not shown"
        if small.diverged == 0 and _compare(best, small, metric) == "a":
            trend = _trend(curves, small.point_id, metric)
            slow = ("not shown" if math.isnan(trend) else
                    "improving" if trend > MIN_TREND else "stuck")
        cells.append({"train_size": n, "optimizer": opt, "overshoot": overshoot, "slow": slow})
    df = pd.DataFrame(cells, columns=["train_size", "optimizer", "overshoot", "slow"])
    df["overshoot"] = df.overshoot.astype(bool)
    df["both"] = df.overshoot & (df.slow == "improving")
    df["stuck"] = df.slow == "stuck"
    df["improving"] = df.slow == "improving"
    evidence = df.groupby(["train_size", "optimizer"], sort=True).agg(
        cells=("both", "size"), overshoot=("overshoot", "sum"),
        small_still_improving=("improving", "sum"), small_stuck=("stuck", "sum"),
        both=("both", "sum")).reset_index()
    both, stuck = int(df.both.sum()), int(df.stuck.sum())
    how = ("Per train size, optimizer (and its settings) and batch size with at least 3 learning "
           "rates: 'overshoots' when the largest rate diverged or is clearly worse than the best "
           "rate; 'too small needs more iterations' when the smallest rate is clearly worse than "
           f"the best and its seed-mean {metric.name} was still improving over the last "
           f"{SLOPE_EPOCHS} epochs (least-squares slope above {MIN_TREND:g} per epoch), 'stuck' "
           f"when clearly worse and no longer improving. Both held in {both} of {len(df)} cells, "
           f"stuck in {stuck}; supported when both hold in more than half the cells, not "
           "supported when the smallest rate is stuck in more than half. A grid whose largest "
           "rate is still the best shows no overshoot; that counts as not shown, not against the "
           "claim.")
    return _majority(both, stuck, len(df)), how, evidence


def _trend(curves: pd.Series, point_id: str, metric: _Metric) -> float:
    """Slope of the metric over the last epochs, positive when improving; NaN with < 2 epochs."""
    if point_id not in curves.index.get_level_values(0):
        return math.nan
    curve = curves.loc[point_id].dropna().tail(SLOPE_EPOCHS)
    if len(curve) < 2:
        return math.nan
    slope = float(np.polyfit(curve.index.to_numpy(float), curve.to_numpy(float), 1)[0])
    return slope if metric.maximize else -slope
