"""Meta-training speed: our ProtoNet and MAML steps beside plain-PyTorch references.

Prints episodes (meta-iterations) per second on Omniglot 28x28 for
  ProtoNet 20-way 5-shot 15-query, and
  MAML 5-way 1-shot 15-query, 5 second-order inner steps, 4 tasks per outer step,
each next to a straightforward reference written with plain modules and a Python loop over
tasks (no torch.func), measured in the same run on the same episodes.

    python benchmarks/train_speed.py --data ../shared/data/omniglot/images_background
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from fewshot_gui.core.backbones import get_backbone
from fewshot_gui.core.config import EpisodeConfig, ModelConfig
from fewshot_gui.core.datasets import EpisodeSampler, ImagePool, episode_tensors, load_pixels
from fewshot_gui.core.methods import build_model
from fewshot_gui.core.paths import cache_dir
from fewshot_gui.core.transforms import to_tensor


def reference_conv4(x: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """Conv-4 written out with torch.nn.functional, as Finn et al.'s code does."""
    for i in range(4):
        w, b, gamma, beta = params[4 * i : 4 * i + 4]
        x = F.conv2d(x, w, b, padding=1)
        x = F.batch_norm(x, None, None, gamma, beta, training=True)
        x = F.max_pool2d(F.relu(x), 2)
    return x.flatten(1)


def reference_protonet_step(params, optimizer, episode) -> None:
    support, support_labels, query, query_labels = episode
    embedded = reference_conv4(torch.cat([support, query]), params)
    n_way = int(support_labels.max()) + 1
    prototypes = embedded[: len(support)].view(n_way, -1, embedded.shape[1]).mean(1)
    logits = -torch.cdist(embedded[len(support) :], prototypes).pow(2)
    optimizer.zero_grad()
    F.cross_entropy(logits, query_labels).backward()
    optimizer.step()


def reference_maml_step(params, optimizer, episodes, steps: int, lr: float) -> None:
    optimizer.zero_grad()
    for support, support_labels, query, query_labels in episodes:
        n_way = int(support_labels.max()) + 1
        embedded = reference_conv4(support, params)
        prototypes = embedded.view(n_way, -1, embedded.shape[1]).mean(1)
        fast = [*params, 2 * prototypes, -prototypes.pow(2).sum(1)]
        for _ in range(steps):
            logits = reference_conv4(support, fast[:-2]) @ fast[-2].T + fast[-1]
            grads = torch.autograd.grad(
                F.cross_entropy(logits, support_labels), fast, create_graph=True
            )
            fast = [p - lr * g for p, g in zip(fast, grads, strict=True)]
        logits = reference_conv4(query, fast[:-2]) @ fast[-2].T + fast[-1]
        (F.cross_entropy(logits, query_labels) / len(episodes)).backward()
    optimizer.step()


def ours_step(model, optimizer, episodes) -> None:
    model.train()
    optimizer.zero_grad()
    for support, support_labels, query, query_labels in episodes:
        model.fit_support(support, support_labels)
        (F.cross_entropy(model(query), query_labels) / len(episodes)).backward()
    optimizer.step()


def rate(step: Callable[[int], None], count: int, warmup: int = 2) -> float:
    for i in range(warmup):
        step(i)
    started = time.perf_counter()
    for i in range(count):
        step(warmup + i)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--episodes", type=int, default=20, help="timed meta-iterations each")
    args = parser.parse_args()
    torch.manual_seed(0)
    spec = get_backbone("conv4")
    pool = ImagePool.from_folder(args.data)
    inputs = to_tensor(load_pixels(pool, spec, cache_dir()), spec)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, {len(pool.paths)} images"
    )

    def episodes(config: EpisodeConfig, count: int, per_step: int) -> list[list[tuple]]:
        sampler = EpisodeSampler(pool.labels, config, seed=1)
        return [
            [episode_tensors(inputs, sampler.sample()) for _ in range(per_step)]
            for _ in range(count)
        ]

    total = args.episodes + 2
    proto_eps = episodes(EpisodeConfig(20, 5, 15), total, 1)
    model = build_model(ModelConfig(method="protonet"))
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    ours = rate(lambda i: ours_step(model, optimizer, proto_eps[i]), args.episodes)
    params = [p.detach().clone().requires_grad_() for p in model.encoder.parameters()]
    ref_optimizer = torch.optim.Adam(params, 1e-3)
    ref = rate(
        lambda i: reference_protonet_step(params, ref_optimizer, proto_eps[i][0]), args.episodes
    )
    print(
        f"ProtoNet 20-way 5-shot:        ours {ours:6.2f} ep/s   reference {ref:6.2f} ep/s"
        f"   ratio {ours / ref:.2f}"
    )

    maml_eps = episodes(EpisodeConfig(5, 1, 15), total, 4)
    model = build_model(ModelConfig(method="maml", inner_steps=5, inner_lr=0.4))
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    ours = rate(lambda i: ours_step(model, optimizer, maml_eps[i]), args.episodes)
    params = [p.detach().clone().requires_grad_() for p in model.body.parameters()]
    ref_optimizer = torch.optim.Adam(params, 1e-3)
    ref = rate(
        lambda i: reference_maml_step(params, ref_optimizer, maml_eps[i], 5, 0.4), args.episodes
    )
    print(
        f"MAML 5-way 1-shot, 5 steps x4: ours {ours:6.2f} ep/s   reference {ref:6.2f} ep/s"
        f"   ratio {ours / ref:.2f}"
    )


if __name__ == "__main__":
    main()
