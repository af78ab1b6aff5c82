"""The `optbench` command: thin click commands over the library.

Exit codes: 0 every run fine, 1 some run failed, 2 bad usage, config, data or results folder,
130 interrupted (what finished is kept).
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

import click

from .config import ConfigError, RunSpec, expand, load_experiment

ENGINES = ("auto", "stacked", "keras")


class UserError(click.ClickException):
    """A one-line problem with what the user gave us; exit code 2."""

    exit_code = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="optbench")
def cli() -> None:
    """Benchmark Keras optimizers on the 784-128-10 MNIST recipe."""


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_root", type=click.Path(file_okay=False, path_type=Path),
              default=Path("results"), show_default=True,
              help="Results root; runs go to OUT/<experiment name>/.")
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="OPTBENCH_MNIST", help="mnist.npz to use (also $OPTBENCH_MNIST).")
@click.option("--engine", type=click.Choice(ENGINES), default="auto", show_default=True,
              help="stacked: train a group's runs together; keras: plain model.fit per run; "
                   "auto: stacked where the optimizer allows it.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes for independent units of work; with --backend ray, each "
                   "task declares cores/N CPUs [default: one per core, at most one per unit].")
@click.option("--backend", type=click.Choice(("local", "ray")), default="local",
              show_default=True, help="ray: run units as Ray tasks (pip install 'optbench[ray]').")
@click.option("--address", envvar="RAY_ADDRESS", default=None,
              help="Ray cluster to join (also $RAY_ADDRESS); default: start a local one.")
@click.option("--dry-run", is_flag=True, help="List the runs and exit; trains nothing.")
@click.option("--force", is_flag=True, help="Retrain runs that are already done.")
@click.option("--wait", is_flag=True,
              help="If another sweep is writing the same results folder, wait for it.")
@click.option("--max-runs", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Refuse configs that expand to more runs than this.")
def run(config: Path, out_root: Path, data_path: Path | None, engine: str, dry_run: bool,
        workers: int | None, backend: str, address: str | None, force: bool, wait: bool,
        max_runs: int) -> None:
    """Train every run of CONFIG that is not done yet, then write the report."""
    exp = _load(config)
    specs = expand(exp)
    if len(specs) > max_runs:
        raise UserError(f"{config}: the grid expands to {len(specs):,} runs, more than "
                        f"--max-runs {max_runs:,}; shrink the grid or raise --max-runs")
    if dry_run:
        _print_plan(specs)
        return
    from .runner import Backend, execute

    if backend == "ray":
        _require_ray()
    where = Backend(backend, workers, address)
    out = out_root / exp.name
    try:
        with _user_errors():
            summary = execute(exp, out, data_path, engine, force, wait, where)
    except KeyboardInterrupt:
        kept = len(list((out / "runs").glob("*.json"))) if (out / "runs").is_dir() else 0
        click.echo(f"\ninterrupted: {kept} finished run records kept in {out}; "
                   "run the same command again to continue", err=True)
        sys.exit(130)
    click.echo(summary.text)
    sys.exit(summary.exit_code)


@cli.command()
@click.argument("results_dir", type=click.Path(file_okay=False, path_type=Path))
def report(results_dir: Path) -> None:
    """Write CSVs, plots and report.html for RESULTS_DIR (no training)."""
    from .runner import write_report

    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: no such results folder; give the folder that "
                        "`optbench run` wrote, e.g. results/<experiment>")
    with _user_errors():
        for path in write_report(results_dir):
            click.echo(str(path))


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
def validate(config: Path) -> None:
    """Check CONFIG and say how many runs it expands to."""
    exp = _load(config)
    specs = expand(exp)
    points = len({s.point_id for s in specs})
    click.echo(f"{config}: ok, {len(specs)} runs ({points} grid points x {len(exp.seeds)} seeds)")


@cli.command()
def optimizers() -> None:
    """List the optimizers this Keras ships, with the arguments a config may set."""
    from .model import OPTIMIZERS, available_optimizers, is_stackable, optimizer_defaults

    installed = set(available_optimizers())
    for name, (cls, _) in OPTIMIZERS.items():
        if name not in installed:
            click.echo(f"{name:10s} (not in this Keras)")
            continue
        args = ", ".join(f"{k}={v}" for k, v in optimizer_defaults(name).items())
        stack = "stacked" if is_stackable(name, {}) else "keras only"
        click.echo(f"{name:10s} keras.optimizers.{cls} [{stack}]\n{'':10s} {args}")


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Library errors about the user's data, results or files become one line and exit 2."""
    from .data import DataError
    from .report import ReportError
    from .store import StoreError

    try:
        yield
    except (DataError, StoreError, ReportError) as e:
        raise UserError(str(e)) from None


def _require_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install 'optbench[ray]'") from None


def _load(config: Path):
    try:
        return load_experiment(config)
    except ConfigError as e:
        raise UserError(str(e)) from None


def _print_plan(specs: list[RunSpec]) -> None:
    for spec in specs:
        click.echo(spec.run_id)
    by_opt = Counter(s.optimizer for s in specs)
    detail = ", ".join(f"{k}: {v}" for k, v in by_opt.items())
    epochs = sum(s.epochs for s in specs)
    click.echo(f"{len(specs)} runs ({detail}), {epochs} epochs in all")


def main() -> None:
    cli(prog_name="optbench")
