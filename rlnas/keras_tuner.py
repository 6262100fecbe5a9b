"""KerasTuner users keep their code: the REINFORCE controller as a KerasTuner oracle.

An optional module (``pip install rlnas[keras-tuner]``); only the oracle changes::

    tuner = keras_tuner.Tuner(
        oracle=ReinforceOracle(objective="val_accuracy", max_trials=20, seed=0),
        hypermodel=build, directory="kt", project_name="digits", overwrite=True,
    )
    tuner.search(x, y, validation_split=0.2, epochs=2)

Each hyperparameter is one categorical decision of an rlnas space, named as it is:
``hp.Choice`` its values in order; ``hp.Boolean`` ``[False, True]``; ``hp.Int``/``hp.Float``
with a ``step`` the values of KerasTuner's own grid, without one (a ``Float``, a log-sampled
``Int``) ``grid_points`` values evenly spaced in its sampling's scale, ends included (more
than ``max_choices`` values is an error naming it); ``hp.Fixed`` no decision, its value
passes through. A hyperparameter of a conditional scope (``hp.conditional_scope``,
``parent_name``/``parent_values``) is inactive, and absent from the trial's values, where its
parent's value does not enable it, as KerasTuner's own oracles leave it out.

**Hyperparameters that appear only after the first build** (``units_2`` of a loop over
``hp.Int("layers", 1, 3)``) are handled as KerasTuner does: the trial that meets one first
runs it at its default, and the tuner adds it to the oracle's space when the trial ends.
The next :meth:`ReinforceOracle.populate_space` then starts a new controller over the grown
space, with the LSTM and each shared decision's embeddings and softmax head copied from the
old one (the transfer :mod:`rlnas.zoo` makes between spaces); new decisions start untrained,
the reward baseline, spread and quantile window carry over, the old controller's unfinished
batch and elite are dropped, and every trial so far stays marked as tried.

**Rewards**: a COMPLETED trial tells the controller its KerasTuner score (the objective's best
value over the trial's epochs, as KerasTuner scores every trial), negated when the objective
is minimised; a FAILED trial teaches nothing; an INVALID one waits for its retry.
**Warm starts**: ``warm_start="controllers/NAME"`` (a zoo name, ``runs:/<run_id>/controller``)
loads a saved controller under the zoo's rules, with its settings unless ``config`` is given;
name the hyperparameters and their choices as the saved space's decisions to transfer all.
**Resume**: :meth:`ReinforceOracle.get_state` holds the controller (weights, optimizer,
baseline, random state) in KerasTuner's ``oracle.json``: a tuner made again with
``overwrite=False`` continues exactly where it stopped. **MLflow**: with ``tracking_uri``, a
parent run and one child run per trial (:mod:`rlnas.tracking.oracle_log`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras_tuner
from keras_tuner.engine.trial import TrialStatus

from rlnas import zoo
from rlnas.errors import ControllerError, SpaceError, require
from rlnas.keras_tuner_space import HyperSpace, decode, encode
from rlnas.space import Sample
from rlnas.strategies.base import SpaceExhausted
from rlnas.strategies.reinforce import ReinforceConfig, ReinforceController


class ReinforceOracle(keras_tuner.Oracle):
    """A KerasTuner oracle whose trials are proposed by rlnas's REINFORCE controller.

    Takes KerasTuner's oracle arguments (``objective``, ``max_trials``, ``seed``,
    ``hyperparameters``, ``allow_new_entries``, ``tune_new_entries``, the retry limits), and:

    * ``config``: the controller's settings (:class:`ReinforceConfig`; default: its defaults,
      or the saved controller's settings under ``warm_start``);
    * ``warm_start``: a saved controller to start from (see the module's docstring);
    * ``unique``: never propose the same values twice (rlnas's sampling without replacement);
    * ``grid_points``, ``max_choices``: how stepless numbers become choices, and the most
      choices one hyperparameter may have;
    * ``tracking_uri``, ``experiment``, ``task``: log to MLflow (nothing when no URI).
    """

    def __init__(
        self,
        objective: Any = None,
        max_trials: int = 10,
        seed: int | None = None,
        *,
        config: ReinforceConfig | None = None,
        warm_start: str | None = None,
        unique: bool = True,
        grid_points: int = 10,
        max_choices: int = 256,
        tracking_uri: str | None = None,
        experiment: str = "keras_tuner",
        task: str = "keras_tuner",
        **oracle_args: Any,  # KerasTuner's other Oracle arguments (it rejects unknown ones)
    ) -> None:
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **oracle_args)
        require(grid_points >= 2, "grid_points", grid_points, "an integer >= 2")
        require(max_choices >= 2, "max_choices", max_choices, "an integer >= 2")
        self.config, self.warm_start, self.unique = config, warm_start, unique
        self.grid_points, self.max_choices = grid_points, max_choices
        self.controller: ReinforceController | None = None
        self.space: HyperSpace | None = None
        self._space_config: list[dict[str, Any]] = []  # KerasTuner's config of self.space
        self._asked: dict[str, Sample] = {}  # trial id -> what the controller proposed
        self._log = None
        if tracking_uri is not None:
            from rlnas.tracking.oracle_log import OracleLog

            self._log = OracleLog(tracking_uri, experiment, task=task)
        self._finished = False

    @property
    def run_id(self) -> str | None:
        """The MLflow parent run (``None`` without tracking or before the first trial)."""
        return self._log.run_id if self._log is not None else None

    # -- the space and its controller ------------------------------------------------------
    def _hyperspace(self, space: Sequence[Any]) -> HyperSpace:
        return HyperSpace(space, grid_points=self.grid_points, max_choices=self.max_choices)

    def _current_space(self) -> None:
        """Make, or remake when new hyperparameters appeared, the space and controller."""
        config = self.hyperparameters.get_config()["space"]
        if self.controller is not None and config == self._space_config:
            return
        space = self._hyperspace(self.hyperparameters.space)
        if self.controller is not None and space.describe() == self.space.describe():
            self._space_config = config
            return
        if self.controller is None:
            controller = self._first_controller(space)
        else:
            controller = self._grown_controller(space)
        self.controller, self.space, self._space_config = controller, space, config
        if self._log is not None and self._log.run_id is None:
            self._log.start(space.describe(), strategy=controller.name, seed=self.seed)

    def _first_controller(self, space: HyperSpace) -> ReinforceController:
        if self.warm_start is None:
            return ReinforceController(space, self.config, seed=self.seed, unique=self.unique)
        tracking = self._log.tracking_uri if self._log is not None else None
        try:
            return zoo.load_controller(
                self.warm_start,
                space,
                self.config,
                seed=self.seed,
                unique=self.unique,
                tracking_uri=tracking,
            )
        except ControllerError as exc:  # the zoo names the config key; here it is warm_start
            raise ControllerError(str(exc).replace("controller.from:", "warm_start:", 1)) from None

    def _grown_controller(self, space: HyperSpace) -> ReinforceController:
        old = self.controller
        assert old is not None and self.space is not None
        new = ReinforceController(
            space, old.config, seed=self.seed + len(self.trials), unique=self.unique
        )
        new.continue_from(old)  # what the shared decisions learnt, and the reward statistics
        self._mark_tried(new)
        self._asked = {}  # proposals of the old controller (parallel tuners) are not told
        return new

    def _mark_tried(self, controller: ReinforceController) -> None:
        """Mark every trial's values as proposed, so that none is proposed again."""
        if controller.seen is None:
            return
        space = controller.space
        assert isinstance(space, HyperSpace)
        for trial in self.trials.values():
            values, hp_set = trial.hyperparameters.values, trial.hyperparameters
            decisions = {
                name: values[hp.name]
                for hp, name, choices in zip(space.hps, space.names, space.choices)
                if choices and hp.name in values and hp_set.is_active(hp)
            }
            with contextlib.suppress(SpaceError):  # a value off the grid (a new hp's default)
                controller.seen.add(space.replay(decisions)[0])

    # -- KerasTuner's oracle interface -----------------------------------------------------
    def populate_space(self, trial_id: str) -> dict[str, Any]:
        """Ask the controller for the next trial's values (``STOPPED`` when every
        combination was tried)."""
        self._current_space()
        assert self.controller is not None and self.space is not None
        try:
            sample = self.controller.ask()
        except SpaceExhausted:
            return {"status": TrialStatus.STOPPED, "values": None}
        self._asked[trial_id] = sample
        return {"status": TrialStatus.RUNNING, "values": self.space.blueprint(sample.architecture)}

    @keras_tuner.synchronized
    def create_trial(self, tuner_id: str) -> Any:
        trial = super().create_trial(tuner_id)
        if trial.status == TrialStatus.STOPPED and not self.ongoing_trials:
            self._finish()
        return trial

    @keras_tuner.synchronized
    def end_trial(self, trial: Any) -> None:
        super().end_trial(trial)
        trial = self.trials[trial.trial_id]
        if trial.status == TrialStatus.INVALID:  # sent for a retry
            return
        sample = self._asked.pop(trial.trial_id, None)
        reward = None
        if trial.status == TrialStatus.COMPLETED and trial.score is not None:
            reward = float(trial.score)
            reward = reward if self.objective.direction == "max" else -reward
        metrics = None
        if sample is not None and self.controller is not None:
            metrics = self.controller.tell(sample, reward)
        if self._log is not None:
            self._log_trial(trial, sample, reward, metrics)
        if trial.status == TrialStatus.COMPLETED:
            self.save()  # the controller learnt: KerasTuner saved before this tell

    def _log_trial(
        self,
        trial: Any,
        sample: Sample | None,
        reward: float | None,
        update: Mapping[str, float] | None,
    ) -> None:
        assert self._log is not None and self.controller is not None
        scores = {n: trial.metrics.get_best_value(n) for n in trial.metrics.metrics}
        started = self._display.trial_start.get(trial.trial_id)
        self._log.child(
            int(trial.trial_id) if str(trial.trial_id).isdigit() else len(self.end_order),
            dict(trial.hyperparameters.values),
            reward=reward,
            metrics={k: v for k, v in scores.items() if v is not None},
            status="COMPLETE" if trial.status == TrialStatus.COMPLETED else "FAILED",
            controller_step=self.controller.step,
            architecture_hash=sample.architecture.hash if sample is not None else "",
            started=started.timestamp() if started is not None else time.time(),
        )
        if update:
            self._log.update(update)

    def _finish(self) -> None:
        """End the MLflow parent run with the best trial and the controller."""
        if self._log is None or self._log.run_id is None or self._finished:
            return
        self._finished = True
        best_trials = [t for t in self.get_best_trials(1) if t.status == TrialStatus.COMPLETED]
        best = None
        if best_trials:
            t = best_trials[0]
            best = {"trial": t.trial_id, "score": t.score, "values": t.hyperparameters.values}
        self._log.finish(best, self.save_controller)

    def save_controller(self, folder: str | Path, *, task: str | None = None) -> Any:
        """Save the controller as a zoo controller folder (for a later ``warm_start``)."""
        if self.controller is None:
            raise ControllerError("save_controller: the oracle has not proposed a trial yet.")
        done = [t for t in self.trials.values() if t.status == TrialStatus.COMPLETED]
        best = [float(t.score) for t in done if t.score is not None]
        if best:
            best_reward = max(best) if self.objective.direction == "max" else -min(best)
        return zoo.save_controller(
            self.controller,
            folder,
            task=task or (self._log.task if self._log is not None else "keras_tuner"),
            children=len(done),
            best_reward=best_reward if best else None,
            run_id=self.run_id,
        )

    # -- resume ----------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["rlnas"] = {
            "space": self._space_config if self.controller is not None else None,
            "controller": encode(self.controller.state_dict()) if self.controller else None,
            "asked": {k: s.to_dict() for k, s in self._asked.items()},
            "run_id": self.run_id,
            "best": self._log.best if self._log is not None else None,
            "children": self._log.children if self._log is not None else 0,
        }
        return state

    def set_state(self, state: Mapping[str, Any]) -> None:
        super().set_state(state)
        saved = state.get("rlnas") or {}
        if saved.get("space") is not None:
            kt_space = keras_tuner.HyperParameters.from_config(
                {"space": saved["space"], "values": {}}
            )
            space = self._hyperspace(kt_space.space)
            controller_state = decode(saved["controller"])
            fields = {f.name for f in dataclasses.fields(ReinforceConfig)}
            config = ReinforceConfig(
                **{k: v for k, v in controller_state["config"].items() if k in fields}
            )
            controller = ReinforceController(space, config, seed=self.seed, unique=self.unique)
            controller.load_state_dict(controller_state)
            self._mark_tried(controller)
            self.controller, self.space, self._space_config = controller, space, saved["space"]
        self._asked = {k: Sample.from_dict(v) for k, v in saved.get("asked", {}).items()}
        if self._log is not None and saved.get("run_id"):
            self._log.reopen(saved["run_id"], saved.get("best"), int(saved.get("children", 0)))
            self._finished = False
