"""Meta-training over a torchrun process group: which rank this is, its own episode seed, the
gradients averaged over the group, and the per-rank state a checkpoint keeps.

Outside torchrun (no WORLD_SIZE, or 1) everything here is a no-op on `SINGLE`, so one process
trains exactly as before. Gradients are averaged by one all-reduce of a flat buffer per step
rather than by wrapping the model in DistributedDataParallel: a step runs `fit_support` and
`forward` per episode, and MAML takes inner gradients with `torch.autograd.grad`, neither of
which fits DDP's one-forward-one-backward hooks; the arithmetic (the mean of the ranks'
gradients, once per optimizer step) is DDP's.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

TIMEOUT = datetime.timedelta(minutes=30)  # ranks wait this long for rank 0 to validate


@dataclass(frozen=True)
class Group:
    """This process's place in the training group: rank `rank` of `world_size`."""

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"  # where the collectives' buffers live: cuda:N under NCCL

    @property
    def is_main(self) -> bool:
        """Rank 0 validates, checkpoints and prints; the others only train."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def seed(self, run_seed: int) -> int:
        """The episode sampler's seed: the run's own when alone (runs as before), else one
        derived from the run seed and the rank, so that every rank draws other episodes."""
        if not self.distributed:
            return run_seed
        return int(np.random.SeedSequence([run_seed, self.rank]).generate_state(1)[0])

    def any(self, flag: bool) -> bool:
        """Whether any rank says `flag` (a Ctrl-C reaches ranks at different steps; all must
        stop at the same one, or the others would wait for it forever)."""
        if not self.distributed:
            return flag
        vote = torch.tensor([float(flag)], device=self.device)
        torch.distributed.all_reduce(vote, op=torch.distributed.ReduceOp.MAX)
        return bool(vote.item() > 0)

    def average(self, model: nn.Module, totals: Sequence[float]) -> list[float]:
        """Replace each trainable parameter's gradient by its mean over the ranks, give every
        rank rank 0's floating buffers (batch-norm statistics, as DDP broadcasts them), and
        sum `totals` (loss, correct, counted) over the ranks: one all-reduce. `totals` back,
        summed."""
        if not self.distributed:
            return list(totals)
        parameters = [p for p in model.parameters() if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        buffers = [b for b in model.buffers() if b.is_floating_point()]
        # Rank 0's buffers plus the others' zeros: their sum is rank 0's, exactly.
        shared = [
            b.detach().reshape(-1) if self.is_main else b.new_zeros(b.numel()) for b in buffers
        ]
        dtype = grads[0].dtype
        flat = torch.cat(
            [g.reshape(-1).to(dtype) for g in grads]
            + [b.to(dtype) for b in shared]
            + [torch.tensor(totals, dtype=dtype, device=grads[0].device)]
        ).to(self.device)
        torch.distributed.all_reduce(flat)
        at = 0
        for p, g in zip(parameters, grads, strict=True):
            mean = (flat[at : at + g.numel()].view_as(g) / self.world_size).to(p.device)
            at += g.numel()
            if p.grad is None:
                p.grad = mean.clone()
            else:
                p.grad.copy_(mean)
        for b in buffers:
            b.data.copy_(flat[at : at + b.numel()].view_as(b))
            at += b.numel()
        return flat[at:].tolist()

    def same_start(self, model: nn.Module) -> None:
        """Every rank starts from rank 0's weights (they agree by seed; this makes sure)."""
        if not self.distributed:
            return
        for tensor in [*model.parameters(), *model.buffers()]:
            moved = tensor.detach().to(self.device)
            torch.distributed.broadcast(moved, src=0)
            tensor.data.copy_(moved.to(tensor.device))

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's `value` on rank 0 (None elsewhere); alone, `[value]`."""
        if not self.distributed:
            return [value]
        found: list[Any] | None = [None] * self.world_size if self.is_main else None
        torch.distributed.gather_object(value, found, dst=0)
        return found

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def leave(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


SINGLE = Group()


def join_group() -> Group:
    """The group torchrun set up in this process's environment (RANK, WORLD_SIZE,
    MASTER_ADDR, ...): gloo on the CPU, NCCL when this rank has a GPU; `SINGLE` outside it."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE
    try:
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError) as error:
        raise ConfigError(
            f"WORLD_SIZE is {world_size} but RANK is not set: run under torchrun"
        ) from error
    if torch.cuda.is_available():
        device, backend = f"cuda:{local_rank}", "nccl"
        torch.cuda.set_device(device)
    else:
        device, backend = "cpu", "gloo"
    torch.distributed.init_process_group(backend, timeout=TIMEOUT)
    return Group(rank, world_size, device)


def rank_states(
    gathered: list[tuple[dict[str, Any], torch.Tensor]],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """What a checkpoint keeps of every rank besides rank 0 (whose sampler and random state
    it keeps as a single run's): tensors and JSON to add to it."""
    if len(gathered) == 1:
        return {}, {}
    tensors = {f"rng.torch.{rank}": rng for rank, (_, rng) in enumerate(gathered) if rank}
    return tensors, {"world_size": len(gathered), "samplers": [s for s, _ in gathered]}


def own_state(
    group: Group, saved: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> tuple[dict[str, Any], torch.Tensor]:
    """This rank's sampler state and random state from a checkpoint `rank_states` wrote;
    a checkpoint of another group size is refused (its episodes would not continue)."""
    was = int(saved.get("world_size", 1))
    if was != group.world_size:
        raise ConfigError(
            f"this run was trained by {was} processes; resume it with {was} "
            f"(torchrun --nproc_per_node/--nnodes), not {group.world_size}"
        )
    rng = tensors.pop("rng.torch")
    for rank in range(1, was):
        mine = tensors.pop(f"rng.torch.{rank}")
        if rank == group.rank:
            rng = mine
    sampler = saved["samplers"][group.rank] if was > 1 else saved["sampler"]
    return sampler, rng
