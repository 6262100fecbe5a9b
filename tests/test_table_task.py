"""The table task: CSV/Parquet read, split, encoded with training statistics only, and
refused with one line for each kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from rlnas.errors import DataError  # noqa: E402
from rlnas.table_task import TableEncoder  # noqa: E402
from rlnas.task_config import TaskConfig  # noqa: E402
from rlnas.tasks import load_task  # noqa: E402


def frame(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    size = rng.normal(50, 10, n)
    colour = np.array(["red", "green", "blue"])[np.arange(n) % 3]
    price = 3 * size + np.where(colour == "red", 20.0, 0.0) + rng.normal(0, 1, n)
    return pd.DataFrame({"size": size, "colour": colour, "price": price})


def table(tmp_path, df, name: str = "t.csv", **cfg) -> TaskConfig:
    path = tmp_path / name
    if name.endswith(".parquet"):
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False)
    return TaskConfig(name="table", path=str(path), **{"target": "price", **cfg})


def test_regression_table_is_standardised_with_training_statistics_only(tmp_path):
    df = frame()
    data = load_task(table(tmp_path, df))
    assert data.spec.task == "regression" and data.spec.input_kind == "flat"
    # size standardised, colour one-hot over blue, green, red (sorted)
    assert data.spec.input_shape == (4,) and data.y_train.shape == (140, 1)
    size = data.x_train[:, 0]
    assert abs(size.mean()) < 1e-5 and abs(size.std() - 1) < 1e-4  # training: exactly
    assert abs(data.x_val[:, 0].mean()) > 1e-3  # validation: with the training statistics
    assert set(np.unique(data.x_train[:, 1:])) == {0.0, 1.0}
    assert np.all(data.x_train[:, 1:].sum(axis=1) == 1)
    # rows stay rows: the target is recoverable from the encoded features
    assert np.corrcoef(data.x_train[:, 0], data.y_train[:, 0])[0, 1] > 0.9
    assert "kind auto: regression" in data.source and "no missing cells" in data.source


def test_encoder_fits_on_training_rows_and_maps_unknown_categories_to_zeros():
    train = pd.DataFrame({"a": [1.0, 3.0, np.nan, 5.0], "c": ["x", "y", None, "x"]})
    enc = TableEncoder.fit(train, max_categories=10, where="t")
    assert enc.numeric["a"] == (3.0, 3.0, pytest.approx(np.sqrt(2)))  # median fills the gap
    assert enc.categories["c"] == ["missing", "x", "y"]
    other = pd.DataFrame({"a": [3.0, np.nan], "c": ["z", None]})
    out = enc.transform(other)
    assert out.shape == (2, 4)
    assert out[:, 0].tolist() == [0.0, 0.0]  # 3.0 is the mean; NaN takes the median 3.0
    assert out[0, 1:].tolist() == [0.0, 0.0, 0.0]  # "z" was never seen in training
    assert out[1, 1:].tolist() == [1.0, 0.0, 0.0]  # missing is a category of its own


def test_missing_cells_are_filled_and_counted(tmp_path):
    df = frame()
    df.loc[[3, 7, 11], "size"] = np.nan
    df.loc[[5], "colour"] = None
    data = load_task(table(tmp_path, df))
    assert "missing cells filled: size 3, colour 1" in data.source
    assert np.isfinite(data.x_train).all() and np.isfinite(data.x_test).all()


def test_classification_target_is_inferred_and_parquet_reads_the_same(tmp_path):
    pytest.importorskip("pyarrow")
    df = frame().rename(columns={"colour": "label", "price": "cost"})
    cfg = table(tmp_path, df, target="label")
    data = load_task(cfg)
    assert data.spec.task == "classification" and data.class_names == ["blue", "green", "red"]
    assert "kind auto: classification" in data.source
    parquet = load_task(table(tmp_path, df, "t.parquet", target="label"))
    assert np.array_equal(parquet.x_train, data.x_train)
    assert np.array_equal(parquet.y_test, data.y_test)
    given = load_task(table(tmp_path, df, target="cost", kind="regression"))
    assert given.spec.task == "regression" and "kind regression (given)" in given.source


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda df: df, r"task.target: 'prise' is not a column of .*Did you mean `price`\?"),
        (lambda df: df.assign(price=7.5), r"every target is 7.5 \(200 examples\)"),
        (
            lambda df: df.assign(colour=[f"c{i}" for i in range(200)]),
            r"column 'colour' has 1\d\d categories .*task.max_categories=100",
        ),
        (lambda df: df.iloc[:0], r"empty table"),
    ],
)
def test_bad_tables_are_one_line(tmp_path, make, pattern):
    cfg = table(tmp_path, make(frame()))
    if "prise" in pattern:
        cfg = TaskConfig(name="table", path=cfg.path, target="prise")
    with pytest.raises(DataError, match=pattern) as info:
        load_task(cfg)
    assert "\n" not in str(info.value)


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"bad.parquet' cannot be read as a table"):
        load_task(TaskConfig(name="table", path=str(bad), target="y"))
    with pytest.raises(DataError, match=r"nowhere.csv' does not exist"):
        load_task(TaskConfig(name="table", path=str(tmp_path / "nowhere.csv"), target="y"))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty.csv' is an empty table"):
        load_task(TaskConfig(name="table", path=str(empty), target="y"))


def test_table_config_needs_a_target():
    from rlnas.errors import FieldError

    with pytest.raises(FieldError, match=r"`target`: expected the name of the column"):
        TaskConfig(name="table", path="t.csv")
    with pytest.raises(FieldError, match=r"`kind`: expected auto or classification for task"):
        TaskConfig(name="digits", kind="regression")
