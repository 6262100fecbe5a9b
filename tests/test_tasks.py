"""Tasks: offline loading, seeded stratified splits, and one-line errors for bad data."""

from __future__ import annotations

import gzip
import pickle
import random
from pathlib import Path

import numpy as np
import pytest

from rlnas import task_readers
from rlnas.config import TaskConfig, from_dict
from rlnas.errors import DataError
from rlnas.tasks import load_task, stratified_take


def npz(tmp_path: Path, name: str = "data.npz", **arrays) -> str:
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def balanced(n: int, classes: int, *shape: int, seed: int = 0):
    """Unique rows (row i holds i), labels cycling through the classes."""
    x = np.arange(n, dtype=np.float32).reshape(n, *([1] * len(shape)))
    x = np.broadcast_to(x, (n, *shape)).copy() if shape else x[:, None]
    return x, np.arange(n) % classes


# -- splits ---------------------------------------------------------------------------------
def test_digits_splits_70_15_15_stratified_and_seeded():
    data = load_task(TaskConfig(name="digits"))
    n = len(data.y_train) + len(data.y_val) + len(data.y_test)
    assert n == 1797
    assert len(data.y_test) == round(0.15 * 1797) == len(data.y_val)
    assert data.x_train.shape[1:] == (8, 8, 1) and data.x_train.dtype == np.float32
    assert data.x_train.min() >= 0.0 and data.x_train.max() <= 1.0
    assert data.spec.input_kind == "image" and data.spec.num_classes == 10
    assert not data.spec.flip  # a mirrored digit is not the same digit
    assert set(np.unique(data.y_train)) == set(range(10))
    # every class holds its share of each split (within one example)
    all_y = np.concatenate([data.y_train, data.y_val, data.y_test])
    share = np.bincount(all_y) / n
    for y in (data.y_val, data.y_test):
        assert np.all(np.abs(np.bincount(y, minlength=10) - share * len(y)) <= 1)
    again = load_task(TaskConfig(name="digits"))
    assert np.array_equal(again.x_val, data.x_val) and np.array_equal(again.y_test, data.y_test)
    other = load_task(TaskConfig(name="digits", split_seed=1))
    assert not np.array_equal(other.x_val, data.x_val)


def test_splits_are_disjoint_and_cover_everything(tmp_path):
    x, y = balanced(200, 4, 5)
    data = load_task(TaskConfig(name="npz", path=npz(tmp_path, x=x, y=y)))
    ids = [d[:, 0].astype(int) for d in (data.x_train, data.x_val, data.x_test)]
    assert sorted(np.concatenate(ids).tolist()) == list(range(200))
    assert (len(ids[0]), len(ids[1]), len(ids[2])) == (140, 30, 30)
    for part, labels in zip(ids, (data.y_train, data.y_val, data.y_test)):
        assert np.array_equal(labels, y[part])  # labels travel with their rows


def test_own_test_split_is_kept_and_validation_comes_from_training(tmp_path):
    x, y = balanced(100, 2, 3)
    xt, yt = balanced(10, 2, 3)
    data = load_task(TaskConfig(name="npz", path=npz(tmp_path, x=x, y=y, x_test=xt, y_test=yt)))
    assert np.array_equal(data.x_test, xt) and np.array_equal(data.y_test, yt)
    assert len(data.y_val) == 15 and len(data.y_train) == 85


def test_train_subset_is_stratified_and_exact(tmp_path):
    x, y = balanced(400, 4, 3)
    y[:100] = 0  # unbalanced: class 0 holds 175 of 400
    data = load_task(TaskConfig(name="npz", path=npz(tmp_path, x=x, y=y), train_subset=40))
    assert len(data.y_train) == 40
    full = load_task(TaskConfig(name="npz", path=npz(tmp_path, x=x, y=y)))
    expected = np.bincount(full.y_train) * 40 / len(full.y_train)
    assert np.all(np.abs(np.bincount(data.y_train) - expected) < 1)
    assert set(data.x_train[:, 0]) <= set(full.x_train[:, 0])
    assert np.array_equal(data.x_val, full.x_val)  # validation does not depend on the subset


def test_stratified_take_gives_exact_counts():
    y = np.array([0] * 7 + [1] * 2 + [2] * 1)
    picked, rest = stratified_take(y, 5, np.random.default_rng(0))
    assert len(picked) == 5 and len(rest) == 5
    assert sorted(np.concatenate([picked, rest]).tolist()) == list(range(10))


# -- the built-in data sets -----------------------------------------------------------------
def test_mnist1d_uses_its_own_test_split_is_cached_and_leaves_rngs_alone():
    task_readers._mnist1d_arrays.cache_clear()
    np_state, py_state = np.random.get_state(), random.getstate()
    data = load_task(TaskConfig(name="mnist1d"))
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert random.getstate() == py_state
    assert data.x_train.shape[1:] == (40, 1) and data.spec.input_kind == "sequence"
    assert len(data.y_test) == 1000 and len(data.y_train) + len(data.y_val) == 4000
    load_task(TaskConfig(name="mnist1d"))
    assert task_readers._mnist1d_arrays.cache_info().hits >= 1


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist is not installed",
)
def test_fashion_mnist_from_the_debian_package():
    data = load_task(TaskConfig(name="fashion_mnist", train_subset=1000))
    assert len(data.y_test) == 10_000 and len(data.y_val) == 9000
    assert data.x_train.shape == (1000, 28, 28, 1) and data.spec.flip
    assert data.class_names[9] == "Ankle boot" and "/usr/share/datasets" in data.source


def _idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_keras_cache_files_are_read_without_downloading(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(task_readers, "FASHION_DIRS", ())
    cache = tmp_path / "keras" / "datasets"
    rng = np.random.default_rng(0)
    img = lambda n, *s: rng.integers(0, 256, (n, *s), dtype=np.uint8)  # noqa: E731
    lab = lambda n: np.arange(n) % 10  # noqa: E731
    cache.mkdir(parents=True)
    np.savez(cache / "mnist.npz", x_train=img(60, 28, 28), y_train=lab(60),
             x_test=img(20, 28, 28), y_test=lab(20))  # fmt: skip
    (cache / "fashion-mnist").mkdir()
    for name, arr in zip(
        task_readers.FASHION_FILES, (img(60, 28, 28), lab(60), img(20, 28, 28), lab(20))
    ):
        _idx(cache / "fashion-mnist" / name, arr)
    cifar = cache / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(cifar / name, "wb") as f:
            pickle.dump({b"data": img(20, 3072), b"labels": list(lab(20))}, f)
    for name, shape, n_test in (
        ("mnist", (28, 28, 1), 20),
        ("fashion_mnist", (28, 28, 1), 20),
        ("cifar10", (32, 32, 3), 20),
    ):
        data = load_task(TaskConfig(name=name))
        assert data.x_train.shape[1:] == shape and len(data.y_test) == n_test, name
        assert data.x_train.max() <= 1.0 and str(cache) in data.source


@pytest.mark.parametrize("name", ["mnist", "cifar10", "fashion_mnist"])
def test_missing_keras_files_say_where_they_are_expected(name, tmp_path, monkeypatch):
    monkeypatch.setattr(task_readers, "keras_dataset_dirs", lambda: [tmp_path / "datasets"])
    monkeypatch.setattr(task_readers, "FASHION_DIRS", ())
    with pytest.raises(DataError, match=f"task {name}: files? not found.*{tmp_path}") as info:
        load_task(TaskConfig(name=name))
    assert "\n" not in str(info.value)


# -- the user's own data --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "kind"), [((6,), "flat"), ((12, 3), "sequence"), ((6, 6, 2), "image")]
)  # fmt: skip
def test_npz_rank_decides_the_input_kind(tmp_path, shape, kind):
    x = np.random.default_rng(0).normal(size=(60, *shape))
    data = load_task(TaskConfig(name="npz", path=npz(tmp_path, x=x, y=np.arange(60) % 3)))
    assert data.spec.input_kind == kind and data.spec.input_shape == shape
    assert f"input_kind auto: {'x'.join(map(str, shape))} read as {kind}" in data.notes[0]


def test_npz_of_28x28_examples_is_ambiguous_until_the_task_says(tmp_path):
    x = np.random.default_rng(0).normal(size=(60, 28, 28))
    path = npz(tmp_path, x=x, y=np.arange(60) % 3)
    with pytest.raises(DataError, match=r"\(60, 28, 28\) are ambiguous.*task.input_kind") as info:
        load_task(TaskConfig(name="npz", path=path))
    assert path in str(info.value) and "\n" not in str(info.value)
    image = load_task(TaskConfig(name="npz", path=path, input_kind="image"))
    assert image.spec.input_kind == "image" and image.spec.input_shape == (28, 28, 1)
    seq = load_task(TaskConfig(name="npz", path=path, input_kind="sequence"))
    assert seq.spec.input_kind == "sequence" and seq.spec.input_shape == (28, 28)
    flat = load_task(TaskConfig(name="npz", path=path, input_kind="flat"))
    assert flat.spec.input_shape == (784,)
    assert np.array_equal(flat.x_train, image.x_train.reshape(len(image.x_train), -1))


def test_input_kind_that_does_not_fit_the_rank_is_refused(tmp_path):
    path = npz(tmp_path, x=np.zeros((60, 6), np.float32), y=np.arange(60) % 3)
    with pytest.raises(DataError, match=r"cannot be read as image inputs.*expected 3-D or 4-D"):
        load_task(TaskConfig(name="npz", path=path, input_kind="image"))


def test_mirror_is_the_tasks_to_say(tmp_path):
    assert load_task(TaskConfig(name="digits", mirror=True)).spec.flip
    path = npz(tmp_path, x=np.zeros((60, 4, 4, 1), np.float32), y=np.arange(60) % 3)
    assert not load_task(TaskConfig(name="npz", path=path)).spec.flip
    flat = npz(tmp_path, "flat.npz", x=np.zeros((60, 6), np.float32), y=np.arange(60) % 3)
    with pytest.raises(DataError, match=r"task.mirror: true needs image inputs"):
        load_task(TaskConfig(name="npz", path=flat, mirror=True))


def test_npz_fractional_targets_are_regressed_with_random_splits(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.25
    data = load_task(TaskConfig(name="npz", path=npz(tmp_path, x=x, y=y)))
    assert data.spec.task == "regression" and data.spec.outputs == 1
    assert data.num_classes == 0 and data.class_names is None
    assert data.y_train.shape == (70, 1) and data.y_train.dtype == np.float32
    assert (len(data.y_val), len(data.y_test)) == (15, 15)
    assert data.spec.target_mean == pytest.approx((float(data.y_train.mean()),))
    assert "kind auto: regression (fractional numbers" in data.notes[1]
    # the rows kept their targets through the split
    assert np.allclose(data.x_val @ np.array([1.0, -2.0, 0.5]) + 0.25, data.y_val[:, 0], atol=1e-5)
    again = load_task(TaskConfig(name="npz", path=npz(tmp_path, x=x, y=y)))
    assert np.array_equal(again.y_test, data.y_test)
    as_classes = TaskConfig(name="npz", path=npz(tmp_path, x=x, y=y), kind="classification")
    with pytest.raises(DataError, match=r"is not a whole number.*task.kind: regression"):
        load_task(as_classes)
    constant = npz(tmp_path, "c.npz", x=x, y=np.full(100, 2.5))
    with pytest.raises(DataError, match=r"every target is 2.5 \(100 examples\); expected at least"):
        load_task(TaskConfig(name="npz", path=constant, kind="regression"))


def test_many_integer_values_are_regressed_unless_the_task_says_classes(tmp_path):
    x = np.random.default_rng(0).normal(size=(900, 3)).astype(np.float32)
    y = np.arange(900) % 150  # 150 distinct integers > max_classes 100
    path = npz(tmp_path, x=x, y=y)
    assert load_task(TaskConfig(name="npz", path=path)).spec.task == "regression"
    few = load_task(TaskConfig(name="npz", path=path, max_classes=200))
    assert few.spec.task == "classification" and few.num_classes == 150


def test_npz_string_labels_become_classes_and_uint8_is_scaled(tmp_path):
    x = np.full((40, 4, 4, 1), 255, dtype=np.uint8)
    y = np.array(["cat", "dog"] * 20)
    data = load_task(TaskConfig(name="npz", path=npz(tmp_path, x=x, y=y)))
    assert data.class_names == ["cat", "dog"] and data.x_train.max() == 1.0
    assert data.y_train.dtype == np.int32 and set(data.y_train) == {0, 1}


def test_image_folder_loads_resized_images(tmp_path):
    from PIL import Image

    for c, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / c).mkdir()
        for i in range(10):
            Image.new("RGB", (20 + i, 16), colour).save(tmp_path / c / f"{i}.png")
    data = load_task(TaskConfig(name="image_folder", path=str(tmp_path), image_size=(12, 10)))
    assert data.x_train.shape[1:] == (12, 10, 3) and data.class_names == ["blue", "red"]
    assert not data.spec.flip  # an image folder is not assumed mirror-safe
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 20
    red = data.x_train[data.y_train == 1]
    assert np.allclose(red[..., 0], 1.0) and np.allclose(red[..., 2], 0.0)


# -- bad data -------------------------------------------------------------------------------
def _bad(tmp_path, **arrays) -> TaskConfig:
    return TaskConfig(name="npz", path=npz(tmp_path, **arrays))


@pytest.mark.parametrize(
    ("arrays", "pattern"),
    [
        ({"x": np.zeros((10, 3)), "y": np.arange(9) % 2},
         r"features have 10 rows but labels have 9; expected one label per row"),
        ({"x": np.where(np.eye(12, 3) > 0, np.nan, 0.0), "y": np.arange(12) % 2},
         r"features hold 3 NaN/inf values \(first in row 0\); expected finite numbers"),
        ({"x": np.full((12, 3), np.inf), "y": np.arange(12) % 2}, r"36 NaN/inf values"),
        ({"x": np.zeros((12, 3)), "y": np.ones(12)},
         r"npz \(training data\): every label is 1\.0 \(12 examples\); expected at least 2"),
        ({"y": np.arange(12) % 2}, r"has no array `x` \(it has \['y'\]\); expected arrays x and y"),
        ({"x": np.zeros((12, 3))}, r"has no array `y`"),
        ({"x": np.zeros(12), "y": np.arange(12) % 2}, r"`x` in .* has shape \(12,\); expected 2-D"),
        ({"x": np.zeros((12, 3)), "y": np.arange(12) % 2, "x_test": np.zeros((2, 3))},
         r"only one of x_test and y_test"),
        ({"x": np.zeros((12, 3)), "y": np.arange(12) % 2, "x_test": np.zeros((2, 3)),
          "y_test": np.array([0, 7])}, r"y_test: label 7 never occurs in the training labels"),
        ({"x": np.zeros((12, 3)), "y": np.arange(12) % 2, "x_test": np.zeros((2, 4)),
          "y_test": np.array([0, 1])}, r"x_test: examples of shape \(4,\) differ from x's \(3,\)"),
        ({"x": np.zeros((3, 3)), "y": np.arange(3) % 2}, r"npz: 3 examples are too few to split"),
    ],
)  # fmt: skip
def test_bad_npz_data_is_one_line_naming_field_and_value(tmp_path, arrays, pattern):
    with pytest.raises(DataError, match=pattern) as info:
        load_task(_bad(tmp_path, **arrays))
    assert "\n" not in str(info.value)


def test_missing_npz_file(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(DataError, match=f"task.path: file '{missing}' does not exist"):
        load_task(TaskConfig(name="npz", path=str(missing)))


def test_image_folder_without_images(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=f"image folder '{tmp_path}' holds no images"):
        load_task(TaskConfig(name="image_folder", path=str(tmp_path)))
    with pytest.raises(DataError, match="folder .* does not exist"):
        load_task(TaskConfig(name="image_folder", path=str(tmp_path / "missing")))


def test_task_config_is_strict():
    with pytest.raises(Exception, match="task.name"):
        from_dict(TaskConfig, {"name": "digitz"}, "task")


# -- bad data: every file a user gives, one line naming it ---------------------------------
GOOD_X, GOOD_Y = np.zeros((40, 3)), np.arange(40) % 2


@pytest.mark.parametrize(
    ("arrays", "pattern"),
    [
        ({"x": np.zeros((40, 0)), "y": GOOD_Y},
         r"examples of shape \(0,\) hold no values; expected at least one feature"),
        ({"x": np.zeros((40, 3, 0)), "y": GOOD_Y}, r"hold no values"),
        ({"x": np.zeros((0, 3)), "y": np.zeros(0, int)}, r"no examples \(0 rows\)"),
        ({"x": GOOD_X, "y": np.where(np.arange(40) == 5, np.nan, GOOD_Y)},
         r"labels hold 1 NaN/inf values \(first in row 5\); expected a class label"),
        ({"x": GOOD_X, "y": np.where(np.arange(40) == 7, np.inf, GOOD_Y)}, r"labels hold 1 NaN"),
        # fractions are regression targets (task.kind auto); a constant one is refused
        ({"x": GOOD_X, "y": GOOD_Y * 0 + 0.5}, r"every target is 0\.5 \(\d+ examples\)"),
        ({"x": GOOD_X, "y": np.eye(2)[GOOD_Y]},
         r"labels must be 1-D .* got \(40, 2\); one-hot labels: save y\.argmax\(axis=1\)"),
        ({"x": GOOD_X, "y": GOOD_Y.astype(complex)}, r"labels of dtype complex128 are not class"),
        ({"x": np.full((40, 3), "a"), "y": GOOD_Y},
         r"features must be real numbers, got dtype <U1"),
        ({"x": np.full((40, 3), 1e300), "y": GOOD_Y},
         r"120 NaN/inf values .* within float32's range"),
        ({"x": GOOD_X, "y": np.array([b"\xff", b"a"] * 20)},
         r"labels are bytes that are not UTF-8"),
        ({"x": GOOD_X, "y": GOOD_Y, "class_names": np.array("ab")},
         r"`class_names` has shape \(\) .* expected a 1-D array of names"),
        ({"x_train": GOOD_X, "y_train": GOOD_Y}, r"has no array `x` .* Rename `x_train`\?"),
        ({"x": GOOD_X, "y": GOOD_Y, "x_test": np.zeros((4, 3)), "y_test": np.array(["a"] * 4)},
         r"y_test holds <U1 labels but y holds int64"),
        ({"x": GOOD_X, "y": np.r_[np.zeros(39, int), 1]},
         r"class '1' has 1 in the training split \(1 in all\); expected at least 2 examples"),
    ],
)  # fmt: skip
def test_bad_npz_contents_name_the_file(tmp_path, arrays, pattern):
    cfg = _bad(tmp_path, **arrays)
    with pytest.raises(DataError, match=pattern) as info:
        load_task(cfg)
    assert "\n" not in str(info.value) and cfg.path in str(info.value)


def test_bool_features_and_labels_and_integer_valued_floats_are_accepted(tmp_path):
    x = np.arange(120).reshape(40, 3) % 3 == 0
    data = load_task(_bad(tmp_path, x=x, y=(np.arange(40) % 2).astype(float)))
    assert data.x_train.dtype == np.float32 and set(np.unique(data.x_train)) == {0.0, 1.0}
    assert data.class_names == ["0.0", "1.0"]
    data = load_task(_bad(tmp_path, x=x, y=np.arange(40) % 2 == 0))
    assert data.class_names == ["False", "True"]
    data = load_task(_bad(tmp_path, x=x, y=np.array([b"cat", b"dog"] * 20)))
    assert data.class_names == ["cat", "dog"]


def _npy(path: Path) -> None:
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


@pytest.mark.parametrize(
    ("write", "pattern"),
    [
        (_npy, r"is a \.npy file \(one array\)"),
        (lambda p: p.write_bytes(pickle.dumps({"x": 1})), r"is a pickle, not an \.npz file"),
        (lambda p: p.write_bytes(b"\x00\xffgarbage" * 10), r"is not a zip archive .* not an \.npz"),
        (lambda p: p.write_bytes(b""), r"is not a zip archive \(starts b''\)"),
        (lambda p: p.write_bytes(b"PK\x03\x04broken"), r"is not a readable \.npz file \(BadZip"),
        (lambda p: np.savez(p, x=GOOD_X, y=np.array([{"a": 1}] * 40, dtype=object)),
         r"array `y` holds Python objects, which rlnas does not unpickle \(allow_pickle=False\)"),
    ],
)  # fmt: skip
def test_unreadable_npz_files_are_one_line(tmp_path, write, pattern):
    path = tmp_path / "data.npz"
    write(path)
    with pytest.raises(DataError, match=pattern) as info:
        load_task(TaskConfig(name="npz", path=str(path)))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_truncated_npz_member_is_one_line(tmp_path):
    path = Path(
        npz(tmp_path, x=np.random.default_rng(0).normal(size=(400, 50)), y=np.arange(400) % 2)
    )
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"data\.npz'.*(not a readable|unreadable)") as info:
        load_task(TaskConfig(name="npz", path=str(path)))
    assert "\n" not in str(info.value)


def test_npz_path_that_is_a_folder(tmp_path):
    with pytest.raises(DataError, match=r"file '.*' is a folder; expected an \.npz file"):
        load_task(TaskConfig(name="npz", path=str(tmp_path)))


# -- image folders --------------------------------------------------------------------------
def image_tree(root: Path, classes=("a", "b"), n: int = 10, size=(12, 10), fmt="png") -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.{fmt}")
    return root


def test_image_folder_reads_what_keras_reads(tmp_path):
    import keras

    root = image_tree(tmp_path / "img", n=6)
    (root / "b" / "deeper").mkdir()
    (root / "b" / "0.png").rename(root / "b" / "deeper" / "0.png")
    from rlnas.image_folder import read_image_folder

    raw = read_image_folder(TaskConfig(name="image_folder", path=str(root), image_size=(9, 11)))
    ds = keras.utils.image_dataset_from_directory(
        root, image_size=(9, 11), shuffle=False, batch_size=100, verbose=False
    )
    xk, yk = next(iter(ds))
    assert np.array_equal(raw.x, np.asarray(xk) / np.float32(255))
    assert np.array_equal(raw.y, np.asarray(yk)) and raw.class_names == ds.class_names


@pytest.mark.parametrize(
    ("damage", "pattern"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:60]), r"image '.*a/3\.png' cannot be decoded"),
        (lambda p: p.write_bytes(b"not an image at all"), r"image '.*a/3\.png' cannot be decoded"),
        (lambda p: p.write_bytes(b""), r"image '.*a/3\.png' cannot be decoded"),
    ],
)
def test_corrupt_image_names_the_image(tmp_path, damage, pattern):
    root = image_tree(tmp_path / "img")
    damage(root / "a" / "3.png")
    with pytest.raises(DataError, match=pattern) as info:
        load_task(TaskConfig(name="image_folder", path=str(root)))
    assert "\n" not in str(info.value)


def test_truncated_jpeg_names_the_image(tmp_path):
    root = image_tree(tmp_path / "img", fmt="jpg", size=(40, 40))
    path = root / "b" / "5.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"image '.*b/5\.jpg' cannot be decoded") as info:
        load_task(TaskConfig(name="image_folder", path=str(root)))
    assert "\n" not in str(info.value)


def test_image_folder_layouts_are_checked(tmp_path):
    from PIL import Image

    def load(root):
        return load_task(TaskConfig(name="image_folder", path=str(root)))

    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(4):
        Image.new("RGB", (10, 10)).save(flat / f"{i}.png")
    with pytest.raises(DataError, match=r"4 images at its top level .* one sub-folder of images"):
        load(flat)
    image_tree(flat)  # class folders beside the loose images: still refused
    with pytest.raises(DataError, match=r"4 images at its top level \(e\.g\. '0\.png'\)"):
        load(flat)
    root = image_tree(tmp_path / "empty_class")
    (root / "c").mkdir()
    with pytest.raises(DataError, match=r"class folder '.*empty_class/c' holds no images"):
        load(root)
    with pytest.raises(DataError, match=r"a single class folder \('a'\); expected at least 2"):
        load(image_tree(tmp_path / "single", classes=("a",)))
    with pytest.raises(DataError, match=r"image '.*tiny/a/0\.png' is 1x1 pixels; expected at"):
        load(image_tree(tmp_path / "tiny", size=(1, 1)))
    with pytest.raises(DataError, match=r"class '[ab]' has 1 in the training split \(2 in all\)"):
        load(image_tree(tmp_path / "few", n=2))  # 4 images: each split gets one


def test_cifar10_refuses_a_cache_other_users_can_write(tmp_path, monkeypatch):
    """A pickle planted in a world-writable folder is never unpickled."""
    home = tmp_path / "shared"
    cifar = home / "datasets" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    marker = tmp_path / "pwned"

    class Planted:
        def __reduce__(self):
            return (Path.touch, (marker,))

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (cifar / name).write_bytes(pickle.dumps(Planted()))
    monkeypatch.setenv("KERAS_HOME", str(home))
    home.chmod(0o777)  # a folder anyone can write to, like the system's temporary folder
    with pytest.raises(DataError, match=r"task cifar10: '.*shared' is writable by other users"):
        load_task(TaskConfig(name="cifar10"))
    home.chmod(0o755)
    (cifar / "data_batch_3").chmod(0o666)
    with pytest.raises(DataError, match=r"data_batch_3' is writable by other users \(mode 666\)"):
        load_task(TaskConfig(name="cifar10"))
    (cifar / "data_batch_3").chmod(0o644)  # private now, yet still no code runs
    with pytest.raises(DataError, match=r"data_batch_1' is not a CIFAR-10 batch .* not allowed"):
        load_task(TaskConfig(name="cifar10"))
    assert not marker.exists()


def test_keras_cache_is_the_users_own(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert task_readers.keras_dataset_dirs() == [tmp_path / ".keras" / "datasets"]


def test_damaged_keras_cache_files_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(task_readers, "FASHION_DIRS", ())
    cache = tmp_path / "datasets"
    (cache / "fashion-mnist").mkdir(parents=True)
    (cache / "mnist.npz").write_bytes(b"PK\x03\x04 cut short")
    for name in task_readers.FASHION_FILES:
        (cache / "fashion-mnist" / name).write_bytes(b"not gzip")
    with pytest.raises(DataError, match=r"task mnist: '.*mnist\.npz' is not a readable \.npz"):
        load_task(TaskConfig(name="mnist"))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz' is not a gzipped IDX"):
        load_task(TaskConfig(name="fashion_mnist"))


def test_grey_image_folder_of_one_size_keeps_one_channel_and_its_size(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(8):
            pixels = rng.integers(0, 256, (14, 10), dtype=np.uint8)
            mode = "L" if i % 2 else "RGB"  # grey stored as RGB is grey too
            img = Image.fromarray(pixels)
            (img if mode == "L" else img.convert("RGB")).save(tmp_path / c / f"{i}.png")
    data = load_task(TaskConfig(name="image_folder", path=str(tmp_path)))
    assert data.spec.input_shape == (14, 10, 1)
    assert "at their own size 14x10, 1 channel (grey)" in data.source
    Image.new("RGB", (20, 20), (255, 0, 0)).save(tmp_path / "a" / "colour.png")
    mixed = load_task(TaskConfig(name="image_folder", path=str(tmp_path)))
    assert mixed.spec.input_shape == (64, 64, 3)
    assert "of different sizes, resized to 64x64, 3 channels" in mixed.source
