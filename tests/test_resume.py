"""Crash-safe resume and determinism: a sweep killed at any point and restarted ends with exactly
the runs, and the numbers, of an uninterrupted sweep. Uses the real MNIST file (small subset)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REAL_MNIST

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not REAL_MNIST.exists(), reason=f"needs {REAL_MNIST}")]

CONFIG = {"name": "crash", "data": {"train_size": 300, "validation": "test"}, "epochs": 2,
          "seeds": [0, 1],
          "grid": {"optimizer": ["sgd", "adam"], "learning_rate": [0.05], "batch_size": [30]}}


def start(config: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "optbench", "run", str(config), "--out", str(out),
         "--data", str(REAL_MNIST), "--engine", "keras"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


def records(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (folder / "runs").glob("*.json")}


def numbers(folder: Path) -> dict[str, list]:
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    return {rid: [[row[k] for k in keys] for row in r["history"]]
            for rid, r in records(folder).items()}


def kill_after(config: Path, out: Path, n_records: int | None, seconds: float = 60) -> None:
    proc = start(config, out)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        done = len(list((out / "crash" / "runs").glob("*.json"))) if out.exists() else 0
        if n_records is None or done >= n_records:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    config = folder / "crash.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    proc = start(config, folder / "res")
    output = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, output
    return config, numbers(folder / "res" / "crash")


def test_reference_engine_is_bit_identical_across_sweeps(clean, tmp_path):
    config, expected = clean
    proc = start(config, tmp_path)
    assert proc.wait(timeout=300) == 0
    assert numbers(tmp_path / "crash") == expected
    assert all(r["deterministic"] for r in records(tmp_path / "crash").values())


def test_killed_sweeps_resume_to_exactly_the_clean_result(clean, tmp_path):
    config, expected = clean
    # Killed while starting up, after the first finished run, and after three of four.
    kill_after(config, tmp_path, None, seconds=2.0)
    kill_after(config, tmp_path, 1)
    kill_after(config, tmp_path, 3)
    proc = start(config, tmp_path)
    output = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 0, output
    folder = tmp_path / "crash"
    assert numbers(folder) == expected
    assert len(records(folder)) == len(expected)
    assert not [p for p in (folder / "runs").iterdir() if p.suffix != ".json"]


def test_a_second_sweep_on_a_busy_folder_is_refused(clean, tmp_path):
    config, _ = clean
    first = start(config, tmp_path)
    lock = tmp_path / "crash" / ".lock"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (lock.exists() and lock.read_text()):
        time.sleep(0.05)
    second = start(config, tmp_path)
    output = second.communicate(timeout=120)[0].decode()
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert second.returncode == 2, output
    assert "is in use by another `optbench run` (pid" in output and "--wait" in output
    # The killed sweep's lock is stale: the next sweep takes it over and finishes.
    third = start(config, tmp_path)
    output = third.communicate(timeout=300)[0].decode()
    assert third.returncode == 0, output
    assert "cleared a stale lock" in output
