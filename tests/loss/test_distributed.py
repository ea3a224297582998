"""2 gloo processes on CPU: with gather_distributed=True, loss and gradients equal one process."""

from __future__ import annotations

import socket
import warnings

import pytest
import torch
import torch.multiprocessing as mp
from ddp_workers import LOSSES, make_loss, make_model, run_steps, worker

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("ddp")
    mp.spawn(worker, args=(WORLD, _free_port(), str(out_dir)), nprocs=WORLD, join=True)
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.ddp
@pytest.mark.parametrize("name", LOSSES)
def test_gathered_loss_and_gradients_equal_single_process(name, distributed_results) -> None:
    single = run_steps(name, make_model(), make_loss(name, gather=False), WORLD, rank=None)
    for rank, results in enumerate(distributed_results):
        got = results[name]
        torch.testing.assert_close(got["loss"], single["loss"], rtol=1e-10, atol=1e-12)
        # DDP averages parameter gradients over ranks: they must equal the full-batch gradients
        # (the M-MAE reference gather would give 1/world of them).
        torch.testing.assert_close(got["weight_grad"], single["weight_grad"], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(got["bias_grad"], single["bias_grad"], rtol=1e-9, atol=1e-12)
        # The gather's backward sums every rank's contribution; DDP's averaging divides by world.
        rows = slice(rank * 6, (rank + 1) * 6)
        torch.testing.assert_close(
            got["input_grad"] / WORLD, single["input_grad"][rows], rtol=1e-9, atol=1e-12
        )
        for key, value in single["state"].items():  # CorInfoMax: identical state everywhere
            torch.testing.assert_close(got["state"][key], value, rtol=1e-12, atol=1e-14)


@pytest.mark.ddp
@pytest.mark.parametrize("name", LOSSES)
def test_one_row_per_rank_counts_the_global_batch(name, distributed_results) -> None:
    # 1 row on each of 2 ranks is a global batch of 2: the loss runs (it used to refuse the
    # local batch of 1) and equals the single-process loss on the 2-row batch.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CorInfoMax: batch 2 < dim
        single = run_steps(
            name, make_model(), make_loss(name, gather=False), WORLD, rank=None, m_local=1
        )
    for rank, results in enumerate(distributed_results):
        got = results["one_row"][name]
        torch.testing.assert_close(got["loss"], single["loss"], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got["weight_grad"], single["weight_grad"], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(got["bias_grad"], single["bias_grad"], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(
            got["input_grad"] / WORLD, single["input_grad"][rank : rank + 1], rtol=1e-9, atol=1e-12
        )


@pytest.mark.ddp
def test_corinfomax_warns_once_on_the_global_batch(distributed_results) -> None:
    for results in distributed_results:
        found = results["corinfomax_warnings"]
        # 3 rows per rank: 6 gathered rows < dim 8, warned once over two steps.
        assert len(found[3]) == 1 and "6 rows" in found[3][0] and "dim=8" in found[3][0]
        # 6 rows per rank (< dim locally) but 12 gathered rows >= dim: no warning.
        assert found[6] == []
