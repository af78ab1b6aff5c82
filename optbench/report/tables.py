"""Run records -> the `runs` and `history` DataFrames (see notes/report_contract.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

HISTORY_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
# Training examples when train_size is null: MNIST's 60,000 less the 10,000 holdout, or all.
DEFAULT_TRAIN = {"holdout": 50_000, "test": 60_000}

RUN_COLUMNS = [
    "run_id", "point_id", "optimizer", "variant", "learning_rate", "batch_size", "batch", "seed",
    "train_size", "validation", "args", "status", "error", "engine", "epochs_trained",
    "final_loss", "final_accuracy", "final_val_loss", "final_val_accuracy",
    "final_test_loss", "final_test_accuracy", "best_val_loss", "best_val_accuracy", "best_epoch",
    "wall_time", "target_metric", "target_value", "target_epoch", "target_steps", "target_time",
    "finished_at",
]
HISTORY_COLUMNS = [
    "run_id", "point_id", "optimizer", "variant", "learning_rate", "batch_size", "batch", "seed",
    "train_size", "epoch", "steps", "time", "cum_time", *HISTORY_METRICS,
]


@dataclass
class Tables:
    """The records of one experiment as DataFrames, plus what the report says about them."""

    runs: pd.DataFrame
    history: pd.DataFrame
    versions: dict[str, list[str]] = field(default_factory=dict)
    n_val: int | None = None


def reached(metric: str, value: float, target: float) -> bool:
    """Loss targets are reached from above (<=), accuracy targets from below (>=)."""
    if not math.isfinite(value):
        return False
    return value <= target if metric.endswith("loss") else value >= target


def args_text(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(args.items()))


def build_tables(records: list[dict[str, Any]], target: dict[str, float]) -> Tables:
    """The runs and history tables; `target` is the config's {metric: value} (first one used)."""
    target_metric, target_value = next(iter(target.items()), ("", math.nan))
    runs, history = [], []
    versions: dict[str, set[str]] = {}
    for record in records:
        point = _point(record)
        rows = _history_rows(record, point)
        history.extend(rows)
        runs.append({**point, **_run_values(record, rows, target_metric, target_value)})
        for name, version in (record.get("versions") or {}).items():
            versions.setdefault(name, set()).add(str(version))
    n_vals = {r.get("data", {}).get("n_val") for r in records} - {None}
    return Tables(
        runs=pd.DataFrame(runs, columns=RUN_COLUMNS),
        history=pd.DataFrame(history, columns=HISTORY_COLUMNS),
        versions={k: sorted(v) for k, v in sorted(versions.items())},
        n_val=n_vals.pop() if len(n_vals) == 1 else None,
    )


def _point(record: dict[str, Any]) -> dict[str, Any]:
    spec = record["spec"]
    validation = spec.get("validation", "holdout")
    n_train = (record.get("data") or {}).get("n_train") or spec.get("train_size") \
        or DEFAULT_TRAIN[validation]
    bs = spec["batch_size"]
    args = args_text(spec.get("optimizer_args") or {})
    return {
        "run_id": record["run_id"], "point_id": record.get("point_id", ""),
        "optimizer": spec["optimizer"],
        "variant": f"{spec['optimizer']} ({args})" if args else spec["optimizer"],
        "learning_rate": float(spec["learning_rate"]), "batch_size": bs,
        "batch": n_train if bs == "full" else min(int(bs), n_train), "seed": int(spec["seed"]),
        "train_size": int(n_train), "validation": validation, "args": args,
    }


def _history_rows(record: dict[str, Any], point: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("run_id", "point_id", "optimizer", "variant", "learning_rate", "batch_size", "batch",
            "seed", "train_size")
    rows, cum = [], 0.0
    for i, h in enumerate(record["history"]):
        cum += float(h.get("time", math.nan))
        row = {k: point[k] for k in keys}
        row.update(epoch=int(h.get("epoch", i + 1)), steps=h.get("steps", math.nan),
                   time=h.get("time", math.nan), cum_time=cum)
        row.update({m: _num(h.get(m)) for m in HISTORY_METRICS})
        rows.append(row)
    return rows


def _run_values(record: dict[str, Any], rows: list[dict[str, Any]], target_metric: str,
                target_value: float) -> dict[str, Any]:
    last = rows[-1] if rows else {}
    val_loss = np.array([r["val_loss"] for r in rows], dtype=float)
    val_acc = np.array([r["val_accuracy"] for r in rows], dtype=float)
    finite_loss = np.where(np.isfinite(val_loss), val_loss, np.inf)
    hit = next((r for r in rows if target_metric and
                reached(target_metric, r[target_metric], target_value)), None)
    return {
        "status": record["status"], "error": _reason(record, rows),
        "engine": record.get("engine", ""), "epochs_trained": len(rows),
        **{f"final_{m}": last.get(m, math.nan) for m in HISTORY_METRICS},
        "best_val_loss": float(finite_loss.min()) if np.isfinite(finite_loss).any() else math.nan,
        "best_val_accuracy": float(np.nanmax(val_acc)) if np.isfinite(val_acc).any() else math.nan,
        "best_epoch": rows[int(finite_loss.argmin())]["epoch"] if np.isfinite(finite_loss).any()
        else math.nan,
        "wall_time": _wall_time(record),
        "target_metric": target_metric, "target_value": target_value,
        "target_epoch": hit["epoch"] if hit else math.nan,
        "target_steps": hit["steps"] if hit else math.nan,
        "target_time": hit["cum_time"] if hit else math.nan,
        "finished_at": record.get("finished_at") or "",
    }


def _reason(record: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The recorded error's first line; for a diverged run, where its loss stopped being finite."""
    if record.get("error"):
        return str(record["error"]).strip().splitlines()[0]
    if record["status"] == "diverged" and rows:
        bad = next((r for r in rows if not math.isfinite(r["loss"])), rows[-1])
        return f"training loss became {bad['loss']} at epoch {bad['epoch']}"
    return ""


def _wall_time(record: dict[str, Any]) -> float:
    """Seconds spent on this run; runs trained together share their group's time equally."""
    group = record.get("group") or {}
    if group.get("wall_time") is not None and group.get("size"):
        return float(group["wall_time"]) / int(group["size"])
    return float(record.get("wall_time", math.nan))


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


# Display tables shared by report.md and report.html: strings, every split named in the header.

def fmt(value: Any, digits: int = 4) -> str:
    """A number for people: NaN as an em dash, floats to `digits` significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return str(value)


def mean_ci(mean: float, ci: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.4f}" if math.isnan(ci) else f"{mean:.4f} ± {ci:.4f}"


def ranking_view(best: pd.DataFrame, holdout: bool, target: bool) -> pd.DataFrame:
    """best.csv for reading: validation and test columns side by side, CI half-widths."""
    several = best["train_size"].nunique() > 1
    rows = []
    for _, b in best.iterrows():
        row = {"rank": b["rank"], "optimizer": b["variant"]}
        if several:
            row["train size"] = f"{b['train_size']:,}"
        row.update({"learning rate": f"{b['learning_rate']:g}", "batch size": str(b["batch_size"]),
                    "seeds ok": f"{b['n_ok']}/{b['n_seeds']}"})
        splits = ("val", "test") if holdout else ("val",)
        for split in splits:
            for m in ("loss", "accuracy"):
                key = f"final_{split}_{m}"
                row[f"{split}_{m} (mean ± 95% CI)"] = mean_ci(b[f"{key}_mean"], b[f"{key}_ci95"])
        if target:
            row["time to target"] = target_text(b)
        rows.append(row)
    return pd.DataFrame(rows)


def target_text(point: pd.Series) -> str:
    if point["n_reached"] == 0:
        return "never"
    return (f"epoch {point['target_epoch_mean']:.3g}, {point['target_time_mean']:.3g} s "
            f"({point['n_reached']}/{point['n_ok']} seeds)")


def runs_view(runs: pd.DataFrame, holdout: bool) -> pd.DataFrame:
    """One row per run; run_id names its record, runs/<run_id>.json."""
    columns = {"run_id": "run_id", "variant": "optimizer", "learning_rate": "learning rate",
               "batch_size": "batch size", "train_size": "train size", "seed": "seed",
               "status": "status", "epochs_trained": "epochs", "final_val_loss": "val_loss",
               "final_val_accuracy": "val_accuracy"}
    if holdout:
        columns.update(final_test_loss="test_loss", final_test_accuracy="test_accuracy")
    columns.update(target_epoch="target epoch", wall_time="wall s")
    view = runs[list(columns)].rename(columns=columns)
    return view.map(fmt)


def problems_view(runs: pd.DataFrame) -> pd.DataFrame:
    bad = runs[runs["status"] != "ok"]
    return pd.DataFrame({"run_id": bad["run_id"], "status": bad["status"],
                         "reason": bad["error"].replace("", "(no reason recorded)")})
