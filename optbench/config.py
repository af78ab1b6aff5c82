"""Experiment configs: YAML -> validated `Experiment` -> list of `RunSpec`s, each with a stable id.

Validation happens once, here, at load; every message names the path of the bad value, e.g.
``grid.learning_rate[2]: must be > 0, got -0.1``. Nothing in this module imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .model import OPTIMIZERS, optimizer_defaults

SPEC_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
METRICS = ("val_loss", "val_accuracy", "loss", "accuracy")
MAX_CONFIG_BYTES = 1_000_000


class ConfigError(Exception):
    """A config problem, already phrased for the user (path: what is wrong)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
BatchSize = int | Literal["full"]


def _as_list(v: Any) -> Any:
    return v if isinstance(v, list) else [v]


class DataSettings(_Strict):
    """`train_size`: use the first N training examples (null: all); a list makes it a grid axis."""

    train_size: Annotated[list[Annotated[int, Field(gt=0)] | None], Field(min_length=1)] = [None]
    validation: Literal["holdout", "test"] = "holdout"

    _sizes = field_validator("train_size", mode="before")(_as_list)

    @field_validator("train_size")
    @classmethod
    def _unique_sizes(cls, sizes: list[int | None]) -> list[int | None]:
        _no_duplicates(sizes)
        return sizes


class Grid(_Strict):
    optimizer: Annotated[list[str], Field(min_length=1)]
    learning_rate: Annotated[list[PositiveFloat], Field(min_length=1)]
    batch_size: Annotated[list[BatchSize], Field(min_length=1)]

    _lists = field_validator("optimizer", "learning_rate", mode="before")(_as_list)

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_sizes(cls, sizes: Any) -> list[Any]:
        sizes = _as_list(sizes)
        for i, b in enumerate(sizes):
            if b != "full" and (not isinstance(b, int) or isinstance(b, bool) or b <= 0):
                raise ValueError(f"[{i}] must be a positive integer or 'full', got {b!r}")
        return sizes

    @field_validator("optimizer")
    @classmethod
    def _known_optimizers(cls, names: list[str]) -> list[str]:
        for i, name in enumerate(names):
            if name not in OPTIMIZERS:
                raise ValueError(
                    f"[{i}] unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}"
                )
        _no_duplicates(names)
        return names

    @field_validator("batch_size")
    @classmethod
    def _unique_batch(cls, sizes: list[BatchSize]) -> list[BatchSize]:
        _no_duplicates(sizes)
        return sizes

    @field_validator("learning_rate")
    @classmethod
    def _unique_lr(cls, lrs: list[float]) -> list[float]:
        _no_duplicates(lrs)
        return lrs


class Metric(_Strict):
    name: Literal["val_loss", "val_accuracy", "loss", "accuracy"] = "val_loss"
    goal: Literal["minimize", "maximize"] = "minimize"


class Experiment(_Strict):
    name: str
    description: str = ""
    data: DataSettings = DataSettings()
    epochs: Annotated[int, Field(ge=1, le=10_000)]
    seeds: Annotated[list[Annotated[int, Field(ge=0, lt=2**31)]], Field(min_length=1)]
    grid: Grid
    optimizers: dict[str, dict[str, Any]] = {}
    metric: Metric = Metric()
    target: dict[Literal["val_accuracy", "val_loss", "accuracy", "loss"], float] = {}

    _seed_list = field_validator("seeds", mode="before")(_as_list)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not NAME_RE.match(name):
            raise ValueError(
                f"must be 1-64 letters, digits, '_', '.' or '-' (it names a results folder), "
                f"got {name!r}"
            )
        return name

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        _no_duplicates(seeds)
        return seeds

    @model_validator(mode="after")
    def _check_optimizer_settings(self) -> "Experiment":
        for opt, settings in self.optimizers.items():
            if opt not in self.grid.optimizer:
                raise _PathError(
                    f"optimizers.{opt}",
                    f"{opt!r} is not in grid.optimizer ({', '.join(self.grid.optimizer)}); "
                    "add it there or remove these settings",
                )
            for arg, value in settings.items():
                _check_arg(opt, arg, value)
        return self

    def settings_for(self, optimizer: str) -> dict[str, list[Any]]:
        """This optimizer's grid axes besides batch size: learning rates and its own arguments."""
        settings = {k: _as_list(v) for k, v in self.optimizers.get(optimizer, {}).items()}
        settings.setdefault("learning_rate", list(self.grid.learning_rate))
        return settings


class _PathError(ValueError):
    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path


_RANGES: dict[str, tuple[float, float, str]] = {
    "momentum": (0.0, 1.0, "in [0, 1]"),
    "beta_1": (0.0, 1.0, "in [0, 1)"),
    "beta_2": (0.0, 1.0, "in [0, 1)"),
    "adam_beta_1": (0.0, 1.0, "in [0, 1)"),
    "adam_beta_2": (0.0, 1.0, "in [0, 1)"),
    "rho": (0.0, 1.0, "in [0, 1)"),
}


def _check_arg(opt: str, arg: str, value: Any) -> None:
    path = f"optimizers.{opt}.{arg}"
    if arg == "learning_rate":
        values = _as_list(value)
        for i, v in enumerate(values):
            if not _is_number(v) or not math.isfinite(v) or v <= 0:
                raise _PathError(f"{path}[{i}]", f"must be a number > 0, got {v!r}")
        _no_duplicates(values, path)
        return
    defaults = optimizer_defaults(opt)
    if arg not in defaults:
        raise _PathError(
            path,
            f"{opt} takes no argument {arg!r}; valid: learning_rate, {', '.join(defaults)}",
        )
    values = _as_list(value)
    if not values:
        raise _PathError(path, "an empty list gives no runs; give at least one value")
    _no_duplicates(values, path)
    for i, v in enumerate(values):
        where = f"{path}[{i}]" if isinstance(value, list) else path
        _check_value(where, arg, v, defaults[arg])


def _check_value(where: str, arg: str, v: Any, default: Any) -> None:
    if isinstance(default, bool):
        if not isinstance(v, bool):
            raise _PathError(where, f"must be true or false, got {v!r}")
        return
    if v is None and default is None:
        return
    if not _is_number(v) or not math.isfinite(v):
        raise _PathError(where, f"must be a finite number, got {v!r}")
    if isinstance(default, int) and not isinstance(v, int):
        raise _PathError(where, f"must be an integer, got {v!r}")
    if arg in _RANGES:
        lo, hi, text = _RANGES[arg]
        closed = arg == "momentum"
        if not (lo <= v <= hi if closed else lo <= v < hi):
            raise _PathError(where, f"must be {text}, got {v!r}")
    elif (arg.startswith("epsilon") or arg.startswith("clip") or arg == "global_clipnorm") and v <= 0:
        raise _PathError(where, f"must be > 0, got {v!r}")
    elif arg.endswith("_strength") or "weight_decay" in arg or arg == "initial_accumulator_value":
        if v < 0:
            raise _PathError(where, f"must be >= 0, got {v!r}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _no_duplicates(values: list[Any], path: str | None = None) -> None:
    seen: set[str] = set()
    for i, v in enumerate(values):
        key = json.dumps(v)
        if key in seen:
            message = f"[{i}] duplicate value {v!r}; each value may appear once"
            if path is None:
                raise ValueError(message)
            raise _PathError(f"{path}[{i}]", f"duplicate value {v!r}; each value may appear once")
        seen.add(key)


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines what one run computes (and nothing else)."""

    optimizer: str
    learning_rate: float
    batch_size: int | str
    seed: int
    epochs: int
    optimizer_args: tuple[tuple[str, Any], ...] = ()
    train_size: int | None = None
    validation: str = "holdout"

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.optimizer_args)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["optimizer_args"] = self.args
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSpec":
        d = dict(d)
        d["optimizer_args"] = tuple(sorted(d.get("optimizer_args", {}).items()))
        return cls(**d)

    @property
    def point(self) -> dict[str, Any]:
        """The grid point: the spec without its seed."""
        d = self.to_dict()
        del d["seed"]
        return d

    @property
    def run_id(self) -> str:
        return f"{self.label}_s{self.seed}_{_digest(self.to_dict())}"

    @property
    def point_id(self) -> str:
        return f"{self.label}_{_digest(self.point)}"

    @property
    def label(self) -> str:
        extra = "".join(f"_{k}{_short(v)}" for k, v in self.optimizer_args)
        size = "" if self.train_size is None else f"_n{self.train_size}"
        return f"{self.optimizer}{extra}_lr{self.learning_rate:g}_bs{self.batch_size}{size}"


def _short(v: Any) -> str:
    return f"{v:g}" if _is_number(v) else str(v).lower()


def _digest(d: dict[str, Any]) -> str:
    text = json.dumps({"v": SPEC_VERSION, **d}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def expand(exp: Experiment) -> list[RunSpec]:
    """Every run of the experiment: optimizer x its settings x learning rate x batch size x seed."""
    specs = []
    for opt in exp.grid.optimizer:
        settings = exp.settings_for(opt)
        defaults = optimizer_defaults(opt)
        lrs = settings.pop("learning_rate")
        arg_names = sorted(settings)
        for combo in itertools.product(*(settings[a] for a in arg_names)):
            args = tuple((a, v) for a, v in zip(arg_names, combo) if v != defaults[a] or
                         type(v) is not type(defaults[a]))
            for size, lr, bs, seed in itertools.product(exp.data.train_size, lrs,
                                                        exp.grid.batch_size, exp.seeds):
                specs.append(RunSpec(
                    optimizer=opt, learning_rate=float(lr), batch_size=bs, seed=seed,
                    epochs=exp.epochs, optimizer_args=args, train_size=size,
                    validation=exp.data.validation,
                ))
    return specs


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float (YAML 1.1 wants `1.0e-3`) and refuses repeated keys."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=True) for k, _ in node.value]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", node.value[i][0].start_mark)
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_experiment(data: Any, source: str = "config") -> Experiment:
    """Validate already-parsed YAML data; raise ConfigError with one line per problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys "
                          f"(name, epochs, seeds, grid, ...), got {type(data).__name__}")
    try:
        return Experiment.model_validate(data)
    except ValidationError as e:
        lines = [_format_error(err) for err in e.errors()]
        raise ConfigError(f"{source}: " + "; ".join(dict.fromkeys(lines))) from None


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate one YAML config file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: config is {len(raw):,} bytes; the limit is {MAX_CONFIG_BYTES:,}")
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    return parse_experiment(data, str(path))


def _format_error(err: dict[str, Any]) -> str:
    loc = list(err["loc"])
    if err["type"] == "value_error":
        ctx_err = err.get("ctx", {}).get("error")
        if isinstance(ctx_err, _PathError):
            return f"{ctx_err.path}: {ctx_err}"
    msg = err["msg"].removeprefix("Value error, ")
    # Union branches and "function-after" wrappers add loc parts the user never wrote.
    loc = [p for p in loc if not (isinstance(p, str) and (p in {"int", "str", "float", "bool"}
                                                          or p.startswith(("literal[", "function-"))))]
    if msg.startswith("[") and "]" in msg:
        index, msg = msg[1:].split("]", 1)
        loc.append(int(index))
        msg = msg.strip()
    path = _path(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key; {_valid_keys(loc[:-1])}"
    if kind == "missing":
        return f"{path}: required key is missing"
    for old, new in (("Input should be ", "must be "), ("greater than or equal to", ">="),
                     ("less than or equal to", "<="), ("greater than", ">"), ("less than", "<"),
                     ("a valid integer", "an integer"), ("a valid ", "a "),
                     ("List should have at least 1 item after validation, not 0", "must not be empty")):
        msg = msg.replace(old, new)
    got = "" if kind.startswith("value_error") or "got" in msg else f", got {err['input']!r}"
    return f"{path}: {msg}{got}"


def _path(loc: list[Any]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _valid_keys(parent: list[Any]) -> str:
    model: Any = Experiment
    for p in parent:
        field = model.model_fields.get(p) if isinstance(p, str) else None
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return "check the spelling"
        model = ann
    return "valid keys: " + ", ".join(model.model_fields)
