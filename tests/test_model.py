"""The reference model, the optimizer registry and the batch order."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from optbench.model import (OPTIMIZERS, PARAM_COUNT, build_model, epoch_order, is_stackable,
                            optimizer_class, optimizer_defaults)


def test_the_model_is_784_128_10_with_101770_parameters():
    model = build_model()
    assert model.count_params() == PARAM_COUNT == 101_770
    assert [w.shape for w in model.get_weights()] == [(784, 128), (128,), (128, 10), (10,)]
    assert model.layers[-1].activation.__name__ == "softmax"


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_registry_matches_the_installed_keras_signatures(name):
    """The static table (used without importing TF) must say what Keras itself says."""
    params = inspect.signature(optimizer_class(name).__init__).parameters
    for arg, default in optimizer_defaults(name).items():
        assert arg in params, f"{name} has no argument {arg}"
        assert params[arg].default == default, f"{name}.{arg} default differs"


def test_epoch_order_is_a_seeded_permutation():
    a = epoch_order(3, 0, 100)
    assert sorted(a) == list(range(100))
    assert np.array_equal(a, epoch_order(3, 0, 100))
    assert not np.array_equal(a, epoch_order(3, 1, 100))
    assert not np.array_equal(a, epoch_order(4, 0, 100))


def test_stackability():
    assert is_stackable("adam", {})
    assert not is_stackable("lamb", {})
    assert not is_stackable("sgd", {"clipnorm": 1.0})
    assert is_stackable("sgd", {"clipvalue": 1.0})
