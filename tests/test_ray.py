"""The Ray backend (a local Ray instance) and local worker processes give the in-process results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optbench.config import load_experiment
from optbench.runner import Backend, execute

from conftest import synthetic_mnist

ray = pytest.importorskip("ray", reason="pip install 'optbench[ray]'")


def histories(folder):
    out = {}
    for path in sorted((folder / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        out[record["run_id"]] = (record["status"], record["engine"],
                                 [[row[k] for k in ("loss", "val_loss", "val_accuracy")]
                                  for row in record["history"]])
    return out


def assert_same(a, b):
    assert a.keys() == b.keys() and len(a) == 4
    for run_id, (status, engine, rows) in a.items():
        other = b[run_id]
        assert (status, engine) == other[:2]
        # Worker processes run TensorFlow with 1 thread instead of 2: reductions may be
        # split differently, so equal up to float32 rounding rather than bit for bit.
        np.testing.assert_allclose(rows, other[2], rtol=1e-5, atol=1e-6)


@pytest.fixture
def small_mnist(monkeypatch):
    """Small enough that shipping it to each worker process costs little."""
    import optbench.data

    mnist = synthetic_mnist(n_train=10_200, n_test=200)
    monkeypatch.setattr(optbench.data, "load_mnist", lambda path=None, **kw: mnist)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "3"}})
    yield
    ray.shutdown()


@pytest.mark.parametrize("engine", ["keras", "stacked"])
def test_ray_and_worker_processes_match_in_process(engine, tmp_path, write_config,
                                                   small_mnist, local_ray):
    exp = load_experiment(write_config(seeds=[0, 1]))
    summaries = {}
    for name, backend in [("inproc", Backend("local", 1)), ("workers", Backend("local", 2)),
                          ("ray", Backend("ray", 2))]:
        summaries[name] = execute(exp, tmp_path / name, None, engine, False, backend=backend)
        assert summaries[name].exit_code == 0
        assert len(summaries[name].results) == 4
    base = histories(tmp_path / "inproc")
    assert_same(base, histories(tmp_path / "workers"))
    assert_same(base, histories(tmp_path / "ray"))
