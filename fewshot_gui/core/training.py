"""Episodic meta-training as a generator of progress events, with validation and resume."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from .atomic import write_json_atomic
from .backbones import get_backbone
from .checkpoint import WEIGHTS_FILE, load_model, load_tensors, save_model
from .config import TrainConfig, to_dict
from .datasets import Episode, EpisodeSampler, ImagePool, episode_tensors
from .devices import describe_machine
from .distributed import SINGLE, Group, own_state, rank_states
from .errors import CheckpointError, ConfigError
from .evaluation import EvalResult, Stage, embed_all, evaluate_features, pool_inputs
from .jobs import drive
from .methods import FewShotClassifier, build_model, embedding_layers

BEST_DIR = "best"
LAST_DIR = "last"
TRAINING_STATE = "training_state.safetensors"
TRAINING_JSON = "training_state.json"


@dataclass(frozen=True)
class TrainProgress:
    episode: int
    episodes: int
    loss: float  # mean over the episodes since the last report
    accuracy: float  # percent, query accuracy over the same episodes
    lr: float
    episodes_per_second: float


@dataclass(frozen=True)
class Validated:
    episode: int
    result: EvalResult
    best: bool


@dataclass(frozen=True)
class Checkpointed:
    episode: int
    path: Path


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    episodes_done: int
    best_episode: int
    best: EvalResult | None
    cancelled: bool
    seconds: float


TrainEvent = Stage | TrainProgress | Validated | Checkpointed


@dataclass
class _Run:
    """The live objects a checkpoint in `last/` saves and a resumed run restores."""

    model: FewShotClassifier
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: EpisodeSampler


@dataclass
class _RunState:
    """What a resumed run needs besides weights; JSON-ready."""

    episode: int = 0
    best_episode: int = 0
    best: dict[str, Any] | None = None
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def meta_train(
    config: TrainConfig,
    train_pool: ImagePool,
    val_pool: ImagePool,
    out_dir: Path,
    *,
    resume: bool = False,
    cancel: Callable[[], bool] | None = None,
    cache_dir: Path | None = None,
    card: dict[str, Any] | None = None,
    report_every: int = 10,
    group: Group = SINGLE,
) -> Generator[TrainEvent, None, TrainResult]:
    """Meta-train `config.model` on episodes from `train_pool`, validating on `val_pool`.

    Writes `out_dir/best` (the model with the best validation accuracy so far, with its card)
    and `out_dir/last` (everything needed to resume: weights, optimizer, sampler and random
    state). The same seed gives the same result, and a resumed run the same as an unbroken one.
    A frozen pretrained backbone runs once over every image before training starts.
    In a torchrun `group` each rank draws its own episodes and the gradients are averaged;
    only rank 0 validates and writes checkpoints (`distributed.py`).
    """
    torch.manual_seed(config.seed)
    spec = get_backbone(config.model.backbone)
    model = build_model(config.model)
    train_inputs = yield from pool_inputs(model, spec, train_pool, cache_dir, "training")
    val_inputs = yield from pool_inputs(model, spec, val_pool, cache_dir, "validation")
    model.encoder.skip_backbone = spec.pretrained

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=config.lr_decay_every, gamma=config.lr_decay
    )
    sampler = EpisodeSampler(
        train_pool.labels, config.episode, group.seed(config.seed), config.rotations
    )
    EpisodeSampler(val_pool.labels, config.val_episode, config.seed + 1)  # fails now, not later
    state = _RunState()
    run = _Run(model, optimizer, scheduler, sampler)
    if config.init:
        yield Stage(f"starting from the weights of {config.init}")
        _start_from(model, config, config.init)
    else:
        # On a pretrained backbone the trainable part starts from the training features' statistics.
        _, neck = embedding_layers(model)
        if spec.pretrained and hasattr(neck, "initialise"):
            neck.initialise(train_inputs)
    if resume:
        group.barrier()  # rank 0 has finished writing last/ before any rank reads it
        state = _load_last(out_dir / LAST_DIR, config, run, group)
        yield Stage(f"resumed at episode {state.episode}")
    group.same_start(model)
    card = {
        **(card or {}),
        "training": to_dict(config),
        "data": {"train": train_pool.describe(), "validation": val_pool.describe()},
        "machine": describe_machine(),
    }

    started = time.perf_counter() - state.seconds
    window_loss, window_correct, window_total, window_start = 0.0, 0, 0, time.perf_counter()
    cancelled = False
    while state.episode < config.episodes:
        if group.any(cancel is not None and cancel()):
            cancelled = True
            break
        model.train()
        optimizer.zero_grad(set_to_none=True)
        episodes = [sampler.sample() for _ in range(config.tasks_per_step)]
        loss_sum, correct, counted = train_step(model, train_inputs, episodes, group)
        window_loss += loss_sum / group.world_size
        window_correct += correct
        window_total += counted
        optimizer.step()
        scheduler.step()
        state.episode += 1

        if state.episode % report_every == 0 or state.episode == config.episodes:
            now = time.perf_counter()
            steps = (
                report_every if state.episode % report_every == 0 else state.episode % report_every
            )
            yield TrainProgress(
                episode=state.episode,
                episodes=config.episodes,
                loss=window_loss / (steps * config.tasks_per_step),
                accuracy=100.0 * window_correct / max(window_total, 1),
                lr=scheduler.get_last_lr()[0],
                episodes_per_second=steps / max(now - window_start, 1e-9),
            )
            window_loss, window_correct, window_total, window_start = 0.0, 0, 0, now

        if not group.is_main and (
            state.episode % config.val_every == 0 or state.episode == config.episodes
        ):
            _save_last(out_dir / LAST_DIR, config, run, state, card, group)  # its own state
        elif state.episode % config.val_every == 0 or state.episode == config.episodes:
            result = yield from _validate(model, val_inputs, val_pool, config, cancel)
            is_best = state.best is None or result.accuracy > state.best["accuracy"]
            state.history.append({"episode": state.episode, **result.to_dict()})
            if is_best:
                state.best, state.best_episode = result.to_dict(), state.episode
            state.seconds = time.perf_counter() - started
            yield Validated(state.episode, result, is_best)
            if is_best:
                best_card = {**card, **_progress_card(state)}
                path = save_model(out_dir / BEST_DIR, model, config.model, best_card)
                yield Checkpointed(state.episode, path)
            _save_last(out_dir / LAST_DIR, config, run, state, card, group)
            yield Checkpointed(state.episode, out_dir / LAST_DIR)

    state.seconds = time.perf_counter() - started
    if cancelled:
        _save_last(out_dir / LAST_DIR, config, run, state, card, group)
        if group.is_main:
            yield Checkpointed(state.episode, out_dir / LAST_DIR)
    return TrainResult(
        out_dir=out_dir,
        episodes_done=state.episode,
        best_episode=state.best_episode,
        best=EvalResult(**state.best) if state.best else None,
        cancelled=cancelled,
        seconds=state.seconds,
    )


def train_step(
    model: FewShotClassifier,
    inputs: torch.Tensor,
    episodes: Sequence[Episode],
    group: Group = SINGLE,
) -> tuple[float, int, int]:
    """The gradient of the mean query loss over `episodes` (over every rank's, in a
    group: their mean) into the parameters' `.grad`; (loss summed, correct queries, queries)
    over the group. `inputs` (N, ...) are what the episodes index."""
    totals = [0.0, 0, 0]
    for episode in episodes:
        support, support_labels, query, query_labels = episode_tensors(inputs, episode)
        model.fit_support(support, support_labels)
        logits = model(query)
        loss = F.cross_entropy(logits, query_labels)
        (loss / len(episodes)).backward()
        totals[0] += loss.item()
        totals[1] += int((logits.argmax(1) == query_labels).sum())
        totals[2] += len(query_labels)
    loss_sum, correct, counted = group.average(model, totals)
    return loss_sum, int(correct), int(counted)


def _start_from(model: FewShotClassifier, config: TrainConfig, init: str) -> None:
    """Load another model's backbone and neck into `model`, e.g. a MAML from a trained ProtoNet
    (its Proto-MAML head then starts exactly where the ProtoNet's prototypes are)."""
    loaded = load_model(init)
    theirs, mine = loaded.config, config.model
    if (theirs.backbone, theirs.neck) != (mine.backbone, mine.neck):
        raise ConfigError(
            f"cannot start from {loaded.name}: it has backbone {theirs.backbone!r} and neck "
            f"{theirs.neck!r}, this run {mine.backbone!r} and {mine.neck!r}"
        )
    for target, source in zip(embedding_layers(model), embedding_layers(loaded.model), strict=True):
        target.load_state_dict(source.state_dict())


def _validate(
    model: FewShotClassifier,
    val_inputs: torch.Tensor,
    val_pool: ImagePool,
    config: TrainConfig,
    cancel: Callable[[], bool] | None,
) -> Generator[Stage, None, EvalResult]:
    yield Stage(f"validating on {config.val_episodes} episodes")
    features = embed_all(model, val_inputs)
    # The same seed every time, so successive validations compare like with like.
    episodes = evaluate_features(
        model,
        features,
        val_pool.labels,
        config.val_episode,
        config.val_episodes,
        seed=config.seed + 1,
        cancel=cancel,
    )
    return drive(episodes)


def _progress_card(state: _RunState) -> dict[str, Any]:
    return {
        "validation": {
            "best_episode": state.best_episode,
            "best": state.best,
            "history": state.history,
        },
        "episodes_done": state.episode,
        "seconds": round(state.seconds, 1),
    }


def _save_last(
    directory: Path,
    config: TrainConfig,
    run: _Run,
    state: _RunState,
    card: dict[str, Any],
    group: Group = SINGLE,
) -> None:
    """Write `last/`; in a group every rank calls it and rank 0 writes every rank's state."""
    ranks = group.gather((run.sampler.state_dict(), torch.get_rng_state()))
    if ranks is None:
        return
    save_model(directory, run.model, config.model, {**card, **_progress_card(state)})
    optim = run.optimizer.state_dict()
    others, other_json = rank_states(ranks)
    tensors = {"rng.torch": torch.get_rng_state(), **others}
    slots: dict[str, dict[str, Any]] = {}
    for index, slot in optim["state"].items():
        for key, value in slot.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.contiguous()
            else:
                slots.setdefault(str(index), {})[key] = value
    save_file(tensors, str(directory / TRAINING_STATE))
    write_json_atomic(
        directory / TRAINING_JSON,
        {
            "config": to_dict(config),
            "run": state.__dict__,
            "optimizer": {"param_groups": optim["param_groups"], "scalars": slots},
            "scheduler": run.scheduler.state_dict(),
            "sampler": run.sampler.state_dict(),
            **other_json,
        },
    )


def _load_last(directory: Path, config: TrainConfig, run: _Run, group: Group) -> _RunState:
    try:
        saved = json.loads((directory / TRAINING_JSON).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"nothing to resume in {directory.parent}: no {LAST_DIR}/ yet"
        ) from None
    mine, theirs = to_dict(config), dict(saved["config"])
    theirs["episodes"] = mine["episodes"]  # resuming may extend the run
    if mine != theirs:
        changed = sorted(k for k in mine if mine[k] != theirs.get(k))
        raise ConfigError(f"cannot resume with different settings: {', '.join(changed)} changed")
    tensors = load_tensors(directory / TRAINING_STATE)
    weights = load_tensors(directory / WEIGHTS_FILE)
    run.model.load_state_dict(weights, strict=False)
    sampler_state, rng = own_state(group, saved, tensors)
    torch.set_rng_state(rng)
    slots: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        slots.setdefault(int(index), {})[name] = value
    for index, scalars in saved["optimizer"]["scalars"].items():
        slots.setdefault(int(index), {}).update(scalars)
    run.optimizer.load_state_dict(
        {"state": slots, "param_groups": saved["optimizer"]["param_groups"]}
    )
    run.scheduler.load_state_dict(saved["scheduler"])
    run.sampler.load_state_dict(sampler_state)
    return _RunState(**saved["run"])
