"""A 2-D map of a folder's images from their cached embeddings: the layout, and new images
placed on it without laying it out again.

The layout is openTSNE's t-SNE (FFT gradients) on a PCA of the unit-length embeddings:
`benchmarks/map_speed.py` measures it against UMAP (see docs/benchmarks.md). It runs in
steps of a few iterations, so a long layout yields progress and stops when cancelled.
The same set of files gives the same map: rows are taken in path order and the seed is
a hash of the paths.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .embedding_pipeline import Embedded

PCA_DIMS = 50  # t-SNE's neighbours are found in this many dimensions
PCA_SAMPLE = 20_000  # rows the PCA is fitted on: 100,000 took 9 s, the projection a second
PERPLEXITY = 30.0
EXAGGERATION_STEPS = 250  # iterations with early exaggeration (12), as openTSNE's default
STEPS = 500  # ordinary iterations after them
STEP_CHUNK = 25  # iterations between progress events and cancel checks
PLACE_STEPS = 100  # iterations that settle placed points among the fixed ones
# Above this many points t-SNE lays out a seeded sample of this size and the rest go to the
# median of their nearest sampled neighbours (openTSNE's advice for large data): the time
# stays that of the sample, so 100,000 points can fit in a minute on two cores.
LAYOUT_SAMPLE = 20_000
LAYOUT_STEPS = 3 + (EXAGGERATION_STEPS + STEPS) // STEP_CHUNK  # progress events of a layout
FEW = 8  # below this many points t-SNE has no neighbours to speak of: PCA places them
THREADS = max(1, min(os.cpu_count() or 1, 8))
# Below this many points Barnes-Hut gradients on one thread (openTSNE's own switch): two
# threads spinning on so little work took 17x longer than one on a busy 2-core machine.
FFT_FROM = 10_000
EXACT_BELOW = 1_000  # exact neighbours below this many points: no index to build


@dataclass(frozen=True)
class MapProgress:
    """One step of laying out or placing: `done` of `total` steps, and what is being done."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class FolderMap:
    """Where each file lies: `xy[i]` (float32) is the point of `paths[i]`.

    `_mean` and `_components` are the PCA that new images go through; `_embedding` is the
    fitted t-SNE that places them (None for a handful of points, placed by PCA alone).
    """

    paths: tuple[Path, ...]
    xy: np.ndarray
    seed: int
    _mean: np.ndarray = field(repr=False)
    _components: np.ndarray = field(repr=False)
    _embedding: Any = field(repr=False, default=None)
    _fitted: int = 0  # points the fitted t-SNE holds (a large layout's sample)

    def __len__(self) -> int:
        return len(self.paths)

    def row_of(self) -> dict[Path, int]:
        return {path: row for row, path in enumerate(self.paths)}


def map_seed(paths: Sequence[Path]) -> int:
    """A 32-bit seed from the set of paths: the same files give the same map."""
    digest = hashlib.blake2b(digest_size=4)
    for path in sorted(os.fsencode(p) for p in paths):
        digest.update(path + b"\0")
    return int.from_bytes(digest.digest(), "little")


def gather_features(
    paths: Sequence[Path],
    embed: Callable[[Sequence[Path], Callable[[], bool] | None], Iterator[Embedded]],
    cancel: Callable[[], bool] | None = None,
) -> Generator[MapProgress, None, tuple[list[Path], np.ndarray] | None]:
    """The readable `paths` and their embeddings (n, D) through `embed` (the labeler's
    pipeline and cache, `duplicates.pipeline_embed`); None once `cancel` says so."""
    kept: list[Path] = []
    vectors: list[np.ndarray] = []
    for batch in embed(paths, cancel):
        for path, vector in zip(batch.paths, batch.vectors, strict=True):
            if vector is not None:
                kept.append(path)
                vectors.append(vector.reshape(-1))
        yield MapProgress("reading embeddings", len(kept), len(paths))
    if cancel is not None and cancel():
        return None
    return kept, np.stack(vectors) if vectors else np.zeros((0, 1), np.float32)


def _unit(features: np.ndarray) -> np.ndarray:
    """Rows at unit length, float32: the cosine geometry the models score in."""
    features = np.asarray(features, np.float32).reshape(len(features), -1)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def _check(paths: Sequence[Path], features: np.ndarray) -> None:
    if len(paths) != len(features):
        raise ValueError(f"{len(paths)} paths but {len(features)} feature rows")
    if len(set(paths)) != len(paths):
        raise ValueError("a path is given twice; each file is one point")


def _fit_pca(unit: np.ndarray, seed: int, dims: int = PCA_DIMS) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,), components (k, D)) of a PCA fitted on a seeded sample of the rows."""
    rng = np.random.default_rng(seed)
    sample = unit if len(unit) <= PCA_SAMPLE else unit[rng.choice(len(unit), PCA_SAMPLE, False)]
    mean = sample.mean(0)
    k = max(1, min(dims, len(sample) - 1, sample.shape[1]))
    # The exact SVD of at most PCA_SAMPLE rows: deterministic, unlike a randomised one.
    _, _, vt = np.linalg.svd((sample - mean).astype(np.float64), full_matrices=False)
    components = vt[:k].astype(np.float32)
    # A sign convention, so the same data never comes out mirrored.
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(1)])
    return mean.astype(np.float32), components * signs[:, None]


def _project(unit: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((unit - mean) @ components.T, dtype=np.float32)


def layout(
    paths: Sequence[Path],
    features: np.ndarray,
    cancel: Callable[[], bool] | None = None,
    *,
    threads: int = THREADS,
) -> Generator[MapProgress, None, FolderMap | None]:
    """Lay out `paths` with their `features` (n, ...) in 2-D; None once `cancel` says so.

    Rows are sorted by path first, so the map depends on the set of files, not their order.
    """
    _check(paths, features)
    order = sorted(range(len(paths)), key=lambda i: os.fsencode(paths[i]))
    ordered = tuple(Path(paths[i]) for i in order)
    seed = map_seed(ordered)
    total = LAYOUT_STEPS
    yield MapProgress("reducing", 0, total)
    unit = _unit(np.asarray(features)[order]) if len(order) else np.zeros((0, 1), np.float32)
    mean, components = _fit_pca(unit, seed) if len(unit) else (np.zeros(1), np.zeros((1, 1)))
    reduced = _project(unit, mean, components) if len(unit) else np.zeros((0, 1), np.float32)
    if len(reduced) < FEW:
        xy = np.zeros((len(reduced), 2), np.float32)
        xy[:, : min(2, reduced.shape[1])] = reduced[:, :2]
        return FolderMap(ordered, xy, seed, mean, components, None, len(ordered))
    if cancel is not None and cancel():
        return None
    yield MapProgress("finding neighbours", 1, total)
    from openTSNE import TSNEEmbedding, affinity, initialization

    sample = np.arange(len(reduced))
    if len(reduced) > LAYOUT_SAMPLE:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(len(reduced), LAYOUT_SAMPLE, replace=False))
    rest = np.setdiff1d(np.arange(len(reduced)), sample)
    everything, reduced = reduced, reduced[sample]

    perplexity = min(PERPLEXITY, (len(reduced) - 1) / 3)
    large = len(reduced) >= FFT_FROM
    threads = threads if large else 1
    affinities = affinity.PerplexityBasedNN(
        reduced,
        perplexity=perplexity,
        method="exact" if len(reduced) < EXACT_BELOW else "annoy",
        n_jobs=threads,
        random_state=seed,
    )
    if cancel is not None and cancel():
        return None
    init = initialization.pca(reduced, random_state=seed)
    embedding = TSNEEmbedding(
        init,
        affinities,
        negative_gradient_method="fft" if large else "bh",
        n_jobs=threads,
        random_state=seed,
    )
    done = 2
    for exaggerated, steps in ((True, EXAGGERATION_STEPS), (False, STEPS)):
        for _ in range(0, steps, STEP_CHUNK):
            yield MapProgress("laying out", done, total)
            embedding.optimize(
                STEP_CHUNK,
                inplace=True,
                exaggeration=12.0 if exaggerated else None,
                momentum=0.5 if exaggerated else 0.8,
            )
            done += 1
            if cancel is not None and cancel():
                return None
    xy = np.zeros((len(everything), 2), np.float32)
    xy[sample] = np.asarray(embedding, np.float32)
    if len(rest):
        yield MapProgress("placing the rest", done, total)
        xy[rest] = np.asarray(embedding.prepare_partial(everything[rest], k=10), np.float32)
    return FolderMap(ordered, xy, seed, mean, components, embedding, len(sample))


def place(
    folder_map: FolderMap,
    paths: Sequence[Path],
    features: np.ndarray,
    cancel: Callable[[], bool] | None = None,
) -> Generator[MapProgress, None, FolderMap | None]:
    """`folder_map` with `paths` (not on it yet) placed among the laid-out points, which stay
    where they are: each starts at the median of its nearest laid-out neighbours, and a few
    t-SNE steps settle it (openTSNE's `prepare_partial`). None once `cancel` says so."""
    _check(paths, features)
    known = folder_map.row_of()
    if any(Path(p) in known for p in paths):
        raise ValueError("a path to place is on the map already")
    if not len(paths):
        return folder_map
    total = 2 + PLACE_STEPS // STEP_CHUNK
    yield MapProgress("placing", 0, total)
    reduced = _project(_unit(features), folder_map._mean, folder_map._components)
    embedding = folder_map._embedding
    if embedding is None:  # a map of a handful: PCA placed them, so it places these
        xy = np.zeros((len(reduced), 2), np.float32)
        xy[:, : min(2, reduced.shape[1])] = reduced[:, :2]
    else:
        partial = embedding.prepare_partial(reduced, k=min(25, folder_map._fitted))
        done = 1
        for _ in range(0, PLACE_STEPS, STEP_CHUNK):
            if cancel is not None and cancel():
                return None
            yield MapProgress("placing", done, total)
            partial.optimize(STEP_CHUNK, inplace=True, learning_rate=0.1, momentum=0.8)
            done += 1
        xy = np.asarray(partial, np.float32)
    return FolderMap(
        (*folder_map.paths, *(Path(p) for p in paths)),
        np.concatenate([folder_map.xy, xy]),
        folder_map.seed,
        folder_map._mean,
        folder_map._components,
        embedding,
        folder_map._fitted,
    )
