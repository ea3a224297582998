"""The Lightning data module of a pretraining run, with exactly reproducible epochs.

Every epoch's randomness (shuffling, augmentations, worker seeds, and the training step's own
random numbers such as MAE masks) is derived from ``(seed, epoch, rank)`` when the epoch's loader is
built (Lightning rebuilds it every epoch here). So a run resumed from an end-of-epoch checkpoint
continues exactly as the uninterrupted run would have, whatever the number of workers.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, DistributedSampler


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A 31-bit seed unique to ``(seed, epoch, rank)``."""
    return (seed * 1_000_003 + epoch * 10_007 + rank * 101) % (2**31 - 1)


class PretrainDataModule(LightningDataModule):
    """Training images (multi-view, with labels or ``-1``) and optional validation images.

    Use with ``Trainer(reload_dataloaders_every_n_epochs=1, use_distributed_sampler=False)``: this
    module shards the data itself (``DistributedSampler`` with the epoch already set).

    Args:
        train: Training data set of ``(views, label)``.
        val: Validation data set of ``(image, label)`` for the online probe, or ``None``.
        batch_size: Batch size per device.
        num_workers: Data-loading worker processes per device.
        seed: Base seed of the run.
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
        self.train = train
        self.val = val
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed

    def train_dataloader(self) -> DataLoader:
        """This epoch's loader; also re-seeds the global RNGs for the epoch (see module doc)."""
        trainer = self.trainer
        assert trainer is not None, "the data module runs inside a Trainer"
        epoch, rank, world = trainer.current_epoch, trainer.global_rank, trainer.world_size
        seed = epoch_seed(self.seed, epoch, rank)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        sampler: DistributedSampler = DistributedSampler(
            self.train, num_replicas=world, rank=rank, shuffle=True, seed=self.seed, drop_last=True
        )
        sampler.set_epoch(epoch)
        return DataLoader(
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
