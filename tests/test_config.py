"""Config loading, validation messages, grid expansion and run ids."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from optbench.config import ConfigError, RunSpec, expand, load_experiment, parse_experiment

BASE = {
    "name": "t",
    "epochs": 2,
    "seeds": [0, 1],
    "grid": {"optimizer": ["sgd", "adam"], "learning_rate": [0.1, 0.01],
             "batch_size": [20, "full"]},
}


def parse(**patch):
    data = copy.deepcopy(BASE)
    data.update(patch)
    return parse_experiment(data, "c.yaml")


def test_expansion_counts_cross_every_axis():
    assert len(expand(parse())) == 2 * 2 * 2 * 2


def test_per_optimizer_lists_join_that_optimizers_grid_only():
    exp = parse(optimizers={"sgd": {"momentum": [0.0, 0.9], "nesterov": True}})
    specs = expand(exp)
    assert sum(s.optimizer == "sgd" for s in specs) == 2 * 2 * 2 * 2
    assert sum(s.optimizer == "adam" for s in specs) == 2 * 2 * 2
    assert {s.args.get("momentum") for s in specs if s.optimizer == "sgd"} == {None, 0.9}
    assert all(s.args["nesterov"] is True for s in specs if s.optimizer == "sgd")


def test_per_optimizer_learning_rates_replace_the_grids():
    exp = parse(optimizers={"adam": {"learning_rate": [0.003]}})
    assert {s.learning_rate for s in expand(exp) if s.optimizer == "adam"} == {0.003}
    assert {s.learning_rate for s in expand(exp) if s.optimizer == "sgd"} == {0.1, 0.01}


def test_train_sizes_are_a_grid_axis():
    exp = parse(data={"train_size": [1000, None]})
    assert len(expand(exp)) == 2 * 16
    assert {s.train_size for s in expand(exp)} == {1000, None}


def test_scalars_are_accepted_where_lists_are_expected():
    exp = parse(seeds=3, grid={"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 20})
    assert [(s.optimizer, s.learning_rate, s.batch_size, s.seed) for s in expand(exp)] == [
        ("sgd", 0.1, 20, 3)]


def test_defaults():
    exp = parse()
    assert exp.data.validation == "holdout"
    assert exp.data.train_size == [None]
    assert (exp.metric.name, exp.metric.goal) == ("val_loss", "minimize")


def test_run_ids_are_stable_readable_and_distinct():
    specs = expand(parse())
    ids = [s.run_id for s in specs]
    assert len(set(ids)) == len(ids)
    assert ids == [s.run_id for s in expand(parse())]
    assert ids[0].startswith("sgd_lr0.1_bs20_s0_")
    # The id depends only on what the run computes, not on the experiment's name.
    assert expand(parse(name="other"))[0].run_id == ids[0]


def test_a_default_valued_argument_is_the_same_run_as_omitting_it():
    plain = expand(parse())[0]
    explicit = expand(parse(optimizers={"sgd": {"momentum": 0.0}}))[0]
    assert explicit.run_id == plain.run_id
    changed = expand(parse(optimizers={"sgd": {"momentum": 0.5}}))[0]
    assert changed.run_id != plain.run_id


def test_point_id_groups_seeds():
    specs = expand(parse())
    assert specs[0].point_id == specs[1].point_id
    assert specs[0].run_id != specs[1].run_id


def test_spec_round_trips_through_a_dict():
    spec = expand(parse(optimizers={"sgd": {"momentum": 0.9}}))[0]
    assert RunSpec.from_dict(spec.to_dict()) == spec


BAD = [
    ({"grid": {"optimizer": ["sgd"], "learning_rate": [0.1, 0.2, -0.1], "batch_size": [20]}},
     "grid.learning_rate[2]: must be > 0, got -0.1"),
    ({"grid": {"optimizer": ["sgd", "adamm"], "learning_rate": [0.1], "batch_size": [20]}},
     "grid.optimizer[1]: unknown optimizer 'adamm'; valid: sgd, adam"),
    ({"epoch": 3}, "epoch: unknown key; valid keys: name, description, data, epochs"),
    ({"data": {"train_sise": 3}}, "data.train_sise: unknown key; valid keys: train_size, "),
    ({"grid": {"optimizer": ["sgd"], "learning_rate": [0.1], "batch_size": [0]}},
     "grid.batch_size[0]: must be a positive integer or 'full', got 0"),
    ({"grid": {"optimizer": ["sgd"], "learning_rate": [0.1], "batch_size": ["half"]}},
     "grid.batch_size[0]: must be a positive integer or 'full', got 'half'"),
    ({"grid": {"optimizer": ["sgd"], "learning_rate": [0.1], "batch_size": [True]}},
     "grid.batch_size[0]: must be a positive integer or 'full', got True"),
    ({"grid": {"optimizer": ["sgd"], "learning_rate": [True], "batch_size": [20]}},
     "grid.learning_rate[0]: must be a number, got True"),
    ({"grid": {"optimizer": ["sgd"], "learning_rate": [float("nan")], "batch_size": [20]}},
     "grid.learning_rate[0]: must be a finite number"),
    ({"grid": {"optimizer": ["sgd"], "learning_rate": ["0.1"], "batch_size": [20]}},
     "grid.learning_rate[0]: must be a number, got '0.1'"),
    ({"grid": {"optimizer": [], "learning_rate": [0.1], "batch_size": [20]}},
     "grid.optimizer: must not be empty"),
    ({"grid": {"optimizer": ["sgd", "sgd"], "learning_rate": [0.1], "batch_size": [20]}},
     "grid.optimizer[1]: duplicate value 'sgd'"),
    ({"grid": {"optimizer": ["sgd"], "learning_rate": [0.1]}},
     "grid.batch_size: required key is missing"),
    ({"optimizers": {"sgd": {"beta_1": 0.9}}},
     "optimizers.sgd.beta_1: sgd takes no argument 'beta_1'; valid: learning_rate, "),
    ({"optimizers": {"sgd": {"momentum": [0.5, 1.5]}}},
     "optimizers.sgd.momentum[1]: must be in [0, 1], got 1.5"),
    ({"optimizers": {"sgd": {"nesterov": "yes"}}},
     "optimizers.sgd.nesterov: must be true or false, got 'yes'"),
    ({"optimizers": {"sgd": {"momentum": []}}}, "optimizers.sgd.momentum: an empty list"),
    ({"optimizers": {"sgd": {"learning_rate": [0.1, -1]}}},
     "optimizers.sgd.learning_rate[1]: must be a number > 0, got -1"),
    ({"optimizers": {"adam": {"epsilon": 0}}}, "optimizers.adam.epsilon: must be > 0, got 0"),
    ({"optimizers": {"rmsprop": {"rho": 0.5}}},
     "optimizers.rmsprop: 'rmsprop' is not in grid.optimizer"),
    ({"optimizers": {"sgd": 0.9}}, "optimizers.sgd: must be a dictionary"),
    ({"epochs": 0}, "epochs: must be >= 1, got 0"),
    ({"epochs": "3"}, "epochs: must be an integer, got '3'"),
    ({"epochs": 2.5}, "epochs: must be an integer, got 2.5"),
    ({"seeds": []}, "seeds: must not be empty"),
    ({"seeds": [1, 1]}, "seeds[1]: duplicate value 1"),
    ({"seeds": [-1]}, "seeds[0]: must be >= 0, got -1"),
    ({"name": "../x"}, "name: must be 1-64 letters, digits"),
    ({"name": "a/b"}, "name: must be 1-64 letters, digits"),
    ({"name": ""}, "name: must be 1-64 letters, digits"),
    ({"data": {"validation": "train"}}, "data.validation: must be 'holdout' or 'test', got 'train'"),
    ({"data": {"train_size": 0}}, "data.train_size[0]: must be > 0, got 0"),
    ({"metric": {"name": "foo"}}, "metric.name: must be 'val_loss', 'val_accuracy'"),
    ({"metric": {"goal": "max"}}, "metric.goal: must be 'minimize' or 'maximize', got 'max'"),
    ({"target": {"val_acc": 0.9}}, "target.val_acc"),
]


@pytest.mark.parametrize("patch,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_every_bad_value_is_named_by_its_path(patch, message):
    with pytest.raises(ConfigError) as e:
        parse(**patch)
    assert str(e.value).startswith("c.yaml: ")
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_top_level_must_be_a_mapping():
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_experiment([1, 2], "c.yaml")


@pytest.mark.parametrize("text,message", [
    ("name: [unclosed", "invalid YAML (line 1, column 16)"),
    ("!!python/object/apply:os.system ['echo pwned']", "invalid YAML"),
    ("", "top level must be a mapping"),
    ("name: t\nname: u\n", "invalid YAML (line 2, column 1): key 'name' appears twice"),
])
def test_yaml_problems_are_config_errors(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_experiment(path)
    assert str(e.value).startswith(str(path))
    if message:
        assert message in str(e.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_experiment(tmp_path / "nope.yaml")


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: t\nepochs: 1\nseeds: [0]\n"
                    "grid: {optimizer: [adam], learning_rate: [1e-3, 3E-4], batch_size: [20]}\n")
    assert load_experiment(path).grid.learning_rate == [1e-3, 3e-4]


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    assert len(expand(load_experiment(path))) > 0
