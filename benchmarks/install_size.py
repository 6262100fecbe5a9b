"""The disk size of what ``make search`` installs, with and without Ray, side by side.

``make search`` creates a venv and runs ``pip install -e .`` (the core dependencies only).
Before issue 20 the default installation also brought Ray (``ray[default]``). This script
builds both in fresh venvs under a temporary folder with the same Python and the same pip,
then prints the size of each venv (``du``, MiB) and of its largest installed packages::

    python benchmarks/install_size.py [--python python3.11] [--top 12] [--keep DIR]

It needs the package index (pip's cache makes a second run faster; the venvs' sizes do not
depend on it). The editable install links the checkout, so the figures are the
dependencies' (and pip's, setuptools') size, not rlnas's own few hundred KiB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "core (make search now)": [],
    "core + ray[default] (before)": ["ray[default]"],
}


def du_mib(path: Path) -> float:
    """Disk usage of ``path`` as ``du`` counts it, in MiB."""
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1024


def site_packages(venv: Path) -> Path:
    [path] = venv.glob("lib/python*/site-packages")
    return path


def packages(venv: Path) -> dict[str, float]:
    """MiB per top-level entry of the venv's site-packages (``*.dist-info`` left out)."""
    sizes: dict[str, float] = {}
    for entry in site_packages(venv).iterdir():
        if entry.name.endswith((".dist-info", ".pth")) or entry.name == "__pycache__":
            continue
        sizes[entry.name] = du_mib(entry)
    return sizes


def build(python: str, venv: Path, extra: list[str]) -> tuple[float, float]:
    """A fresh venv at ``venv`` with rlnas (editable) and ``extra``; the seconds the venv and
    the installation took."""
    start = time.perf_counter()
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    made = time.perf_counter()
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    subprocess.run([*pip, "-q", "-e", str(ROOT), *extra], check=True)
    return made - start, time.perf_counter() - made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="python3.11", help="the Python make search uses")
    parser.add_argument("--top", type=int, default=12, help="largest packages to list")
    parser.add_argument("--keep", help="build the venvs in this folder and keep them")
    args = parser.parse_args()

    version = subprocess.run(
        [args.python, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    print(f"{version}; load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        totals: dict[str, float] = {}
        sizes: dict[str, dict[str, float]] = {}
        for i, (name, extra) in enumerate(VARIANTS.items()):
            venv = Path(tmp, f"venv{i}")
            _, seconds = build(args.python, venv, extra)
            totals[name] = du_mib(venv)
            sizes[name] = packages(venv)
            print(f"{name}: {totals[name]:,.0f} MiB (pip install {seconds:.0f} s)", flush=True)
        if args.keep:  # the temporary folder goes; the venvs stay for a look
            for i in range(len(VARIANTS)):
                os.replace(Path(tmp, f"venv{i}"), Path(args.keep, f"venv{i}"))
    print(f"load average after: {os.getloadavg()}\n")

    names = list(VARIANTS)
    first, last = totals[names[0]], totals[names[-1]]
    print(f"| venv | {' | '.join(names)} |")
    print("|---|" + "---:|" * len(names))
    print("| total (MiB) | " + " | ".join(f"**{totals[n]:,.0f}**" for n in names) + " |")
    every = {p for s in sizes.values() for p in s}
    largest = sorted(every, key=lambda p: -max(s.get(p, 0.0) for s in sizes.values()))
    for package in largest[: args.top]:
        cells = [f"{sizes[n][package]:,.1f}" if package in sizes[n] else "-" for n in names]
        print(f"| {package} | " + " | ".join(cells) + " |")
    print(f"\ncore / (core + ray[default]): {first:,.0f} / {last:,.0f} MiB = {first / last:.2f}")
    only = sorted(set(sizes[names[-1]]) - set(sizes[names[0]]))
    extra = sum(sizes[names[-1]][p] for p in only)
    print(f"packages only with Ray ({len(only)}): {extra:,.0f} MiB: {', '.join(only)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
