"""Children per hour with the inline, process and ray executors on the same search.

Bars (issue 5): with 2 ``process`` workers on a 2-core machine, at least 1.6x the children
per hour of ``inline``; with 2 ``ray`` workers, at least 1.5x. Issue 20: the Ray executor
joined to an external local cluster (``ray-external``: ``ray start --head --num-cpus 2``,
started here on free ports with its own temp folder, joined through
``executor.ray_address``, ended at the end) keeps the ratio to inline of a local ``ray``
within 5%.

The search: scikit-learn's digits, the demo's ``layers`` space (configs/demo.yaml), random
search with seed 0 (its proposals do not depend on the order rewards arrive in, so every
executor trains the same children with the same seeds), ``--children`` children of
``--epochs`` epochs (2-5 s each on 2 idle cores). No MLflow: this times the executors.

Each run is a fresh Python process (nothing is warm), the executors alternate, ``--repeats``
rounds. Two rates per run: *whole* (children / wall time from building the executor to the
last child: worker start-up included, what a short search pays) and *steady* (after each
worker's first child: what a long search approaches). The machine's load average is printed
before and after; a loaded machine makes the figures meaningless, so read them with it::

    python benchmarks/throughput.py [--children 16] [--epochs 2] [--repeats 3]
    python benchmarks/throughput.py --kinds inline ray ray-external
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTERNAL = "ray-external"
"""The kind whose Ray executor joins a cluster started with ``ray start --head``."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@contextlib.contextmanager
def external_cluster(cpus: int, env: dict[str, str]):
    """A Ray cluster of ``cpus`` CPUs started with ``ray start --head --block`` in its own
    session and temp folder, on free ports, no dashboard; yields its address. Ended by
    signalling the members of its session only (``ray stop`` would end every Ray of this
    user on the machine)."""
    ray = Path(sys.executable).with_name("ray")
    temp = tempfile.mkdtemp(prefix="rlray", dir="/tmp")  # short: Ray's sockets live here
    port = free_port()
    command = [
        str(ray), "start", "--head", "--block", f"--port={port}", f"--num-cpus={cpus}",
        f"--temp-dir={temp}", f"--ray-client-server-port={free_port()}",
        "--node-ip-address=127.0.0.1", f"--dashboard-agent-listen-port={free_port()}",
        "--disable-usage-stats", "--include-dashboard=false",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`ray start --head` did not come up: {proc.stderr.read()!r}")
            time.sleep(0.5)
        time.sleep(2)  # the raylet registers after the GCS listens
        yield f"127.0.0.1:{port}"
    finally:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            for pid in session_members(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while session_members(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
        proc.wait(10)
        shutil.rmtree(temp, ignore_errors=True)


def one(kind: str, children: int, epochs: int, workers: int, address: str | None = None) -> dict:
    """Run the search once with executor ``kind`` (in this process); its timings."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from rlnas import factory
    from rlnas.config import load_config
    from rlnas.search import Budget, Search

    overrides = [
        "strategy=random",
        f"child.epochs={epochs}",
        f"search.children={children}",
        f"executor.kind={'ray' if kind == EXTERNAL else kind}",
        f"executor.workers={workers}",
        "executor.recycle_after=null",
    ]
    if kind == EXTERNAL:
        overrides.append(f"executor.ray_address='{address}'")
    cfg = load_config(ROOT / "configs" / "demo.yaml", overrides)
    space = factory.make_space(cfg)
    strategy = factory.make_strategy(cfg, space)
    finished: list[float] = []

    class Clock:
        def trial_finished(self, search, trial):
            finished.append(time.perf_counter())

    start = time.perf_counter()
    executor = factory.make_executor(cfg)
    result = Search(strategy, executor, Budget(children=children), 0, observers=[Clock()]).run()
    wall = time.perf_counter() - start
    k = 1 if kind == "inline" else workers  # each worker's first child carries its start-up
    steady = (len(finished) - k) / (finished[-1] - finished[k - 1]) if len(finished) > k else 0.0
    return {
        "kind": kind,
        "wall": wall,
        "whole": 3600 * len(finished) / wall,
        "steady": 3600 * steady,
        "failed": result.failed,
        "hashes": [t.architecture.hash for t in result.trials],
        "rewards": [t.reward for t in result.trials],
        "costs": [t.cost for t in result.trials],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--kinds",
        nargs="+",
        default=["inline", "process", "ray"],
        choices=["inline", "process", "ray", EXTERNAL],
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one run, JSON out
    parser.add_argument("--address", help=argparse.SUPPRESS)  # internal: the cluster
    args = parser.parse_args()
    if args.one:
        result = one(args.one, args.children, args.epochs, args.workers, args.address)
        print(json.dumps(result))
        return

    print(f"load average before: {os.getloadavg()}  (cores: {os.cpu_count()})", flush=True)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # the cluster's own token (Ray's default token file is shared by every Ray of this user)
    cluster_env = env | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(32).hex()}
    with contextlib.ExitStack() as stack:
        address = None
        if EXTERNAL in args.kinds:
            address = stack.enter_context(external_cluster(args.workers, cluster_env))
            print(f"external cluster: {address} (ray start --head --num-cpus {args.workers})")
        runs = measure(args, address, env, cluster_env)
    report(args, runs)


def measure(args, address: str | None, env: dict, cluster_env: dict) -> dict[str, list[dict]]:
    """Every kind once per round, each a fresh process; the runs by kind."""
    runs: dict[str, list[dict]] = {k: [] for k in args.kinds}
    for r in range(args.repeats):
        for kind in args.kinds:
            command = [sys.executable, __file__, "--one", kind]
            command += ["--children", str(args.children), "--epochs", str(args.epochs)]
            command += ["--workers", str(args.workers)]
            if kind == EXTERNAL:
                command += ["--address", str(address)]
            proc = subprocess.run(
                command,
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=cluster_env if kind == EXTERNAL else env,
            )
            if proc.returncode != 0:
                print(f"{kind} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            run = json.loads(proc.stdout.strip().splitlines()[-1])
            runs[kind].append(run)
            print(
                f"round {r + 1} {kind:12s} wall {run['wall']:6.1f} s  whole {run['whole']:6.0f}"
                f" children/h  steady {run['steady']:6.0f} children/h  failed {run['failed']}"
                f"  load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()}")
    return runs


def report(args, runs: dict[str, list[dict]]) -> None:
    """Medians by kind, their ratios to inline, and whether every kind trained the same
    children."""
    med = {
        k: {m: statistics.median(x[m] for x in v) for m in ("whole", "steady")}
        for k, v in runs.items()
        if v
    }
    base = med.get("inline")
    print(f"\nmedians over {args.repeats} rounds ({args.children} children, {args.epochs} epochs):")
    for kind, m in med.items():
        ratio = ""
        if base and kind != "inline":
            whole, steady = m["whole"] / base["whole"], m["steady"] / base["steady"]
            ratio = f"  x{whole:.2f} whole, x{steady:.2f} steady"
        print(f"  {kind:12s} {m['whole']:6.0f} children/h whole, {m['steady']:6.0f} steady{ratio}")
    reference = next(iter(v for v in runs.values() if v))[0]
    for kind, v in runs.items():
        for run in v:
            same = run["hashes"] == reference["hashes"]
            diff = max(
                (abs(a - b) for a, b in zip(run["rewards"], reference["rewards"]) if a and b),
                default=0.0,
            )
            print(
                f"  {kind:12s} same children as the first run: {same}; max reward diff {diff:.4f}"
            )
            break


if __name__ == "__main__":
    main()
