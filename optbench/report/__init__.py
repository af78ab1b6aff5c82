"""The reporter: results folder -> CSVs, plots, report.md and report.html (no training).

Everything is computed in memory first and written only at the end, so a folder that cannot
be reported on is left exactly as it was. Nothing heavy is imported until `write_report` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ..config import Experiment
    from .plots import Plot
    from .tables import Tables

PLOTS_DIR = "plots"


class ReportError(Exception):
    """A results folder that cannot be reported on, phrased for the user (problem; fix)."""


@dataclass
class Report:
    """Everything the rendered reports show, computed from the results folder alone."""

    out: Path
    exp: Experiment
    config: dict[str, Any]
    tables: Tables
    summary: pd.DataFrame
    best: pd.DataFrame
    plots: list[Plot]
    skipped: list[tuple[str, str]]
    ignored: int = 0
    claims: list[Any] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return self.exp.metric.name

    @property
    def split(self) -> str:
        """Where validation numbers come from, in words."""
        if self.exp.data.validation == "test":
            return ("validation = the test set (reference recipe); there are no separate "
                    "test numbers")
        n_val = f"{self.tables.n_val:,}" if self.tables.n_val else "10,000"
        return (f"validation = last {n_val} training examples (holdout); "
                "test = the 10,000 MNIST test images, never used to choose settings")

    @property
    def selection(self) -> str:
        """How the best setting is chosen, naming the split it is chosen on."""
        split = "validation" if self.metric.startswith("val_") else "training"
        return (f"Chosen on the final {self.metric} ({split} data, mean over finished seeds) "
                "only; test numbers are shown next to it, never used to choose")

    @property
    def holdout(self) -> bool:
        return self.exp.data.validation == "holdout"

    def facts(self) -> list[tuple[str, str]]:
        """The header: what was run, when, how, and where each number comes from."""
        runs = self.tables.runs
        count = runs["status"].value_counts()
        statuses = ", ".join(f"{count.get(s, 0)} {s}" for s in ("ok", "diverged", "failed"))
        ignored = (f"; {self.ignored} records of an earlier version of the config ignored"
                   if self.ignored else "")
        newest = max(runs["finished_at"], default="")
        goal = "lowest" if self.exp.metric.goal == "minimize" else "highest"
        facts = [
            ("experiment", self.exp.name + (f" — {self.exp.description}"
                                            if self.exp.description else "")),
            ("newest record", newest[:16].replace("T", " ") + " UTC" if newest else "unknown"),
            ("runs", f"{len(runs)} ({statuses}){ignored}"),
            ("data", self.split),
            ("best setting", f"{goal} final {self.metric}; settings with a diverged or failed "
                             "seed rank last"),
            ("engines", ", ".join(sorted(set(runs["engine"]))) or "unknown"),
            ("versions", "; ".join(f"{k} {', '.join(v)}" for k, v in self.tables.versions.items())
             or "not recorded"),
        ]
        if self.exp.target:
            metric, value = next(iter(self.exp.target.items()))  # the one the tables use
            sign = "<=" if metric.endswith("loss") else ">="
            facts.append(("target", f"{metric} {sign} {value:g}"))
        return facts


def write_report(out: Path) -> list[Path]:
    """Write CSVs, plots, report.md and report.html into `out`; return the files written."""
    from ..store import atomic_write

    report = build_report(Path(out))
    files = render_files(report)
    for path, data in files.items():
        atomic_write(path, data)
    _remove_stale_plots(report.out / PLOTS_DIR, set(files))
    return list(files)


def build_report(out: Path) -> Report:
    """Load and analyse a results folder; raise ReportError when there is nothing to report."""
    from ..config import ConfigError, expand, parse_experiment
    from ..store import ResultsDir
    from .plots import make_plots
    from .stats import best_settings, summarize
    from .tables import build_tables

    if not out.is_dir():
        raise ReportError(f"{out}: no such results folder; pass a folder written by "
                          "`optbench run`, e.g. results/<experiment>")
    results = ResultsDir(out)
    config = results.read_config()
    if config is None:
        raise ReportError(f"{out}: no experiment.yaml here; pass a folder written by "
                          "`optbench run`")
    try:
        exp = parse_experiment(config, source=str(out / "experiment.yaml"))
    except ConfigError as e:
        raise ReportError(f"{e} (this optbench no longer accepts the stored config; rerun "
                          "`optbench run` with an updated config)") from None
    order = {s.run_id: i for i, s in enumerate(expand(exp))}
    records = results.records()
    kept = sorted((r for r in records if r["run_id"] in order), key=lambda r: order[r["run_id"]])
    if not kept:
        old = f" ({len(records)} records belong to an older config)" if records else ""
        raise ReportError(f"no finished runs in {out}{old}; run `optbench run CONFIG` first")
    tables = build_tables(kept, dict(exp.target))
    summary = summarize(tables.runs)
    best = best_settings(summary, exp.metric.name, exp.metric.goal)
    plots, skipped = make_plots(exp, tables, summary)
    return Report(out=out, exp=exp, config=config, tables=tables, summary=summary, best=best,
                  plots=plots, skipped=skipped, ignored=len(records) - len(kept),
                  claims=_claims(tables, config))


def render_files(report: Report) -> dict[Path, str | bytes]:
    """Every output file's path and content."""
    from .html import render_html
    from .markdown import render_markdown

    out = report.out
    files: dict[Path, str | bytes] = {
        out / "runs.csv": report.tables.runs.to_csv(index=False),
        out / "history.csv": report.tables.history.to_csv(index=False),
        out / "summary.csv": report.summary.to_csv(index=False),
        out / "best.csv": report.best.to_csv(index=False),
    }
    for plot in report.plots:
        files[out / PLOTS_DIR / plot.name] = plot.png
    files[out / "report.md"] = render_markdown(report)
    files[out / "report.html"] = render_html(report)
    return files


def _claims(tables: Tables, config: dict[str, Any]) -> list[Any]:
    try:
        from .claims import claims_apply, evaluate_claims
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.claims":
            raise
        return []
    if not claims_apply(config):
        return []
    return evaluate_claims(tables.runs, tables.history, config)


def _remove_stale_plots(folder: Path, written: set[Path]) -> None:
    """Plots of an earlier report that this one no longer draws would mislead: remove them."""
    if folder.is_dir():
        for png in folder.glob("*.png"):
            if png not in written:
                png.unlink()
