"""The device monitor's GPU code path on a faked CUDA device (no GPU here), and its silence on CPU."""

from __future__ import annotations

import pytest
import torch

from callbacks.monitors import EpisodeThroughput


class Module:
    """The two things ``_log_device`` uses of a LightningModule: ``device`` and ``log``."""

    def __init__(self, device: str):
        self.device, self.logged = torch.device(device), {}

    def log(self, key, value, **kwargs):
        self.logged[key] = value


@pytest.fixture
def fake_cuda(monkeypatch):
    def peak(bytes_):
        return lambda device: bytes_ if device.type == "cuda" else pytest.fail("queried a non-CUDA device")

    monkeypatch.setattr(torch.cuda, "max_memory_allocated", peak(3 * 2**29))  # 1.5 GiB
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", peak(2**31))  # 2 GiB
    monkeypatch.setattr(torch.cuda, "utilization", lambda device: 87)


def test_gpu_memory_and_utilisation_are_logged_on_a_cuda_device(fake_cuda):
    module = Module("cuda:0")
    EpisodeThroughput._log_device(module)
    assert module.logged == {"perf/gpu_mem_peak_gb": 1.5, "perf/gpu_mem_reserved_gb": 2.0, "perf/gpu_util": 87.0}


def test_utilisation_is_skipped_when_pynvml_is_missing(fake_cuda, monkeypatch):
    def no_pynvml(device):
        raise ModuleNotFoundError("pynvml does not seem to be installed")

    monkeypatch.setattr(torch.cuda, "utilization", no_pynvml)
    module = Module("cuda:0")
    EpisodeThroughput._log_device(module)
    assert set(module.logged) == {"perf/gpu_mem_peak_gb", "perf/gpu_mem_reserved_gb"}


def test_nothing_device_specific_on_cpu(fake_cuda):
    module = Module("cpu")
    EpisodeThroughput._log_device(module)
    assert module.logged == {}
