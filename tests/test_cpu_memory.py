"""The glibc malloc settings for large CPU tensors, and the Inception extractors' CPU chunks."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest
import torch
from torch import nn

from gan_lightning.metrics.features import CPU_CHUNK, InceptionFeatures, in_cpu_chunks

PROBE = """
import ctypes, json, resource, sys
import torch
from gan_lightning.cpu_memory import reuse_freed_memory

class MallInfo2(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(k, ctypes.c_size_t) for k in names.split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
in_force = reuse_freed_memory() if sys.argv[1] == "reuse" else None
x = torch.ones(16 << 20)  # 64 MiB
mapped = libc.mallinfo2().hblkhd  # bytes in blocks mapped on their own (not in the heap)
del x
faults = []
for _ in range(12):  # a network's calls: the same large tensors made and freed again and again
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = torch.ones(16 << 20)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del y
faults = sum(faults[-4:])  # once the heap has settled (aligned requests leave a few gaps at first)
print(json.dumps({"in_force": in_force, "mapped": mapped, "faults": faults}))
"""


def probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's")
def test_freed_memory_is_reused_not_mapped_fresh() -> None:
    """glibc's defaults map a 64 MiB tensor on its own and unmap it when freed, so each new one
    faults in its 16,384 pages again; after ``reuse_freed_memory`` it lives in the heap and, once
    the heap has settled, a new one reuses the freed pages."""
    default, reuse = probe("default"), probe("reuse")
    assert default["mapped"] >= 64 << 20  # the premise: by default such a tensor gets its own mapping
    assert reuse["in_force"] is True and reuse["mapped"] < 64 << 20
    assert reuse["faults"] < 1000
    assert default["faults"] > 4 * 16000 or default["faults"] < 4 * 100  # transparent huge pages: one per 2 MiB


class Recording(nn.Module):
    """A per-image function of the input that records the batch sizes it is called with."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        return torch.cat([x.mean((1, 2, 3))[:, None], x.amax((1, 2, 3))[:, None]], 1).repeat(1, 1024)


def test_inception_features_run_in_cpu_chunks_and_equal_one_call() -> None:
    ex = InceptionFeatures.__new__(InceptionFeatures)  # without loading the real trunk
    nn.Module.__init__(ex)
    ex.resize_mode, ex.trunk = "tf1_bilinear", Recording()
    images = torch.rand(2 * CPU_CHUNK + 1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    feats, _ = ex(images)
    assert ex.trunk.sizes == [CPU_CHUNK, CPU_CHUNK, 1]
    whole = Recording()(ex.preprocess(images))
    assert torch.equal(feats, whole)
    smooth = ex.smooth_features(images)
    assert torch.equal(smooth, Recording()(ex.preprocess(images, quantized=False)))


def test_chunks_only_on_the_cpu() -> None:
    seen: list[torch.device] = []
    images = torch.zeros(CPU_CHUNK + 3, 2)
    out = in_cpu_chunks(lambda x: (seen.append(x.device), x + 1)[1], images)
    assert torch.equal(out, images + 1) and len(seen) == 2
    meta = torch.zeros(CPU_CHUNK + 3, 2, device="meta")  # another device: one call
    seen.clear()
    assert in_cpu_chunks(lambda x: (seen.append(x.device), x)[1], meta).shape == meta.shape and len(seen) == 1
