"""Property: whatever YAML-shaped data arrives, the loader accepts it or raises ConfigError."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optbench.config import ConfigError, expand, load_experiment, parse_experiment

KEYS = ["name", "description", "data", "epochs", "seeds", "grid", "optimizers", "metric",
        "target", "train_size", "validation", "optimizer", "learning_rate", "batch_size",
        "sgd", "adam", "momentum", "nesterov", "beta_1", "rho", "full", "epsilon"]

scalars = (st.none() | st.booleans() | st.integers(-10, 10**6)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=8) | st.sampled_from(KEYS))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner,
                                                                max_size=5),
    max_leaves=20,
)
near_valid = st.fixed_dictionaries(
    {"name": st.sampled_from(["ok", "a/b", "..", ""]) | values,
     "epochs": st.integers(-1, 3) | values,
     "seeds": st.lists(st.integers(-1, 3), max_size=3) | values,
     "grid": st.fixed_dictionaries({
         "optimizer": st.lists(st.sampled_from(["sgd", "adam", "lion", "nope"]), max_size=3)
         | values,
         "learning_rate": st.lists(st.floats(-1, 1) | values, max_size=3),
         "batch_size": st.lists(st.sampled_from([1, 0, -5, "full", "half", True]), max_size=3),
     })},
    optional={"optimizers": st.dictionaries(st.sampled_from(["sgd", "adam", "rmsprop"]),
                                            st.dictionaries(st.sampled_from(KEYS), values,
                                                            max_size=3), max_size=2),
              "data": values, "metric": values, "target": values},
)


def _accepts_or_config_error(data) -> None:
    try:
        exp = parse_experiment(data, "fuzz.yaml")
    except ConfigError as e:
        assert str(e).startswith("fuzz.yaml") and "\n" not in str(e)
        return
    assert all(s.learning_rate > 0 for s in expand(exp))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_valid)
def test_generated_configs_are_accepted_or_rejected_cleanly(data):
    _accepts_or_config_error(data)


@settings(max_examples=200, deadline=None)
@given(values)
def test_arbitrary_yaml_values_are_accepted_or_rejected_cleanly(data):
    _accepts_or_config_error(data)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_files_are_accepted_or_rejected_cleanly(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    path.write_text(text)
    try:
        load_experiment(path)
    except ConfigError:
        pass


def test_a_yaml_round_trip_of_a_valid_config_is_valid():
    data = {"name": "ok", "epochs": 1, "seeds": [0],
            "grid": {"optimizer": ["sgd"], "learning_rate": [0.1], "batch_size": ["full"]}}
    assert parse_experiment(yaml.safe_load(yaml.safe_dump(data))).name == "ok"
