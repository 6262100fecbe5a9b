"""A regression MLP searched on a CSV table: scikit-learn's diabetes data, offline.

    .venv/bin/python examples/regression_csv.py

Writes ``load_diabetes`` (442 rows, 10 numeric features and the ``target`` column) to a CSV
in a temporary folder, then runs the search of ``configs/diabetes_csv.yaml`` on it: a small
`layers` space of dense layers on the table's standardised columns, each child rewarded with
its negative validation mean absolute error. The same search from the shell:
``rlnas search -c configs/diabetes_csv.yaml --set task.path=diabetes.csv``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import rlnas

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "diabetes_csv.yaml"


def write_diabetes(folder: Path) -> Path:
    """scikit-learn's diabetes table as a CSV file (features and the ``target`` column)."""
    from sklearn.datasets import load_diabetes

    path = folder / "diabetes.csv"
    load_diabetes(as_frame=True).frame.to_csv(path, index=False)
    return path


def main(**overrides) -> float:
    """Search the table; ``overrides``: settings as ``rlnas.search`` takes them."""
    with tempfile.TemporaryDirectory() as tmp:
        csv = write_diabetes(Path(tmp))
        task = {"name": "table", "path": str(csv), "target": "target"}
        result = rlnas.search(config=CONFIG, task=task, **overrides)
    best = result.best
    mae = best.metrics["val_mae"]
    print(
        f"best child {best.number}: validation MAE {mae:.1f}, reward {best.reward:.2f}, "
        f"{int(best.metrics['params'])} parameters"
    )
    print("decisions:", dict(best.architecture))
    print(f"MLflow parent run {result.run_id}")
    return mae


if __name__ == "__main__":
    main()
