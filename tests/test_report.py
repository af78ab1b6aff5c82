"""The reporter on hand-made results folders (tests/synthetic.py): values, files, errors."""

from __future__ import annotations

import base64
import math
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from optbench.config import expand, parse_experiment
from optbench.report import ReportError, write_report
from optbench.report.stats import mean_std_ci95, rank_points, t975
from optbench.report.tables import HISTORY_COLUMNS, RUN_COLUMNS, build_tables
from optbench.store import ResultsDir

from synthetic import FAILED_ERROR, config, history, make_results, record

PLOTS = {"loss_curves_bs32.png", "accuracy_curves_bs32.png", "loss_curves_bsfull.png",
         "accuracy_curves_bsfull.png", "best_curves.png", "lr_sensitivity.png",
         "batch_size_effect.png", "heatmap.png", "time_to_target.png"}
CI95_OF_3 = 4.3027 / math.sqrt(3)  # t_{0.975, 2} / sqrt(n) for n = 3 seeds


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The synthetic folder with its report written once: (folder, files written)."""
    folder = tmp_path_factory.mktemp("results") / "synth"
    make_results(folder)
    return folder, write_report(folder)


def point(summary: pd.DataFrame, optimizer: str, lr: float, bs: str) -> pd.Series:
    rows = summary[(summary["optimizer"] == optimizer) & (summary["learning_rate"] == lr)
                   & (summary["batch_size"].astype(str) == bs)]
    assert len(rows) == 1
    return rows.iloc[0]


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("df, expected", [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262),
                                          (30, 2.042), (40, 2.021), (120, 1.980)])
def test_t_quantiles_match_the_tables(df, expected):
    assert t975(df) == pytest.approx(expected, abs=1e-3)


def test_t_quantile_tends_to_the_normal():
    assert t975(10**6) == pytest.approx(1.95996, abs=1e-5)


def test_mean_std_ci95_by_hand():
    mean, std, ci = mean_std_ci95([0.1, 0.2, 0.3])
    assert (mean, std, ci) == pytest.approx((0.2, 0.1, 0.1 * CI95_OF_3))
    assert mean_std_ci95([0.1, math.nan, 0.3])[0] == pytest.approx(0.2)
    one = mean_std_ci95([0.7])
    assert one[0] == 0.7 and math.isnan(one[1]) and math.isnan(one[2])
    assert all(math.isnan(v) for v in mean_std_ci95([]))


@pytest.mark.parametrize("target, epoch", [({"val_loss": 0.375}, 2), ({"val_loss": 0.3}, 3),
                                           ({"val_accuracy": 0.8125}, 2), ({"val_loss": 0.2}, None),
                                           ({"accuracy": 0.99}, None)])
def test_target_is_the_first_epoch_that_reaches_it(target, epoch):
    exp = parse_experiment(config(grid={"optimizer": ["sgd"], "learning_rate": [0.1],
                                        "batch_size": [32]}, seeds=[0]))
    (spec,) = expand(exp)
    # val_loss 0.5, 0.375, 0.25 (accuracy 0.75, 0.8125, 0.875), exact in binary; equality counts.
    # Each epoch: 2 s, 32 steps.
    runs = build_tables([record(exp, spec, history(spec, 0.25, 0.25))], target).runs
    row = runs.iloc[0]
    if epoch is None:
        assert math.isnan(row["target_epoch"]) and math.isnan(row["target_time"])
    else:
        assert (row["target_epoch"], row["target_steps"], row["target_time"]) == \
            (epoch, 32 * epoch, 2.0 * epoch)


def test_summary_statistics_over_seeds(report):
    folder, _ = report
    summary = pd.read_csv(folder / "summary.csv")
    sgd = point(summary, "sgd", 0.1, "32")
    assert (sgd["n_seeds"], sgd["n_ok"], sgd["n_diverged"], sgd["n_failed"]) == (3, 3, 0, 0)
    assert sgd["final_val_loss_mean"] == pytest.approx(0.2)
    assert sgd["final_val_loss_std"] == pytest.approx(0.1)
    assert sgd["final_val_loss_ci95"] == pytest.approx(0.1 * CI95_OF_3)
    assert sgd["final_test_loss_mean"] == pytest.approx(0.25)
    # seed 0 reaches val_accuracy 0.9 at epoch 1, seed 1 at epoch 3, seed 2 never: 2 s per epoch.
    assert (sgd["n_reached"], sgd["target_epoch_mean"], sgd["target_time_mean"]) == (2, 2.0, 4.0)
    diverged = point(summary, "adam", 0.1, "full")
    assert (diverged["n_ok"], diverged["n_diverged"]) == (2, 1)
    assert diverged["final_val_loss_mean"] == pytest.approx((0.025 + 0.05) / 2)
    failed = point(summary, "sgd", 0.01, "full")
    assert (failed["n_ok"], failed["n_failed"]) == (2, 1)
    assert failed["final_val_loss_mean"] == pytest.approx((0.45 + 1.35) / 2)


def test_best_setting_is_chosen_on_validation_never_test(report):
    folder, _ = report
    best = pd.read_csv(folder / "best.csv").set_index("optimizer")
    summary = pd.read_csv(folder / "summary.csv")
    clean = summary[(summary["optimizer"] == "adam") & (summary["n_ok"] == summary["n_seeds"])]
    by_test = clean.loc[clean["final_test_loss_mean"].idxmin()]
    assert (by_test["learning_rate"], by_test["batch_size"]) == (0.1, "32")  # test would differ
    assert (best.loc["adam", "learning_rate"], best.loc["adam", "batch"]) == (0.01, 32)
    assert best.loc["adam", "final_test_loss_mean"] == pytest.approx(0.30)
    assert (best.loc["sgd", "learning_rate"], best.loc["sgd", "batch"]) == (0.1, 32)
    assert list(best["rank"]) == [1, 2]


def test_a_point_with_a_diverged_seed_ranks_below_clean_ones(report):
    folder, _ = report
    summary = pd.read_csv(folder / "summary.csv")
    adam = summary[summary["optimizer"] == "adam"]
    assert adam["final_val_loss_mean"].idxmin() == point(summary, "adam", 0.1, "full").name
    ranked = rank_points(adam, "val_loss", "minimize")
    assert list(ranked["final_val_loss_mean"]) == pytest.approx([0.15, 0.3, 0.6, 0.0375])
    maximize = rank_points(adam, "val_accuracy", "maximize")
    assert maximize.iloc[-1]["n_diverged"] == 1
    assert maximize.iloc[0]["final_val_accuracy_mean"] == pytest.approx(0.925)


def test_csv_columns_and_row_counts(report):
    folder, files = report
    runs = pd.read_csv(folder / "runs.csv", keep_default_na=False, na_values=[""])
    history = pd.read_csv(folder / "history.csv")
    assert list(runs.columns) == RUN_COLUMNS and len(runs) == 24
    assert list(history.columns) == HISTORY_COLUMNS
    assert len(history) == 22 * 3 + 2  # ok runs: 3 epochs; diverged: 2; failed: none
    assert len(pd.read_csv(folder / "summary.csv")) == 8
    assert len(pd.read_csv(folder / "best.csv")) == 2
    assert runs["status"].value_counts().to_dict() == {"ok": 22, "diverged": 1, "failed": 1}
    assert set(runs["batch"]) == {32, 1000} and set(runs["train_size"]) == {1000}
    seed1 = history[history["run_id"] == runs.loc[1, "run_id"]]
    assert list(seed1["cum_time"]) == [2.0, 4.0, 6.0]
    names = {p.name for p in files}
    assert {"runs.csv", "history.csv", "summary.csv", "best.csv", "report.md",
            "report.html"} | PLOTS == names


def test_failed_and_diverged_runs_are_listed_with_their_reason(report):
    folder, _ = report
    runs = pd.read_csv(folder / "runs.csv", keep_default_na=False, na_values=[""])
    failed = runs[runs["status"] == "failed"].iloc[0]
    assert failed["error"] == FAILED_ERROR.splitlines()[0]
    assert failed["epochs_trained"] == 0 and math.isnan(failed["final_val_loss"])
    diverged = runs[runs["status"] == "diverged"].iloc[0]
    assert diverged["error"] == "training loss became nan at epoch 2"
    assert diverged["epochs_trained"] == 2
    for name in ("report.html", "report.md"):
        text = (folder / name).read_text()
        problems = text.split("Failed or diverged runs")[-1]
        assert failed["run_id"] in problems and diverged["run_id"] in problems
        assert "learning_rate_power must be &lt;= 0" in problems or \
            "learning_rate_power must be <= 0" in problems
        assert "second line" not in text


def test_every_plot_is_a_png(report):
    folder, _ = report
    assert {p.name for p in (folder / "plots").glob("*.png")} == PLOTS
    for png in (folder / "plots").glob("*.png"):
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, png.name


def test_html_is_self_contained_and_names_the_split(report):
    folder, _ = report
    html = (folder / "report.html").read_text()
    for png in (folder / "plots").glob("*.png"):
        assert f"data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}" in html
    for external in ('src="http', "href='http", 'href="http', "<script", "<link", "@import"):
        assert external not in html
    assert "validation = last 10,000 training examples (holdout)" in html
    assert "24 (22 ok, 1 diverged, 1 failed)" in html
    assert "keras 3.11.0" in html and "name: synth" in html
    runs = pd.read_csv(folder / "runs.csv")
    assert all(f'href="runs/{r}.json"' in html for r in runs["run_id"])
    md = (folder / "report.md").read_text()
    assert all(f"](plots/{name})" in md for name in PLOTS)


def test_records_outside_the_config_are_ignored(report, tmp_path):
    folder = tmp_path / "synth"
    shutil.copytree(report[0], folder)
    old = parse_experiment(config(grid={"optimizer": ["sgd"], "learning_rate": [0.5],
                                        "batch_size": [32]}, seeds=[0]))
    (spec,) = expand(old)
    ResultsDir(folder).write_record(record(old, spec, history(spec, 0.2, 0.25)))
    stale = folder / "plots" / "heatmap_n50.png"  # drawn by an earlier report, not this one
    stale.write_bytes(b"\x89PNG old")
    write_report(folder)
    runs = pd.read_csv(folder / "runs.csv")
    assert len(runs) == 24 and spec.run_id not in set(runs["run_id"])
    assert not stale.exists() and {p.name for p in (folder / "plots").iterdir()} == PLOTS
    assert "1 records of an earlier version of the config ignored" in \
        (folder / "report.html").read_text()


@pytest.mark.parametrize("setup, message", [
    ("missing", "no such results folder"),
    ("empty", "no experiment.yaml here"),
    ("no_records", "no finished runs in"),
    ("only_old_records", "1 records belong to an older config"),
    ("bad_config", "epochs: must be >= 1"),
])
def test_unreportable_folders_raise_and_stay_untouched(tmp_path, setup, message):
    folder = tmp_path / "res"
    if setup != "missing":
        folder.mkdir()
    if setup in ("no_records", "only_old_records", "bad_config"):
        ResultsDir(folder).write_config(config())
    if setup == "only_old_records":
        old = parse_experiment(config(seeds=[7], grid={"optimizer": ["sgd"],
                                                       "learning_rate": [0.1],
                                                       "batch_size": [32]}))
        (spec,) = expand(old)
        ResultsDir(folder).write_record(record(old, spec, history(spec, 0.2, 0.25)))
    if setup == "bad_config":
        make_results(folder)
        ResultsDir(folder).write_config(config(epochs=0))
    before = tree(folder) if folder.exists() else None
    with pytest.raises(ReportError, match=message):
        write_report(folder)
    assert (tree(folder) if folder.exists() else None) == before


def test_validation_on_the_test_set_has_no_test_columns(tmp_path):
    folder = tmp_path / "ref"
    make_results(folder, data={"train_size": 1000, "validation": "test"},
                 grid={"optimizer": ["sgd"], "learning_rate": [0.1, 0.01], "batch_size": [32]})
    write_report(folder)
    runs = pd.read_csv(folder / "runs.csv")
    assert runs["final_test_loss"].isna().all() and set(runs["validation"]) == {"test"}
    html = (folder / "report.html").read_text()
    assert "validation = the test set (reference recipe)" in html
    assert "test_loss (mean ± 95% CI)" not in html and "val_loss (mean ± 95% CI)" in html


def test_plots_the_grid_cannot_support_are_skipped_and_listed(tmp_path):
    folder = tmp_path / "one"
    make_results(folder, grid={"optimizer": ["sgd", "adam"], "learning_rate": [0.1],
                               "batch_size": [32]}, target={})
    files = write_report(folder)
    assert {p.name for p in files if p.suffix == ".png"} == {
        "loss_curves_bs32.png", "accuracy_curves_bs32.png", "best_curves.png", "heatmap.png"}
    md = (folder / "report.md").read_text()
    assert "`lr_sensitivity.png`: every optimizer was run at a single learning rate" in md
    assert "`batch_size_effect.png`: the grid has a single batch size" in md
    assert "time_to_target" not in md


def test_several_train_sizes_get_their_own_plots_and_best_rows(tmp_path):
    folder = tmp_path / "sizes"
    make_results(folder, data={"train_size": [500, 1000]}, seeds=[0, 1],
                 grid={"optimizer": ["sgd", "adam"], "learning_rate": [0.1, 0.01],
                       "batch_size": [32]})
    files = write_report(folder)
    names = {p.name for p in files}
    assert {"best_curves_n500.png", "best_curves_n1000.png", "heatmap_n500.png"} <= names
    best = pd.read_csv(folder / "best.csv")
    assert sorted(zip(best["train_size"], best["optimizer"])) == [
        (500, "adam"), (500, "sgd"), (1000, "adam"), (1000, "sgd")]


def test_claims_section_shows_each_verdict(report, tmp_path, monkeypatch):
    from dataclasses import dataclass

    @dataclass
    class Verdict:
        key: str
        claim: str
        verdict: str
        how: str
        evidence: pd.DataFrame

    seen = {}

    def evaluate(runs, history, exp):
        seen.update(runs=len(runs), history=len(history), name=exp["name"])
        return [Verdict("a", "Adam <beats> SGD", "supported", "t-test on 3 seeds",
                        pd.DataFrame({"optimizer": ["adam"], "val_loss": [0.15]})),
                Verdict("b", "Full batch is slow", "not tested", "no grid for it", pd.DataFrame())]

    fake = types.ModuleType("optbench.report.claims")
    fake.claims_apply = lambda exp: True
    fake.evaluate_claims = evaluate
    monkeypatch.setitem(sys.modules, "optbench.report.claims", fake)
    folder = tmp_path / "synth"
    shutil.copytree(report[0], folder)
    write_report(folder)
    assert seen == {"runs": 24, "history": 68, "name": "synth"}
    html = (folder / "report.html").read_text()
    assert '<span class="badge supported">supported</span>' in html
    assert '<span class="badge not-tested">not tested</span>' in html
    assert "Adam &lt;beats&gt; SGD" in html and "<td>0.15</td>" in html
    assert "**supported** — t-test on 3 seeds" in (folder / "report.md").read_text()


def test_reporting_never_imports_tensorflow(report):
    code = ("import sys; from pathlib import Path; from optbench.report import write_report; "
            f"write_report(Path({str(report[0])!r})); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parent)
    assert done.stdout.strip() == "[]"
