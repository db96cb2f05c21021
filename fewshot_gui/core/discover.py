"""Candidate classes found in the unknown pile: HDBSCAN clusters of the points the model scores.

Each dense cluster of images nobody has named yet is proposed as a class, with its most
typical images (nearest the cluster's centre) as the examples it would start from. The same
points in the same order give the same proposals in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .errors import ConfigError
from .predictions import ERROR_INDEX, UNKNOWN_INDEX

if TYPE_CHECKING:
    from .evaluation import Stage
    from .labeling import Labeler


@dataclass(frozen=True)
class Discovery:
    """How clusters are found.

    `min_cluster_size`: the fewest images a proposal may have; `min_samples`: HDBSCAN's
    density neighbourhood (None: `min_cluster_size`); `same_class`: the cosine between two
    clusters' mean directions from which they are one class (see `find_clusters`);
    `sample`: the most points HDBSCAN reads (their distances take sample² x 8 bytes);
    `typical`: examples a proposal offers; `overlap`: the share of a rejected proposal's
    images that a new cluster may hold and still be proposed; `margin`: the share of the
    unknown threshold from which an image joins the pile (see `unknown_pile`).
    """

    min_cluster_size: int = 10
    min_samples: int | None = 5
    same_class: float = 0.45
    sample: int = 4000
    typical: int = 5
    overlap: float = 0.5
    margin: float = 0.9

    def __post_init__(self) -> None:
        if self.min_cluster_size < 2:
            raise ConfigError(f"min_cluster_size must be 2 or more, not {self.min_cluster_size}")
        if self.min_samples is not None and self.min_samples < 1:
            raise ConfigError(f"min_samples must be 1 or more, not {self.min_samples}")
        if self.sample <= self.min_cluster_size or self.typical < 1:
            raise ConfigError("sample must exceed min_cluster_size, and typical be 1 or more")
        if not 0.0 < self.margin <= 1.0:
            raise ConfigError(f"margin must lie in (0, 1], not {self.margin}")
        if not 0.0 <= self.overlap <= 1.0:
            raise ConfigError(f"overlap must lie in [0, 1], not {self.overlap}")


@dataclass(frozen=True)
class Clusters:
    """Clusters of n points: `members[k]` and `typical[k]` are row indices (ascending, and most
    typical first), `cohesion[k]` the mean HDBSCAN membership probability; largest first."""

    members: tuple[np.ndarray, ...]
    typical: tuple[np.ndarray, ...]
    cohesion: np.ndarray


@dataclass(frozen=True)
class Proposal:
    """A candidate class: every image in it, in the order given, and its most typical ones."""

    members: tuple[Path, ...]
    typical: tuple[Path, ...]
    cohesion: float

    @property
    def size(self) -> int:
        return len(self.members)

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "cohesion": round(self.cohesion, 4),
            "typical": [str(p) for p in self.typical],
            "members": [str(p) for p in self.members],
        }


def unit(points: np.ndarray) -> np.ndarray:
    """`points` (n, D) scaled to unit length (a zero row stays zero)."""
    points = np.asarray(points, np.float32).reshape(len(points), -1)
    norms = np.linalg.norm(points, axis=1, keepdims=True)
    return points / np.maximum(norms, 1e-12)


def is_unit(points: np.ndarray) -> bool:
    """Whether every row of `points` (n, D) has unit length: a cosine model's points."""
    return bool(np.allclose(np.linalg.norm(points.reshape(len(points), -1), axis=1), 1, atol=1e-3))


def _directions(points: np.ndarray, origin: np.ndarray | None) -> np.ndarray:
    """Unit vectors to cluster: a cosine model's points as they are; other points about
    `origin` (D,) (None: their mean) first, as a ReLU network's features all point one way."""
    points = np.asarray(points, np.float32).reshape(len(points), -1)
    if len(points) and is_unit(points):
        return points
    return unit(points - (points.mean(0) if origin is None else origin))


def find_clusters(
    points: np.ndarray, settings: Discovery = Discovery(), origin: np.ndarray | None = None
) -> Clusters:
    """Dense clusters of the directions of `points` (n, D) (see `_directions`).

    HDBSCAN (scikit-learn) finds the finest dense clusters (its `leaf` selection: a class of
    40 images stays apart from its neighbour), leaving sparse points out as noise; clusters
    whose mean directions agree to `settings.same_class` cosine are then one (a class of
    hundreds is not offered in pieces). HDBSCAN reads the exact distances of at most
    `settings.sample` points, evenly spaced in the given order; each other point joins the
    cluster whose mean direction is nearest if it lies no farther from it than that cluster's
    farthest member. A cluster's typical points are those nearest its mean, ties by row.
    """
    if np.ndim(points) < 2:
        raise ConfigError(f"points must be (n, D), got shape {np.shape(points)}")
    directions = _directions(points, origin)
    if len(directions) <= settings.min_cluster_size:
        return Clusters((), (), np.zeros(0, np.float32))
    sample = np.unique(np.linspace(0, len(directions) - 1, settings.sample).astype(np.int64))
    model = _hdbscan(directions[sample], settings, "leaf")
    if model.labels_.max() < 0:  # `leaf` never takes the whole pile as one cluster; `eom` can
        model = _hdbscan(directions[sample], settings, "eom")
    labels = np.full(len(directions), -1, np.int64)
    labels[sample] = model.labels_
    probability = np.zeros(len(directions), np.float32)
    probability[sample] = model.probabilities_
    groups = _merged(directions, labels, settings.same_class)
    if len(sample) < len(directions):
        groups = _assigned(directions, sample, groups, probability)
    # Largest first; equal sizes by their first row, so the order is the input's.
    groups.sort(key=lambda rows: (-len(rows), int(rows[0])))
    typical = []
    for rows in groups:
        nearness = directions[rows] @ unit(directions[rows].mean(0, keepdims=True))[0]
        typical.append(rows[np.lexsort((rows, -nearness))[: settings.typical]])
    cohesion = np.array([probability[rows].mean() for rows in groups], np.float32)
    return Clusters(tuple(groups), tuple(typical), cohesion)


def _hdbscan(directions: np.ndarray, settings: Discovery, selection: str) -> Any:
    """HDBSCAN fitted on the exact distances of unit `directions` (n, D), computed by one
    product: HDBSCAN's own in 1,280 dimensions took 30 times longer."""
    from sklearn.cluster import HDBSCAN

    distance = np.sqrt(np.maximum(2.0 - 2.0 * (directions @ directions.T), 0.0), dtype=np.float64)
    np.fill_diagonal(distance, 0.0)
    return HDBSCAN(
        min_cluster_size=settings.min_cluster_size,
        min_samples=settings.min_samples,
        cluster_selection_method=selection,
        allow_single_cluster=True,
        metric="precomputed",
        copy=False,
    ).fit(distance)


def _assigned(
    directions: np.ndarray, sample: np.ndarray, groups: list[np.ndarray], probability: np.ndarray
) -> list[np.ndarray]:
    """`groups` (rows of the sample) with each point outside the sample added to the one whose
    mean direction is nearest, where it lies within that group's farthest member; an added
    point's `probability` is its group's mean."""
    if not groups:
        return groups
    means = unit(np.stack([directions[rows].mean(0) for rows in groups]))
    reach = np.array(
        [float((directions[rows] @ mean).min()) for rows, mean in zip(groups, means, strict=True)]
    )
    outside = np.setdiff1d(np.arange(len(directions)), sample)
    nearness = directions[outside] @ means.T
    best = nearness.argmax(1)
    joins = nearness[np.arange(len(outside)), best] >= reach[best]
    grown = []
    for k, rows in enumerate(groups):
        added = outside[joins & (best == k)]
        probability[added] = probability[rows].mean()
        grown.append(np.sort(np.concatenate([rows, added])))
    return grown


def _merged(directions: np.ndarray, labels: np.ndarray, same_class: float) -> list[np.ndarray]:
    """The rows of each cluster of `labels` (-1: noise), clusters joined (transitively) whose
    unit mean directions have a cosine of at least `same_class`."""
    count = int(labels.max()) + 1
    if count == 0:
        return []
    means = unit(np.stack([directions[labels == k].mean(0) for k in range(count)]))
    parent = list(range(count))

    def root(k: int) -> int:
        while parent[k] != k:
            k = parent[k]
        return k

    for a, b in zip(*np.nonzero(np.triu(means @ means.T >= same_class, 1)), strict=True):
        parent[max(root(a), root(b))] = min(root(a), root(b))
    roots = np.array([root(k) for k in range(count)], np.int64)
    return [np.flatnonzero(np.isin(labels, np.flatnonzero(roots == r))) for r in np.unique(roots)]


def propose(
    paths: Sequence[Path],
    points: np.ndarray,
    settings: Discovery = Discovery(),
    rejected: Iterable[frozenset[Path]] = (),
    cancel: Callable[[], bool] | None = None,
    origin: np.ndarray | None = None,
) -> Generator[Stage, None, list[Proposal]]:
    """Proposals from the images `paths` with their `points` (len(paths), D), leaving out any
    cluster that holds more than `settings.overlap` of a rejected proposal's images; `origin`
    as for `find_clusters`."""
    from .evaluation import Stage  # with torch: not at import, which the CLI's parser does

    if len(paths) != len(points):
        raise ConfigError(f"{len(paths)} paths but {len(points)} points")
    yield Stage(f"looking for classes among {len(paths)} unknown images")
    clusters = find_clusters(points, settings, origin)
    if cancel is not None and cancel():
        return []
    rejected = [r for r in rejected if r]
    proposals = []
    for members, typical, cohesion in zip(
        clusters.members, clusters.typical, clusters.cohesion, strict=True
    ):
        found = frozenset(paths[i] for i in members)
        if any(len(found & r) > settings.overlap * len(r) for r in rejected):
            continue
        proposals.append(
            Proposal(
                tuple(paths[i] for i in members),
                tuple(paths[i] for i in typical),
                float(cohesion),
            )
        )
    return proposals


class Pile(NamedTuple):
    """Images to cluster, their points (n, D), and the origin (D,) their directions are taken
    from: None for a cosine model's points, else the whole folder's mean point."""

    paths: list[Path]
    points: np.ndarray
    origin: np.ndarray | None


def unknown_pile(labeler: Labeler, settings: Discovery = Discovery()) -> Pile:
    """The labeled images where a class the examples lack would be, and their points, in the
    labeler's row order.

    Those the final labels call unknown, and those whose novelty under the examples alone
    (before the folder's own refinement) passes `settings.margin` times the threshold: the
    refinement draws prototypes towards a dense missing class and takes in about half of its
    images, and a tenth below the threshold holds most of the rest
    (`benchmarks/discover_quality.py`). Files corrected to a class are left out. Leaves the
    labeler as `relabel()` does.
    """
    threshold = labeler.threshold
    inductive = None
    if threshold is not None:
        transductive, labeler.transductive = labeler.transductive, False
        try:
            inductive = labeler.relabel()
        finally:
            labeler.transductive = transductive
    final = labeler.relabel()
    unknown = final.label == UNKNOWN_INDEX
    if inductive is not None and threshold is not None:
        pinned = inductive.pinned if inductive.pinned is not None else np.zeros(len(final), bool)
        readable = inductive.label != ERROR_INDEX
        near = inductive.novelty > settings.margin * threshold
        unknown |= near & readable & ~(pinned & (final.label >= 0))
    rows = np.flatnonzero(unknown)
    points = labeler.stored_points(rows)
    origin = None
    if len(rows) and not is_unit(points):  # a mean of evenly spaced rows: no 100,000 copies
        readable = np.flatnonzero(final.label != ERROR_INDEX)
        spaced = readable[np.linspace(0, len(readable) - 1, min(len(readable), 4096)).astype(int)]
        origin = labeler.stored_points(spaced).mean(0)
    return Pile([final.paths[i] for i in rows], points, origin)


def discover(
    labeler: Labeler,
    settings: Discovery = Discovery(),
    rejected: Iterable[frozenset[Path]] = (),
    cancel: Callable[[], bool] | None = None,
) -> Generator[Stage, None, list[Proposal]]:
    """Proposals from the files `labeler` has labeled (`unknown_pile`, then `propose`)."""
    from .evaluation import Stage

    yield Stage("gathering the unknown images")
    pile = unknown_pile(labeler, settings)
    if cancel is not None and cancel():
        return []
    return (yield from propose(pile.paths, pile.points, settings, rejected, cancel, pile.origin))


@dataclass(frozen=True)
class Embedding:
    """`done` of `total` images embedded (see `embed_points`)."""

    done: int
    total: int


def embed_points(
    labeler: Labeler, paths: Sequence[Path], cancel: Callable[[], bool] | None = None
) -> Generator[Embedding, None, tuple[list[Path], np.ndarray]]:
    """The readable `paths` and their points (n, D), with no support set: through the
    labeler's engine and disk cache, as labeling embeds them."""
    import torch

    from .embedding_pipeline import EmbeddingPipeline

    pipeline = EmbeddingPipeline(
        labeler.spec,
        batch_size=labeler.batch_size,
        decode_threads=labeler.decode_threads,
        disk_cache=labeler.disk_cache,
    )
    kept: list[Path] = []
    vectors: list[np.ndarray] = []
    done = 0
    for batch in pipeline.embed(labeler.engine, paths, cancel):
        for path, vector in zip(batch.paths, batch.vectors, strict=True):
            if vector is not None:
                kept.append(path)
                vectors.append(vector)
        done += len(batch.paths)
        yield Embedding(done, len(paths))
    if not vectors:
        return kept, np.zeros((0, labeler.spec.feature_dim), np.float32)
    with torch.no_grad():
        features = torch.from_numpy(np.stack(vectors)).to(labeler.device)
        points = labeler.model.points(features)
    return kept, points.float().cpu().numpy().reshape(len(kept), -1)
