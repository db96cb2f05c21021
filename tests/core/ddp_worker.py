"""Run under torchrun by test_distributed.py: one averaged step per method, then meta-training
whole, in part and resumed, each rank in its own process of a gloo group."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from fewshot_gui.core.config import EpisodeConfig, ModelConfig, TrainConfig
from fewshot_gui.core.datasets import EpisodeSampler, ImagePool
from fewshot_gui.core.distributed import join_group
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.methods import build_model
from fewshot_gui.core.training import meta_train, train_step

METHODS = {
    "protonet": ModelConfig(method="protonet"),
    "maml": ModelConfig(method="maml", inner_steps=2, inner_lr=0.4, first_order=False),
}
EPISODE = EpisodeConfig(way=3, shot=1, query=2)
TASKS = 2  # per rank
SEED = 7


def step_inputs() -> tuple[torch.Tensor, np.ndarray]:
    """12 classes of 4 random 28x28 images: what the episodes index."""
    generator = torch.Generator().manual_seed(3)
    return torch.randn(48, 1, 28, 28, generator=generator), np.repeat(np.arange(12), 4)


def one_step(method: str, episodes: list, group=None) -> dict[str, torch.Tensor]:
    """The parameters after one Adam step over `episodes` (in `group`, averaged)."""
    from fewshot_gui.core.distributed import SINGLE

    torch.manual_seed(0)
    model = build_model(METHODS[method])
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    optimizer.zero_grad(set_to_none=True)
    inputs, _ = step_inputs()
    train_step(model, inputs, episodes, group or SINGLE)
    optimizer.step()
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def train_config(episodes: int) -> TrainConfig:
    return TrainConfig(
        model=ModelConfig(method="protonet"),
        episode=EpisodeConfig(5, 1, 2),
        val_episode=EpisodeConfig(3, 1, 2),
        episodes=episodes,
        val_every=1,
        val_episodes=4,
        seed=SEED,
    )


def main() -> None:
    out, data = Path(sys.argv[1]), Path(sys.argv[2])
    group = join_group()
    assert group.world_size == 2, group
    _, labels = step_inputs()
    sampler = EpisodeSampler(labels, EPISODE, group.seed(SEED))
    episodes = [sampler.sample() for _ in range(TASKS)]
    for method in METHODS:
        save_file(one_step(method, episodes, group), str(out / f"{method}-rank{group.rank}.st"))

    train, val = ImagePool.from_folder(data).split_holdout_groups(1)
    # Rank 1 is given a folder of its own: it must never be made (rank 0 writes checkpoints).
    whole = out / ("whole" if group.is_main else "whole-rank1")
    drive(meta_train(train_config(3), train, val, whole, group=group))
    drive(meta_train(train_config(2), train, val, out / "part", group=group))
    drive(meta_train(train_config(3), train, val, out / "part", resume=True, group=group))
    group.leave()


if __name__ == "__main__":
    main()
