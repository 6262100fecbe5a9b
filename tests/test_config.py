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
            "image_folder, table, nb201, got 'digit'. Did you mean `digits`?",
        ),
        (
            "space: layer",
            "`space`: expected one of layers, nb201, nasnet, or an import path "
            "package.module:function (or path/to/file.py:function), got 'layer'. Did you mean "
            "`layers`?",
        ),
        (
            "strategy: reinforc",
            "`strategy`: expected one of reinforce, random, rea, nsga, or an import path "
            "package.module:Class (or path/to/file.py:Class), got 'reinforc'. Did you mean "
            "`reinforce`?",
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


def test_the_configuration_reference_documents_every_config_key():
    from pathlib import Path

    def keys(data, prefix=""):
        for k, v in data.items():
            if isinstance(v, dict):
                yield from keys(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}"

    reference = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    text = reference.read_text()
    missing = [k for k in keys(to_dict(Config())) if f"`{k}`" not in text]
    assert missing == [], "docs/configuration.md lacks these config keys: " + ", ".join(missing)


# -- declared bounds: every number finite, every integer bounded ----------------------------
@pytest.mark.parametrize(
    "override, message",
    [
        ("seed=-1", "`seed`: expected an integer in 0..4294967295, got -1."),
        ("seed=4294967296", "`seed`: expected an integer in 0..4294967295, got 4294967296."),
        ("task.split_seed=-1", "`task.split_seed`: expected an integer in 0..4294967295, got -1."),
        (
            "controller.hidden_size=1000000000000",
            "`controller.hidden_size`: expected an integer in 1..1024, got 1000000000000.",
        ),
        (
            "controller.init_range=.inf",
            "`controller.init_range`: expected a finite number in (0, 1], got inf.",
        ),
        (
            "controller.init_range=1e12",
            "`controller.init_range`: expected a number in (0, 1], got 1000000000000.0.",
        ),
        (
            "controller.learning_rate=.inf",
            "`controller.learning_rate`: expected a finite number > 0, got inf.",
        ),
        (
            "controller.entropy_weight=.inf",
            "`controller.entropy_weight`: expected a finite number >= 0, got inf.",
        ),
        (
            "search.failed_reward=.nan",
            "`search.failed_reward`: expected a finite number or null, got nan.",
        ),
        (
            "layers.learning_rates=[0.001, .inf]",
            "`layers.learning_rates`: expected finite numbers > 0, got inf.",
        ),
        (
            "layers.weight_decays=[.inf]",
            "`layers.weight_decays`: expected finite numbers >= 0, got inf.",
        ),
        ("executor.workers=1000", "`executor.workers`: expected an integer in 1..256, got 1000."),
        (
            "search.children=99999999999",
            "`search.children`: expected an integer in 1..2147483647, got 99999999999.",
        ),
        (
            "search.wall_seconds=-1",
            "`search.wall_seconds`: expected a positive number of seconds or null, got -1.0.",
        ),
        (
            "child.cost_exponent=-2",
            "`child.cost_exponent`: expected a number in [-1, 0) (MnasNet uses -0.07), got -2.0.",
        ),
        (
            "final.augment=lite",
            "`final.augment`: expected one of none, light, strong or null, got 'lite'. "
            "Did you mean `light`?",
        ),
        ("tracking.experiment=''", "`tracking.experiment`: expected a non-empty name, got ''."),
        (
            "space=nb201",
            "`space`: expected layers or nasnet for task 'digits' (the nb201 space only looks "
            "up the NAS-Bench-201 table: task nb201), got 'nb201'.",
        ),
        (
            "task.name=nb201",
            "`space`: expected nb201 for task nb201 (a table of nb201 cells), got 'layers'.",
        ),
    ],
)
def test_bounds_are_declared_and_stated(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value) == message


def test_sections_check_their_rules_when_built_directly():
    from rlnas.config import ExecutorConfig, ReinforceConfig, TaskConfig
    from rlnas.errors import FieldError

    with pytest.raises(FieldError, match=r"`hidden_size`: expected an integer in 1\.\.1024"):
        ReinforceConfig(hidden_size=10**12)
    with pytest.raises(FieldError, match="`workers`: expected an integer in 1..256, got 0"):
        ExecutorConfig(workers=0)
    with pytest.raises(FieldError, match="`kind`: expected one of inline, process, ray"):
        ExecutorConfig(kind="threads")  # a Literal is a rule of its own
    with pytest.raises(FieldError, match=r"`image_size`: expected integers in 8\.\.4096 or null"):
        TaskConfig(image_size=(4, 64))


def test_rules_in_words():
    from rlnas.config import ChildConfig, FinalConfig, ReinforceConfig
    from rlnas.rules import Range, rule_of

    assert rule_of(ReinforceConfig, "tanh_constant") == "a number > 0 or null"
    assert rule_of(FinalConfig, "test_time_shift") == (
        "an integer number of pixels in 0..8 (0: no shifted views)"
    )
    assert rule_of(ChildConfig, "metric_mode") == "one of auto, max, min"
    assert Range(gt=0, lt=1).describe(integer=False, plural=True) == "numbers in (0, 1)"
    assert Range(ge=1, lt=10).describe(integer=True) == "an integer in 1..9"
    assert Range(le=5).describe(integer=True) == "an integer <= 5"


def test_existing_sections_import_from_config_and_their_homes():
    import rlnas.config as config
    from rlnas.evaluators.config import ChildConfig
    from rlnas.executors.config import ExecutorConfig
    from rlnas.final_config import FinalConfig
    from rlnas.search_config import SearchConfig
    from rlnas.task_config import TaskConfig
    from rlnas.tracking_config import TrackingConfig

    for cls in (ChildConfig, ExecutorConfig, FinalConfig, SearchConfig, TaskConfig):
        assert getattr(config, cls.__name__) is cls
    assert config.TrackingConfig is TrackingConfig


def test_importing_config_loads_no_framework():
    import subprocess
    import sys

    code = (
        "import sys, rlnas.config; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- YAML 1.2 numbers --------------------------------------------------------------------------
def test_exponent_floats_are_numbers_in_files_and_overrides(tmp_path):
    path = write(
        tmp_path, "controller: {learning_rate: 1e-3}\nlayers: {learning_rates: [3E-4, 2e-3]}\n"
    )
    cfg = load_config(path, ["controller.entropy_weight=5e-5", "child.target_mmacs=+1.5e2"])
    assert cfg.controller.learning_rate == 0.001
    assert cfg.layers.learning_rates == (0.0003, 0.002)
    assert cfg.controller.entropy_weight == 5e-5 and cfg.child.target_mmacs == 150.0
    assert load_config(None, ["child.epochs=2"]).child.epochs == 2  # integers stay integers
    with pytest.raises(ConfigError, match=r"`child.epochs`: expected an integer, got 1000.0"):
        load_config(None, ["child.epochs=1e3"])
    assert load_config(None, ["tracking.experiment=1e3x"]).tracking.experiment == "1e3x"


# -- reading the file defensively --------------------------------------------------------------
@pytest.mark.parametrize(
    "content, message",
    [
        (b"# caf\xe9\nchild: {epochs: 2}\n", "is not UTF-8 text (byte 0xe9 at offset 5)"),
        (b"tracking: {experiment: caf\xe9}\n", "is not UTF-8 text (byte 0xe9 at offset 26)"),
        (bytes(range(256)), "is not UTF-8 text (byte 0x80 at offset 128)"),
        ("child: {epochs: 2}\n".encode("utf-16"), "is not UTF-8 text (byte 0xff at offset 0)"),
        (b"child:\x00 {}", "is not UTF-8 text (a NUL character at offset 6)"),
        (b"", "config file {path!r} is empty (or only comments)"),
        (b"# nothing here\n\n# at all\n", "config file {path!r} is empty (or only comments)"),
        (
            b"child: {epochs: 2}\nseed: 1\nchild: {epochs: 3}\n",
            "key `child` is given twice (line 3)",
        ),
        (b"child:\n  epochs: 2\n  epochs: 3\n", "key `epochs` is given twice (line 3)"),
        (b"seed: 2020-13-45\n", "is not valid YAML"),
        (b"[" * 5000, "is not valid YAML"),
    ],
)
def test_bad_files_get_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "\n" not in text and text.startswith("--config: ")
    assert repr(str(path)) in text and message.format(path=str(path)) in text


def test_folders_and_devices_are_named_for_what_they_are(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert str(err.value) == f"--config: {str(tmp_path)!r} is a folder; expected a YAML file."
    with pytest.raises(ConfigError) as err:
        load_config("/dev/null")
    assert str(err.value) == "--config: '/dev/null' is a device; expected a YAML file."


def test_an_explicit_empty_mapping_and_a_bom_are_fine(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("{}\n")
    assert load_config(path) == Config()
    path.write_bytes("\ufeffchild: {epochs: 2}\n".encode())
    assert load_config(path).child.epochs == 2


def test_duplicate_keys_in_an_override():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["child={epochs: 1, epochs: 2}"])
    assert (
        str(err.value) == "--set child: key `epochs` is given twice (line 1); give each key once."
    )


# -- suggestions by meaning --------------------------------------------------------------------
@pytest.mark.parametrize(
    "override, meant",
    [
        ("controller.lr=0.1", "controller.learning_rate"),
        ("layers.lr=[0.1]", "layers.learning_rates"),
        ("nasnet.wd=[0.1]", "nasnet.weight_decays"),
        ("executor.num_workers=2", "executor.workers"),
        ("executor.n_workers=2", "executor.workers"),
        ("controller.bs=4", "controller.batch_size"),
        ("layers.batch=[4]", "layers.batch_sizes"),
        ("final.lr_decay=cosine", "final.schedule"),
        ("child.epoch=2", "child.epochs"),
        ("controller.lerning_rate=0.1", "controller.learning_rate"),  # spelling as a fallback
    ],
)
def test_unknown_keys_suggest_the_key_meant(override, meant):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value).endswith(f"Did you mean `{meant}`?")


def test_odd_keys_stay_on_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text('child: {"ep\\nochs": 2}\n')
    with pytest.raises(ConfigError, match=r"unknown config key `child\.'ep\\nochs'`"):
        load_config(path)


# -- the command line ----------------------------------------------------------------------
def test_help_states_defaults():
    from rlnas import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    assert "(default: 5000)" not in sub["ui"].format_help()  # its text already says it
    bench = sub["bench"]._actions[-1].choices["nb201"].format_help()
    assert "(default: 300)" in " ".join(bench.split())
    search = " ".join(sub["search"].format_help().split())
    assert "(--config FILE | --resume RUN_ID)" in search and "(default: None)" not in search


def test_config_errors_reach_the_console_as_one_line(tmp_path, capsys):
    from rlnas import cli

    assert cli.main(["search", "--config", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"rlnas: error: --config: {str(tmp_path)!r} is a folder; expected a YAML file."]


def test_tensorflow_notices_are_dropped_and_the_rest_kept():
    from rlnas.quiet import drop_notices

    noise = (
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        b"I0000 00:00:1796612369.525599   20923 port.cc:153] oneDNN custom operations are on.\n"
        b"W0000 00:00:1796612369.5   20923 cpu_feature_guard.cc:227] This TensorFlow binary\n"
        b"To enable the following instructions: AVX2 FMA, in other operations, rebuild\n"
    )
    kept = b"E0000 00:00:1.0   1 cuda_platform.cc:52] failed call to cuInit\nTraceback (x)\n"
    assert drop_notices(noise + kept) == kept


@pytest.mark.slow
def test_the_cli_keeps_tensorflow_quiet_unless_asked():
    import os
    import subprocess
    import sys

    code = (
        "import sys; from rlnas import cli; cli.quiet_frameworks(int(sys.argv[1])); "
        "import tensorflow as tf; tf.constant(1) + 1"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = subprocess.run([sys.executable, "-c", code, "0"], capture_output=True, env=env)
    assert quiet.returncode == 0 and quiet.stderr == b""
    loud = subprocess.run([sys.executable, "-c", code, "1"], capture_output=True, env=env)
    assert b"oneDNN" in loud.stderr or b"cuda" in loud.stderr.lower()


def test_an_unknown_tracking_uri_scheme_is_one_line():
    from rlnas.errors import TrackingError
    from rlnas.tracking.store import connect

    with pytest.raises(TrackingError) as err:
        connect("bogus://nowhere")
    assert str(err.value).startswith("tracking.uri: the MLflow store 'bogus://nowhere' does not")
    assert "\n" not in str(err.value).strip()
