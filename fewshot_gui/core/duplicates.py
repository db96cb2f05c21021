"""Duplicate files in a folder: exact copies by content hash, near copies by embedding
similarity confirmed on tiny aligned thumbnails, grouped as connected components."""

from __future__ import annotations

import hashlib
import math
import os
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ImageLoadError
from .picture_match import Thumbnail, picture_match, read_thumbnail

if TYPE_CHECKING:  # torch comes with these: the GUI imports this module, the worker them
    from .embedding_pipeline import Embedded
    from .labeling import Labeler

Cancel = Callable[[], bool] | None
Embed = Callable[[Sequence[Path], Cancel], Iterable["Embedded"]]

HASH_CHUNK = 1 << 20  # files are hashed a megabyte at a time, never read whole
# Candidates: cosine of the model's features at least this (benchmarks/duplicate_quality.py).
MIN_COSINE = 0.6
# Accepted: the aligned thumbnails correlate at least this (picture_match.picture_match).
MIN_MATCH = 0.96
CELLS_PER_ROOT = 4.0  # cells per square root of the rows: work grows as n ** 1.5
CELLS_PER_ROW = 3  # a row joins this many nearest cells, so close pairs share one
MIN_BLOCKED = 4096  # fewer rows are compared all with all: that is faster
KMEANS_SAMPLE = 16384  # rows the cells are fitted on
KMEANS_ROUNDS = 6
ASSIGN_CHUNK = 8192  # rows given their cells at once
COMPARE_CHUNK = 2048  # rows of a cell compared at once (a big cell's products stay small)


@dataclass(frozen=True)
class DuplicateProgress:
    """`done` of `total` steps of `stage`: hashing, embedding, comparing or checking."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class DuplicateGroups:
    """The files looked at as columns: `group[i]` is 0 for a file in no group, else its
    group's number (1, 2, ... in order of each group's first file); `keep[i]` marks the one
    file of its group to keep (the largest in bytes, the first of equals)."""

    paths: list[Path]
    group: np.ndarray  # (n,) int32
    keep: np.ndarray  # (n,) bool
    errors: list[tuple[Path, str]]  # files that could not be read, with the reason
    exact_pairs: int
    near_pairs: int
    cancelled: bool = False

    def groups(self) -> list[list[Path]]:
        """Each group's files in the order they were given, groups in number order."""
        members: dict[int, list[Path]] = defaultdict(list)
        for path, number in zip(self.paths, self.group.tolist(), strict=True):
            if number:
                members[number].append(path)
        return [members[number] for number in sorted(members)]


def pipeline_embed(labeler: Labeler) -> Embed:
    """The labeler's way of embedding files: its model, engine, batch size and disk cache,
    so files labeling has seen are read from the cache, not encoded again."""
    from .embedding_pipeline import EmbeddingPipeline

    pipeline = EmbeddingPipeline(
        labeler.spec,
        batch_size=labeler.batch_size,
        decode_threads=labeler.decode_threads,
        disk_cache=labeler.disk_cache,
    )
    return lambda paths, cancel: pipeline.embed(labeler.engine, paths, cancel)


def file_digest(path: Path) -> str:
    """BLAKE2b of the file's bytes, read HASH_CHUNK at a time.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.blake2b(digest_size=20)
    buffer = bytearray(HASH_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb") as stream:
        while read := stream.readinto(buffer):
            digest.update(view[:read])
    return digest.hexdigest()


def find_duplicates(
    paths: Sequence[Path],
    embed: Embed,
    cancel: Cancel = None,
    *,
    min_cosine: float = MIN_COSINE,
    min_match: float = MIN_MATCH,
) -> Generator[DuplicateProgress, None, DuplicateGroups]:
    """Group `paths` into copies: same bytes, or the same picture resized, recompressed,
    cropped a little, turned slightly or made gray.

    Near copies are pairs whose features (from `embed`, see `pipeline_embed`) have a cosine
    of at least `min_cosine` and whose aligned gray thumbnails correlate at least
    `min_match` (a different photo of the same object has the first, not the second).
    """
    paths = list(paths)
    n = len(paths)
    errors: dict[int, str] = {}
    exact = yield from _exact_pairs(paths, errors, cancel)
    vectors = np.zeros((n, 0), np.float32)
    embedded = np.zeros(n, bool)
    done = 0
    for batch in _batches(embed, paths, cancel):
        if not vectors.shape[1]:
            width = next(len(v) for v in batch.vectors if v is not None)
            vectors = np.zeros((n, width), np.float32)
        for offset, (vector, error) in enumerate(zip(batch.vectors, batch.errors, strict=True)):
            if vector is None:
                errors.setdefault(done + offset, error or "could not be read")
            else:
                vectors[done + offset] = vector.reshape(-1)
                embedded[done + offset] = True
        done += len(batch.paths)
        yield DuplicateProgress("embedding", done, n)
    rows = np.flatnonzero(embedded)
    candidates = rows[(yield from similar_pairs(vectors[rows], min_cosine, cancel))]
    near = yield from _confirmed(paths, candidates, min_match, errors, cancel)
    cancelled = bool(cancel is not None and cancel())
    group = _components(n, np.concatenate([exact, near]))
    return DuplicateGroups(
        paths,
        group,
        _keepers(paths, group),
        [(paths[i], errors[i]) for i in sorted(errors)],
        len(exact),
        len(near),
        cancelled,
    )


def _batches(embed: Embed, paths: list[Path], cancel: Cancel) -> Iterator[Embedded]:
    if paths:
        yield from embed(paths, cancel)


def _exact_pairs(
    paths: list[Path], errors: dict[int, str], cancel: Cancel
) -> Generator[DuplicateProgress, None, np.ndarray]:
    """(i, j) of files with the same bytes: only files of one size are hashed, and each
    file is paired with the first of its content."""
    by_size: dict[int, list[int]] = defaultdict(list)
    for i, path in enumerate(paths):
        try:
            by_size[os.stat(path).st_size].append(i)
        except OSError as error:
            errors[i] = f"cannot read {path}: {error.strerror or error}"
    hashed = [i for rows in by_size.values() if len(rows) > 1 for i in rows]
    hashed.sort()
    first: dict[tuple[int, str], int] = {}
    pairs: list[tuple[int, int]] = []
    for count, i in enumerate(hashed, 1):
        if cancel is not None and cancel():
            break
        try:
            key = (os.stat(paths[i]).st_size, file_digest(paths[i]))
        except OSError as error:
            errors[i] = f"cannot read {paths[i]}: {error.strerror or error}"
            continue
        if key in first:
            pairs.append((first[key], i))
        else:
            first[key] = i
        if count % 64 == 0 or count == len(hashed):
            yield DuplicateProgress("hashing", count, len(hashed))
    return np.array(pairs, np.int64).reshape(-1, 2)


def similar_pairs(
    vectors: np.ndarray, min_cosine: float, cancel: Cancel = None
) -> Generator[DuplicateProgress, None, np.ndarray]:
    """Pairs (i, j), i < j, of rows of `vectors` (n, d) with cosine at least `min_cosine`,
    as an int64 array (pairs, 2) sorted by i then j.

    Blocking, not all n * n: a spherical k-means cuts the rows into about CELLS_PER_ROOT *
    sqrt(n) cells, each row joins its CELLS_PER_ROW nearest cells, and only rows sharing a
    cell are compared (exactly, by matrix products), so the work grows as n ** 1.5. A pair
    sharing no cell is missed: benchmarks/duplicate_quality.py measures how many.
    """
    n = len(vectors)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1), np.float32)
    cells = _cells(unit)
    found: list[np.ndarray] = []
    for done, members in enumerate(cells, 1):
        if cancel is not None and cancel():
            break
        found.append(_close_pairs(unit, members, min_cosine))
        if done % 16 == 0 or done == len(cells):
            yield DuplicateProgress("comparing", done, len(cells))
    pairs = np.concatenate(found) if found else np.zeros((0, 2), np.int64)
    keys = np.unique(pairs[:, 0] * n + pairs[:, 1])  # sorted, and once each
    return np.stack([keys // n, keys % n], axis=1) if n else pairs


def _cells(unit: np.ndarray) -> list[np.ndarray]:
    """The rows of each cell: a seeded spherical k-means on a sample, every row in its
    CELLS_PER_ROW nearest cells."""
    n = len(unit)
    count = max(1, round(CELLS_PER_ROOT * math.sqrt(n)))
    if count < 2 or n <= MIN_BLOCKED:
        return [np.arange(n)]
    from scipy.sparse import coo_matrix

    rng = np.random.default_rng(0)
    sample = unit[np.sort(rng.choice(n, min(n, KMEANS_SAMPLE), replace=False))]
    centres = sample[rng.choice(len(sample), count, replace=False)]
    for _ in range(KMEANS_ROUNDS):
        nearest = np.argmax(sample @ centres.T, axis=1)
        members = coo_matrix((np.ones(len(sample)), (nearest, np.arange(len(sample)))))
        sums = np.asarray(members.tocsr() @ sample, np.float32)
        sums = np.vstack([sums, np.zeros((count - len(sums), sums.shape[1]), np.float32)])
        lengths = np.linalg.norm(sums, axis=1, keepdims=True)
        centres = np.where(lengths > 0, sums / np.where(lengths > 0, lengths, 1), centres)
    per_row = min(CELLS_PER_ROW, count)
    rows, cells = [], []
    for start in range(0, n, ASSIGN_CHUNK):
        similarity = unit[start : start + ASSIGN_CHUNK] @ centres.T
        best = np.argpartition(-similarity, per_row - 1, axis=1)[:, :per_row]
        rows.append(np.repeat(np.arange(start, start + len(best)), per_row))
        cells.append(best.reshape(-1))
    row, cell = np.concatenate(rows), np.concatenate(cells)
    order = np.lexsort((row, cell))
    row, cell = row[order], cell[order]
    bounds = np.flatnonzero(np.diff(cell)) + 1
    return [members for members in np.split(row, bounds) if len(members) > 1]


def _close_pairs(unit: np.ndarray, members: np.ndarray, min_cosine: float) -> np.ndarray:
    """(i, j), i < j, among `members` (sorted rows) with cosine at least `min_cosine`."""
    found = []
    points = unit[members]
    for start in range(0, len(members), COMPARE_CHUNK):
        block = points[start : start + COMPARE_CHUNK] @ points[start:].T
        first, second = np.nonzero(np.triu(block >= min_cosine, k=1))
        found.append(np.stack([members[first + start], members[second + start]], axis=1))
    return np.concatenate(found)


def _confirmed(
    paths: list[Path],
    candidates: np.ndarray,
    min_match: float,
    errors: dict[int, str],
    cancel: Cancel,
) -> Generator[DuplicateProgress, None, np.ndarray]:
    """The candidate pairs whose thumbnails match; each image is decoded once."""
    thumbnails: dict[int, Thumbnail | None] = {}

    def thumbnail(i: int) -> Thumbnail | None:
        if i not in thumbnails:
            try:
                thumbnails[i] = read_thumbnail(paths[i])
            except ImageLoadError as error:
                thumbnails[i] = None
                errors.setdefault(i, str(error))
        return thumbnails[i]

    kept = np.zeros(len(candidates), bool)
    for at, (i, j) in enumerate(candidates.tolist()):
        if cancel is not None and cancel():
            break
        first, second = thumbnail(i), thumbnail(j)
        if first is not None and second is not None:
            kept[at] = picture_match(first, second) >= min_match
        if (at + 1) % 64 == 0 or at + 1 == len(candidates):
            yield DuplicateProgress("checking", at + 1, len(candidates))
    return candidates[kept]


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Group number per row (0: alone), numbered by each group's first row."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    group = np.zeros(n, np.int32)
    if not len(pairs):
        return group
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component)
    firsts = np.unique(component, return_index=True)[1]  # first row of each component
    numbered = [c for c in np.argsort(firsts, kind="stable") if sizes[c] > 1]
    number = np.zeros(len(sizes), np.int32)
    number[numbered] = np.arange(1, len(numbered) + 1)
    group[:] = number[component]
    return group


def _keepers(paths: list[Path], group: np.ndarray) -> np.ndarray:
    """Per group, the largest file in bytes (likely the least shrunk and recompressed)."""
    keep = np.zeros(len(paths), bool)
    best: dict[int, tuple[int, int]] = {}
    for i in np.flatnonzero(group).tolist():
        try:
            size = os.stat(paths[i]).st_size
        except OSError:
            size = -1
        number = int(group[i])
        if number not in best or size > best[number][0]:
            best[number] = (size, i)
    keep[[i for _size, i in best.values()]] = True
    return keep
