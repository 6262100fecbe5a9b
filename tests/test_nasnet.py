"""The `nasnet` space: signature, masks and replay (no Keras), then the Keras builder on a few
cells (every operation, factorized reductions, projections), safe-mode reloading, the
unchanged child evaluator, and the config-time error on non-image data."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rlnas.config import Config, from_dict
from rlnas.errors import ConfigError
from rlnas.spaces.nasnet import (
    OPERATIONS,
    BlockSpec,
    CellSpec,
    NasnetBlueprint,
    NasnetConfig,
    NasnetSpace,
)
from rlnas.tasks import TaskSpec

DIGITS = TaskSpec((8, 8, 1), "image", 10)
FASHION = TaskSpec((28, 28, 1), "image", 10, flip=True)
PER_BLOCK = ("input_a", "input_b", "op_a", "op_b", "combine")
TRAIN = ("learning_rate", "batch_size", "optimizer", "dropout", "weight_decay", "augment")
TINY = NasnetConfig(
    num_blocks=3, cells_per_stage=1, reduction_stages=1, stem_filters=8, filters=8,
    separable_repeats=1, batch_sizes=(64,), augmentations=("none", "light"),
)  # fmt: skip


def random_samples(space, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield space.sample(lambda d, allowed: int(rng.choice(np.flatnonzero(allowed))))


def test_signature_declares_every_block_of_both_cells_then_training():
    space = NasnetSpace(NasnetConfig(), FASHION)
    names = [d.name for d in space.signature]
    expected = [
        f"{cell}/block_{b}/{k}"
        for cell in ("normal", "reduction")
        for b in range(5)
        for k in PER_BLOCK
    ]
    assert names == expected + [f"train/{k}" for k in TRAIN]
    by_name = {d.name: d for d in space.signature}
    assert by_name["normal/block_0/input_a"].choices == (
        "prev_prev", "prev", "block_0", "block_1", "block_2", "block_3",
    )  # fmt: skip
    assert by_name["reduction/block_4/op_b"].choices == OPERATIONS
    assert by_name["normal/block_2/combine"].choices == ("add", "concat")
    # the signature depends on the config only, never on the image size
    assert NasnetSpace(NasnetConfig(), DIGITS).describe() == space.describe()


def test_inputs_are_masked_to_the_cell_inputs_and_earlier_blocks():
    space = NasnetSpace(NasnetConfig(num_blocks=4), FASHION)
    for sample, blueprint in random_samples(space, 200):
        for step, decision in enumerate(space.signature):
            if decision.name.endswith(("input_a", "input_b")):
                b = int(decision.name.split("/")[1].split("_")[1])
                assert sample.masks[step] == tuple(i < 2 + b for i in range(5))
        for cell in (blueprint.normal, blueprint.reduction):
            for b, block in enumerate(cell.blocks):
                assert all(0 <= i < 2 + b for i in block.inputs)
            assert cell.unused and cell.unused[-1] == len(cell.blocks) - 1


def test_replay_rebuilds_the_sampled_blueprint_and_rejects_a_later_block_input():
    space = NasnetSpace(NasnetConfig(), FASHION)
    for sample, blueprint in random_samples(space, 20, seed=3):
        again, rebuilt = space.replay(dict(sample.architecture))
        assert rebuilt == blueprint and again.architecture.hash == sample.architecture.hash
        assert again.actions == sample.actions
    record = dict(sample.architecture) | {"normal/block_1/input_a": "block_2"}
    with pytest.raises(
        Exception, match=r"`normal/block_1/input_a`: value 'block_2' is not allowed"
    ):
        space.replay(record)


def test_unused_blocks_form_the_cell_output():
    cell = CellSpec(
        (
            BlockSpec((0, 1), ("sep3x3", "identity"), "add"),
            BlockSpec((2, 1), ("max3x3", "sep5x5"), "add"),
            BlockSpec((0, 0), ("avg3x3", "identity"), "concat"),
        )
    )
    assert cell.unused == (1, 2)  # block 0 feeds block 1


def test_config_checks_name_the_field():
    with pytest.raises(ConfigError, match=r"`nasnet.operations`.*Did you mean `sep3x3`\?"):
        from_dict(Config, {"space": "nasnet", "nasnet": {"operations": ["identity", "sep3x"]}})
    with pytest.raises(ConfigError, match=r"`nasnet.num_blocks`: expected an integer in 1..10"):
        from_dict(Config, {"nasnet": {"num_blocks": 0}})
    with pytest.raises(
        ConfigError, match=r"`nasnet.reduction_stages`: expected at most 3 for 8-pixel"
    ):
        NasnetSpace(NasnetConfig(reduction_stages=4), DIGITS)


@pytest.mark.parametrize(
    ("spec", "kind"),
    [(TaskSpec((40, 1), "sequence", 10), "sequence"), (TaskSpec((20,), "flat", 3), "flat")],
)
def test_non_image_data_is_refused_when_the_space_is_made(spec, kind):
    with pytest.raises(ConfigError) as info:
        NasnetSpace(NasnetConfig(), spec)
    message = str(info.value)
    assert message.startswith("`space`: nasnet cells need 2-D image inputs")
    assert f"are {kind}" in message and "\n" not in message


def test_search_on_sequence_data_stops_at_config_time(tmp_path):
    """Through the CLI: exit 2, one line naming `space` and the input kind, no MLflow run."""
    config = tmp_path / "bad.yaml"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    config.write_text(
        textwrap.dedent(f"""
        task: {{name: npz, path: {tmp_path}/seq.npz}}
        space: nasnet
        search: {{children: 2}}
        tracking: {{uri: "{uri}"}}
        """)
    )
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "seq.npz", x=rng.normal(size=(60, 12, 2)), y=np.arange(60) % 3)
    proc = subprocess.run(
        [sys.executable, "-m", "rlnas", "search", "--config", str(config), "--no-progress"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=os.environ,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("rlnas: error: `space`: nasnet cells need 2-D image inputs")
    assert "sequence (12x2)" in lines[0]
    import mlflow

    runs = mlflow.MlflowClient(uri).search_runs(
        [e.experiment_id for e in mlflow.MlflowClient(uri).search_experiments()]
    )
    assert runs == []


# -- the Keras builder --------------------------------------------------------------------
keras = pytest.importorskip("keras")


def every_op_blueprint(**overrides) -> NasnetBlueprint:
    """A blueprint that uses every operation in both cells, identities on cell inputs of the
    reduction cell (factorized reductions) and pooling after a concat block (projections)."""
    from rlnas.spaces.training import TrainingSpec

    cell = CellSpec(
        (
            BlockSpec((0, 1), ("sep3x3", "identity"), "concat"),
            BlockSpec((2, 1), ("max3x3", "dil3x3"), "add"),
            BlockSpec((2, 0), ("identity", "conv1x3_3x1"), "add"),
            BlockSpec((1, 3), ("avg3x3", "sep5x5"), "concat"),
        )
    )
    args = dict(
        normal=cell, reduction=cell, training=TrainingSpec(batch_size=64, augment="light"),
        cells_per_stage=1, reduction_stages=2, stem_filters=8, filters=6, separable_repeats=2,
    )  # fmt: skip
    return NasnetBlueprint(**(args | overrides))


def test_builder_handles_every_operation_and_shape_change(tmp_path):
    from rlnas.keras_build import build_model

    spec = TaskSpec((9, 9, 1), "image", 4)  # odd sizes: 9 -> 5 -> 3
    model = build_model(every_op_blueprint(), spec)
    names = [layer.name for layer in model.layers]
    assert any(n.endswith("_reduce_path1_shift") for n in names)  # factorized reduction
    assert any("_proj_conv" in n for n in names)  # pooling after a concat block projected
    assert {"augment_shift", "stem_conv", "classifier"} <= set(names)
    cell_outputs = {n: model.get_layer(n).output.shape for n in names if n.endswith("_out")}
    assert cell_outputs["cell0_out"][1:3] == (9, 9)
    assert cell_outputs["cell1_reduce_out"][1:3] == (5, 5)
    assert cell_outputs["cell4_out"][1:3] == (3, 3)
    # blocks 2 and 3 are unused; block 3 is a concat of 2 x filters: 1 + 2 = 3 x filters
    assert cell_outputs["cell4_out"][-1] == 3 * 6 * 4
    x = np.random.default_rng(0).random((5, 9, 9, 1), dtype=np.float32)
    probs = model.predict(x, verbose=0)
    assert probs.shape == (5, 4) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    path = tmp_path / "nasnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)  # built-in layers only
    assert np.allclose(loaded.predict(x, verbose=0), probs, atol=1e-6)


def test_random_cells_build_and_the_child_evaluator_trains_one_unchanged():
    from rlnas.config import ChildConfig, TaskConfig
    from rlnas.evaluators.keras_child import KerasEvaluator
    from rlnas.keras_build import build_model
    from rlnas.tasks import load_task

    data = load_task(TaskConfig(name="digits", train_subset=200))
    space = NasnetSpace(TINY, data.spec)
    samples = list(random_samples(space, 3, seed=11))
    for _, blueprint in samples:
        model = build_model(blueprint, data.spec)
        assert model.output.shape[1:] == (10,)
        keras.backend.clear_session()
    outcome = KerasEvaluator(space, data, ChildConfig(epochs=1)).evaluate(
        samples[0][0].architecture, seed=1, number=0
    )
    assert 0.0 <= outcome.reward <= 1.0 and outcome.metrics["params"] > 0
    assert "cell0" in outcome.texts["model_summary.txt"]


def test_widen_scales_the_stem_and_the_cells_filters():
    space = NasnetSpace(NasnetConfig(stem_filters=24, filters=10), FASHION)
    _, blueprint = next(random_samples(space, 1))
    wide = space.widen(blueprint, 2.5)
    assert (wide.stem_filters, wide.filters) == (60, 25)
    assert (wide.normal, wide.reduction, wide.training) == (
        blueprint.normal, blueprint.reduction, blueprint.training,
    )  # fmt: skip
    assert space.widen(blueprint, 0.01).filters == 2  # never below 2
