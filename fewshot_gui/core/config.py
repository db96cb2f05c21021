"""One config object for GUI and CLI: frozen dataclasses, unknown keys are an error."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, TypeVar

from .errors import ConfigError

T = TypeVar("T")

# Bounds on every number a model card can hold, so that a hostile card is refused before
# anything is allocated or run. The shipped models take 1 to 10 steps at rates below 1; a
# neck of mlp:4096,4096 on the widest backbone (1280 features) is 22 million weights.
MAX_INNER_STEPS = 1000
MAX_INNER_LR = 100.0
MAX_NECK_DIM = 4096
# Every method's name, one entry each; `methods.build_model` has a builder for each one.
METHOD_NAMES: tuple[str, ...] = (
    "protonet",
    "maml",
    "matching",
    "meta-sgd",
    "meta-lstm",
    "metanet",
)
_NECK_SIZES = {"": 0, "affine": 0, "power-affine": 0, "linear": 1, "mlp": 2}


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What network a checkpoint holds; enough to rebuild it before loading weights.

    `neck` is a small trainable part on top of a backbone: "" (none), "affine" (learned
    per-feature shift and scale), "linear:D" or "mlp:H,D".
    ProtoNet uses `metric`; MAML uses the `inner_*` fields and adapts everything after the
    frozen encoder (all of Conv-4, or the neck of a pretrained backbone).
    `method` is one of METHOD_NAMES. Meta-SGD uses the `inner_*` fields as MAML does, its
    `inner_lr` the start of its learned rates. Matching Networks with `fce_steps` K > 0 add
    full-context embeddings with K attention steps; 0 is plain cosine attention.
    """

    method: str = "protonet"
    backbone: str = "conv4"
    neck: str = ""
    metric: Literal["euclidean", "cosine"] = "euclidean"
    inner_steps: int = 5
    inner_lr: float = 0.4
    test_inner_steps: int = 10
    first_order: bool = False
    fce_steps: int = 0

    def __post_init__(self) -> None:
        _check_choice("method", self.method, METHOD_NAMES)
        _check_choice("metric", self.metric, ("euclidean", "cosine"))
        for name in ("inner_steps", "test_inner_steps", "fce_steps"):
            steps = getattr(self, name)
            if not 0 <= steps <= MAX_INNER_STEPS:
                raise ConfigError(f"{name} must be 0 to {MAX_INNER_STEPS}; got {steps}")
        if not (math.isfinite(self.inner_lr) and 0 <= self.inner_lr <= MAX_INNER_LR):
            raise ConfigError(f"inner_lr must be 0 to {MAX_INNER_LR:g}; got {self.inner_lr}")
        neck_dims(self.neck)


def neck_dims(neck: str) -> tuple[int, ...]:
    """The sizes a neck names ("linear:D" -> (D,), "mlp:H,D" -> (H, D), others ()), each
    1 to MAX_NECK_DIM: checked before any layer is built, so no card can ask for terabytes."""
    kind, colon, sizes = neck.partition(":")
    texts = sizes.split(",") if colon else []
    if kind not in _NECK_SIZES or len(texts) != _NECK_SIZES[kind]:
        raise ConfigError(
            f"unknown neck {neck!r}; use '', 'affine', 'power-affine', 'linear:D' or 'mlp:H,D'"
        )
    # Digits only and short: int() would also take " 1_0" and a thousand-digit number.
    if not all(text.isascii() and text.isdigit() and len(text) <= 6 for text in texts) or not all(
        1 <= int(text) <= MAX_NECK_DIM for text in texts
    ):
        raise ConfigError(f"neck {neck!r}: each size must be a whole number, 1 to {MAX_NECK_DIM}")
    return tuple(int(text) for text in texts)


@dataclasses.dataclass(frozen=True)
class EpisodeConfig:
    """An N-way K-shot episode with Q queries per class."""

    way: int = 5
    shot: int = 1
    query: int = 15

    def __post_init__(self) -> None:
        if self.way < 2:
            raise ConfigError(f"way must be at least 2, got {self.way}")
        if self.shot < 1 or self.query < 1:
            raise ConfigError(f"shot and query must be at least 1, got {self.shot}, {self.query}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a meta-training run; saved with every checkpoint."""

    model: ModelConfig = ModelConfig()
    episode: EpisodeConfig = EpisodeConfig(way=20, shot=5, query=15)
    val_episode: EpisodeConfig = EpisodeConfig(way=5, shot=1, query=15)
    episodes: int = 1000
    tasks_per_step: int = 1
    lr: float = 1e-3
    lr_decay_every: int = 2000
    lr_decay: float = 0.5
    weight_decay: float = 0.0
    val_every: int = 250
    val_episodes: int = 200
    rotations: bool = False
    seed: int = 0
    init: str = ""  # a model (name or folder) whose backbone and neck weights the run starts from

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.val_every < 1 or self.val_episodes < 1:
            raise ConfigError("episodes, val_every and val_episodes must be at least 1")
        if self.tasks_per_step < 1:
            raise ConfigError("tasks_per_step must be at least 1")


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass, nested ones included."""
    return dataclasses.asdict(config)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build `cls` from a dict; an unknown key is a `ConfigError` naming the known ones."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} needs a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown {cls.__name__} key(s) {', '.join(unknown)}; known: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value)
        elif hint is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif not _matches(value, hint):
            raise ConfigError(f"{cls.__name__}.{name} must be {hint}, got {value!r}")
        values[name] = value
    return cls(**values)


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True
