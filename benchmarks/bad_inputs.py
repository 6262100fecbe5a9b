"""Issue 18's list of bad inputs, each through the real ``rlnas search``: prints a table.

Each case runs ``python -m rlnas search`` in a fresh folder with a fresh SQLite store
(``search.children=2``, ``child.epochs=1``) and reports the exit status, the stderr lines
that are not TensorFlow's native start-up log, the runs the store holds afterwards and those
left RUNNING. The contract: exit 0, or exit 2 with one line naming the field or file and no
run; never a traceback, never a hang (``--timeout`` seconds per case).

    python benchmarks/bad_inputs.py            # all cases
    python benchmarks/bad_inputs.py -k png     # the cases whose name contains "png"
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TF_NATIVE_LOG = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} )")
DIGITS = "task: {name: digits}\nspace: layers\n"
C = DIGITS + "controller: "


def npz(folder: Path, **arrays) -> str:
    np.savez(folder / "d.npz", **arrays)
    return str(folder / "d.npz")


def images(folder: Path, damage: str) -> str:
    from PIL import Image

    root = folder / "images"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(root / c / f"{i}.png")
    if damage == "corrupt":
        (root / "a" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n junk")
    elif damage == "truncated":
        data = (root / "b" / "1.png").read_bytes()
        (root / "b" / "1.png").write_bytes(data[: len(data) // 2])
    elif damage == "flat":
        for c in ("a", "b"):
            for f in (root / c).iterdir():
                f.rename(root / f"{c}{f.name}")
            (root / c).rmdir()
    return str(root)


def yaml_case(text: str) -> Callable[[Path], tuple[str, list[str]]]:
    def make(folder: Path) -> tuple[str, list[str]]:
        (folder / "c.yaml").write_text(text)
        return str(folder / "c.yaml"), []

    return make


def bytes_case(raw: bytes) -> Callable[[Path], tuple[str, list[str]]]:
    def make(folder: Path) -> tuple[str, list[str]]:
        (folder / "c.yaml").write_bytes(raw)
        return str(folder / "c.yaml"), []

    return make


def data_case(make_path: Callable[[Path], str], name: str = "npz", extra: str = ""):
    def make(folder: Path) -> tuple[str, list[str]]:
        path = make_path(folder)
        text = f"task: {{name: {name}, path: '{path}'{extra}}}\nspace: layers\n"
        (folder / "c.yaml").write_text(text)
        return str(folder / "c.yaml"), []

    return make


rng = np.random.default_rng(0)
X, Y = rng.normal(size=(60, 6)).astype("float32"), np.arange(60) % 3
CASES: dict[str, Callable[[Path], tuple[str, list[str]]]] = {
    "seed: -1": yaml_case(DIGITS + "seed: -1\n"),
    "task.split_seed: -1": yaml_case("task: {name: digits, split_seed: -1}\n"),
    "controller.hidden_size: 1e12": yaml_case(C + "{hidden_size: 1000000000000}\n"),
    "controller.init_range: .inf": yaml_case(C + "{init_range: .inf}\n"),
    "controller.init_range: 1e12": yaml_case(C + "{init_range: 1e12}\n"),
    "controller.learning_rate: .inf": yaml_case(C + "{learning_rate: .inf}\n"),
    "controller.learning_rate: 1e300": yaml_case(C + "{learning_rate: 1e300}\n"),
    "controller.entropy_weight: .inf": yaml_case(C + "{entropy_weight: .inf}\n"),
    "controller.lr: 0.1": yaml_case(C + "{lr: 0.1}\n"),
    "search.failed_reward: .nan": yaml_case(DIGITS + "search: {failed_reward: .nan}\n"),
    "search.max_failures: 1e30": yaml_case(DIGITS + "search: {max_failures: 1e30}\n"),
    "task.validation_fraction: 1e-320": yaml_case(
        "task: {name: digits, validation_fraction: 1e-320}\n"
    ),
    "tracking.uri: bogus://nowhere": yaml_case(DIGITS + "tracking: {uri: 'bogus://nowhere'}\n"),
    "tracking.experiment: ''": yaml_case(DIGITS + "tracking: {experiment: ''}\n"),
    "space nb201 + task digits": yaml_case("task: {name: digits}\nspace: nb201\n"),
    "layers.learning_rates: [.inf]": yaml_case(DIGITS + "layers: {learning_rates: [.inf]}\n"),
    "layers.weight_decays: [.inf]": yaml_case(DIGITS + "layers: {weight_decays: [.inf]}\n"),
    "executor.workers: 99999999": yaml_case(DIGITS + "executor: {workers: 99999999}\n"),
    "duplicate keys": yaml_case(DIGITS + "seed: 1\nseed: 2\n"),
    "empty file": yaml_case(""),
    "comment-only file": yaml_case("# nothing here\n"),
    "latin-1 comment": bytes_case((DIGITS + "# caf\xe9\n").encode("latin-1")),
    "latin-1 value": bytes_case("task: {name: caf\xe9}\n".encode("latin-1")),
    "utf-16 file": bytes_case(DIGITS.encode("utf-16")),
    "binary garbage": bytes_case(bytes(range(256)) * 2),
    "a folder as --config": lambda folder: (str(folder), []),
    "/dev/null as --config": lambda folder: ("/dev/null", []),
    "npz: NaN in y": data_case(lambda f: npz(f, x=X, y=np.where(Y == 0, np.nan, Y))),
    "npz: zero features": data_case(lambda f: npz(f, x=np.zeros((60, 0), "float32"), y=Y)),
    "images: corrupt png": data_case(lambda f: images(f, "corrupt"), "image_folder"),
    "images: truncated png": data_case(lambda f: images(f, "truncated"), "image_folder"),
    "images: top level, no classes": data_case(lambda f: images(f, "flat"), "image_folder"),
}  # fmt: skip


def count_runs(db: Path) -> tuple[int, int]:
    if not db.exists():
        return 0, 0
    with contextlib.closing(sqlite3.connect(db)) as con:
        if not con.execute("select name from sqlite_master where name='runs'").fetchone():
            return 0, 0
        runs = con.execute("select count(*) from runs").fetchone()[0]
        running = con.execute("select count(*) from runs where status='RUNNING'").fetchone()[0]
    return runs, running


def run_case(make, timeout: float) -> tuple[str, int, int, int, int, str]:
    """(verdict, exit status, stderr lines, runs, runs RUNNING, last stderr line)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config, extra = make(folder)
        db = folder / "mlflow.db"
        cmd = [sys.executable, "-m", "rlnas", "search", "--config", config, "--no-progress"]
        cmd += [*extra, "--set", "search.children=2", "--set", "child.epochs=1"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, cwd=folder, env=env, timeout=timeout,
                errors="replace",
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return "HANG", -1, 0, *count_runs(db), ""
        runs, running = count_runs(db)
    lines = [x for x in proc.stderr.strip().splitlines() if not TF_NATIVE_LOG.match(x)]
    ok = (proc.returncode == 0 and running == 0) or (
        proc.returncode == 2 and len(lines) == 1 and runs == 0
    )
    last = lines[-1] if lines else ""
    return ("ok" if ok else "FAIL"), proc.returncode, len(lines), runs, running, last


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-k", default="", help="only the cases whose name contains this")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per case")
    args = p.parse_args(argv)
    print("| case | verdict | exit | stderr lines | runs | RUNNING | message |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    failed = 0
    for name, make in CASES.items():
        if args.k not in name:
            continue
        verdict, code, n, runs, running, last = run_case(make, args.timeout)
        failed += verdict != "ok"
        print(f"| {name} | {verdict} | {code} | {n} | {runs} | {running} | {last[:110]} |")
    print(f"\n{failed} case(s) broke the contract")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
