"""Quick start: a small search on scikit-learn's digits from Python, tracked in MLflow.

    .venv/bin/python examples/quickstart.py

``rlnas.search`` runs what ``rlnas search --config ...`` runs (the same checks, the same
MLflow layout): here the built-in ``layers`` space on the ``digits`` task, settings given
as arguments or as whole config sections. The best child comes back with the weights it
was trained with in the search (``keep_weights``, on by default here); ``rlnas final``
(or ``result.best_model(retrain=True)``) trains it longer on training + validation.
"""

from __future__ import annotations

import rlnas


def main() -> None:
    result = rlnas.search(
        "layers",
        task="digits",
        epochs=3,
        children=8,
        experiment="quickstart",
        layers={"num_layers": 3},
        controller={"batch_size": 4},
    )
    best = result.best
    print(f"best child {best.number}: val_accuracy {best.reward:.4f}")
    print(f"MLflow parent run {result.run_id} in {result.tracking_uri}")
    print(result.trials[["number", "state", "reward"]])

    model = result.best_model()  # trained in the search: its weights were kept
    model.summary()
    model.save("best-child.keras")
    print("saved best-child.keras: the best child with the weights it earned its reward with")


if __name__ == "__main__":
    main()
