"""report.html: one self-contained page (inline CSS, plots as data: URIs, no scripts, no links out)."""

from __future__ import annotations

import base64
from html import escape
from typing import TYPE_CHECKING

import pandas as pd
import yaml

from .tables import fmt, problems_view, ranking_view, runs_view

if TYPE_CHECKING:
    from . import Report

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330;
       max-width: 1280px; margin: 0 auto; padding: 0 1.2rem 3rem; }
h1 { margin: 1.2rem 0 .4rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #d5d9e0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; }
dl.facts dt { font-weight: 600; color: #4a5263; } dl.facts dd { margin: 0; }
nav a { margin-right: 1rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d5d9e0; padding: .25rem .5rem; text-align: left; white-space: nowrap; }
th { background: #f1f3f6; white-space: normal; vertical-align: bottom; } tr:nth-child(even) td { background: #fafbfc; }
figure { margin: 1.2rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #e3e6ea; }
figcaption { font-weight: 600; margin-bottom: .3rem; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; font-size: 13px; }
.badge { display: inline-block; padding: .05rem .55rem; border-radius: .8rem; color: #fff;
         font-weight: 600; font-size: 13px; }
.supported { background: #1a7f37; } .not-supported { background: #cf222e; }
.inconclusive { background: #9a6700; } .not-tested { background: #6e7781; }
.status-diverged td, .status-failed td { background: #fff1f0; }
"""
SECTIONS = (("ranking", "Best settings"), ("plots", "Plots"), ("claims", "Claims"),
            ("runs", "Runs"), ("problems", "Failed or diverged runs"), ("config", "Config"))


def html_table(df: pd.DataFrame, link_runs: bool = False) -> str:
    """An escaped table; with `link_runs`, run ids link to their records and bad runs are tinted."""
    head = "".join(f"<th>{escape(str(c))}</th>" for c in df.columns)
    rows = []
    for record in df.to_dict("records"):
        cells = []
        for column, value in record.items():
            text = escape(str(value))
            if link_runs and column == "run_id":
                text = f'<a href="runs/{escape(str(value), quote=True)}.json">{text}</a>'
            cells.append(f"<td>{text}</td>")
        status = escape(str(record.get("status", "")), quote=True)
        rows.append(f'<tr class="status-{status}">' + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def render_html(report: Report) -> str:
    title = f"optbench report: {report.exp.name}"
    sections = [s for s in SECTIONS if s[0] != "claims" or report.claims]
    nav = " ".join(f'<a href="#{key}">{escape(label)}</a>' for key, label in sections)
    facts = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in report.facts())
    body = [f"<h1>{escape(title)}</h1>", f'<dl class="facts">{facts}</dl>', f"<nav>{nav}</nav>",
            _ranking(report), _plots(report)]
    if report.claims:
        body.append(_claims(report))
    problems = problems_view(report.tables.runs)
    body += [
        '<section id="runs"><h2>Runs</h2><p>Each run id links to its record, '
        "<code>runs/&lt;run_id&gt;.json</code>.</p>"
        f"{html_table(runs_view(report.tables.runs, report.holdout), link_runs=True)}</section>",
        '<section id="problems"><h2>Failed or diverged runs</h2>'
        f"{html_table(problems, link_runs=True) if len(problems) else '<p>None.</p>'}</section>",
        '<section id="config"><h2>Experiment config</h2><p>As stored in '
        "<code>experiment.yaml</code>, defaults filled in.</p>"
        f"<pre>{escape(yaml.safe_dump(report.config, sort_keys=False))}</pre></section>",
    ]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _ranking(report: Report) -> str:
    view = ranking_view(report.best, report.holdout, bool(report.exp.target))
    return ('<section id="ranking"><h2>Best setting per optimizer</h2>'
            f"<p>{escape(report.selection)}. ± is the half-width of the 95% "
            f"Student-t confidence interval over seeds.</p>{html_table(view)}</section>")


def _plots(report: Report) -> str:
    figures = []
    for plot in report.plots:
        data = base64.b64encode(plot.png).decode("ascii")
        figures.append(f"<figure><figcaption>{escape(plot.title)}</figcaption>"
                       f'<img src="data:image/png;base64,{data}" alt="{escape(plot.title)}">'
                       "</figure>")
    if report.skipped:
        items = "".join(f"<li><code>{escape(name)}</code>: {escape(why)}</li>"
                        for name, why in report.skipped)
        figures.append(f"<p>Not drawn:</p><ul>{items}</ul>")
    return f'<section id="plots"><h2>Plots</h2>{"".join(figures)}</section>'


def _claims(report: Report) -> str:
    parts = ['<section id="claims"><h2>Claims</h2>']
    for c in report.claims:
        badge = escape(c.verdict.replace(" ", "-"), quote=True)
        parts.append(f"<h3>({escape(c.key)}) {escape(c.claim)}</h3>"
                     f'<p><span class="badge {badge}">{escape(c.verdict)}</span> '
                     f"{escape(c.how)}</p>")
        if len(c.evidence):
            parts.append('<div class="scroll">'
                         + c.evidence.to_html(index=False, na_rep="—", float_format=fmt)
                         + "</div>")
    parts.append("</section>")
    return "".join(parts)
