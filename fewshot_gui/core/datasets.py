"""Class-folder image pools and the seeded N-way K-shot episode sampler."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .backbones import BackboneSpec
from .config import EpisodeConfig
from .errors import DataError
from .images import iter_image_files
from .transforms import pixels_for


@dataclass(frozen=True)
class ImagePool:
    """Every image under a root, labeled by the folder that holds it.

    A class is any folder that directly holds images, named by its path relative to the
    root, so `class_name/*.jpg` and Omniglot's `alphabet/character/*.png` both work.
    `labels[i]` is the class index of `paths[i]`.
    """

    root: Path
    class_names: tuple[str, ...]
    paths: tuple[Path, ...]
    labels: np.ndarray

    @classmethod
    def from_folder(cls, root: Path) -> ImagePool:
        root = Path(root)
        by_class: dict[str, list[Path]] = {}
        for path in iter_image_files(root):
            if path.parent == root:
                continue  # loose files at the top have no class folder
            by_class.setdefault(path.parent.relative_to(root).as_posix(), []).append(path)
        if len(by_class) < 2:
            raise DataError(
                f"{root} needs at least two class folders with images in them "
                f"(found {len(by_class)}); lay it out as {root}/CLASS_NAME/*.jpg"
            )
        names = tuple(sorted(by_class))
        paths = tuple(p for name in names for p in by_class[name])
        labels = np.repeat(np.arange(len(names)), [len(by_class[n]) for n in names])
        return cls(root=root, class_names=names, paths=paths, labels=labels)

    def subset(self, class_names: list[str] | tuple[str, ...]) -> ImagePool:
        """The pool restricted to the named classes, in that order."""
        keep = {name: i for i, name in enumerate(class_names)}
        old_to_new = {self.class_names.index(name): i for name, i in keep.items()}
        rows = [i for i, label in enumerate(self.labels) if int(label) in old_to_new]
        return ImagePool(
            root=self.root,
            class_names=tuple(class_names),
            paths=tuple(self.paths[i] for i in rows),
            labels=np.array([old_to_new[int(self.labels[i])] for i in rows], dtype=np.int64),
        )

    def split_holdout_groups(self, count: int) -> tuple[ImagePool, ImagePool]:
        """(train, validation): the `count` top-level folders with the fewest classes are held out.

        For Omniglot this holds out whole alphabets, so validation characters come from
        alphabets the model never saw. Ties are broken by name, so the split is stable.
        """
        groups: dict[str, list[str]] = {}
        for name in self.class_names:
            groups.setdefault(name.split("/")[0], []).append(name)
        if not 0 < count < len(groups):
            raise DataError(f"cannot hold out {count} of {len(groups)} top-level folders")
        held = sorted(groups, key=lambda g: (len(groups[g]), g))[:count]
        val = [n for g in sorted(held) for n in groups[g]]
        train = [n for n in self.class_names if n.split("/")[0] not in held]
        return self.subset(train), self.subset(val)

    def fingerprint(self) -> str:
        """A short hash of the listing, to key caches and to record on model cards."""
        digest = hashlib.sha256()
        for path in self.paths:
            digest.update(str(path.relative_to(self.root)).encode())
        return digest.hexdigest()[:16]

    def describe(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "classes": len(self.class_names),
            "images": len(self.paths),
            "fingerprint": self.fingerprint(),
        }


def load_pixels(
    pool: ImagePool,
    spec: BackboneSpec,
    cache_dir: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Every image of the pool as uint8 pixels (N, H, W, C), cached on disk when asked.

    Raises `DataError` naming the first unreadable file: training data must be clean.
    """
    cache_file = None
    if cache_dir is not None:
        key = json.dumps([str(pool.root), pool.fingerprint(), spec.input_size, spec.channels])
        cache_file = cache_dir / f"pixels-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npy"
        if cache_file.exists():
            array = np.load(cache_file, allow_pickle=False)
            if array.shape[0] == len(pool.paths):
                return torch.from_numpy(array)
    from .errors import ImageLoadError

    out = np.empty((len(pool.paths), spec.input_size, spec.input_size, spec.channels), np.uint8)
    for i, path in enumerate(pool.paths):
        try:
            out[i] = pixels_for(path, spec)
        except ImageLoadError as error:
            raise DataError(f"{path}: {error}") from error
        if on_progress is not None and (i % 500 == 0 or i + 1 == len(pool.paths)):
            on_progress(i + 1, len(pool.paths))
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npy")
        np.save(tmp, out, allow_pickle=False)
        tmp.replace(cache_file)
    return torch.from_numpy(out)


@dataclass(frozen=True)
class Episode:
    """Indices into a pool for one task. Labels run 0..way-1 in support and query alike.

    `rotations[c]` is the number of quarter turns applied to every image of episode class c
    (all zero without rotation augmentation).
    """

    support: np.ndarray  # (way * shot,)
    support_labels: np.ndarray  # (way * shot,)
    query: np.ndarray  # (way * query,)
    query_labels: np.ndarray  # (way * query,)
    rotations: np.ndarray  # (way,)


class EpisodeSampler:
    """Seeded N-way K-shot Q-query episodes; support and query never share an image.

    With `rotations`, each class turned by 0, 90, 180 or 270 degrees counts as a class of its
    own (Santoro et al. 2016; Snell et al. 2017). Two turns of one class never meet in an
    episode, since they would share drawings between support and query.
    """

    def __init__(
        self, labels: np.ndarray, episode: EpisodeConfig, seed: int, rotations: bool = False
    ) -> None:
        self.episode = episode
        self.rotations = rotations
        self._rng = np.random.default_rng(seed)
        need = episode.shot + episode.query
        by_class = [np.flatnonzero(labels == c) for c in range(int(labels.max()) + 1)]
        self._classes = [members for members in by_class if len(members) >= need]
        if len(self._classes) < episode.way:
            raise DataError(
                f"{episode.way}-way episodes need {episode.way} classes with at least {need} "
                f"images each ({episode.shot} shot + {episode.query} query); only "
                f"{len(self._classes)} qualify"
            )

    def sample(self) -> Episode:
        way, shot, query = self.episode.way, self.episode.shot, self.episode.query
        chosen = self._rng.choice(len(self._classes), size=way, replace=False)
        rotations = self._rng.integers(0, 4 if self.rotations else 1, size=way)
        support, query_idx = [], []
        for members in (self._classes[c] for c in chosen):
            picked = self._rng.choice(members, size=shot + query, replace=False)
            support.append(picked[:shot])
            query_idx.append(picked[shot:])
        return Episode(
            support=np.concatenate(support),
            support_labels=np.repeat(np.arange(way), shot),
            query=np.concatenate(query_idx),
            query_labels=np.repeat(np.arange(way), query),
            rotations=rotations,
        )

    def state_dict(self) -> dict[str, object]:
        """JSON-ready state, so a resumed run draws the same episodes as an unbroken one."""
        return self._rng.bit_generator.state

    def load_state_dict(self, state: dict[str, object]) -> None:
        self._rng.bit_generator.state = state


def episode_tensors(
    data: torch.Tensor, episode: Episode
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(support, support_labels, query, query_labels) for one episode.

    `data` is anything indexed by image, (N, ...); image tensors (N, C, H, W) are turned by
    the episode's rotations, which must be zero for feature data.
    """
    support = data[torch.from_numpy(episode.support)]
    query = data[torch.from_numpy(episode.query)]
    if episode.rotations.any():
        support = _rotate(support, episode.rotations, episode.support_labels)
        query = _rotate(query, episode.rotations, episode.query_labels)
    return (
        support,
        torch.from_numpy(episode.support_labels),
        query,
        torch.from_numpy(episode.query_labels),
    )


def with_rotated_classes(
    images: torch.Tensor, labels: np.ndarray
) -> tuple[torch.Tensor, np.ndarray]:
    """Every class also turned by 90, 180 and 270 degrees, each turn a class of its own: the
    Omniglot protocol of Vinyals et al. 2016 that Snell et al. 2017 report on."""
    classes = int(labels.max()) + 1
    turned = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(4)])
    return turned, np.concatenate([labels + k * classes for k in range(4)])


def _rotate(images: torch.Tensor, rotations: np.ndarray, labels: np.ndarray) -> torch.Tensor:
    turned = images.clone()
    for cls, quarter_turns in enumerate(rotations):
        if quarter_turns:
            rows = torch.from_numpy(np.flatnonzero(labels == cls))
            turned[rows] = torch.rot90(images[rows], int(quarter_turns), dims=(2, 3))
    return turned
