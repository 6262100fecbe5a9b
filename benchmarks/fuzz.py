"""Fuzz rlnas with bad input and count what comes back (issue 18's measure).

* ``--configs N`` configs mutated from ``configs/*.yaml`` (any key set to a wrong type, a
  boundary or non-finite number, unicode; files in Latin-1, UTF-16 or binary garbage; empty,
  duplicate or unknown keys; ``--set`` strings abused) go through the in-process loader
  (:func:`rlnas.config.load_config`), and ``--cli K`` of them through the real
  ``rlnas search`` with a fresh SQLite store each (``search.children=1``, ``child.epochs=1``).
* ``--data M`` generated data files (npz of any shape, dtype, NaN/inf, label kind, damaged
  bytes; image folders good, corrupt, truncated, flat, tiny) go through the task loader.

Each case has a timeout (``--timeout`` seconds, SIGALRM in-process, a subprocess timeout for
the CLI). Printed: cases, clean errors (an rlnas error of one line; for data it must name the
file), accepted, tracebacks (any other exception, the first few listed), hangs, and for the
CLI sample the runs created for refused input and runs left RUNNING. Goal: 0 tracebacks,
0 hangs, 0 runs for refused input.

    python benchmarks/fuzz.py --configs 2000 --data 300 --cli 20
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlnas.config import load_config, to_dict  # noqa: E402
from rlnas.errors import RlnasError  # noqa: E402

BAD_VALUES = [
    -1, 0, 1, 2**63, -(2**63), 10**30, 1e308, float("inf"), float("-inf"), float("nan"), 0.5,
    1e-320, -0.0, "", "é", "\u202e", "💥" * 50, "x" * 5000, None, True, [], [None], {}, {"a": 1},
    [1, "a"], [float("inf")], "1e999", "null",
]  # fmt: skip
SET_ABUSE = [
    "=", "child.epochs", "child.epochs=[", ".=1", "child..epochs=1", "seed=1e999", "seed=0x10",
    "task=", "task.name.deeper=1", "a" * 300 + "=1", "controller.from=../../etc", "\x00=1",
    "search.children=-5", "executor.workers=99999999", "tracking.uri=bogus://nowhere",
]  # fmt: skip
SUSPICIOUS = re.compile(r"empty file|duplicate|=(inf|-inf|nan|-1|\d{10,}|\d?e[-+]?\d{3}|'')")
"""Accepted input that is probably wrong (non-finite, negative, huge or tiny numbers, empty
files, duplicate keys)."""
NAMES_WHAT = re.compile(r"`[^`]+`|--config|--set|task\.path|tracking\.uri")
"""What a clean CLI error names: a field (in backticks), the flag or the file."""
TF_NATIVE_LOG = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} )")


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    def on_alarm(signum, frame):
        raise Hang

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- configs --------------------------------------------------------------------------------
def leaves(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        out += leaves(v, key + ".") if isinstance(v, dict) else [key]
    return out


def mutate_config(rng: random.Random, bases: list[Path], folder: Path, i: int):
    """One mutated config: (path, overrides, description)."""
    base = rng.choice(bases)
    data = yaml.safe_load(base.read_text()) or {}
    resolved = to_dict(load_config(base))
    path = folder / f"c{i}.yaml"
    kind = rng.choice(["value"] * 6 + ["bytes", "keys", "set", "empty"])
    overrides: list[str] = []
    if kind == "value":
        changed = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            key = rng.choice(leaves(resolved))
            value = rng.choice(BAD_VALUES)
            node = data
            for part in key.split(".")[:-1]:
                node = node.setdefault(part, {}) if isinstance(node.get(part), dict) else node
                if node is data and part in data and not isinstance(data[part], dict):
                    data[part] = {"name": data[part]}
                    node = data[part]
            node[key.split(".")[-1]] = value
            changed.append(f"{key}={value!r}"[:60])
        desc = f"{base.name}: {', '.join(changed)}"
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
    elif kind == "bytes":
        text = base.read_text()
        form = rng.choice(["latin1", "utf16", "garbage", "nul"])
        raw = {
            "latin1": (text + "# caf\xe9\n").encode("latin-1"),
            "utf16": text.encode("utf-16"),
            "garbage": bytes(rng.randrange(256) for _ in range(200)),
            "nul": text.encode()[:50] + b"\x00" + text.encode()[50:],
        }[form]
        path.write_bytes(raw)
        desc = f"{base.name}: bytes {form}"
    elif kind == "keys":
        text = base.read_text()
        form = rng.choice(["duplicate", "unknown", "toplist", "tab"])
        text = {
            "duplicate": text + "\nseed: 1\nseed: 2\n",
            "unknown": text + "\nchild: {epoch: 2}\n",
            "toplist": "- a\n- b\n",
            "tab": "seed:\t1\n\tchild: 2\n",
        }[form]
        path.write_text(text)
        desc = f"{base.name}: keys {form}"
    elif kind == "set":
        path.write_text(base.read_text())
        overrides = rng.sample(SET_ABUSE, rng.choice([1, 2]))
        key = rng.choice(leaves(resolved))
        overrides.append(f"{key}={yaml.safe_dump(rng.choice(BAD_VALUES)).strip()}")
        desc = f"{base.name}: --set {overrides}"[:120]
    else:
        path.write_text(rng.choice(["", "# only a comment\n", "---\n", "null\n"]))
        desc = "empty file"
    return path, overrides, desc


def one_config(path: Path, overrides: list[str], timeout: float) -> tuple[str, str]:
    try:
        with time_limit(timeout):
            load_config(path, overrides)
    except Hang:
        return "hang", ""
    except RlnasError as exc:
        text = str(exc)
        one_line = text and "\n" not in text.strip()
        named = NAMES_WHAT.search(text) or str(path) in text
        return ("clean" if one_line and named else "unclear"), text
    except Exception as exc:
        return "traceback", f"{type(exc).__name__}: {exc}"[:200]
    return "accepted", ""


def cli_case(path: Path, overrides: list[str], timeout: float) -> tuple[str, int, int, str]:
    """(outcome, runs, running, detail) of ``rlnas search`` on one case, with a fresh store."""
    with tempfile.TemporaryDirectory() as store:
        db = Path(store) / "mlflow.db"
        sets = [x for o in overrides for x in ("--set", o)]
        sets += ["--set", f"tracking.uri=sqlite:///{db}", "--set", "search.children=1"]
        sets += ["--set", "child.epochs=1"]
        cmd = [sys.executable, "-m", "rlnas", "search", "--config", str(path), "--no-progress"]
        try:
            proc = subprocess.run(
                cmd + sets, capture_output=True, text=True, timeout=timeout, cwd=store,
                env={**os.environ, "PYTHONPATH": str(ROOT)}, errors="replace",
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return "hang", *count_runs(db), ""
        runs, running = count_runs(db)
        lines = [x for x in proc.stderr.strip().splitlines() if not TF_NATIVE_LOG.match(x)]
        if proc.returncode == 0:
            return "accepted", runs, running, ""
        if proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("rlnas: error:"):
            named = NAMES_WHAT.search(lines[0]) or str(path) in lines[0]
            return ("clean" if named else "unclear"), runs, running, lines[0]
        tail = lines[-1] if lines else f"exit {proc.returncode}"
        return "traceback", runs, running, tail[:200]


def count_runs(db: Path) -> tuple[int, int]:
    if not db.exists():
        return 0, 0
    with contextlib.closing(sqlite3.connect(db)) as con:
        tables = {r[0] for r in con.execute("select name from sqlite_master")}
        if "runs" not in tables:
            return 0, 0
        runs = con.execute("select count(*) from runs").fetchone()[0]
        running = con.execute("select count(*) from runs where status='RUNNING'").fetchone()[0]
    return runs, running


# -- data files -----------------------------------------------------------------------------
def make_npz(rng: np.random.Generator, path: Path) -> str:
    n = int(rng.choice([0, 1, 3, 10, 40, 60, 60, 60]))
    shape = [int(s) for s in rng.integers(0, 5, size=rng.integers(0, 4))]
    shape = shape if rng.random() < 0.4 else [[3], [4, 2], [6, 6, 1]][int(rng.integers(3))]
    dtype = str(
        rng.choice(["float32"] * 4 + ["float64", "float16", "uint8", "int64", "bool", "<U2"])
    )
    with np.errstate(all="ignore"):
        x = (rng.normal(size=(n, *shape)) * rng.choice([1, 300, 1e40])).astype(dtype)
    if dtype.startswith("float") and x.size and rng.random() < 0.3:
        x.flat[int(rng.integers(x.size))] = rng.choice([np.nan, np.inf])
    k = int(rng.choice([1, 2, 2, 3, 4]))
    y = np.arange(n + int(rng.choice([0] * 6 + [1, -1]))) % k
    kinds = ["int"] * 5 + ["float", "frac", "nan", "str", "bytes", "onehot", "object"]
    label = str(rng.choice(kinds))
    y = {
        "int": y, "float": y.astype(float), "frac": y + 0.5,
        "nan": np.where(y == 0, np.nan, y), "str": y.astype(str),
        "bytes": np.array([b"\xff" if v == 0 else b"a%d" % v for v in y]),
        "onehot": np.eye(k)[y] if len(y) else y, "object": np.array(list(y) + [None])[:-1],
    }[label]  # fmt: skip
    arrays = {"x": x, "y": y}
    if rng.random() < 0.1:
        arrays.pop(str(rng.choice(["x", "y"])))
    np.savez(path, **arrays)
    damage = str(rng.choice(["none"] * 8 + ["truncate", "flip"]))
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(raw[: int(rng.integers(len(raw)))])
    elif damage == "flip":
        raw[int(rng.integers(len(raw)))] ^= 0xFF
        path.write_bytes(bytes(raw))
    return f"npz n={n} x{tuple(x.shape)} {dtype} y={label} {damage}"


def make_folder(rng: np.random.Generator, root: Path) -> str:
    from PIL import Image

    classes, per = int(rng.choice([0, 1, 2, 2, 2, 3])), int(rng.choice([0, 1, 4, 8, 8, 8]))
    size = [(1, 1), (7, 9), (8, 8), (16, 12), (16, 12)][int(rng.integers(5))]
    fmt = str(rng.choice(["png", "jpg", "gif", "bmp"]))
    mode = str(rng.choice(["L", "RGB"]))
    files = []
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per):
            files.append(root / f"c{c}" / f"{i}.{fmt}")
            px = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(px).convert(mode).save(files[-1])
    root.mkdir(exist_ok=True)
    loose = int(rng.choice([0, 0, 0, 2]))
    for i in range(loose):
        Image.new("RGB", size).save(root / f"loose{i}.png")
    damage = str(rng.choice(["none"] * 6 + ["truncate", "garbage", "empty"]))
    if files and damage != "none":
        f = files[int(rng.integers(len(files)))]
        data = f.read_bytes()
        f.write_bytes(
            {"truncate": data[: len(data) // 3], "garbage": b"junk", "empty": b""}[damage]
        )
    return f"folder {classes}x{per} {size} {fmt}/{mode} loose={loose} {damage}"


def one_data(rng: np.random.Generator, folder: Path, i: int, timeout: float):
    from rlnas.config import TaskConfig
    from rlnas.tasks import load_task

    if rng.random() < 0.3:
        path = folder / f"images{i}"
        desc = make_folder(rng, path)
        cfg = TaskConfig(name="image_folder", path=str(path), image_size=(8, 8))
    else:
        path = folder / f"d{i}.npz"
        desc = make_npz(rng, path)
        cfg = TaskConfig(name="npz", path=str(path))
    try:
        with time_limit(timeout):
            data = load_task(cfg)
    except Hang:
        return "hang", desc
    except RlnasError as exc:
        text = str(exc)
        ok = "\n" not in text and str(path) in text
        return ("clean" if ok else "unclear"), f"{desc}: {text[:150]}"
    except Exception as exc:
        return "traceback", f"{desc}: {type(exc).__name__}: {exc}"[:240]
    ok = all(np.isfinite(a).all() for a in (data.x_train, data.x_val, data.x_test))
    return ("accepted" if ok else "wrong"), desc


# -- main -----------------------------------------------------------------------------------
def report(title: str, outcomes: Counter, examples: dict[str, list[str]], extra: str = "") -> None:
    total = sum(outcomes.values())
    parts = ", ".join(f"{k} {outcomes.get(k, 0)}" for k in
                      ("clean", "accepted", "traceback", "hang", "unclear", "wrong"))  # fmt: skip
    print(f"{title}: {total} cases: {parts}{extra}")
    odd = [x for x in examples.get("accepted", []) if SUSPICIOUS.search(x.split(" -> ")[0])]
    for line in odd[:8]:
        print(f"  accepted, worth a look: {line}")
    for kind in ("traceback", "hang", "unclear", "wrong"):
        seen: dict[str, str] = {}  # one example per distinct exception and config key
        for line in examples.get(kind, []):
            seen.setdefault(re.sub(r"\d+|'.*?'", "#", line.split(": ", 1)[-1])[:60], line)
        for line in list(seen.values())[:8]:
            print(f"  {kind}: {line}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", type=int, default=2000)
    p.add_argument("--data", type=int, default=300)
    p.add_argument("--cli", type=int, default=10, help="configs also run through the CLI")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per in-process case")
    p.add_argument("--cli-timeout", type=float, default=180.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rng, nrng = random.Random(args.seed), np.random.default_rng(args.seed)
    bases = sorted((ROOT / "configs").glob("*.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        outcomes, examples, cases = Counter(), {}, []
        for i in range(args.configs):
            path, overrides, desc = mutate_config(rng, bases, folder, i)
            outcome, text = one_config(path, overrides, args.timeout)
            outcomes[outcome] += 1
            examples.setdefault(outcome, []).append(f"{desc} -> {text}"[:240])
            cases.append((path, overrides, desc, outcome))
        report("configs (in-process loader)", outcomes, examples)
        sample = rng.sample(cases, min(args.cli, len(cases)))
        cli_out, cli_ex, refused_runs, running = Counter(), {}, 0, 0
        for path, overrides, desc, _ in sample:
            outcome, runs, left, detail = cli_case(path, overrides, args.cli_timeout)
            cli_out[outcome] += 1
            cli_ex.setdefault(outcome, []).append(f"{desc} -> {detail}")
            refused_runs += runs if outcome != "accepted" else 0
            running += left
        runs = f"; runs created for refused input {refused_runs}, runs left RUNNING {running}"
        report("configs (CLI sample)", cli_out, cli_ex, runs)
        outcomes, examples = Counter(), {}
        import tensorflow  # noqa: F401  (imported once here: its import is no case's time)

        for i in range(args.data):
            outcome, desc = one_data(nrng, folder, i, args.timeout)
            outcomes[outcome] += 1
            examples.setdefault(outcome, []).append(desc)
        report("data files (task loader)", outcomes, examples)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
