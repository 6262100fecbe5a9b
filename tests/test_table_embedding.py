"""Embedded categorical columns of a table: encoded as codes, embedded inside the child by
Keras preprocessing layers, and the same through search, ``rlnas final`` and the saved
model."""

from __future__ import annotations

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
keras = pytest.importorskip("keras")
mlflow = pytest.importorskip("mlflow")

import rlnas  # noqa: E402
from rlnas.config import Config  # noqa: E402
from rlnas.table_task import embedding_width  # noqa: E402
from rlnas.task_config import TaskConfig  # noqa: E402
from rlnas.tasks import load_task  # noqa: E402

CITIES = 40


def write_csv(folder, n: int = 240, seed: int = 0) -> str:
    """Price = size plus a per-city offset (40 cities: high cardinality) and a colour."""
    rng = np.random.default_rng(seed)
    city = rng.integers(0, CITIES, n)
    size = rng.normal(0, 1, n)
    colour = np.array(["red", "green", "blue"])[np.arange(n) % 3]
    offset = np.linspace(-3, 3, CITIES)[city]
    frame = pd.DataFrame(
        {
            "size": size,
            "city": [f"city{c:02d}" for c in city],
            "colour": colour,
            "price": 2 * size + offset + rng.normal(0, 0.1, n),
        }
    )
    path = folder / "houses.csv"
    frame.to_csv(path, index=False)
    return str(path)


def task(path: str, **settings) -> TaskConfig:
    return TaskConfig(name="table", path=path, target="price", **settings)


def test_auto_embeds_the_high_cardinality_column_only(tmp_path):
    path = write_csv(tmp_path)
    data = load_task(task(path))
    # size, colour one-hot (3 <= onehot_max), then city's code last
    assert data.spec.input_shape == (5,)
    ((n, width),) = data.spec.embedded
    assert 30 <= n <= CITIES and width == embedding_width(n)
    codes = data.x_train[:, -1]
    assert set(np.unique(codes)) == set(range(1, n + 1))  # every training city has a code
    assert np.all(data.x_train[:, 1:4].sum(axis=1) == 1)  # colour stays one-hot
    assert "1 embedded: city" in data.source
    city = data.encoding["features"][-1]
    assert city["column"] == "city" and city["categories"] == sorted(city["categories"])
    # the spread that noise augmentation uses leaves the codes out
    assert data.spec.feature_std < 1.0
    onehot = load_task(task(path, categorical="onehot"))
    assert onehot.spec.embedded == () and onehot.spec.input_shape == (1 + 3 + n,)
    every = load_task(task(path, categorical="embedding"))
    assert every.spec.input_shape == (3,) and [c for c, _ in every.spec.embedded] == [n, 3]


def test_a_city_never_seen_in_training_is_code_zero(tmp_path):
    from rlnas.table_task import TableEncoder

    train = pd.DataFrame({"city": ["b", "a", "c", "a"], "x": [1.0, 2.0, 3.0, 4.0]})
    enc = TableEncoder.fit(train, 10, "t", categorical="embedding")
    out = enc.transform(pd.DataFrame({"city": ["a", "c", "zzz"], "x": [0.0, 0.0, 0.0]}))
    assert out[:, -1].tolist() == [1.0, 3.0, 0.0]
    assert enc.embedding == ((3, embedding_width(3)),)


def test_the_child_embeds_codes_with_preprocessing_layers_and_saves(tmp_path):
    from rlnas.keras_build import build_model
    from rlnas.spaces.layers import LayersSpace
    from rlnas.strategies.random_search import RandomSearch

    data = load_task(task(write_csv(tmp_path)))
    space = LayersSpace(Config().layers, data.spec)
    model = build_model(space.blueprint(RandomSearch(space, seed=0).ask().architecture), data.spec)
    names = [layer.__class__.__name__ for layer in model.layers]
    assert "Discretization" in names and "Embedding" in names
    assert model.input_shape == (None, 5)
    x = data.x_val[:8].copy()
    before = model.predict(x, verbose=0)
    x[:, -1] = (x[:, -1] % data.spec.embedded[0][0]) + 1  # other cities
    assert not np.allclose(model.predict(x, verbose=0), before)  # the code matters
    x[:, -1] = [0, -5, 999, 1e9, 1, 2, 3, 4]  # unseen and out of range: no error
    assert np.isfinite(model.predict(x, verbose=0)).all()
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), 1e-5)


def build_mlp(d, spec):
    """A user's space: it sees the features after the embedding, flat."""
    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Dense(d.choice("units", [8, 16]), activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(spec.outputs)(x))


def test_a_user_space_is_wrapped_behind_the_embedding(tmp_path):
    from rlnas.spaces.user import UserSpace
    from rlnas.strategies.random_search import RandomSearch

    data = load_task(task(write_csv(tmp_path)))
    space = UserSpace(build_mlp, data.spec)
    space.check()
    ((n, width),) = data.spec.embedded
    assert space.spec.input_shape == (4 + width,) and space.spec.embedded == ()
    model = space.blueprint(RandomSearch(space, seed=0).ask().architecture).build()
    assert model.input_shape == (None, 5) and model.output_shape == (None, 1)
    assert np.isfinite(model.predict(data.x_val[:4], verbose=0)).all()


@pytest.mark.slow
def test_search_final_and_the_registered_model_take_the_codes(tmp_path):
    from rlnas.tracking.models import download_model

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    path = write_csv(tmp_path)
    result = rlnas.search(
        task={"name": "table", "path": path, "target": "price"},
        strategy="random",
        children=2,
        epochs=1,
        tracking_uri=uri,
        progress=False,
        layers={"num_layers": 1, "operations": ["identity"], "augmentations": ["none"]},
    )
    assert result.config.task.categorical == "auto" and result.best is not None
    kept = result.best_model()
    names = [layer.name for layer in kept.layers]
    assert "table_embed_0" in names
    summary = rlnas.final(result.run_id, epochs=1, top_k=1, tracking_uri=uri)
    run_id = summary["models"][0]["run_id"]
    data = load_task(task(path))
    with __import__("tempfile").TemporaryDirectory() as tmp:
        saved = keras.saving.load_model(
            download_model(mlflow.MlflowClient(uri), run_id, tmp), safe_mode=True
        )
    assert saved.input_shape == (None, 5)
    encoding = mlflow.artifacts.load_dict(
        f"{mlflow.MlflowClient(uri).get_run(run_id).info.artifact_uri}/table_encoding.json"
    )
    kinds = [(f["column"], f["kind"]) for f in encoding["features"]]
    assert kinds == [("size", "numeric"), ("colour", "onehot"), ("city", "code")]
    assert len(encoding["features"][2]["categories"]) == data.spec.embedded[0][0]
    assert any(layer.__class__.__name__ == "Embedding" for layer in saved.layers)
    pred = saved.predict(data.x_test, verbose=0)
    assert summary["models"][0]["test_mae"] == pytest.approx(
        float(np.abs(pred - data.y_test).mean()), rel=1e-3
    )
