"""The results folder: one JSON record per run, written atomically, and the resolved config.

Layout of ``results/<experiment>/``::

    experiment.yaml     the validated config, as resolved (defaults filled in)
    runs/<run_id>.json  one self-describing record per run: spec, status, history, versions
    *.csv, plots/, report.*  written by the reporter from the records alone
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

RECORD_FORMAT = "optbench.run/1"
DONE = frozenset({"ok", "diverged"})  # a failed run is retried on the next `optbench run`


class StoreError(Exception):
    """A results folder that cannot be read as optbench results."""


class LockedError(StoreError):
    """Another sweep is writing this results folder."""


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ResultsDir:
    """One experiment's results folder."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def runs_dir(self) -> Path:
        return self.path / "runs"

    def record_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def write_config(self, resolved: dict[str, Any]) -> None:
        text = yaml.safe_dump(resolved, sort_keys=False, default_flow_style=None)
        atomic_write(self.path / "experiment.yaml", text)

    def read_config(self) -> dict[str, Any] | None:
        path = self.path / "experiment.yaml"
        if not path.exists():
            return None
        try:
            data = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise StoreError(f"{path}: not a readable experiment config ({e.__class__.__name__}); "
                             "restore it or delete the results folder") from None
        return data if isinstance(data, dict) else None

    def write_record(self, record: dict[str, Any]) -> None:
        record = {"format": RECORD_FORMAT, **record}
        text = json.dumps(record, indent=1, allow_nan=True, default=_jsonable)
        atomic_write(self.record_path(record["run_id"]), text + "\n")

    def read_record(self, path: Path) -> dict[str, Any]:
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StoreError(
                f"{path}: corrupt run record ({e.__class__.__name__}: {e}); delete it and "
                "rerun `optbench run` to train that run again"
            ) from None
        _check_record(path, record)
        return record

    def records(self) -> list[dict[str, Any]]:
        """Every run record, sorted by run id. A corrupt or foreign file is a StoreError."""
        if not self.runs_dir.is_dir():
            return []
        return [self.read_record(p) for p in sorted(self.runs_dir.glob("*.json"))]

    def remove_partial_writes(self) -> None:
        """Delete temporary files left by a sweep killed mid-write (never read as results)."""
        for tmp in self.path.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)

    def done_ids(self) -> set[str]:
        return {r["run_id"] for r in self.records() if r["status"] in DONE}


def _check_record(path: Path, record: Any) -> None:
    hint = "delete it and rerun `optbench run` to train that run again"
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise StoreError(f"{path}: not an optbench run record (expected format "
                         f"{RECORD_FORMAT!r}); {hint}")
    missing = [k for k in ("run_id", "spec", "status", "history") if k not in record]
    if missing:
        raise StoreError(f"{path}: run record lacks {', '.join(missing)}; {hint}")
    if path.stem != record["run_id"]:
        raise StoreError(f"{path}: file name does not match its run_id {record['run_id']!r}; {hint}")


def _jsonable(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"cannot store {type(o).__name__} in a run record")


@contextlib.contextmanager
def sweep_lock(folder: Path, wait: bool = False,
               log: Callable[[str], None] = lambda s: None) -> Iterator[None]:
    """Hold the folder's lock for a whole sweep: one `optbench run` per results folder at a time.

    An OS file lock (flock) is released by the kernel when its process dies, so a lock left by
    a killed sweep never blocks: its file is found unlocked, reported, and taken over.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".lock"
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise LockedError(f"{folder} is in use by another `optbench run` ({holder}); "
                              "wait for it to finish or pass --wait") from None
        f.seek(0)
        stale = f.read().strip()
        if stale:
            log(f"optbench: cleared a stale lock left by a sweep that stopped ({stale})")
        f.seek(0)
        f.truncate()
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since {now}")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
