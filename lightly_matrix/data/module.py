"""The Lightning data module of a pretraining run: augmentations seeded per sample, the step's own
randomness (e.g. MAE masks) per epoch and rank, saved in checkpoints; a mid-epoch resume skips the
batches done, bit-exact on one process (with several, only rank 0's generators are saved)."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from pytorch_lightning import LightningDataModule
from pytorch_lightning.utilities.seed import isolate_rng
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, get_worker_info

from lightly_matrix.utils.loop_progress import trainer_progress

#: Most data-loading workers per device by default (README, "Large image folders").
MAX_DEFAULT_WORKERS = 16


def default_num_workers(devices_per_node: int) -> int:
    """Workers per device: the cores granted to this process (CPU affinity, e.g. by SLURM)
    shared by the node's devices, one core each left to the training process."""
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, cores // max(1, devices_per_node) - 1))


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A 31-bit seed unique to ``(seed, epoch, rank)``."""
    return (seed * 1_000_003 + epoch * 10_007 + rank * 101) % (2**31 - 1)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 31-bit seed unique to ``(seed, epoch, index)`` for one sample's augmentations."""
    return (epoch_seed(seed, epoch, 0) * 1_000_033 + index * 7_919 + 1) % (2**31 - 1)


class SeededSamples(Dataset):
    """Seeds each sample's random transforms by ``(seed, epoch, index)``; in the main process the
    global CPU generators are restored after each sample (the step's random numbers stay)."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        with isolate_rng(include_cuda=False) if get_worker_info() is None else nullcontext():
            seed = sample_seed(self.seed, self.epoch, index)
            # Not torch.manual_seed: it also seeds the CUDA generators (slow, the step's own).
            torch.default_generator.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed)
            return self.dataset[index]


class _SkipFirst(Sampler[int]):
    """The indices of ``sampler`` after the first ``skip``."""

    def __init__(self, sampler: Sampler[int], skip: int) -> None:
        self.sampler = sampler
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        # The full epoch's: Lightning counts the skipped batches as done (restored progress).
        return len(self.sampler)  # type: ignore[arg-type]


class _ResumableLoader(DataLoader):
    """Tells Lightning that continuing mid-epoch is exact (the state is the data module's)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        return None


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    # Tensors and plain values for ``weights_only=True``; int64 keys: older torch has no uint32.
    keys64 = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (str(name), keys64, int(pos), int(has_gauss), float(cached)),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class PretrainDataModule(LightningDataModule):
    """Training images (multi-view, with labels or ``-1``) and optional validation images.

    Use with ``Trainer(reload_dataloaders_every_n_epochs=1, use_distributed_sampler=False)``: it
    shards the data itself. ``batch_size`` and ``num_workers`` are per device.
    """

    def __init__(
        self,
        train: Dataset,
        val: Dataset | None,
        batch_size: int,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.train = SeededSamples(train, seed)
        self.val = val
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self._resume: dict[str, Any] | None = None

    def train_dataloader(self) -> DataLoader:
        """This epoch's loader; also re-seeds the global RNGs for the epoch (see module doc)."""
        trainer = self.trainer
        assert trainer is not None, "the data module runs inside a Trainer"
        epoch, rank, world = trainer.current_epoch, trainer.global_rank, trainer.world_size
        seed = epoch_seed(self.seed, epoch, rank)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        self.train.epoch = epoch
        sampler: Sampler[int] = DistributedSampler(
            self.train, num_replicas=world, rank=rank, shuffle=True, seed=self.seed, drop_last=True
        )
        sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        resume = self._resume
        # Lightning may build a loader before the restored epoch is current (to count steps).
        if resume is not None and resume["epoch"] == epoch:
            self._resume = None
            sampler = _SkipFirst(sampler, resume["batches_done"] * self.batch_size)
            if rank == 0:
                _set_rng_state(resume["rng"])
            else:  # only rank 0's generators are in the checkpoint
                torch.manual_seed(seed + resume["batches_done"])
        return _ResumableLoader(
            self.train,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            drop_last=True,
            generator=torch.Generator().manual_seed(seed),
            pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader | list:
        """Validation loader for the online probe (every rank sees all images)."""
        if self.val is None:
            return []
        return DataLoader(
            self.val, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers
        )

    # Saved in every checkpoint by Lightning, restored before the first loader is built.
    def state_dict(self) -> dict[str, Any]:
        """Where in the epoch the checkpoint is, and the generators' state there."""
        trainer = self.trainer
        if trainer is None:
            return {}
        progress = trainer_progress(trainer)
        return {
            "epoch": progress.epoch,
            # Counts the batch whose end hook saves (see trainer_progress).
            "batches_done": progress.batches_done,
            "num_batches": int(trainer.num_training_batches),
            "rng": _rng_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Remembers a mid-epoch position for the next :meth:`train_dataloader`."""
        if state_dict and 0 < state_dict["batches_done"] < state_dict["num_batches"]:
            self._resume = state_dict
