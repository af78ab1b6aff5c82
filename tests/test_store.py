"""The results store: atomic records, round trip, and clear errors on corrupt folders."""

from __future__ import annotations

import json

import pytest

from optbench.store import RECORD_FORMAT, ResultsDir, StoreError, atomic_write


def record(run_id="r1", status="ok"):
    return {"run_id": run_id, "spec": {"seed": 0}, "status": status,
            "history": [{"epoch": 1, "loss": float("nan")}]}


def test_record_round_trip(tmp_path):
    store = ResultsDir(tmp_path)
    store.write_record(record())
    (back,) = store.records()
    assert back["format"] == RECORD_FORMAT
    assert back["run_id"] == "r1"
    assert back["history"][0]["loss"] != back["history"][0]["loss"]  # NaN survives


def test_done_ids_exclude_failed_runs_so_they_are_retried(tmp_path):
    store = ResultsDir(tmp_path)
    store.write_record(record("a", "ok"))
    store.write_record(record("b", "diverged"))
    store.write_record(record("c", "failed"))
    assert store.done_ids() == {"a", "b"}


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write(tmp_path / "x.json", "1")
    atomic_write(tmp_path / "x.json", "2")
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert (tmp_path / "x.json").read_text() == "2"


def test_a_crash_while_writing_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    atomic_write(target, "old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", boom)
    with pytest.raises(OSError):
        atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.parametrize("content,message", [
    ('{"run_id": "bad", "sta', "corrupt run record"),
    ("", "corrupt run record"),
    ('{"hello": 1}', "not an optbench run record"),
    (json.dumps({"format": RECORD_FORMAT, "run_id": "bad"}), "lacks spec, status, history"),
    (json.dumps({**record("other"), "format": RECORD_FORMAT}), "does not match its run_id"),
])
def test_corrupt_or_foreign_records_are_named(tmp_path, content, message):
    store = ResultsDir(tmp_path)
    store.runs_dir.mkdir()
    (store.runs_dir / "bad.json").write_text(content)
    with pytest.raises(StoreError) as e:
        store.records()
    assert "bad.json" in str(e.value) and message in str(e.value)
    assert "delete it and rerun" in str(e.value)


def test_default_workers_one_per_core_at_most_one_per_unit(monkeypatch):
    from optbench.runner import default_workers

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert [default_workers(n) for n in (0, 1, 2, 5)] == [1, 1, 2, 2]


def test_units_are_planned_longest_first():
    from optbench.config import RunSpec
    from optbench.parallel import plan_units

    specs = [RunSpec("sgd", 0.1, b, 0, 1, (), n) for b in (128, 1, 20) for n in (1000, 5000)]
    units = plan_units("stacked", specs)
    assert [(u[0].batch_size, u[0].train_size) for u in units][:2] == [(1, 5000), (1, 1000)]
