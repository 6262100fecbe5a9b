"""``rlnas controllers list|show``: saved controllers listed from their cards, shown with the
policy's preferences; unusable folders and bad names give one-line errors (exit 2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import ToySpace

import rlnas
from rlnas import zoo
from rlnas.cli import main
from rlnas.commands.controllers import CardSpace
from rlnas.strategies.reinforce import ReinforceConfig, ReinforceController

pytest.importorskip("tensorflow")
CFG = ReinforceConfig(hidden_size=16, batch_size=4, learning_rate=0.05)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One saved toy controller, nudged off uniform (made once: updates compile TF code)."""
    controller = ReinforceController(ToySpace(), CFG, seed=1)
    for _ in range(3):  # a few updates that favour width 64, so greedy != declaration order
        samples = [controller.ask() for _ in range(4)]
        for sample in samples:
            controller.tell(sample, 1.0 if sample.architecture["width"] == 64 else 0.0)
    folder = tmp_path_factory.mktemp("saved") / "toy"
    zoo.save_controller(controller, folder, task="t1", children=12, best_reward=0.9)
    return folder


@pytest.fixture
def root(tmp_path, saved):
    """A ``controllers/`` folder of this test's own holding a copy of the toy controller."""
    shutil.copytree(saved, tmp_path / "controllers" / "toy")
    return tmp_path / "controllers"


def shown(out: str) -> dict[str, list[tuple[str, float]]]:
    """Decision -> [(choice, probability), ...] from the output of `controllers show`."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Most likely choices"))
    result = {}
    for line in lines[start + 1 :]:
        name, *tokens = line.split()
        tokens = [t for t in tokens if not t.startswith("(+") and t != "more)"]
        result[name] = [(c, float(p)) for c, p in zip(tokens[::2], tokens[1::2])]
    return result


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rlnas: error: ")
    return err


def test_list_has_one_line_per_controller_and_says_why_a_folder_is_not_one(root, capsys):
    (root / "empty-folder").mkdir()
    (root / ".half.partial").mkdir()  # a save in progress is not listed
    assert main(["controllers", "list", "--root", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        *("NAME", "SPACE", "DECISIONS", "TASKS", "CHILDREN", "BEST", "RLNAS", "CREATED")
    ]
    row = lines[1].split()
    assert row[:7] == ["toy", "toy", "4", "t1", "12", "0.9000", rlnas.__version__]
    assert row[7] == zoo.read_card(root / "toy").created
    assert lines[2].startswith("empty-folder: not a usable controller: ")
    assert "card.json' does not exist" in lines[2]
    assert len(lines) == 3


def test_list_reports_a_bad_card_or_weights_without_failing(root, toy_space, capsys):
    second = ReinforceController(toy_space, CFG, seed=2)
    zoo.save_controller(second, root / "second", task="t2", children=3, best_reward=None)
    (root / "second" / "controller.weights.h5").write_bytes(b"not weights")
    card = json.loads((root / "toy" / "card.json").read_text())
    (root / "toy" / "card.json").write_text(json.dumps({**card, "format_version": 99}))
    assert main(["controllers", "list", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "No usable controllers" in out
    assert "second: not a usable controller: " in out and "is corrupt" in out
    assert "toy: not a usable controller: " in out and "card format version 99" in out


def test_list_of_an_empty_or_missing_root_says_so(tmp_path, capsys):
    assert main(["controllers", "list", "--root", str(tmp_path)]) == 0
    assert "No saved controllers" in capsys.readouterr().out
    assert main(["controllers", "list", "--root", str(tmp_path / "nowhere")]) == 0
    out = capsys.readouterr().out
    assert "No saved controllers" in out and "does not exist" in out and "--save-controller" in out


def test_show_prints_the_card_and_the_greedy_choices(root, toy_space, capsys):
    folder = root / "toy"
    assert main(["controllers", "show", str(folder), "--top", "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Controller {folder}")
    assert (
        "toy (4 decisions)" in out and "t1" in out and "12 (last search: 3 policy updates)" in out
    )
    got = shown(out)
    expected = zoo.load_controller(str(folder), toy_space).greedy()
    assert list(got) == [d.name for d in toy_space.signature]
    for name, ranked in expected:
        probs = [p for _, p in got[name]]
        assert [c for c, _ in got[name]] == [str(c) for c, _ in ranked]  # greedy choice first
        assert probs == sorted(probs, reverse=True)
        assert sum(probs) == pytest.approx(1.0, abs=0.003)  # printed with 3 decimals
    assert got["width"][0][0] == "64"  # what the updates favoured


def test_show_by_name_keeps_the_top_choices(root, capsys):
    assert main(["controllers", "show", "toy", "--root", str(root)]) == 0
    got = shown(capsys.readouterr().out)
    assert len(got["width"]) == 3 and len(got["act"]) == 3
    assert main(["controllers", "show", "toy", "--root", str(root), "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "(+3 more)" in out and len(shown(out)["width"]) == 1


def test_card_space_describes_the_card_space(root, toy_space):
    card = zoo.read_card(root / "toy")
    space = CardSpace(card.space)
    assert zoo.space_differences(card.space, space) == []
    assert space.describe() == json.loads(json.dumps(toy_space.describe()))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda text: "{not json", "is not valid JSON"),
        (lambda text: text.replace('"format_version": 1', '"format_version": 99'), "newer"),
        (lambda text: text.replace('"rlnas-controller"', '"other"'), "not an rlnas controller"),
        (lambda text: text.replace('"choices": [8, 16, 32, 64]', '"choices": []'), "rebuilt"),
    ],
)
def test_show_of_an_unusable_card_is_one_line_naming_the_file(root, capsys, edit, message):
    card = root / "toy" / "card.json"
    card.write_text(edit(card.read_text()))
    assert main(["controllers", "show", str(root / "toy")]) == 2
    err = error_line(capsys)
    assert str(card) in err and message in err


def test_a_newer_card_format_says_which_version_this_rlnas_reads(root):
    card = root / "toy" / "card.json"
    card.write_text(card.read_text().replace('"format_version": 1', '"format_version": 2'))
    with pytest.raises(zoo.ControllerError) as err:
        zoo.read_card(root / "toy")
    msg = str(err.value)
    assert str(card) in msg and "card format version 2 is newer" in msg
    assert f"reads (up to {zoo.FORMAT_VERSION})" in msg and "upgrade rlnas" in msg


def test_an_unknown_name_exits_2_with_the_known_names(root, capsys):
    assert main(["controllers", "show", "tyo", "--root", str(root)]) == 2
    err = error_line(capsys)
    assert "'tyo' is neither a controller folder nor a name under" in err
    assert "in it: toy" in err and "Did you mean `toy`?" in err
    assert main(["controllers", "show", "toy", "--top", "0", "--root", str(root)]) == 2
    assert "--top: expected an integer >= 1, got 0" in error_line(capsys)


def test_show_of_a_search_run_artifact(tmp_path, toy_space, toy_evaluator, capsys):
    from rlnas.executors import InlineExecutor
    from rlnas.search import Budget, Search
    from rlnas.tracking import MLflowTracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = MLflowTracker(uri, "zoo", task="toytask", artifacts=[zoo.ControllerSaver()])
    controller = ReinforceController(toy_space, CFG, seed=5)
    Search(controller, InlineExecutor(toy_evaluator()), Budget(3), observers=[tracker]).run()
    source = f"runs:/{tracker.run_id}/controller"
    assert main(["controllers", "show", source, "--uri", uri]) == 0
    out = capsys.readouterr().out
    assert f"Controller {source}" in out and "toytask" in out
    assert list(shown(out)) == [d.name for d, _ in zip(toy_space.signature, range(9))]


def test_list_starts_no_tensorflow(root):
    code = (
        "import sys; from rlnas.cli import main; "
        f"assert main(['controllers', 'list', '--root', {str(root)!r}]) == 0; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF loaded'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "toy" in done.stdout
