"""Strict config loading: every bad value stops with one line naming field, value and rule."""

from __future__ import annotations

import textwrap

import pytest

from rlnas.config import Config, dump_yaml, from_dict, load_config, to_dict
from rlnas.errors import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        (
            "child: {epoch: 2}",
            "unknown config key `child.epoch`. Did you mean `child.epochs`?",
        ),
        ("chld: {epochs: 2}", "unknown config key `chld`. Did you mean `child`?"),
        (
            "task: {name: digit}",
            "`task.name`: expected one of digits, mnist1d, fashion_mnist, mnist, cifar10, npz, "
            "image_folder, nb201, got 'digit'. Did you mean `digits`?",
        ),
        (
            "space: layer",
            "`space`: expected one of layers, nb201, nasnet, got 'layer'. Did you mean `layers`?",
        ),
        (
            "strategy: reinforc",
            "`strategy`: expected one of reinforce, random, rea, got 'reinforc'. "
            "Did you mean `reinforce`?",
        ),
        ("layers: {filters: []}", "`layers.filters`: expected a non-empty list, got []."),
        ("layers: {operations: []}", "`layers.operations`: expected a non-empty list, got []."),
        ("child: {epochs: 0}", "`child.epochs`: expected an integer >= 1, got 0."),
        ("child: {epochs: two}", "`child.epochs`: expected an integer, got 'two'."),
        (
            "child: {target_mmacs: 0}",
            "`child.target_mmacs`: expected a positive number of MMACs (millions of "
            "multiply-adds per example) or null, got 0.0.",
        ),
        (
            "child: {validate: every}",
            "`child.validate`: expected one of last, every_epoch, got 'every'. "
            "Did you mean `every_epoch`?",
        ),
        (
            "child: {target_mmacs: 5, metric: val_loss}",
            "`child.metric`: expected val_accuracy when target_mmacs is set (the cost factor "
            "scales an accuracy), got 'val_loss'.",
        ),
        (
            "controller: {learning_rate: 0}",
            "`controller.learning_rate`: expected a number > 0, got 0.0.",
        ),
        (
            "controller: {learning_rate: -0.01}",
            "`controller.learning_rate`: expected a number > 0, got -0.01.",
        ),
        (
            "layers: {learning_rates: [0.001, 0]}",
            "`layers.learning_rates`: expected numbers > 0, got 0.0.",
        ),
        ("search: {children: 0}", "`search.children`: expected an integer >= 1, got 0."),
        (
            "task: {name: npz}",
            "`task.path`: expected a file or folder for task 'npz', got None.",
        ),
        ("task: digits", "`task`: expected a mapping of settings, got 'digits'."),
        ("- a\n- b", "must hold a mapping of sections, got list."),
    ],
)
def test_bad_values_are_pinned(tmp_path, yaml_text, message):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, yaml_text))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist") as err:
        load_config(missing)
    assert str(err.value) == f"--config: file {str(missing)!r} does not exist."


def test_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"is not valid YAML"):
        load_config(write(tmp_path, "child: {epochs: [1"))


@pytest.mark.parametrize(
    "override, message",
    [
        ("child.epoch=3", "unknown config key `child.epoch`. Did you mean `child.epochs`?"),
        ("child.epochs", "--set: expected key=value, got 'child.epochs'."),
        ("search.children=0", "`search.children`: expected an integer >= 1, got 0."),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value) == message


def test_overrides_apply_over_the_file(tmp_path):
    path = write(
        tmp_path,
        """
        seed: 3
        task: {name: mnist1d}
        child: {epochs: 2}
        layers: {num_layers: 3, filters: [8, 16]}
        """,
    )
    cfg = load_config(
        path, ["child.epochs=5", "controller.from=controllers/x", "layers.filters=[4]"]
    )
    assert cfg.seed == 3 and cfg.task.name == "mnist1d"
    assert cfg.child.epochs == 5
    assert cfg.controller.from_ == "controllers/x"
    assert cfg.layers.filters == (4,) and cfg.layers.num_layers == 3


def test_defaults_and_round_trip():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.tracking.experiment == "rlnas"
    again = from_dict(Config, to_dict(cfg))
    assert again == cfg
    assert "from: null" in dump_yaml(cfg)  # YAML spelling of controller.from_


def test_tracking_uri_resolution(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert Config().tracking.resolved_uri() == "sqlite:///runs/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5001")
    assert Config().tracking.resolved_uri() == "http://127.0.0.1:5001"
    cfg = load_config(None, ["tracking.uri=sqlite:////tmp/x.db"])
    assert cfg.tracking.resolved_uri() == "sqlite:////tmp/x.db"


def test_shipped_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(root.glob("*.yaml"))
    assert {"demo.yaml", "mnist1d.yaml"} <= {f.name for f in files}
    for f in files:
        load_config(f)


def test_readme_documents_every_config_key():
    from pathlib import Path

    def keys(data, prefix=""):
        for k, v in data.items():
            if isinstance(v, dict):
                yield from keys(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}"

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [k for k in keys(to_dict(Config())) if f"`{k}`" not in readme]
    assert missing == [], "README.md lacks these config keys: " + ", ".join(missing)
