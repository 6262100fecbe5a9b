"""Property-based tests of the data contract: any file a user gives either loads as data that
keeps the documented rules (:mod:`rlnas.tasks`), or stops with an rlnas error of one line
that names the file, never another exception.

Fast by default (a few dozen examples each, for CI); ``RLNAS_HYPOTHESIS_PROFILE=long`` runs
many more. A few bad files also go through the real CLI: exit 2, one stderr line, no run.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rlnas.config import TaskConfig
from rlnas.errors import RlnasError
from rlnas.tasks import MIN_TRAIN_PER_CLASS, TaskData, load_task

LONG = os.environ.get("RLNAS_HYPOTHESIS_PROFILE") == "long"
SETTINGS = settings(
    max_examples=600 if LONG else 30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=not LONG,  # CI sees the same cases on every run
)
FEW = settings(SETTINGS, max_examples=200 if LONG else 12)
DTYPES = ["float32", "float64", "float16", "int8", "uint8", "int64", "bool", "complex64", "<U2"]
LABEL_KINDS = ["int", "float", "fraction", "nan", "str", "bytes", "bool", "onehot", "column"]


def assert_contract(cfg: TaskConfig) -> TaskData | None:
    """Load ``cfg``: the documented rules hold, or one rlnas error line names the file."""
    try:
        data = load_task(cfg)
    except RlnasError as exc:
        message = str(exc)
        event(f"refused: {message.rsplit(': ', 1)[-1][:30]}")
        assert "\n" not in message and message.strip() == message, message
        assert cfg.path in message, message
        return None
    event("accepted")
    if data.spec.task == "regression":  # fractional labels are regression targets (task.kind)
        event("regression")
        for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val)):
            assert x.dtype == np.float32 and np.isfinite(x).all() and len(x) == len(y) > 0
            assert y.dtype == np.float32 and y.ndim == 2 and np.isfinite(y).all()
        return data
    k = data.num_classes
    assert k >= 2 and len(data.class_names) == k
    for x, y in (
        (data.x_train, data.y_train),
        (data.x_val, data.y_val),
        (data.x_test, data.y_test),
    ):
        assert x.dtype == np.float32 and np.isfinite(x).all() and len(x) == len(y) > 0
        assert x.shape[1:] == data.spec.input_shape and x[0].size > 0
        assert y.dtype == np.int32 and y.min() >= 0 and y.max() < k
    assert np.bincount(data.y_train, minlength=k).min() >= MIN_TRAIN_PER_CLASS
    assert (
        data.spec.input_kind == {1: "flat", 2: "sequence", 3: "image"}[len(data.spec.input_shape)]
    )
    return data


# -- npz files ------------------------------------------------------------------------------
def labels(kind: str, n: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    y = np.arange(n) % max(classes, 1)
    rng.shuffle(y)
    if kind == "float":
        return y.astype(float)
    if kind == "fraction":
        return y + 0.5
    if kind == "nan":
        out = y.astype(float)
        out[: min(n, 1)] = np.nan
        return out
    if kind == "str":
        return np.array([f"c{v}" for v in y], dtype=str)
    if kind == "bytes":
        return np.array([bytes([0xFF if v == 0 else 0x61 + v]) for v in y], dtype="S1")
    if kind == "bool":
        return y % 2 == 0
    if kind == "onehot":
        return np.eye(max(classes, 1))[y]
    if kind == "column":
        return y[:, None]
    return y


@st.composite
def npz_arrays(draw) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n = draw(st.sampled_from([0, 1, 3, 8, 20, 60, 60, 60]))
    shape = draw(
        st.lists(st.integers(0, 4), min_size=0, max_size=4) | st.sampled_from([[3], [4, 2]])
    )
    dtype = draw(st.sampled_from(DTYPES + ["float32"] * 4))
    with np.errstate(all="ignore"):  # 1e40 overflows the smaller dtypes: on purpose
        x = rng.normal(size=(n, *shape)) * draw(st.sampled_from([1.0, 1.0, 300.0, 1e40]))
        x = x.astype(dtype)
    if dtype.startswith("float") and x.size and draw(st.integers(0, 3)) == 0:
        x.flat[rng.integers(0, x.size)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    kind = draw(st.sampled_from(LABEL_KINDS + ["int"] * 6))
    y = labels(kind, n + draw(st.sampled_from([0] * 6 + [-1, 1])), draw(st.integers(1, 4)), rng)
    arrays = {"x": x, "y": y}
    if draw(st.integers(0, 3)) == 0:
        nt = draw(st.sampled_from([0, 2, 10]))
        arrays["x_test"] = rng.normal(size=(nt, *draw(st.sampled_from([shape, [3]])))).astype(dtype)
        arrays["y_test"] = labels(draw(st.sampled_from(LABEL_KINDS)), nt, 2, rng)
    if draw(st.integers(0, 3)) == 0:
        arrays["class_names"] = draw(
            st.sampled_from([np.array(["a", "b"]), np.array("ab"), np.array([b"\xfe", b"b"])])
        )
    for key in draw(st.sampled_from([[]] * 9 + [["x"], ["y"]])):
        arrays[key + "_train"] = arrays.pop(key)  # a misnamed key
    return arrays


@SETTINGS
@given(
    arrays=npz_arrays(),
    damage=st.sampled_from([None] * 4 + ["truncate", "flip"]),
    cut=st.floats(0, 1),
)
def test_any_npz_loads_by_the_rules_or_fails_in_one_line(arrays, damage, cut):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, **arrays)
        raw = bytearray(path.read_bytes())
        if damage == "truncate":
            path.write_bytes(raw[: int(cut * len(raw))])
        elif damage == "flip":
            i = int(cut * (len(raw) - 1))
            raw[i] ^= 0xFF
            path.write_bytes(bytes(raw))
        assert_contract(TaskConfig(name="npz", path=str(path)))


@st.composite
def valid_npz_arrays(draw) -> dict[str, np.ndarray]:
    """Data that keeps every rule: 10 or more examples per class, finite features."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    k = draw(st.integers(2, 4))
    n = k * draw(st.integers(10, 20))
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    dtype = draw(st.sampled_from(["float32", "float64", "float16", "int8", "uint8", "bool"]))
    x = (rng.normal(size=(n, *shape)) * 50).astype(dtype)
    kind = draw(st.sampled_from(["int", "float", "str", "bytes", "column"] + ["bool"] * (k == 2)))
    y = labels(kind, n, k, rng)
    return {"x": x, "y": np.char.replace(y, b"\xff", b"z") if kind == "bytes" else y}


@SETTINGS
@given(arrays=valid_npz_arrays())
def test_valid_npz_always_loads(arrays):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, **arrays)
        data = assert_contract(TaskConfig(name="npz", path=str(path)))
    assert data is not None, "valid data was refused"
    y = arrays["y"].reshape(-1)
    y = np.char.decode(y, "utf-8") if y.dtype.kind == "S" else y
    assert data.class_names == [str(c) for c in np.unique(y)]
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == len(y)


# -- image folders --------------------------------------------------------------------------
@st.composite
def image_folders(draw) -> dict:
    return {
        "classes": draw(st.sampled_from([0, 1, 2, 2, 3])),
        "per_class": draw(st.sampled_from([0, 1, 3, 8, 8, 8])),
        "size": draw(st.sampled_from([(1, 1), (7, 9), (8, 8), (12, 10), (12, 10)])),
        "mode": draw(st.sampled_from(["L", "RGB", "RGBA", "P"])),
        "fmt": draw(st.sampled_from(["png", "jpg", "gif", "bmp"])),
        "loose": draw(st.sampled_from([0, 0, 0, 2])),
        "damage": draw(st.sampled_from([None] * 5 + ["truncate", "garbage", "empty"])),
        "seed": draw(st.integers(0, 2**16)),
    }


def write_folder(root: Path, spec: dict) -> None:
    from PIL import Image

    rng = np.random.default_rng(spec["seed"])
    fmt, mode = spec["fmt"], spec["mode"]
    mode = "RGB" if fmt == "jpg" and mode in ("RGBA", "P") else mode

    def image(path: Path) -> None:
        w, h = spec["size"]
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).convert(mode).save(path)

    written = []
    for c in range(spec["classes"]):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(spec["per_class"]):
            written.append(root / f"class{c}" / f"{i}.{fmt}")
            image(written[-1])
    for i in range(spec["loose"]):
        image(root / f"loose{i}.{fmt}")
    if written and spec["damage"]:
        victim = written[rng.integers(0, len(written))]
        data = victim.read_bytes()
        damaged = {"truncate": data[: len(data) // 3], "garbage": b"\x00junk" * 9, "empty": b""}
        victim.write_bytes(damaged[spec["damage"]])


@FEW
@given(spec=image_folders())
def test_any_image_folder_loads_by_the_rules_or_fails_in_one_line(spec):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        write_folder(root, spec)
        cfg = TaskConfig(name="image_folder", path=str(root), image_size=(8, 8))
        data = assert_contract(cfg)
        if data is not None:
            assert data.spec.input_shape == (8, 8, 3) and spec["loose"] == 0
            assert data.class_names == [f"class{c}" for c in range(spec["classes"])]


# -- through the real CLI -------------------------------------------------------------------
TF_NATIVE_LOG = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} )")
"""Lines TensorFlow's C++ runtime writes to stderr when it starts (absl logging before its
initialisation, CUDA probing), whatever TF_CPP_MIN_LOG_LEVEL says: not rlnas's output."""


def cli_case(root: Path, case: str) -> Path:
    if case == "missing":
        return root / "nowhere.npz"
    path = root / "data.npz"
    if case == "garbage":
        path.write_bytes(b"\x00\x01 definitely not a zip archive")
    elif case == "nan_labels":
        np.savez(path, x=np.zeros((40, 3)), y=np.r_[np.nan, np.arange(39) % 2])
    else:  # a corrupt image in an image folder
        spec = {"classes": 2, "per_class": 10, "size": (8, 8), "mode": "RGB", "fmt": "png"}
        write_folder(root / "images", {**spec, "loose": 0, "damage": "garbage", "seed": 0})
        path = root / "images"
    return path


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("garbage", "is not a zip archive"),
        ("nan_labels", "labels hold 1 NaN/inf values"),
        ("corrupt_image", "cannot be decoded"),
    ],
)
def test_cli_bad_data_file_exits_2_with_one_line_and_no_run(tmp_path, case, fragment):
    path = cli_case(tmp_path, case)
    task = "image_folder" if case == "corrupt_image" else "npz"
    config = tmp_path / "c.yaml"
    config.write_text(f"task: {{name: {task}, path: '{path}'}}\nsearch: {{children: 2}}\n")
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "rlnas", "search", "--config", str(config),
         "--set", f"tracking.uri=sqlite:///{db}", "--no-progress"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if not TF_NATIVE_LOG.match(line)]
    assert len(lines) == 1 and lines[0].startswith("rlnas: error: "), proc.stderr
    assert fragment in lines[0] and str(path) in lines[0]
    if db.exists():
        with sqlite3.connect(db) as con:
            tables = {r[0] for r in con.execute("select name from sqlite_master")}
            runs = con.execute("select count(*) from runs").fetchone()[0] if "runs" in tables else 0
        assert runs == 0
