"""Worker for the 2-process gloo tests of the losses (importable by spawned processes)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lightly_matrix.loss import (
    CorInfoMaxLoss,
    MatrixEntropyLoss,
    MatrixSSLLoss,
    MECLoss,
    UMAELoss,
)

M_LOCAL, D_IN, D_OUT = 6, 10, 16  # per-rank batch, input and embedding size


def make_loss(name: str, gather: bool) -> nn.Module:
    if name == "matrix_ssl_taylor":
        return MatrixSSLLoss(gamma=0.7, gather_distributed=gather)
    if name == "matrix_ssl_exact":
        return MatrixSSLLoss(taylor_order=None, gather_distributed=gather)
    if name == "corinfomax":
        return CorInfoMaxLoss(
            D_OUT, alpha=5.0, cov_momentum=0.1, mean_momentum=0.1, gather_distributed=gather
        )
    if name == "matrix_entropy":
        return MatrixEntropyLoss(gram_scale=3.0, gather_distributed=gather)
    if name == "umae":
        return UMAELoss(gather_distributed=gather)
    if name == "mec":  # eps^2 = 4: lamda = 1/3 (m = 12, d = 16), higher orders matter
        return MECLoss(eps_squared=4.0, gather_distributed=gather)
    raise KeyError(name)


LOSSES = ["matrix_ssl_taylor", "matrix_ssl_exact", "corinfomax", "matrix_entropy", "umae", "mec"]


def make_data(world: int, step: int, m_local: int = M_LOCAL) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    x1 = torch.randn(world * m_local, D_IN, generator=g, dtype=torch.float64)
    return x1, x1 + 0.3 * torch.randn(world * m_local, D_IN, generator=g, dtype=torch.float64)


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(D_IN, D_OUT).double()


def loss_step(name: str, model: nn.Module, loss_fn: nn.Module, x1: torch.Tensor, x2: torch.Tensor):
    if name.startswith("matrix_ssl") or name == "mec":
        with torch.no_grad():
            target = model(x2)  # stands in for the EMA teacher: no gradient
        return loss_fn(model(x1), target)
    if name == "corinfomax":
        return loss_fn(model(x1), model(x2))
    return loss_fn(model(x1))


def run_steps(
    name: str,
    model: nn.Module,
    loss_fn: nn.Module,
    world: int,
    rank: int | None,
    m_local: int = M_LOCAL,
):
    """Two steps (CorInfoMax carries state); returns what the second step produced.

    ``rank=None``: one process on the whole ``world * m_local`` batch; else this rank's rows.
    """
    results = {}
    for step in range(2):
        model.zero_grad()
        x1, x2 = make_data(world, step, m_local)
        if rank is not None:
            rows = slice(rank * m_local, (rank + 1) * m_local)
            x1, x2 = x1[rows], x2[rows]
        x1 = x1.clone().requires_grad_(True)
        loss = loss_step(name, model, loss_fn, x1, x2)
        loss.backward()
        results = {
            "loss": loss.detach(),
            "weight_grad": _module(model).weight.grad.clone(),
            "bias_grad": _module(model).bias.grad.clone(),
            "input_grad": x1.grad.clone(),
            "state": {k: v.clone() for k, v in loss_fn.state_dict().items()},
        }
    return results


def _module(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def corinfomax_small_batch_warnings() -> dict[int, list[str]]:
    """CorInfoMax(dim=8) warnings per local batch: 3 rows (6 global < 8), 6 rows (12 >= 8)."""
    found = {}
    for m_local in (3, 6):
        loss_fn = CorInfoMaxLoss(8, gather_distributed=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):
                z = torch.randn(m_local, 8, dtype=torch.float64)
                loss_fn(z, z + 0.1)
        found[m_local] = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return found


def worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        out: dict = {"one_row": {}}
        for name in LOSSES:
            model = DistributedDataParallel(make_model())
            out[name] = run_steps(name, model, make_loss(name, gather=True), world, rank)
            # One row per rank: the batch check must count the gathered (global) rows.
            model = DistributedDataParallel(make_model())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # CorInfoMax: global batch 2 < dim
                out["one_row"][name] = run_steps(
                    name, model, make_loss(name, gather=True), world, rank, m_local=1
                )
        out["corinfomax_warnings"] = corinfomax_small_batch_warnings()
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")
        # Tear down together: a rank leaving while its peer's gloo threads still talk to it
        # aborted the peer once ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()
