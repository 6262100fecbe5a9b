"""GPU assignment of process workers, decided without a GPU (pure functions)."""

from __future__ import annotations

import pytest

from rlnas.config import ExecutorConfig
from rlnas.errors import ConfigError
from rlnas.executors import devices


def visible(env: dict[str, str]) -> list[str]:
    return devices.visible_gpus(env)


def test_workers_are_spread_round_robin_over_the_visible_gpus():
    gpus = ["0", "1", "2"]
    seen = [devices.assign(i, gpus, 0)["CUDA_VISIBLE_DEVICES"] for i in range(5)]
    assert seen == ["0", "1", "2", "0", "1"]


def test_each_worker_gets_its_gpus_in_a_block():
    gpus = ["4", "5", "6", "7"]
    assert [devices.assign(i, gpus, 2)["CUDA_VISIBLE_DEVICES"] for i in range(3)] == [
        "4,5",
        "6,7",
        "4,5",
    ]
    assert devices.assign(0, ["3"], 2)["CUDA_VISIBLE_DEVICES"] == "3"  # no more than there are


def test_memory_growth_is_on_and_no_gpu_means_an_empty_environment():
    assert devices.assign(1, ["0", "1"], 1)["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert devices.assign(0, [], 0) == {}


@pytest.mark.parametrize(
    "listed, expected",
    [("0,1", ["0", "1"]), (" 2 , 3 ", ["2", "3"]), ("", []), ("-1", []), ("1,-1,2", ["1"])],
)
def test_cuda_visible_devices_says_which_gpus_are_visible(listed, expected):
    assert visible({"CUDA_VISIBLE_DEVICES": listed}) == expected


def test_asking_for_gpus_where_there_are_none_is_one_line():
    devices.require_gpus(0, [])
    devices.require_gpus(1, ["0"])
    with pytest.raises(ConfigError) as info:
        devices.require_gpus(1, [])
    message = str(info.value)
    assert "\n" not in message and message.startswith("`executor.gpus_per_worker`")
    assert "got 1" in message


def test_gpus_per_worker_is_bounded_in_the_config():
    assert ExecutorConfig().gpus_per_worker == 0
    with pytest.raises(ConfigError, match="gpus_per_worker"):
        ExecutorConfig(gpus_per_worker=-1)


def test_a_process_pool_asking_for_a_gpu_on_a_cpu_machine_starts_no_worker(monkeypatch):
    from doubles import FormulaEvaluator

    from rlnas.executors.process import ProcessExecutor

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    cfg = ExecutorConfig(kind="process", workers=2, gpus_per_worker=1)
    with pytest.raises(ConfigError, match="gpus_per_worker"):
        ProcessExecutor(FormulaEvaluator, cfg)


class DeviceEvaluator:
    """Says which GPUs its worker process was given (importable by spawned workers)."""

    def fingerprint(self) -> str:
        return "devices"

    def evaluate(self, architecture, *, seed: int, number: int):
        import os

        from rlnas.trial import Outcome

        env = {k: os.environ.get(k, "") for k in devices.assign(0, ["0"], 0)}
        return Outcome(0.0, texts=env)


def test_each_process_worker_starts_with_its_own_gpu(monkeypatch):
    from rlnas.executors import Job
    from rlnas.executors.process import ProcessExecutor

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # two "GPUs" for the driver
    cfg = ExecutorConfig(kind="process", workers=2, recycle_after=None)
    executor = ProcessExecutor(DeviceEvaluator, cfg)
    try:
        assert executor.fingerprint() == "devices"
        # both workers ready before any job, so that each takes one
        while not all(w.ready for w in executor._workers):
            executor._poll(None)
        for number in range(2):
            executor.submit(Job(number, {}, seed=0))
        results = {}
        while len(results) < 2:
            results.update(executor.wait())
    finally:
        executor.close()
    seen = sorted(r.texts["CUDA_VISIBLE_DEVICES"] for r in results.values())
    assert seen == ["3", "5"]
    assert {r.texts["TF_FORCE_GPU_ALLOW_GROWTH"] for r in results.values()} == {"true"}
