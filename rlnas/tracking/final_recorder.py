"""What ``rlnas final`` and ``rlnas export`` write to MLflow.

A :class:`FinalRecorder` writes the runs of one ``rlnas final`` session: each final model
(and the ensemble) gets a run nested under the search (``mlflow.parentRunId``), tagged
``rlnas.kind=final`` (or ``final-ensemble``), ``rlnas.search_run_id`` and
``rlnas.final_session``, with its metrics, its report files, the data sets it used as run
inputs (training, validation, test: name, digest, shape, source) and its model, logged
once with MLflow's Keras 3 flavour (``mlflow.keras``: signature, input example, the test
metrics attached to the logged model) and registered in the Model Registry if asked: each
version tagged ``rank``, the alias ``champion`` on the rank-1 version (:meth:`crown`).
:func:`record_export` logs a TFLite export on its final run.

Like the search tracker it talks to the store through ``MlflowClient`` with explicit run
ids; only :meth:`FinalRecorder.finish` resumes the run in MLflow's fluent API, which
``mlflow.keras.log_model`` needs, and restores the global tracking URI afterwards.
"""

from __future__ import annotations

import contextlib
import os
import time
import types
import warnings
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlnas.errors import ChildFailure
from rlnas.tracking import conventions
from rlnas.tracking.models import MODEL_ID_TAG, SearchRecord
from rlnas.tracking.records import log_batch

CHAMPION = "champion"
"""The alias of the best registered version (rank 1: the best search reward)."""

if TYPE_CHECKING:
    from mlflow import MlflowClient


class FinalRecorder:
    """The runs of one ``rlnas final`` session of search ``search`` in store ``uri``."""

    def __init__(self, client: MlflowClient, uri: str, search: SearchRecord, session: str):
        self.client = client
        self.uri = uri
        self.search = search
        self.session = session

    def start(
        self,
        name: str,
        kind: str,
        *,
        tags: Mapping[str, str] = {},  # noqa: B006 (read only)
        params: Mapping[str, str] = {},  # noqa: B006
    ) -> str:
        """A run for one final model, nested under the search; returns its id."""
        all_tags = {
            "mlflow.parentRunId": self.search.run_id,
            "rlnas.kind": kind,
            "rlnas.search_run_id": self.search.run_id,
            "rlnas.final_session": self.session,
            "mlflow.source.name": "rlnas final",
            "mlflow.user": conventions.user(),
            **tags,
        }
        run = self.client.create_run(self.search.experiment_id, tags=all_tags, run_name=name)
        log_batch(self.client, run.info.run_id, params=params)
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        log_batch(self.client, run_id, metrics=metrics, step=step)

    def log_files(
        self, run_id: str, *, folders: Sequence[Path] = (), files: Sequence[Path] = ()
    ) -> None:
        """Each folder's files at the run's artifact root, then each file."""
        for folder in folders:
            self.client.log_artifacts(run_id, str(folder))
        for path in files:
            self.client.log_artifact(run_id, str(path))

    @contextlib.contextmanager
    def ends_if_it_fails(self, run_id: str) -> Iterator[None]:
        """End ``run_id`` FAILED (KILLED on Ctrl-C) when the block raises."""
        with ends_if_it_fails(self.client, run_id):
            yield

    def log_datasets(self, run_id: str, splits: Mapping[str, tuple[Any, Any]], source: str) -> None:
        """Log each split as a run input (:func:`log_datasets`)."""
        log_datasets(self.client, run_id, splits, source)

    def crown(self, name: str, version: str) -> None:
        """Point the alias ``champion`` of registered model ``name`` at ``version``."""
        self.client.set_registered_model_alias(name, CHAMPION, version)

    def finish(
        self,
        run_id: str,
        model: Any,
        example: Any,
        registered_name: str | None,
        *,
        metrics: Mapping[str, float] = {},  # noqa: B006 (read only)
        rank: int | None = None,
    ) -> tuple[str, str | None]:
        """Log ``model`` with the ``mlflow.keras`` flavour (``.keras`` format) with its
        signature and ``example`` as the input example, attach ``metrics`` (the test
        metrics) to the logged model, register it under ``registered_name`` if given (the
        version tagged ``rank``), and end the run FINISHED (a final run's last step).
        Returns the model URI and the registered version (``None`` if not registered)."""
        # lazy: MLflow's Keras flavour loads TensorFlow, which only a final run has loaded
        import keras
        from mlflow.models import Model, infer_signature

        # the signature needs shapes and dtypes only: no prediction (and no retracing) for it
        prediction = np.zeros((len(example), *model.outputs[0].shape[1:]), dtype=np.float32)
        requirements = [f"keras=={keras.__version__}", f"tensorflow=={version('tensorflow')}"]
        with _resumed(self.uri, run_id):
            info = Model.log(
                artifact_path=None,
                flavor=_keras_flavor(),
                model=model,
                name="model",
                signature=infer_signature(example, prediction),
                input_example=example,
                pip_requirements=requirements,  # skips inferring them in a subprocess (slow)
                registered_model_name=registered_name,
                await_registration_for=0,
            )
            self._attach(run_id, info.model_id, metrics)
        registered = getattr(info, "registered_model_version", None)
        number = None if registered is None else str(registered)
        if number is not None and registered_name and rank is not None:
            self.client.set_model_version_tag(registered_name, number, "rank", str(rank))
        return info.model_uri, number

    def _attach(self, run_id: str, model_id: str, metrics: Mapping[str, float]) -> None:
        """The run's tag naming its logged model, and ``metrics`` on that model."""
        from mlflow.entities import Metric, RunTag

        stamp = int(time.time() * 1000)
        linked = [Metric(k, float(v), stamp, 0, model_id=model_id) for k, v in metrics.items()]
        for i in range(0, max(1, len(linked)), 100):
            tags = [RunTag(MODEL_ID_TAG, model_id)] if i == 0 else []
            self.client.log_batch(run_id, metrics=linked[i : i + 100], tags=tags)


def _keras_flavor() -> Any:
    """MLflow's Keras 3 flavour, with the model folder made first: ``mlflow.keras``'s
    ``save_model`` writes the input example into that folder before creating it."""
    import mlflow.keras

    def save_model(path: str, **kwargs: Any) -> None:
        os.makedirs(path, exist_ok=True)
        mlflow.keras.save_model(path=path, **kwargs)

    return types.SimpleNamespace(__name__=mlflow.keras.__name__, save_model=save_model)


@contextlib.contextmanager
def ends_if_it_fails(client: MlflowClient, run_id: str) -> Iterator[None]:
    """End MLflow run ``run_id`` FAILED (KILLED on Ctrl-C) when the block raises, with a
    diverged training's message (a :class:`ChildFailure`) as the tag ``rlnas.message``."""
    try:
        yield
    except BaseException as exc:
        client.set_terminated(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        if isinstance(exc, ChildFailure):
            client.set_tag(run_id, "rlnas.message", str(exc)[:5000])
        raise


@contextlib.contextmanager
def _resumed(uri: str, run_id: str) -> Iterator[None]:
    """Resume ``run_id`` as MLflow's active run in store ``uri`` for a block; the run ends
    FINISHED with the block (FAILED if it raises) and the global tracking URI is restored."""
    import mlflow  # lazy: the CLI's parser imports rlnas.tracking, and no MLflow

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(run_id=run_id):
            yield
    finally:
        mlflow.set_tracking_uri(before)


def record_export(
    client: MlflowClient, run_id: str, metrics: Mapping[str, float], output: Path
) -> None:
    """Log an export's figures and its file (under ``tflite/``) on final run ``run_id``."""
    log_batch(client, run_id, metrics=metrics)
    client.log_artifact(run_id, str(output), "tflite")


def log_datasets(
    client: MlflowClient, run_id: str, splits: Mapping[str, tuple[Any, Any]], source: str
) -> None:
    """Log each split (context -> ``(x, y)``) as an input of ``run_id``: a NumPy data set named
    ``<source>-<context>`` with its digest and shapes (metadata only, no data copied)."""
    import mlflow.data  # lazy, as everywhere under rlnas.tracking
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    for context, (x, y) in splits.items():
        with warnings.catch_warnings():  # a local path fits two of MLflow's source kinds
            warnings.filterwarnings("ignore", message="The specified dataset source")
            data = mlflow.data.from_numpy(x, targets=y, name=f"{source}-{context}", source=source)
        tag = InputTag("mlflow.data.context", context)
        inputs.append(DatasetInput(data._to_mlflow_entity(), tags=[tag]))
    client.log_inputs(run_id, datasets=inputs)
