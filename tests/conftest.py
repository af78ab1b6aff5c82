"""Shared fixtures: a small learnable stand-in for MNIST and a writer for tiny configs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
REAL_MNIST = REPO.parent / "shared" / "data" / "mnist.npz"


def synthetic_mnist(n_train: int = 60_000, n_test: int = 1_000, seed: int = 0):
    """MNIST-shaped data that a linear model can learn: a noisy prototype per class."""
    from optbench.data import Mnist

    rng = np.random.default_rng(seed)
    prototypes = rng.random((10, 784), dtype=np.float32)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, n)
        x = prototypes[y] * 0.5 + rng.random((n, 784), dtype=np.float32) * 0.5
        return x, y.astype(np.int64)

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return Mnist(x_train, y_train, x_test, y_test, source="synthetic (tests)")


@pytest.fixture(scope="session")
def fake_mnist():
    return synthetic_mnist()


@pytest.fixture
def use_fake_mnist(monkeypatch, fake_mnist):
    """Make `optbench run` train on the synthetic data instead of loading MNIST."""
    import optbench.data

    monkeypatch.setattr(optbench.data, "load_mnist", lambda path=None, **kw: fake_mnist)
    return fake_mnist


@pytest.fixture
def write_config(tmp_path):
    """Write a tiny experiment config (overrides merged in) and return its path."""

    def write(name: str = "tiny", **overrides) -> Path:
        config = {
            "name": name,
            "data": {"train_size": 200, "validation": "holdout"},
            "epochs": 2,
            "seeds": [0],
            "grid": {"optimizer": ["sgd", "adam"], "learning_rate": [0.01],
                     "batch_size": [50]},
        }
        config.update(overrides)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    return write
