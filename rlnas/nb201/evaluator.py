"""The NAS-Bench-201 evaluator: a table look-up instead of training a child.

reward = the cell's 200-epoch **test** accuracy on the chosen data set. The shipped table
has no validation accuracy for all 15,625 cells, so this protocol, unlike a real search,
rewards with test accuracy (as the table-lookup results of the NAS-Bench-201 paper report
test accuracy). It is a benchmark of search strategies, not a model-selection procedure.

cost = 12 x the cell's per-epoch training time: what the paper's 12-epoch proxy costs, so
that a budget in (simulated) seconds means what it meant in the paper (12,000 s is about
55 children on CIFAR-10).

With ``hw`` (pairs of HW-NAS-Bench device and ``latency``/``energy``, from
``search.objectives``) each look-up also returns those values as metrics
``hw_{device}_latency_ms`` / ``hw_{device}_energy_mj`` (CIFAR-10 input size; NaN where
HW-NAS-Bench has no measurement, e.g. the Edge TPU for 4,699 cells).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rlnas.errors import ChildFailure, require_one_of
from rlnas.hw_table import check_device, load_hw_table
from rlnas.nb201.table import load_table
from rlnas.nb201.vocabulary import DATASETS, EDGES, OPS, arch_str
from rlnas.objectives import hw_metric_key
from rlnas.trial import Outcome

PROXY_EPOCHS = 12
"""Epochs of the proxy training whose time a look-up costs (NAS-Bench-201 paper)."""
PROTOCOL_NOTE = (
    "NAS-Bench-201 protocol: reward = 200-epoch TEST accuracy (the table has no full "
    "validation column); cost = 12 x per-epoch training time (simulated seconds)."
)
_CODE = {op: i for i, op in enumerate(OPS)}


class Nb201Evaluator:
    """Looks a ``nb201`` architecture up in the NAS-Bench-201 table.

    >>> ev = Nb201Evaluator("cifar10")
    >>> ev.evaluate({e: "nor_conv_3x3" for e in EDGES}, seed=0, number=0).reward  # doctest: +SKIP
    """

    def __init__(self, dataset: str = "cifar10", hw: Sequence[tuple[str, str]] = ()) -> None:
        require_one_of("task.dataset", dataset, DATASETS)
        self.dataset = dataset
        self.table = load_table()  # read and checked here, before any search starts
        self._acc = self.table.test_acc[dataset]
        self._cost = self.table.epoch_seconds[dataset] * PROXY_EPOCHS
        self.hw = tuple(hw)
        for device, metric in self.hw:
            check_device(device, metric, field="search.objectives")
        table = load_hw_table() if self.hw else None
        self._hw = {hw_metric_key(d, m): table.column(d, m) for d, m in self.hw} if table else {}

    def fingerprint(self) -> str:
        return f"nb201-table/{self.dataset}/test_acc-200ep/cost-{PROXY_EPOCHS}x-epoch"

    def row(self, architecture: Mapping[str, object]) -> int:
        """The table row (NAS-Bench-201 index) of an architecture of the ``nb201`` space."""
        code = 0
        try:
            for edge in EDGES:
                code = code * len(OPS) + _CODE[architecture[edge]]  # type: ignore[index]
        except (KeyError, TypeError):
            raise ChildFailure(
                "unbuildable",
                f"not a NAS-Bench-201 cell: expected the decisions {list(EDGES)} with values "
                f"in {list(OPS)}, got {dict(architecture)}.",
            ) from None
        return int(self.table.row_by_code[code])

    def evaluate(self, architecture: Mapping[str, object], *, seed: int, number: int) -> Outcome:
        row = self.row(architecture)
        acc = float(self._acc[row])
        cost = float(self._cost[row])
        return Outcome(
            reward=acc,
            metrics={
                "test_accuracy": acc,
                "nb201_index": float(row),
                "cost_seconds": cost,
                **{key: float(column[row]) for key, column in self._hw.items()},
            },
            cost=cost,
            texts={"nb201_arch.txt": arch_str(tuple(str(architecture[e]) for e in EDGES))},
        )
