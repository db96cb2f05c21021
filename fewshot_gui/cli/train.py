"""`fewshot train`, `fewshot eval` and `fewshot models`."""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path
from typing import Any

from ..core.config import METHOD_NAMES
from ..core.devices import DEVICE_CHOICES
from ..core.engines import ENGINE_CHOICES
from .progress import ProgressBar, drive_with, interrupt_cancels, print_line, say


def _add_episode_args(parser: argparse.ArgumentParser, way: int, shot: int, query: int) -> None:
    parser.add_argument("--way", type=int, default=way, help="classes per episode (N)")
    parser.add_argument("--shot", type=int, default=shot, help="examples per class (K)")
    parser.add_argument("--query", type=int, default=query, help="queries per class (Q)")


def add_commands(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="meta-train a model on a folder-per-class dataset")
    train.add_argument("--method", choices=METHOD_NAMES, default="protonet")
    train.add_argument(
        "--backbone", default="conv4", help="conv4, conv4-rgb84, lite0, lite2 or lite0+lite2"
    )
    train.add_argument("--neck", default="", help="'', affine, linear:D or mlp:H,D")
    train.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean")
    train.add_argument("--data", type=Path, required=True, help="folder of class folders")
    val = train.add_mutually_exclusive_group()
    val.add_argument("--val-data", type=Path, help="separate folder of validation classes")
    val.add_argument(
        "--val-holdout",
        type=int,
        default=5,
        help="hold out the K top-level folders with the fewest classes (default 5)",
    )
    _add_episode_args(train, way=20, shot=5, query=15)
    train.add_argument("--val-way", type=int, default=5)
    train.add_argument("--val-shot", type=int, default=1)
    train.add_argument("--val-query", type=int, default=15)
    train.add_argument("--episodes", type=int, default=1000, help="meta-iterations to run")
    train.add_argument("--tasks-per-step", type=int, default=1, help="tasks per outer step")
    train.add_argument("--lr", type=float, default=1e-3, help="outer (Adam) learning rate")
    train.add_argument("--lr-decay-every", type=int, default=2000)
    train.add_argument("--lr-decay", type=float, default=0.5)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--val-every", type=int, default=250)
    train.add_argument("--val-episodes", type=int, default=200)
    train.add_argument("--inner-steps", type=int, default=5, help="MAML steps while training")
    train.add_argument("--test-inner-steps", type=int, default=10, help="MAML steps at test")
    train.add_argument("--inner-lr", type=float, default=0.4, help="MAML inner learning rate")
    train.add_argument("--first-order", action="store_true", help="first-order MAML")
    train.add_argument(
        "--fce-steps",
        type=int,
        default=0,
        help="matching: full-context embeddings with K attention steps (0: none)",
    )
    train.add_argument("--rotations", action="store_true", help="rotated classes as new ones")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, required=True, help="run folder (best/ and last/)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last")
    train.add_argument(
        "--init",
        metavar="MODEL",
        default="",
        help="start from this model's backbone and neck weights (an installed name or a "
        "folder), e.g. a MAML from a trained ProtoNet",
    )
    train.add_argument("--name", help="model name on the card (default: the folder's name)")
    train.set_defaults(run=run_train)

    evaluate = commands.add_parser("eval", help="episodic accuracy with a 95%% interval")
    model = evaluate.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", help="installed model name or folder")
    model.add_argument(
        "--baseline",
        metavar="BACKBONE:METRIC",
        help="no meta-training: plain prototypes on a backbone, e.g. lite0:cosine",
    )
    evaluate.add_argument("--data", type=Path, required=True, help="folder of class folders")
    evaluate.add_argument(
        "--holdout",
        type=int,
        metavar="K",
        help="only the K held-out top-level folders, as `train --val-holdout K` holds them out",
    )
    _add_episode_args(evaluate, way=5, shot=1, query=15)
    evaluate.add_argument("--episodes", type=int, default=1000)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument(
        "--transductive",
        action="store_true",
        help="let the model also learn from each episode's unlabeled queries (ProtoNet)",
    )
    evaluate.add_argument(
        "--rotations",
        action="store_true",
        help="also count each class turned by 90, 180 and 270 degrees as a class, as the "
        "Omniglot papers evaluate (image backbones only)",
    )
    evaluate.add_argument(
        "--engine",
        choices=ENGINE_CHOICES,
        help="embed with this engine, as `fewshot label` does (default: torch float32 with "
        "cached backbone features); compare a reduced-precision engine with `torch`",
    )
    evaluate.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="for --engine")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument(
        "--record",
        type=Path,
        metavar="MODEL_DIR",
        help="also write the result into that model's card (a baseline under 'baselines')",
    )
    evaluate.set_defaults(run=run_eval)

    models = commands.add_parser("models", help="list installed models with their cards")
    models.add_argument("--json", action="store_true", help="print the cards as JSON")
    models.set_defaults(run=run_models)


def run_train(args: argparse.Namespace) -> int:
    from ..core.config import EpisodeConfig, ModelConfig, TrainConfig
    from ..core.datasets import ImagePool
    from ..core.distributed import join_group
    from ..core.jobs import CancelToken, drive
    from ..core.paths import cache_dir
    from ..core.training import Checkpointed, TrainProgress, Validated, meta_train

    config = TrainConfig(
        model=ModelConfig(
            method=args.method,
            backbone=args.backbone,
            neck=args.neck,
            metric=args.metric,
            inner_steps=args.inner_steps,
            inner_lr=args.inner_lr,
            test_inner_steps=args.test_inner_steps,
            first_order=args.first_order,
            fce_steps=args.fce_steps,
        ),
        episode=EpisodeConfig(args.way, args.shot, args.query),
        val_episode=EpisodeConfig(args.val_way, args.val_shot, args.val_query),
        episodes=args.episodes,
        tasks_per_step=args.tasks_per_step,
        lr=args.lr,
        lr_decay_every=args.lr_decay_every,
        lr_decay=args.lr_decay,
        weight_decay=args.weight_decay,
        val_every=args.val_every,
        val_episodes=args.val_episodes,
        rotations=args.rotations,
        seed=args.seed,
        init=args.init,
    )
    pool = ImagePool.from_folder(args.data)
    if args.val_data is not None:
        train_pool, val_pool = pool, ImagePool.from_folder(args.val_data)
    else:
        train_pool, val_pool = pool.split_holdout_groups(args.val_holdout)
    group = join_group()  # torchrun's process group; alone outside torchrun
    if group.is_main:
        say(
            f"training {len(train_pool.class_names)} classes, "
            f"validating on {len(val_pool.class_names)} held-out classes"
            + (f" on {group.world_size} processes" if group.distributed else "")
        )
    card = {
        "name": args.name or args.out.name,
        "command": "fewshot " + shlex.join(args.argv),
    }
    token = CancelToken()
    bar = ProgressBar("train", config.episodes)
    job = meta_train(
        config,
        train_pool,
        val_pool,
        args.out,
        resume=args.resume,
        cancel=token,
        cache_dir=cache_dir(),
        card=card,
        group=group,
    )
    if not group.is_main:  # only rank 0 prints, validates and checkpoints
        with interrupt_cancels(token.cancel):
            result = drive(job)
        group.leave()
        return 130 if result.cancelled else 0
    with interrupt_cancels(token.cancel):
        result = drive_with(
            job,
            {
                TrainProgress: lambda e: bar.update(
                    e.episode,
                    f"loss {e.loss:.3f} acc {e.accuracy:.1f}% {e.episodes_per_second:.2f} ep/s",
                ),
                Validated: lambda e: print_line(
                    bar,
                    f"validation at {e.episode}: {e.result.accuracy:.2f}% ± {e.result.ci95:.2f}"
                    + (" (best)" if e.best else ""),
                ),
                Checkpointed: lambda e: None,
            },
        )
    group.leave()
    status = "stopped" if result.cancelled else "done"
    best = f"{result.best.accuracy:.2f}% ± {result.best.ci95:.2f}" if result.best else "none"
    say(
        f"{status} after {result.episodes_done} episodes in {result.seconds:.0f}s; "
        f"best validation {best} at episode {result.best_episode}; model in {args.out / 'best'}"
        + ("; resume with --resume" if result.cancelled else "")
    )
    return 130 if result.cancelled else 0


def run_eval(args: argparse.Namespace) -> int:
    from ..core.checkpoint import load_model
    from ..core.config import EpisodeConfig
    from ..core.datasets import ImagePool
    from ..core.errors import ConfigError
    from ..core.evaluation import EvalProgress, evaluate
    from ..core.jobs import CancelToken
    from ..core.paths import cache_dir

    if args.model:
        loaded = load_model(args.model)
        name, model, spec = loaded.name, loaded.model, loaded.spec
    else:
        name, model, spec = args.baseline, *_baseline(args.baseline, args.seed)
    pool = ImagePool.from_folder(args.data)
    if args.holdout:
        pool = pool.split_holdout_groups(args.holdout)[1]
    episode = EpisodeConfig(args.way, args.shot, args.query)
    engine = None
    if args.engine is not None:
        from ..core.engine_choice import choose_engine

        if not args.model:
            raise ConfigError("--engine needs --model: baselines embed with torch float32")
        choice = choose_engine(loaded, args.device, args.engine, cache_dir=cache_dir() / "engines")
        engine = choice.engine
        say(f"engine {engine.name}: {choice.reason}")
    token = CancelToken()
    bar = ProgressBar("eval", args.episodes)
    job = evaluate(
        model,
        spec,
        pool,
        episode,
        args.episodes,
        args.seed,
        cancel=token,
        cache_dir=cache_dir(),
        transductive=args.transductive,
        engine=engine,
        rotated_classes=args.rotations,
    )
    with interrupt_cancels(token.cancel):
        result = drive_with(
            job,
            {
                EvalProgress: lambda e: bar.update(e.done, f"acc {e.accuracy:.2f}%"),
            },
        )
    if args.record and not token.cancelled:
        _record(args, name, result.to_dict())
    if args.json:
        print(json.dumps({"model": name, "data": str(args.data), **result.to_dict()}))
    else:
        print(
            f"{name}: {result.way}-way {result.shot}-shot, {result.episodes} episodes: "
            f"{result.accuracy:.2f}% ± {result.ci95:.2f} (95% interval)"
        )
    return 130 if token.cancelled else 0


def _record(args: argparse.Namespace, name: str, result: dict[str, Any]) -> None:
    """Keep a measured figure on a model card, with how and where it was measured."""
    import platform
    from datetime import UTC, datetime

    from ..core.atomic import write_json_atomic
    from ..core.checkpoint import CARD_FILE, read_card

    card = read_card(args.record)
    entry = {
        **result,
        "data": str(args.data),
        "holdout": args.holdout,
        "seed": args.seed,
        "command": "fewshot " + shlex.join(args.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "date": datetime.now(UTC).date().isoformat(),
    }
    section = (
        card.setdefault("baselines", {}).setdefault(name, {})
        if args.baseline
        else (card.setdefault("evaluation", {}))
    )
    mode = " transductive" if result["transductive"] else ""
    mode += " rotated classes" if result["rotated_classes"] else ""
    section[f"{result['way']}-way {result['shot']}-shot{mode}"] = entry
    write_json_atomic(args.record / CARD_FILE, card)


def _baseline(text: str, seed: int) -> tuple[Any, Any]:
    """An untrained ProtoNet on a backbone: what meta-training has to beat. A backbone
    without pretrained weights starts from `seed`, so the figure reproduces."""
    import torch

    from ..core.backbones import get_backbone
    from ..core.config import ModelConfig
    from ..core.errors import ConfigError
    from ..core.methods import build_model

    backbone, _, metric = text.partition(":")
    if metric not in ("euclidean", "cosine"):
        raise ConfigError(f"--baseline takes BACKBONE:euclidean or BACKBONE:cosine, not {text!r}")
    torch.manual_seed(seed)
    model = build_model(ModelConfig(method="protonet", backbone=backbone, metric=metric)).eval()
    return model, get_backbone(backbone)


def run_models(args: argparse.Namespace) -> int:
    from ..core.checkpoint import find_models

    models, damaged = find_models()
    for directory, why in damaged:  # a damaged card hides neither the others nor itself
        say(f"damaged model {directory.name}, not listed: {why}")
    if args.json:
        print(json.dumps(dict(models), indent=2))
        return 0
    if not models:
        print("no models installed")
    for name, card in models:
        model = card.get("model", {})
        validation = card.get("validation")
        best = validation.get("best") if isinstance(validation, dict) else None
        score = (
            f"{best['accuracy']:.1f}% {best.get('way')}-way {best.get('shot')}-shot"
            if isinstance(best, dict) and isinstance(best.get("accuracy"), int | float)
            else "not validated"
        )
        method, backbone = str(model.get("method", "?")), str(model.get("backbone", "?"))
        print(f"{name:<28} {method:<9} {backbone:<12} {score}")
    return 0
