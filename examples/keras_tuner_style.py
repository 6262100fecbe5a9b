"""A KerasTuner script searched by rlnas's REINFORCE controller: only the oracle changes.

    pip install "rlnas[keras-tuner]"
    python examples/keras_tuner_style.py

The hypermodel and the tuner are plain KerasTuner; ``ReinforceOracle`` proposes the trials
(offline, scikit-learn's digits, well under a minute on two CPU cores). Add
``tracking_uri="sqlite:///runs/mlflow.db"`` to log the search to MLflow like any rlnas search,
or ``warm_start="controllers/NAME"`` to start from a saved controller.
"""

import keras
import keras_tuner
from sklearn.datasets import load_digits

from rlnas.keras_tuner import ReinforceOracle


def build(hp):
    model = keras.Sequential([keras.Input((64,))])
    for i in range(hp.Int("layers", 1, 2)):
        model.add(keras.layers.Dense(hp.Int(f"units_{i}", 32, 128, step=32), activation="relu"))
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(0.2))
    model.add(keras.layers.Dense(10, activation="softmax"))
    lr = hp.Float("lr", 1e-3, 1e-2, step=10, sampling="log")
    model.compile(
        keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


x, y = load_digits(return_X_y=True)
oracle = ReinforceOracle(objective="val_accuracy", max_trials=8, seed=0)
tuner = keras_tuner.Tuner(oracle=oracle, hypermodel=build, directory="runs/kt", overwrite=True)
tuner.search(x / 16, y, validation_split=0.25, epochs=3, verbose=0)
print("best:", tuner.get_best_hyperparameters()[0].values)
print("best val_accuracy:", tuner.oracle.get_best_trials(1)[0].score)
