"""A search read back from MLflow, for final training and export.

* :func:`read_search` finds a search's parent run, its resolved config (``config.yaml``) and
  its completed children, best first, one per distinct architecture; every bad run id is a
  :class:`~rlnas.errors.TrackingError` (one line, exit status 2) before any work.
* :func:`search_config` is the search's config with ``--set`` overrides, checked strictly;
* :func:`resolve_run_id` turns a registered model URI (``models:/NAME@ALIAS``,
  ``models:/NAME/VERSION``) into the run id of the final run that logged it;
* :func:`final_model_run` finds the model ``rlnas export`` converts, and
  :func:`download_model` fetches it (the logged model; a ``model.keras`` artifact for runs
  of older rlnas).

Writing final runs is :mod:`rlnas.tracking.final_recorder`'s job.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rlnas.config import Config, apply_override, from_dict
from rlnas.errors import ConfigError, SpaceError, TrackingError
from rlnas.tracking.conventions import INACTIVE
from rlnas.tracking.store import first_line, redact

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from rlnas.space import Space

FINAL = "final"
ENSEMBLE = "final-ensemble"
MODEL_FILE = "model.keras"
"""The Keras file: in the logged model (``data/model.keras``), or an artifact of its own in
final runs of older rlnas."""
MODEL_ID_TAG = "rlnas.model_id"
"""The tag of a final run naming its logged model (MLflow 3's ``m-...`` id)."""


@dataclass(frozen=True)
class ChildRecord:
    """A completed child of a search, as its MLflow run holds it."""

    run_id: str
    number: int
    reward: float
    arch_hash: str
    params: dict[str, str]
    """Every decision as logged (strings; :func:`decode_decisions` restores the values)."""


@dataclass(frozen=True)
class SearchRecord:
    """A search's parent run: its config and its completed children, best first."""

    run_id: str
    experiment_id: str
    name: str
    status: str
    config: dict[str, Any]
    children: tuple[ChildRecord, ...]
    """One per distinct architecture, by reward (ties: the earlier child first)."""


def get_run(client: MlflowClient, run_id: str, uri: str) -> Run:
    """The run ``run_id``; :class:`TrackingError` if the store has none."""
    try:
        return client.get_run(run_id)
    except Exception as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(
            exc
        ):
            raise TrackingError(
                f"RUN_ID: no run {run_id!r} in the tracking store {redact(uri)!r}; expected the "
                "id of a search's parent run (`rlnas search` prints it; --uri selects the store)."
            ) from None
        raise TrackingError(
            f"RUN_ID: run {run_id!r} cannot be read from {redact(uri)!r}: {first_line(exc)}"
        ) from None


def read_search(client: MlflowClient, run_id: str, uri: str) -> SearchRecord:
    """The search ``run_id`` with its config and completed children (checked, see above)."""
    run = get_run(client, run_id, uri)
    tags = run.data.tags
    kind = tags.get("rlnas.kind")
    if kind != "search":
        parent = tags.get("rlnas.search_run_id") or tags.get("mlflow.parentRunId")
        what = {"child": "a child", FINAL: "a final model", ENSEMBLE: "an ensemble"}.get(kind or "")
        if what is None:
            raise TrackingError(
                f"RUN_ID: run {run_id} is not an rlnas search (tag rlnas.kind={kind!r}); "
                "expected a search's parent run id."
            )
        raise TrackingError(
            f"RUN_ID: run {run_id} is {what} run (tag rlnas.kind={kind!r}), not a search; "
            f"expected a search's parent run id" + (f"; its search is {parent}." if parent else ".")
        )
    config = _read_config(client, run_id)
    children = completed_children(client, run.info.experiment_id, run_id)
    if not children:
        raise TrackingError(
            f"RUN_ID: search {run_id} has no completed child (status {run.info.status}); "
            "there is no architecture to retrain."
        )
    return SearchRecord(
        run_id=run_id,
        experiment_id=run.info.experiment_id,
        name=run.info.run_name or run_id,
        status=run.info.status,
        config=config,
        children=tuple(children),
    )


def _read_config(client: MlflowClient, run_id: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "config.yaml", tmp)
            data = yaml.safe_load(Path(path).read_text())
        except Exception as exc:
            raise TrackingError(
                f"RUN_ID: search {run_id} has no readable config.yaml artifact: {first_line(exc)}"
            ) from None
    if not isinstance(data, dict):
        raise TrackingError(f"RUN_ID: config.yaml of search {run_id} is not a mapping.")
    return data


def _search_all(client: MlflowClient, experiment_id: str, query: str, order=None) -> list[Run]:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], query, max_results=1000, order_by=order, page_token=token
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


def completed_children(client: MlflowClient, experiment_id: str, run_id: str) -> list[ChildRecord]:
    """Completed children of search ``run_id``, best first, one per architecture."""
    query = (
        f"tags.mlflow.parentRunId = '{run_id}' and tags.`rlnas.kind` = 'child' "
        "and tags.`rlnas.status` = 'COMPLETE'"
    )
    records = []
    for run in _search_all(client, experiment_id, query):
        reward = run.data.metrics.get("reward")
        if reward is None:
            continue
        tags = run.data.tags
        records.append(
            ChildRecord(
                run_id=run.info.run_id,
                number=int(tags.get("rlnas.child", "0")),
                reward=float(reward),
                arch_hash=tags.get("rlnas.architecture_hash", run.info.run_id),
                params=dict(run.data.params),
            )
        )
    records.sort(key=lambda c: (-c.reward, c.number))
    seen: set[str] = set()
    distinct = []
    for c in records:
        if c.arch_hash not in seen:
            seen.add(c.arch_hash)
            distinct.append(c)
    return distinct


def search_config(search: SearchRecord, overrides: list[str]) -> Config:
    """The search's logged config with ``overrides`` applied, checked strictly; a search of
    a lookup table (nothing to retrain or export) is refused."""
    data = json.loads(json.dumps(search.config))
    for item in overrides:
        apply_override(data, item)
    cfg = from_dict(Config, data)
    if cfg.space == "nb201" or cfg.task.name == "nb201":
        raise ConfigError(
            f"RUN_ID: search {search.run_id} searched the {cfg.space!r} space of task "
            f"{cfg.task.name!r}, a lookup table; there is no Keras model to retrain."
        )
    return cfg


def decode_decisions(space: Space, child: ChildRecord) -> dict[str, Any]:
    """The decision values of ``child`` (params are strings; the space knows the types)."""
    values: dict[str, Any] = {}
    for decision in space.signature:
        text = child.params.get(decision.name)
        if text is None or (text == INACTIVE and INACTIVE not in decision.choices):
            continue  # a decision that did not apply to this child
        for choice in decision.choices:
            if (choice if isinstance(choice, str) else json.dumps(choice)) == text:
                values[decision.name] = choice
                break
        else:
            raise ConfigError(
                f"child {child.number} of the search chose {decision.name}={text}, which is not "
                f"among the choices {list(decision.choices)} of this config; the config's space "
                "section must match the search's."
            )
    try:
        space.replay(values)
    except SpaceError as exc:
        raise ConfigError(f"child {child.number} does not fit this config's space: {exc}") from None
    return values


# -- finding a final model ----------------------------------------------------------------
def final_model_run(client: MlflowClient, run_id: str, uri: str) -> tuple[Run, SearchRecord]:
    """The final model ``rlnas export`` converts, and its search.

    ``run_id`` is a final (or ensemble) run, a registered model URI (``models:/NAME@ALIAS``,
    ``models:/NAME/VERSION``), or a search: then its rank-1 final model of the latest
    ``rlnas final`` session (chosen by search reward, never by test accuracy).
    """
    run_id = resolve_run_id(client, run_id, uri)
    run = get_run(client, run_id, uri)
    kind = run.data.tags.get("rlnas.kind")
    if kind in (FINAL, ENSEMBLE):
        if run.info.status != "FINISHED":
            raise TrackingError(
                f"RUN_ID: final run {run_id} did not finish (status {run.info.status}); "
                "expected a finished final model."
            )
        return run, read_search(client, run.data.tags["rlnas.search_run_id"], uri)
    search = read_search(client, run_id, uri)  # says why a child or other run is no search
    query = (
        f"tags.`rlnas.search_run_id` = '{run_id}' and tags.`rlnas.kind` = '{FINAL}' "
        "and tags.`rlnas.rank` = '1' and attributes.status = 'FINISHED'"
    )
    found = client.search_runs(
        [search.experiment_id], query, max_results=1, order_by=["attributes.start_time DESC"]
    )
    if not found:
        raise TrackingError(
            f"RUN_ID: search {run_id} has no final model yet; run `rlnas final {run_id}` first."
        )
    return found[0], search


def download_model(client: MlflowClient, run_id: str, dst: str | Path) -> Path:
    """The Keras file of final run ``run_id``'s logged model, downloaded into ``dst``
    (the run's ``model.keras`` artifact for runs of older rlnas)."""
    import mlflow.artifacts  # lazy: the CLI's parser imports rlnas.tracking, and no MLflow

    model_id = client.get_run(run_id).data.tags.get(MODEL_ID_TAG)
    try:
        if model_id is None:  # a final run of older rlnas: its own artifact
            return Path(client.download_artifacts(run_id, MODEL_FILE, str(dst)))
        location = client.get_logged_model(model_id).artifact_location
        folder = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(dst))
        return Path(folder, "data", "model" + Path(MODEL_FILE).suffix)
    except Exception as exc:
        what = f"logged model {model_id}" if model_id else f"{MODEL_FILE} artifact"
        raise TrackingError(
            f"RUN_ID: final run {run_id} has no {what}: {first_line(exc)}"
        ) from None


def resolve_run_id(client: MlflowClient, ref: str, uri: str) -> str:
    """``ref`` itself, or for ``models:/NAME@ALIAS`` and ``models:/NAME/VERSION`` the run
    that logged that registered version; a one-line :class:`TrackingError` if the registry
    has no such model, alias or version."""
    if not ref.startswith("models:/"):
        return ref
    name, at, alias = ref[len("models:/") :].partition("@")
    version = None
    if not at:
        name, _, version = name.rpartition("/")
    if not name or not (alias or (version or "").isdigit()):
        raise TrackingError(
            f"RUN_ID: {ref!r} is not a registered model URI; expected models:/NAME@ALIAS "
            "(e.g. models:/rlnas-digits-layers@champion) or models:/NAME/VERSION."
        )
    try:
        if alias:
            found = client.get_model_version_by_alias(name, alias)
        else:
            found = client.get_model_version(name, str(version))
    except Exception as exc:
        what = f"alias {alias!r}" if alias else f"version {version}"
        raise TrackingError(
            f"RUN_ID: {ref!r}: the registry of {redact(uri)!r} has no {what} of model "
            f"{name!r} ({first_line(exc)}); `rlnas final` registers models and sets "
            "the alias champion."
        ) from None
    if not found.run_id:
        raise TrackingError(f"RUN_ID: {ref!r} was not logged by a run; expected an rlnas model.")
    return found.run_id
