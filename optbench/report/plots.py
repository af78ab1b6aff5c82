"""The report's PNG plots, drawn on bare matplotlib Figures (no pyplot state, no GUI backend).

Each builder returns a Figure, or a string saying why the data cannot support that plot; the
report lists skipped plots with their reasons instead of showing empty axes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from ..config import Experiment
from .stats import best_per_batch, best_settings
from .tables import Tables

DPI = 110
BAD = dict(marker="x", color="crimson", linestyle="none", markersize=7, clip_on=False)


@dataclass
class Plot:
    name: str  # file name inside plots/
    title: str
    png: bytes


@dataclass
class Slice:
    """One train size's share of the data, and how plots name and title it."""

    exp: Experiment
    runs: pd.DataFrame
    history: pd.DataFrame
    summary: pd.DataFrame
    colors: dict[str, str]
    suffix: str
    note: str

    @property
    def ok_history(self) -> pd.DataFrame:
        ok = self.runs.loc[self.runs["status"] == "ok", "run_id"]
        return self.history[self.history["run_id"].isin(ok)]

    def batch_sizes(self) -> list[Any]:
        return sorted(self.runs["batch_size"].unique(), key=_bs_key)

    def best(self) -> pd.DataFrame:
        return best_settings(self.summary, self.exp.metric.name, self.exp.metric.goal)


def make_plots(exp: Experiment, tables: Tables,
               summary: pd.DataFrame) -> tuple[list[Plot], list[tuple[str, str]]]:
    """All plots the data supports, and (file name, reason) for those it does not."""
    variants = list(dict.fromkeys(tables.runs["variant"]))
    colors = {v: f"C{i % 10}" for i, v in enumerate(variants)}
    sizes = sorted(tables.runs["train_size"].unique())
    plots, skipped = [], []
    for size in sizes:
        several = len(sizes) > 1
        part = Slice(exp, tables.runs[tables.runs["train_size"] == size],
                     tables.history[tables.history["train_size"] == size],
                     summary[summary["train_size"] == size], colors,
                     suffix=f"_n{size}" if several else "",
                     note=f", {size:,} training examples" if several else "")
        builders: list[tuple[str, str, Callable[[], Figure | str]]] = []
        for bs in part.batch_sizes():
            for kind in ("loss", "accuracy"):
                builders.append((f"{kind}_curves_bs{bs}", f"{kind.capitalize()} curves, batch "
                                 f"size {bs}", lambda k=kind, b=bs: curves(part, k, b)))
        builders += [
            ("best_curves", "Each optimizer at its best setting", lambda: best_curves(part)),
            ("lr_sensitivity", "Learning-rate sensitivity", lambda: lr_sensitivity(part)),
            ("batch_size_effect", "Batch-size effect", lambda: batch_size_effect(part)),
            ("heatmap", f"Final {exp.metric.name} by optimizer and learning rate",
             lambda: heatmap(part)),
        ]
        if exp.target:
            builders.append(("time_to_target", "Time to target", lambda: time_to_target(part)))
        for stem, title, build in builders:
            name = f"{stem}{part.suffix}.png"
            drawn = build()
            if isinstance(drawn, str):
                skipped.append((name, drawn))
            else:
                plots.append(Plot(name, title + part.note, _png(drawn)))
    return plots, skipped


def curves(part: Slice, kind: str, bs: Any) -> Figure | str:
    """A panel per learning rate; solid = validation, dashed = training; mean over ok seeds."""
    runs = part.runs[part.runs["batch_size"] == bs]
    hist = part.ok_history[part.ok_history["batch_size"] == bs]
    if hist.empty:
        return f"no run with batch size {bs} finished"
    lrs = sorted(runs["learning_rate"].unique(), reverse=True)
    cols = min(len(lrs), 4)
    fig, axes = _grid(-(-len(lrs) // cols), cols, sharey=True)
    for ax in axes.flat[len(lrs):]:
        ax.set_visible(False)
    for ax, lr in zip(axes.flat, lrs):
        for variant, color in part.colors.items():
            h = hist[(hist["learning_rate"] == lr) & (hist["variant"] == variant)]
            if h.empty:
                continue
            mean = h.groupby("epoch")[[kind, f"val_{kind}"]].mean()
            ax.plot(mean.index, mean[f"val_{kind}"], color=color, marker=".")
            ax.plot(mean.index, mean[kind], color=color, linestyle="--")
        lost = _unfinished(runs[runs["learning_rate"] == lr], hist)
        if lost:
            ax.text(0.02, 0.02, "no finished seed: " + ", ".join(lost), transform=ax.transAxes,
                    color="crimson", fontsize=8)
        ax.set_title(f"learning rate {lr:g}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(kind)
        ax.xaxis.get_major_locator().set_params(integer=True)
    val = "validation" if part.exp.data.validation == "holdout" else "validation (test set)"
    _legend(fig, part, [(val, "-"), ("training", "--")])
    fig.suptitle(f"{kind.capitalize()} per epoch, batch size {bs}{part.note} "
                 "(mean over seeds)")
    return fig


def best_curves(part: Slice) -> Figure | str:
    best = part.best()
    hist = part.ok_history[part.ok_history["point_id"].isin(best["point_id"])]
    if hist.empty:
        return "no best setting has a finished run"
    fig, axes = _grid(1, 2)
    for ax, metric in zip(axes[0], ("val_loss", "val_accuracy")):
        for _, point in best.iterrows():
            h = hist[hist["point_id"] == point["point_id"]].groupby("epoch")[metric]
            if not len(h):
                continue
            color = part.colors[point["variant"]]
            stats = h.agg(["mean", "min", "max"])
            ax.plot(stats.index, stats["mean"], color=color, marker=".",
                    label=f"{point['variant']}, lr {point['learning_rate']:g}, "
                          f"batch {point['batch_size']}")
            ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.2)
        ax.set_title(metric.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Best setting per optimizer{part.note}: mean over seeds, band = min to max")
    return fig


def lr_sensitivity(part: Slice) -> Figure | str:
    if part.runs.groupby("variant")["learning_rate"].nunique().max() < 2:
        return "every optimizer was run at a single learning rate"
    sizes = part.batch_sizes()
    fig, axes = _grid(2, len(sizes), sharey="row")
    for col, bs in enumerate(sizes):
        for row, metric in enumerate(("val_loss", "val_accuracy")):
            ax = axes[row][col]
            for variant, color in part.colors.items():
                sel = (part.runs["batch_size"] == bs) & (part.runs["variant"] == variant)
                _seed_points(ax, part.runs[sel], "learning_rate", metric, color, variant)
            ax.set_xscale("log")
            lrs = sorted(part.runs["learning_rate"].unique())
            ax.set_xticks(lrs, [f"{lr:g}" for lr in lrs])
            ax.minorticks_off()
            ax.set_title(f"batch size {bs}")
            ax.set_xlabel("learning rate")
            ax.set_ylabel(f"final {metric}")
    _legend(fig, part, [("mean over seeds", "-")], bad=True)
    fig.suptitle(f"Final validation metrics vs learning rate{part.note} (dots: seeds)")
    return fig


def batch_size_effect(part: Slice) -> Figure | str:
    sizes = part.batch_sizes()
    if len(sizes) < 2:
        return "the grid has a single batch size"
    chosen = best_per_batch(part.summary, part.exp.metric.name, part.exp.metric.goal)
    position = {bs: i for i, bs in enumerate(sizes)}
    fig, axes = _grid(2, 1, width=max(6.0, 1.6 * len(sizes)), height=3.4)
    for row, metric in enumerate(("val_loss", "val_accuracy")):
        ax = axes[row][0]
        for variant, color in part.colors.items():
            points = chosen[chosen["variant"] == variant]
            runs = part.runs[part.runs["point_id"].isin(points["point_id"])]
            runs = runs.assign(x=runs["batch_size"].map(position))
            _seed_points(ax, runs, "x", metric, color, variant)
            for _, p in points.iterrows():
                ax.annotate(f"lr {p['learning_rate']:g}", (position[p["batch_size"]],
                            p[f"final_{metric}_mean"]), fontsize=7, color=color,
                            xytext=(4, 4), textcoords="offset points")
        ax.set_xticks(range(len(sizes)), [str(bs) for bs in sizes])
        ax.margins(x=0.15)
        ax.set_xlabel("batch size (full = whole training set per step)")
        ax.set_ylabel(f"final {metric}")
    _legend(fig, part, [("mean over seeds, best lr per batch size", "-")], bad=True)
    fig.suptitle(f"Final validation metrics vs batch size{part.note}")
    return fig


def heatmap(part: Slice) -> Figure | str:
    variants = [v for v in part.colors if v in set(part.summary["variant"])]
    lrs = sorted(part.summary["learning_rate"].unique())
    if len(variants) < 2 and len(lrs) < 2:
        return "one optimizer at one learning rate: nothing to compare"
    metric, goal = part.exp.metric.name, part.exp.metric.goal
    sizes = part.batch_sizes()
    values = part.summary[f"final_{metric}_mean"].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    vmin, vmax = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
    fig, axes = _grid(1, len(sizes), width=1.1 * len(lrs) + 2.5, height=0.6 * len(variants) + 2)
    for ax, bs in zip(axes[0], sizes):
        s = part.summary[part.summary["batch_size"] == bs]
        cells = s.pivot_table(index="variant", columns="learning_rate",
                              values=f"final_{metric}_mean", aggfunc="first", dropna=False)
        grid = cells.reindex(index=variants, columns=lrs).to_numpy(dtype=float)
        image = ax.imshow(grid, cmap="viridis_r" if goal == "minimize" else "viridis",
                          vmin=vmin, vmax=vmax, aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            label = _cell_label(s, variants[i], lrs[j], v)
            shade = image.norm(v)  # viridis is dark at its low end, viridis_r at its high end
            dark = np.isfinite(v) and (shade > 0.5 if goal == "minimize" else shade < 0.5)
            ax.text(j, i, label, ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
        ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
        ax.set_yticks(range(len(variants)), variants)
        ax.set_xlabel("learning rate")
        ax.set_title(f"batch size {bs}")
    fig.colorbar(image, ax=axes[0].tolist(), label=f"final {metric} (mean over seeds)")
    better = "lower" if goal == "minimize" else "higher"
    fig.suptitle(f"Final {metric}{part.note}: {better} is better; blank = no finished seed")
    return fig


def time_to_target(part: Slice) -> Figure | str:
    ((metric, value),) = list(part.exp.target.items())[:1]
    best = part.best()
    runs = part.runs[part.runs["point_id"].isin(best["point_id"]) & (part.runs["status"] == "ok")]
    if runs.empty:
        return "no best setting has a finished run"
    fig, axes = _grid(1, 2, width=5.0, height=0.7 * len(best) + 2)
    labels = [f"{p['variant']}\nlr {p['learning_rate']:g}, batch {p['batch_size']}"
              for _, p in best.iterrows()]
    for ax, column, unit in zip(axes[0], ("target_epoch", "target_time"), ("epochs", "seconds")):
        top = runs[column].max() if runs[column].notna().any() else 1.0
        for i, (_, p) in enumerate(best.iterrows()):
            seeds = runs.loc[runs["point_id"] == p["point_id"], column]
            hit = seeds.dropna()
            color = part.colors[p["variant"]]
            if hit.empty:
                ax.text(0.02 * top, i, "never", va="center", color="crimson", fontweight="bold")
                continue
            ax.barh(i, hit.mean(), color=color, alpha=0.6)
            ax.plot(hit, [i] * len(hit), "o", color=color, markersize=4)
            ax.text(hit.max(), i, f"  {len(hit)}/{len(seeds)} seeds reached", va="center",
                    fontsize=8)
        ax.set_yticks(range(len(best)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.6)
        ax.set_xlabel(f"{unit} of training until the target")
    sign = "<=" if metric.endswith("loss") else ">="
    fig.suptitle(f"Time to {metric} {sign} {value:g}{part.note} at each optimizer's best "
                 "setting (bar: mean of seeds that reached it)")
    return fig


def _seed_points(ax, runs: pd.DataFrame, x: str, metric: str, color: str, label: str) -> None:
    """Mean line over ok seeds, each seed as a small dot, diverged/failed seeds at the worst edge."""
    ok = runs[runs["status"] == "ok"]
    mean = ok.groupby(x)[f"final_{metric}"].mean().sort_index()
    ax.plot(mean.index, mean.to_numpy(), color=color, marker="o", label=label)
    ax.plot(ok[x], ok[f"final_{metric}"], ".", color=color, alpha=0.5, markersize=5)
    bad = runs[runs["status"] != "ok"]
    if len(bad):  # an empty unclipped line gives constrained layout a degenerate bounding box
        edge = 1.0 if metric.endswith("loss") else 0.0
        ax.plot(bad[x], [edge] * len(bad), transform=blended_transform_factory(ax.transData,
                ax.transAxes), **BAD)


def _unfinished(runs: pd.DataFrame, ok_history: pd.DataFrame) -> list[str]:
    finished = set(ok_history["variant"])
    return [v for v in dict.fromkeys(runs["variant"]) if v not in finished]


def _cell_label(s: pd.DataFrame, variant: str, lr: float, value: float) -> str:
    row = s[(s["variant"] == variant) & (s["learning_rate"] == lr)]
    if row.empty:
        return "not run"
    r = row.iloc[0]
    text = f"{value:.3g}" if np.isfinite(value) else "no run\nfinished"
    return text if r["n_ok"] == r["n_seeds"] else f"{text}\n{r['n_ok']}/{r['n_seeds']} ok"


def _grid(rows: int, cols: int, width: float = 4.2, height: float = 3.4, **kw) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width * cols, height * rows + 0.8), layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False, **kw)


def _legend(fig: Figure, part: Slice, styles: list[tuple[str, str]], bad: bool = False) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, label=v) for v, c in part.colors.items()
               if v in set(part.runs["variant"])]
    handles += [Line2D([], [], color="grey", linestyle=ls, label=label) for label, ls in styles]
    if bad:
        handles.append(Line2D([], [], **{**BAD, "clip_on": True},
                              label="diverged/failed seed (at the worst edge)"))
    per_row = max(1, int(fig.get_figwidth() // 2.6))  # about 2.6 inches per legend entry
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), per_row),
               fontsize=8)


def _bs_key(bs: Any) -> tuple[int, int]:
    return (1, 0) if bs == "full" else (0, int(bs))


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
