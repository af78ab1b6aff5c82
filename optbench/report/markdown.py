"""report.md: the report for terminals and code review, images referenced by relative path."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import yaml

from .tables import fmt, problems_view, ranking_view, runs_view

if TYPE_CHECKING:
    from . import Report


def md_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pandas' to_markdown needs tabulate, not a dependency)."""
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in df.columns) + " |",
             "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    from . import PLOTS_DIR

    out = [f"# optbench report: {report.exp.name}", ""]
    out += [f"- **{label}**: {value}" for label, value in report.facts()]
    out += ["", "## Best setting per optimizer", "",
            report.selection + ".", "",
            md_table(ranking_view(report.best, report.holdout, bool(report.exp.target))), ""]
    out += ["## Plots", ""]
    for plot in report.plots:
        out += [f"### {plot.title}", "", f"![{plot.title}]({PLOTS_DIR}/{plot.name})", ""]
    if report.skipped:
        out += ["Not drawn:", ""] + [f"- `{name}`: {why}" for name, why in report.skipped] + [""]
    if report.claims:
        out += ["## Claims", ""]
        for c in report.claims:
            out += [f"### ({c.key}) {c.claim}", "", f"**{c.verdict}** — {c.how}", ""]
            if len(c.evidence):
                out += [md_table(c.evidence.map(fmt)), ""]
    out += ["## Runs", "", "Each run's record: `runs/<run_id>.json`.", "",
            md_table(runs_view(report.tables.runs, report.holdout)), ""]
    problems = problems_view(report.tables.runs)
    out += ["## Failed or diverged runs", ""]
    out += [md_table(problems) if len(problems) else "None.", ""]
    out += ["## Experiment config", "", "```yaml",
            yaml.safe_dump(report.config, sort_keys=False).rstrip(), "```", ""]
    return "\n".join(out)
