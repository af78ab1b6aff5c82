"""The command line end to end, with click's CliRunner on small synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from optbench.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_help_lists_the_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("run", "report", "validate", "optimizers"):
        assert command in result.output


def test_validate_counts_runs(write_config):
    result = invoke("validate", write_config(seeds=[0, 1, 2]))
    assert result.exit_code == 0
    assert "ok, 6 runs (2 grid points x 3 seeds)" in result.output


def test_dry_run_lists_runs_without_training(write_config, tmp_path):
    result = invoke("run", write_config(), "--dry-run", "--out", tmp_path / "res")
    assert result.exit_code == 0
    assert result.output.splitlines()[-1] == "2 runs (sgd: 1, adam: 1), 4 epochs in all"
    assert not (tmp_path / "res").exists()


def test_optimizers_lists_the_registry():
    result = invoke("optimizers")
    assert result.exit_code == 0
    assert "keras.optimizers.SGD [stacked]" in result.output
    assert "momentum=0.0" in result.output
    assert "keras.optimizers.Lamb [keras only]" in result.output


@pytest.mark.parametrize("patch,message", [
    ({"grid": {"optimizer": ["sgd"], "learning_rate": [-0.1], "batch_size": [20]}},
     "grid.learning_rate[0]: must be > 0, got -0.1"),
    ({"grid": {"optimizer": ["nope"], "learning_rate": [0.1], "batch_size": [20]}},
     "grid.optimizer[0]: unknown optimizer 'nope'"),
    ({"epochz": 1}, "epochz: unknown key"),
])
def test_bad_configs_exit_2_with_one_line_and_write_nothing(write_config, tmp_path, patch,
                                                            message):
    out = tmp_path / "res"
    for command in (["validate"], ["run", "--out", out], ["run", "--dry-run", "--out", out]):
        result = invoke(*command[:1], write_config(**patch), *command[1:])
        assert result.exit_code == 2
        assert message in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_max_runs_guard(write_config, tmp_path):
    result = invoke("run", write_config(seeds=list(range(10))), "--max-runs", 5,
                    "--out", tmp_path)
    assert result.exit_code == 2
    assert "expands to 20 runs, more than --max-runs 5" in result.output


def test_report_on_a_missing_folder_exits_2(tmp_path):
    result = invoke("report", tmp_path / "nope")
    assert result.exit_code == 2
    assert "no such results folder" in result.output


def test_run_trains_stores_reports_and_resumes(write_config, tmp_path, use_fake_mnist):
    out = tmp_path / "res"
    config = write_config(seeds=[0, 1])
    first = invoke("run", config, "--out", out, "--engine", "keras")
    assert first.exit_code == 0, first.output
    folder = out / "tiny"
    records = [json.loads(p.read_text()) for p in sorted((folder / "runs").glob("*.json"))]
    assert len(records) == 4
    for record in records:
        assert record["status"] == "ok"
        assert [row["epoch"] for row in record["history"]] == [1, 2]
        assert record["spec"]["seed"] in (0, 1)
        assert record["versions"]["keras"].startswith("3.")
        assert record["data"] == {"source": "synthetic (tests)", "validation": "holdout",
                                  "n_train": 200, "n_val": 10_000, "n_test": 1_000}
    resolved = yaml.safe_load((folder / "experiment.yaml").read_text())
    assert resolved["epochs"] == 2 and resolved["metric"]["name"] == "val_loss"
    runs = pd.read_csv(folder / "runs.csv")
    assert len(runs) == 4 and set(runs["run_id"]) == {r["run_id"] for r in records}
    assert len(pd.read_csv(folder / "history.csv")) == 8
    assert len(pd.read_csv(folder / "summary.csv")) == 2
    assert list((folder / "plots").glob("*.png"))

    before = {p.name: p.read_bytes() for p in (folder / "runs").glob("*.json")}
    second = invoke("run", config, "--out", out, "--engine", "keras")
    assert second.exit_code == 0
    assert "4 already done, trained nothing" in second.output
    assert {p.name: p.read_bytes() for p in (folder / "runs").glob("*.json")} == before


def test_a_corrupt_record_stops_the_run_and_keeps_the_folder(write_config, tmp_path,
                                                             use_fake_mnist):
    out = tmp_path / "res"
    config = write_config()
    assert invoke("run", config, "--out", out, "--engine", "keras").exit_code == 0
    folder = out / "tiny"
    victim = next((folder / "runs").glob("*.json"))
    victim.write_text(victim.read_text()[:40])
    before = tree(folder)
    for command in (["run", config, "--out", out], ["report", folder]):
        result = invoke(*command)
        assert result.exit_code == 2
        assert victim.name in result.output and "corrupt run record" in result.output
        assert tree(folder) == before


def test_a_failed_run_is_recorded_and_exits_1(write_config, tmp_path, use_fake_mnist):
    # Keras's Ftrl rejects a positive learning_rate_power when it is built; the schema leaves
    # that check to Keras, so the run fails inside the engine, which must record it.
    config = write_config(grid={"optimizer": ["ftrl"], "learning_rate": [0.1],
                                "batch_size": [50]},
                          optimizers={"ftrl": {"learning_rate_power": 0.5}})
    result = invoke("run", config, "--out", tmp_path, "--engine", "keras")
    assert result.exit_code == 1, result.output
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "tiny" / "runs").glob("*.json")]
    assert record["status"] == "failed"
    assert "ValueError" in record["error"] and "Traceback" in record["traceback"]


def _bad_data_files(tmp_path: Path) -> list[tuple[Path, str]]:
    import numpy as np

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    wrong = tmp_path / "wrong.npz"
    zeros = {"x_train": np.zeros((60000, 28, 28), np.uint8), "y_train": np.zeros(60000, np.uint8),
             "x_test": np.zeros((10000, 28, 28), np.uint8), "y_test": np.zeros(10000, np.uint8)}
    np.savez(wrong, **zeros)
    return [(tmp_path / "missing.npz", "does not exist"), (truncated, "truncated.npz"),
            (wrong, "sha256")]


def test_bad_data_files_exit_2_and_leave_results_untouched(write_config, tmp_path,
                                                           use_fake_mnist, monkeypatch):
    out = tmp_path / "res"
    config = write_config()
    assert invoke("run", config, "--out", out, "--engine", "keras").exit_code == 0
    before = tree(out / "tiny")
    monkeypatch.undo()  # from here on, the real loader
    for path, message in _bad_data_files(tmp_path):
        result = invoke("run", write_config(epochs=3), "--out", out, "--data", path)
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1
        assert tree(out / "tiny") == before
