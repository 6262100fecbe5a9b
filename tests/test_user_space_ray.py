"""A user's define-by-run space, in a module of a folder of its own (not installed), searched
with ``executor: ray`` on a local Ray: the module reaches the Ray workers."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("mlflow")
pytestmark = pytest.mark.slow

import rlnas  # noqa: E402
from rlnas.trial import TrialState  # noqa: E402

MODULE = '''\
"""A tiny MLP family; each build leaves a file named by its process id."""
import os
from pathlib import Path

import keras


def build(d, spec):
    Path(os.environ["USER_SPACE_PIDS"], str(os.getpid())).touch()
    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(d.choice("units", [4, 8]), activation="relu")(x)
    d.choice("train/learning_rate", [0.01])
    return keras.Model(inputs, keras.layers.Dense(spec.num_classes, activation="softmax")(x))
'''


def _search_on_ray(space: str, tmp_path):
    """Two random children of ``space`` on digits, on a local Ray of two workers."""
    return rlnas.search(
        space,
        task={"name": "digits", "train_subset": 60},
        strategy="random",
        children=2,
        epochs=1,
        executor="ray",
        workers=2,
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        progress=False,
        executor__threads_per_worker=1,
        child__steps_per_epoch=2,
    )


def test_a_user_module_reaches_the_ray_workers(tmp_path, monkeypatch):
    name = f"user_space_{os.getpid()}"  # importable from its folder only
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / f"{name}.py").write_text(textwrap.dedent(MODULE))
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("USER_SPACE_PIDS", str(pids))
    monkeypatch.chdir(folder)  # as a user runs rlnas beside their module
    monkeypatch.setattr(sys, "path", list(sys.path))  # the registry adds the folder
    assert not ray.is_initialized()
    try:
        result = _search_on_ray(f"{name}:build", tmp_path)
    finally:
        sys.modules.pop(name, None)
    assert not ray.is_initialized()  # the Ray the search started is shut down
    states = [(t.state, t.message) for t in result.result.trials]
    assert states == [(TrialState.COMPLETE, None)] * 2, states
    assert all(t.reward is not None and 0.0 <= t.reward <= 1.0 for t in result.result.trials)
    built_in = {int(p.name) for p in pids.iterdir()}
    assert built_in - {os.getpid()}, "no child was built outside the search's own process"


FILE = '''\
"""A build named by its file; the search's own process deletes the file as it checks the
space, so that the Ray workers find no file under its path (as on another machine)."""
import os
from pathlib import Path

import keras


def build(d, spec):
    if os.getpid() == int(os.environ["USER_SPACE_DRIVER"]):
        Path(__file__).unlink(missing_ok=True)
    else:
        Path(os.environ["USER_SPACE_PIDS"], str(os.getpid())).touch()
    inputs = keras.Input(spec.input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(d.choice("units", [4, 8]), activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(spec.num_classes, activation="softmax")(x))
'''


def test_a_build_file_reaches_ray_workers_that_have_no_such_file(tmp_path, monkeypatch):
    script = tmp_path / "elsewhere" / "my_space.py"
    script.parent.mkdir()
    script.write_text(FILE)
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("USER_SPACE_PIDS", str(pids))
    monkeypatch.setenv("USER_SPACE_DRIVER", str(os.getpid()))
    monkeypatch.chdir(tmp_path)
    result = _search_on_ray(f"{script}:build", tmp_path)
    assert not script.exists()  # gone before any worker started
    states = [(t.state, t.message) for t in result.result.trials]
    assert states == [(TrialState.COMPLETE, None)] * 2, states
    assert {int(p.name) for p in pids.iterdir()}, "no child was built by a Ray worker"
