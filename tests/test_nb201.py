"""NAS-Bench-201: the shipped table, the `nb201` space, the look-up evaluator and the bench."""

from __future__ import annotations

import gzip
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlnas.config import load_config
from rlnas.errors import ChildFailure, DataError, FieldError
from rlnas.executors import Job, run_job
from rlnas.nb201.bench import BenchSettings, format_table, read_budgets, run_bench, summarize
from rlnas.nb201.evaluator import PROTOCOL_NOTE, Nb201Evaluator
from rlnas.nb201.space import Nb201Space
from rlnas.nb201.table import default_path, load_table
from rlnas.nb201.vocabulary import EDGES, N_CELLS, OPS, arch_str
from rlnas.search import Budget, Search
from rlnas.strategies.evolution import RegularizedEvolution
from rlnas.strategies.random_search import RandomSearch
from rlnas.strategies.reinforce import ReinforceConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "nb201-cifar10.yaml"
OPTIMUM = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|" + (
    "nor_conv_1x1~2|"
)


# -- the table ------------------------------------------------------------------------------
def test_table_loads_checked_and_cached():
    table = load_table()
    assert len(table) == N_CELLS == 15_625
    acc = table.test_acc["cifar10"]
    assert acc.max() == pytest.approx(94.3733, abs=1e-4)
    assert table.arch_strs[6111] == OPTIMUM and acc[6111] == acc.max()
    assert table.test_acc["cifar100"].max() == pytest.approx(73.5033, abs=1e-4)
    assert (table.epoch_seconds["cifar10"] == table.epoch_seconds["cifar100"]).all()
    assert load_table() is table  # parsed once per process
    with pytest.raises(ValueError):
        acc[0] = 0.0  # read-only


def _write_table(path: Path, transform) -> Path:
    lines = gzip.decompress(default_path().read_bytes()).decode().splitlines()
    path.write_bytes(gzip.compress(("\n".join(transform(lines)) + "\n").encode()))
    return path


def test_a_damaged_table_is_refused_with_the_reason(tmp_path):
    short = _write_table(tmp_path / "short.csv.gz", lambda lines: lines[:-1])
    with pytest.raises(DataError, match="15624 rows, expected 15625"):
        load_table(short)
    lower = _write_table(
        tmp_path / "max.csv.gz",
        lambda lines: [ln.replace(",94.373333,", ",94.1,") for ln in lines],
    )
    with pytest.raises(DataError, match="CIFAR-10 maximum 94.3633, expected 94.3733"):
        load_table(lower)
    with pytest.raises(DataError, match="cannot be read"):
        load_table(tmp_path / "missing.csv.gz")


# -- the space and the evaluator ------------------------------------------------------------
def test_space_declares_the_six_edges_in_string_order():
    described = Nb201Space().describe()
    assert described["space"] == "nb201"
    assert [d["name"] for d in described["decisions"]] == list(EDGES)
    assert all(d["choices"] == list(OPS) for d in described["decisions"])


def test_space_enumerates_exactly_the_tables_cells():
    space, table, ev = Nb201Space(), load_table(), Nb201Evaluator("cifar10")
    rows = []
    for ops in itertools.product(OPS, repeat=6):
        values = dict(zip(EDGES, ops))
        _, blueprint = space.replay(values)
        row = ev.row(values)
        assert blueprint == ops and table.arch_strs[row] == arch_str(ops)
        rows.append(row)
    assert sorted(rows) == list(range(N_CELLS))


def test_evaluator_rewards_test_accuracy_and_charges_twelve_epochs():
    table = load_table()
    ev = Nb201Evaluator("cifar100")
    arch = {e: "nor_conv_3x3" for e in EDGES}
    row = table.row_of(tuple(arch.values()))
    out = ev.evaluate(arch, seed=0, number=0)
    assert out.reward == table.test_acc["cifar100"][row]
    assert out.cost == pytest.approx(12 * table.epoch_seconds["cifar100"][row])
    assert out.metrics["nb201_index"] == row
    assert "cifar100" in ev.fingerprint() and ev.fingerprint() != Nb201Evaluator().fingerprint()
    assert "TEST accuracy" in PROTOCOL_NOTE
    failure = run_job(ev, Job(0, {**arch, "edge_2_3": "conv_9x9"}, 0))
    assert isinstance(failure, ChildFailure) and "not a NAS-Bench-201 cell" in failure.message
    with pytest.raises(FieldError, match="`task.dataset`: expected one of cifar10, cifar100"):
        Nb201Evaluator("imagenet")


@pytest.mark.parametrize("make", [RandomSearch, RegularizedEvolution])
def test_strategies_respect_cost_and_query_budgets(make):
    space, ev = Nb201Space(), Nb201Evaluator()
    from rlnas.executors import InlineExecutor

    trials = (
        Search(make(space, seed=1), InlineExecutor(ev), Budget(cost_seconds=3000.0)).run().trials
    )
    done = [t for t in trials if t.state.value == "COMPLETE"]
    assert sum(t.cost for t in done) <= 3000.0 < sum(t.cost for t in trials)  # last one killed
    trials = Search(make(space, seed=1), InlineExecutor(ev), Budget(children=40)).run().trials
    assert len(trials) == 40 and len({t.architecture for t in trials}) == 40


# -- the benchmark --------------------------------------------------------------------------
def test_budgets_are_read_off_a_trajectory_as_a_search_would_stop():
    space, ev = Nb201Space(), Nb201Evaluator()
    from rlnas.executors import InlineExecutor

    settings = BenchSettings(
        strategies=("random",), seeds=1, budget_seconds=(2000.0,), queries=(7,)
    )
    long = Search(RandomSearch(space, seed=4), InlineExecutor(ev), Budget(children=60)).run()
    found = read_budgets(long.trials, settings)
    short = Search(RandomSearch(space, seed=4), InlineExecutor(ev), Budget(cost_seconds=2000.0))
    counted = [t for t in short.run().trials if t.state.value == "COMPLETE"]
    assert found["2000s"] == (max(t.reward for t in counted), len(counted))
    assert found["7q"] == (max(t.reward for t in long.trials[:7]), 7)


def test_config_of_the_bench_is_a_search_config_with_the_controller_defaults():
    cfg = load_config(CONFIG)
    assert cfg.space == "nb201" and cfg.task.name == "nb201" and cfg.task.dataset == "cifar10"
    assert cfg.controller == ReinforceConfig()  # the bench uses what real searches use
    assert (cfg.evolution.population, cfg.evolution.sample_size) == (10, 3)


def test_tiny_seeded_bench_is_deterministic_over_workers():
    cfg = load_config(CONFIG)
    settings = BenchSettings(
        strategies=("rea", "random"), seeds=4, budget_seconds=(3000.0,), queries=(10, 30), workers=1
    )
    one, _ = run_bench(cfg, settings)
    two, _ = run_bench(cfg, BenchSettings(**{**settings.__dict__, "workers": 2}))
    assert one == two
    assert set(one) == {"rea", "random"} and set(one["rea"]) == {"3000s", "10q", "30q"}
    assert one["rea"]["30q"]["mean"] >= one["rea"]["10q"]["mean"]
    assert one["random"]["10q"]["queries_mean"] == 10 and one["random"]["10q"]["seeds"] == 4


def test_reinforce_runs_in_the_bench_with_the_configs_controller():
    pytest.importorskip("tensorflow")
    cfg = load_config(CONFIG)
    settings = BenchSettings(
        strategies=("reinforce",), seeds=2, budget_seconds=(2500.0,), queries=(12,), workers=1
    )
    results, walls = run_bench(cfg, settings)
    assert set(results["reinforce"]) == {"2500s", "12q"} and walls["reinforce"] > 0
    assert results["reinforce"]["12q"]["queries_mean"] == 12
    assert 80.0 < results["reinforce"]["12q"]["mean"] <= 94.38


def test_a_table_search_with_the_controller_imports_no_deep_learning_framework():
    code = (
        "import sys\n"
        "from rlnas.nb201.bench import BenchSettings, run_seeds\n"
        "from rlnas.config import load_config\n"
        f"cfg = load_config({str(CONFIG)!r})\n"
        "settings = BenchSettings(strategies=('reinforce',), seeds=1, queries=(20,), "
        "budget_seconds=(), workers=1)\n"
        "found, _ = run_seeds(cfg, settings, [0])\n"
        "assert found['reinforce'][0]['20q'][1] == 20\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'torch', 'jax') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_table_prints_the_published_figures_beside_ours():
    settings = BenchSettings(seeds=2, queries=(150,))
    fake = {"mean": 94.0, "std": 0.1, "queries_mean": 50.0, "seeds": 2}
    per_seed = {
        name: [{"12000s": (94.0, 50), "150q": (94.1, 150)}] * 2 for name in settings.strategies
    }
    results = summarize(settings, per_seed)
    assert results["rea"]["12000s"] == {**fake, "std": 0.0}
    table = format_table(results, settings)
    lines = {ln.split("|")[1].strip(): ln for ln in table.splitlines() if ln.startswith("| ")}
    assert lines["random"].endswith("| 93.70 ± 0.36 |")
    assert lines["reinforce"].endswith("| 93.85 ± 0.37 |")
    assert lines["rea"].endswith("| 93.92 ± 0.30 |")
    assert "94.37 (table)" in lines["optimum"] and lines["optimum"].endswith("| 94.37 |")
    assert "| 94.00 ± 0.00 [50.0] | 94.10 ± 0.00 [150.0] |" in lines["rea"]
    assert "TEST accuracy" in table and "Dong & Yang" in table


def test_cli_runs_a_tiny_bench_writes_results_and_logs_one_mlflow_run(tmp_path):
    out = tmp_path / "results.json"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cmd = [
        sys.executable,
        "-m",
        "rlnas",
        "bench",
        "nb201",
        "--dataset",
        "cifar10",
        "--strategies",
        "rea,random",
        "--seeds",
        "2",
        "--budget-seconds",
        "1500",
        "--queries",
        "6,12",
        "--workers",
        "1",
        "--out",
        str(out),
        "--tracking-uri",
        uri,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    assert list(results) == ["rea", "random"]
    for per_label in results.values():
        assert list(per_label) == ["1500s", "6q", "12q"]
        for r in per_label.values():
            assert set(r) == {"mean", "std", "queries_mean", "seeds"} and r["seeds"] == 2
    assert "93.92 ± 0.30" in proc.stdout and "TEST accuracy" in proc.stderr

    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("rlnas-bench")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1  # one parent run, not one per look-up
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.params["bench.seeds"] == "2"
    assert run.data.metrics["rea/12q/mean"] == results["rea"]["12q"]["mean"]
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"results.json", "table.md", "config.yaml"} <= names


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--strategies", "reinforce,bogo"],
            "`--strategies`: expected one of reinforce, rea, random",
        ),
        (["--queries", "10,x"], "--queries: expected ints separated by commas, got '10,x'"),
        (["--seeds", "0"], "`--seeds`: expected an integer >= 1, got 0"),
        (["--dataset", "cifar11"], "Did you mean `cifar10`?"),
    ],
)
def test_cli_bad_flags_are_one_line_errors(flags, message):
    cmd = [sys.executable, "-m", "rlnas", "bench", "nb201", "--no-track", *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
