"""A table as a task: ``task: {name: table, path: data.csv, target: price}``.

The file is a ``.csv`` (read by pandas) or a ``.parquet`` file (pandas with pyarrow, the
``table`` extra). The ``target`` column is what children predict; every other column is a
feature. Rows without a target are dropped (and counted in the provenance line). Whether the
target is a class or a number: :mod:`rlnas.targets`. The rows are split first (as every task
is), then the features are encoded with what the training split alone shows:

* numeric columns: missing cells take the training median; then standardised with the
  training mean and standard deviation (a constant column becomes 0);
* other columns (text, booleans, categories): missing cells become the category
  ``"missing"``; at most ``task.max_categories`` categories in the training split. Each is
  one-hot encoded over those categories (a category met only in validation or test encodes
  as zeros) or embedded (``task.categorical``; ``auto``: above ``task.onehot_max``
  categories). An embedded column is one feature, the category's code: ``1 +`` its index
  among the sorted training categories, 0 for a category never seen in training. Embedded
  columns come last; :attr:`TaskSpec.embedded <rlnas.tasks.TaskSpec.embedded>` tells the
  children's builders (:mod:`rlnas.keras_build.embed`) to map each code to a learnt vector
  of :func:`embedding_width` numbers.

How many cells of each column were filled is logged and written into the provenance line.
Refused with one line naming the field and value, before any child trains: a file that
cannot be read, an empty table, a ``target`` that is not a column (the closest is named), a
target with one value, a non-numeric column with more categories than the cap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlnas.errors import DataError, did_you_mean
from rlnas.raw_data import RawData
from rlnas.targets import check_labels, encode_labels, regression_targets, task_kind
from rlnas.task_config import TaskConfig

MISSING = "missing"
"""The category a missing cell of a non-numeric column takes."""


def read_table(path: Path):
    """The file as a pandas DataFrame; one-line errors for what cannot be read."""
    import pandas as pd

    where = f"task.path: {str(path)!r}"
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise DataError(f"{where} {what}; expected a .csv or .parquet file.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".gz"):
            frame = pd.read_csv(path)
        else:
            raise DataError(f"{where} has suffix {suffix!r}; expected .csv or .parquet.")
    except DataError:
        raise
    except ImportError as exc:
        raise DataError(
            f"{where}: reading Parquet needs pyarrow ({exc}); pip install 'rlnas[table]'."
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{where} is an empty table; expected a header and rows.") from None
    except Exception as exc:  # pandas raises many kinds; one line naming the file
        text = " ".join(str(exc).split())[:160]
        raise DataError(
            f"{where} cannot be read as a table ({type(exc).__name__}: {text})."
        ) from None
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise DataError(
            f"{where} is an empty table ({frame.shape[0]} rows, {frame.shape[1]} columns); "
            "expected a header and rows."
        )
    return frame


def embedding_width(categories: int) -> int:
    """Width of a column's learnt vectors: ``round(1.6 * categories**0.56)``, at most 50 (the
    rule of thumb of fastai's tabular models, Howard & Gugger 2020)."""
    return max(1, min(50, round(1.6 * categories**0.56)))


@dataclass
class TableEncoder:
    """Imputation, standardisation and category vocabularies learnt from training rows."""

    numeric: dict[str, tuple[float, float, float]]
    """Column -> (median, mean, std) of the training rows."""
    categories: dict[str, list[str]]
    """Column -> its training categories, sorted (one-hot order; code - 1 when embedded)."""
    embedded: list[str] = field(default_factory=list)
    """The columns of ``categories`` that are embedded (encoded as codes, last)."""

    @classmethod
    def fit(
        cls,
        frame,
        max_categories: int,
        where: str,
        categorical: str = "onehot",
        onehot_max: int = 10,
    ) -> TableEncoder:
        numeric, categories, embedded = {}, {}, []
        for col in frame.columns:
            values = frame[col]
            if _is_numeric(values):
                v = values.astype("float64")
                median = float(v.median()) if v.notna().any() else 0.0
                filled = v.fillna(median)
                numeric[col] = (median, float(filled.mean()), float(filled.std(ddof=0)))
            else:
                seen = sorted(set(_as_text(values)))
                if len(seen) > max_categories:
                    raise DataError(
                        f"{where}: column {col!r} has {len(seen)} categories in the training "
                        f"split (e.g. {seen[0]!r}); expected at most task.max_categories="
                        f"{max_categories} (raise it, or drop or encode the column)."
                    )
                categories[col] = seen
                if categorical == "embedding" or (categorical == "auto" and len(seen) > onehot_max):
                    embedded.append(col)
        return cls(numeric, categories, embedded)

    def transform(self, frame) -> np.ndarray:
        """The encoded features of ``frame``'s rows, float32 ``(N, F)``: numeric and one-hot
        columns in the table's order, then the codes of the embedded columns."""
        parts, codes = [], []
        for col in frame.columns:
            if col in self.numeric:
                median, mean, std = self.numeric[col]
                v = frame[col].astype("float64").fillna(median).to_numpy()
                parts.append(((v - mean) / std if std > 0 else v * 0.0)[:, None])
            else:
                text = np.asarray(_as_text(frame[col]))
                vocab = np.asarray(self.categories[col])
                hot = (text[:, None] == vocab[None, :]).astype(np.float32)
                if col in self.embedded:  # 1 + the category's index; 0: never seen
                    codes.append((hot @ np.arange(1, len(vocab) + 1, dtype=np.float32))[:, None])
                else:
                    parts.append(hot)
        return np.concatenate(parts + codes, axis=1).astype(np.float32)

    @property
    def width(self) -> int:
        hot = sum(len(v) for c, v in self.categories.items() if c not in self.embedded)
        return len(self.numeric) + hot + len(self.embedded)

    def describe(self, columns) -> dict[str, Any]:
        """How each feature is made, in feature order (``columns``: the table's feature
        columns), as JSON data: what a user needs to encode new rows for a final model
        (``table_encoding.json`` of every final run)."""
        plain, embedded = [], []
        for col in columns:
            col = str(col)
            if col in self.numeric:
                median, mean, std = self.numeric[col]
                plain.append(
                    {"column": col, "kind": "numeric", "median": median, "mean": mean, "std": std}
                )
            elif col in self.embedded:
                embedded.append({"column": col, "kind": "code", "categories": self.categories[col]})
            else:
                plain.append({"column": col, "kind": "onehot", "categories": self.categories[col]})
        return {
            "features": plain + embedded,
            "rules": "numeric: (value, or the median if missing, - mean) / std (0 if std is 0); "
            "onehot: one feature per category, all 0 for an unknown one; code: 1 + the "
            f"category's index, 0 for an unknown one; a missing cell is the category {MISSING!r}",
        }

    @property
    def embedding(self) -> tuple[tuple[int, int], ...]:
        """(categories, vector width) of each embedded column, in feature order."""
        return tuple(
            (len(self.categories[c]), embedding_width(len(self.categories[c])))
            for c in self.embedded
        )


def _is_numeric(values) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _as_text(values) -> list[str]:
    return [MISSING if v is None or v != v else str(v) for v in values.tolist()]


def load_table(cfg: TaskConfig, split: Callable[..., Any], assemble: Callable[..., Any]):
    """Read, split and encode the table of ``cfg`` (see the module's docstring) into a
    :class:`~rlnas.tasks.TaskData`. ``split`` and ``assemble`` are
    :func:`rlnas.tasks.split_indices` and :func:`rlnas.tasks.assemble`, passed in because
    :mod:`rlnas.tasks` imports this module."""
    path = Path(cfg.path or "")
    frame = read_table(path)
    where = f"task.path {str(path)!r}"
    target = cfg.target or ""
    if target not in frame.columns:
        columns = [str(c) for c in frame.columns]
        raise DataError(
            f"task.target: {target!r} is not a column of {str(path)!r}; expected one of "
            + ", ".join(columns[:20])
            + ("..." if len(columns) > 20 else "")
            + "."
            + did_you_mean(target, columns)
        )
    kept = frame[frame[target].notna()].reset_index(drop=True)
    dropped = len(frame) - len(kept)
    if len(kept) == 0 or kept.shape[1] < 2:
        raise DataError(
            f"{where}: no rows with a target and a feature ({len(frame)} rows, "
            f"{frame.shape[1]} columns); expected a target column and at least one feature."
        )
    y_raw = kept[target].to_numpy()
    if y_raw.dtype == object:
        y_raw = np.asarray([str(v) for v in y_raw])
    features = kept.drop(columns=[target])
    kind, kind_note = task_kind(y_raw, cfg, where)
    if kind == "regression":
        y = regression_targets(y_raw, f"{where}: task.target {target!r}")
        names = None
    else:
        check_labels(y_raw, f"{where}: task.target {target!r}")
        y, _, names = encode_labels(
            RawData(np.zeros((len(y_raw), 1)), y_raw, None, None, None, ""),
            f"{where}: task.target {target!r}",
        )
    train, val, test = split(cfg, y, False, where, names)
    encoder = TableEncoder.fit(
        features.iloc[train], cfg.max_categories, where, cfg.categorical, cfg.onehot_max
    )
    filled = {c: int(n) for c, n in features.isna().sum().items() if n}
    fill_note = (
        "missing cells filled: " + ", ".join(f"{c} {n}" for c, n in filled.items())
        if filled
        else "no missing cells"
    )
    notes = (f"{where}: {kind_note}; {fill_note}",)
    source = (
        f"table {path} (target {target!r}, {len(kept)} rows"
        + (f", {dropped} without a target dropped" if dropped else "")
        + f", {len(encoder.numeric)} numeric and {len(encoder.categories)} categorical "
        f"columns{_embedded_note(encoder)} -> {encoder.width} features; {kind_note}; "
        f"{fill_note})"
    )
    x = encoder.transform(features)
    data = assemble(
        cfg, (x[train], y[train]), (x[val], y[val]), (x[test], y[test]), names, False, "flat",
        source, notes, embedded=encoder.embedding,
    )  # fmt: skip
    data.encoding = encoder.describe(features.columns)
    return data


def _embedded_note(encoder: TableEncoder) -> str:
    if not encoder.embedded:
        return ""
    shown = ", ".join(
        f"{c} {len(encoder.categories[c])} -> {w}"
        for c, (_, w) in zip(encoder.embedded, encoder.embedding)
    )
    return f" ({len(encoder.embedded)} embedded: {shown})"
