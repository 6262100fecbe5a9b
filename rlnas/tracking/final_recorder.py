"""What ``rlnas final`` and ``rlnas export`` write to MLflow.

A :class:`FinalRecorder` writes the runs of one ``rlnas final`` session: each final model
(and the ensemble) gets a run nested under the search (``mlflow.parentRunId``), tagged
``rlnas.kind=final`` (or ``final-ensemble``), ``rlnas.search_run_id`` and
``rlnas.final_session``, with its metrics, its report files, its ``.keras`` file and a model
logged with MLflow's Keras 3 flavour (``mlflow.keras``), registered in the Model Registry
if asked. :func:`record_export` logs a TFLite export on its final run.

Like the search tracker it talks to the store through ``MlflowClient`` with explicit run
ids; only :meth:`FinalRecorder.finish` resumes the run in MLflow's fluent API, which
``mlflow.keras.log_model`` needs, and restores the global tracking URI afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlnas.errors import ChildFailure
from rlnas.tracking.models import SearchRecord
from rlnas.tracking.records import log_batch

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

    def finish(
        self, run_id: str, model: Any, example: Any, registered_name: str | None
    ) -> tuple[str, str | None]:
        """Log ``model`` with the ``mlflow.keras`` flavour (``.keras`` format), register it
        under ``registered_name`` if given, and end the run FINISHED (a final run's last
        step). Returns the model URI and the registered version (``None`` if not
        registered)."""
        # lazy: MLflow's Keras flavour loads TensorFlow, which only a final run has loaded
        import keras
        import mlflow.keras
        from mlflow.models import infer_signature

        # the signature needs shapes and dtypes only: no prediction (and no retracing) for it
        prediction = np.zeros((len(example), *model.outputs[0].shape[1:]), dtype=np.float32)
        requirements = [f"keras=={keras.__version__}", f"tensorflow=={version('tensorflow')}"]
        with _resumed(self.uri, run_id):
            info = mlflow.keras.log_model(
                model,
                name="model",
                signature=infer_signature(example, prediction),
                pip_requirements=requirements,  # skips inferring them in a subprocess (slow)
                registered_model_name=registered_name,
                await_registration_for=0,
            )
        registered = getattr(info, "registered_model_version", None)
        return info.model_uri, None if registered is None else str(registered)


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
