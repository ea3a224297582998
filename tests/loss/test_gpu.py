"""The losses on a CUDA device: same values as on the CPU, state on the device, bf16 autocast."""

from __future__ import annotations

import pytest
import torch

from lightly_matrix.loss import (
    CorInfoMaxLoss,
    MatrixEntropyLoss,
    MatrixSSLLoss,
    MECLoss,
    UMAELoss,
)

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("order", [4, None])
def test_matrix_ssl_cuda_matches_cpu(order) -> None:
    a, b = torch.randn(64, 256, dtype=torch.float64), torch.randn(64, 256, dtype=torch.float64)
    cpu = MatrixSSLLoss(taylor_order=order)(a, a + 0.5 * b)
    gpu = MatrixSSLLoss(taylor_order=order)(a.cuda(), (a + 0.5 * b).cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("order", [4, None])
def test_mec_cuda_matches_cpu_and_runs_under_bf16_autocast(order) -> None:
    a, b = torch.randn(64, 256, dtype=torch.float64), torch.randn(64, 256, dtype=torch.float64)
    cpu = MECLoss(taylor_order=order)(a, a + 0.5 * b)
    gpu = MECLoss(taylor_order=order)(a.cuda(), (a + 0.5 * b).cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-12)
    layer = torch.nn.Linear(256, 512).cuda()
    x = a.float().cuda()
    ref = MECLoss(taylor_order=order)(layer(x), layer(x + 0.3))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        value = MECLoss(taylor_order=order)(layer(x), layer(x + 0.3))
    value.backward()
    assert value.dtype == torch.float32
    assert abs(float(value - ref)) <= 0.02 * abs(float(ref))


def test_corinfomax_state_follows_the_module_to_cuda() -> None:
    loss_fn = CorInfoMaxLoss(32).cuda()
    assert loss_fn.running_cov_a.device.type == "cuda"
    assert loss_fn.running_cov_a.dtype == torch.float64
    z = torch.randn(16, 32, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = loss_fn(z, z + 0.1)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("loss_cls", [MatrixEntropyLoss, UMAELoss])
def test_regularisers_under_cuda_autocast(loss_cls) -> None:
    layer = torch.nn.Linear(32, 64).cuda()
    x = torch.randn(16, 32, device="cuda")
    ref = loss_cls()(layer(x))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        value = loss_cls()(layer(x))
    value.backward()
    assert abs(float(value - ref)) <= 0.02 * abs(float(ref))


def test_corinfomax_on_cpu_refuses_cuda_inputs_until_moved() -> None:
    loss_fn = CorInfoMaxLoss(32)
    z = torch.randn(64, 32, device="cuda")
    with pytest.raises(ValueError, match=r"criterion\.to\(device\)"):
        loss_fn(z, z + 0.1)
    loss_fn.to(z.device)
    loss = loss_fn(z, z + 0.1)
    assert torch.isfinite(loss) and loss_fn.running_cov_a.device == z.device
