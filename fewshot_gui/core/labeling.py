"""Support set -> adapted classifier -> a stream of predictions over files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .calibration import ClassReport, calibrate
from .checkpoint import WEIGHTS_FILE, LoadedModel
from .devices import pick_device
from .embedding_cache import EmbeddingCache, FileKey
from .engines import choose_engine, embed_stream
from .errors import ConfigError, ImageLoadError
from .evaluation import Stage
from .images import image_identity
from .point_store import PointStore, half_pays
from .predictions import (
    ERROR_INDEX,
    UNKNOWN_INDEX,
    LabelProgress,
    Labels,
    LabelSummary,
    Prediction,
    SupportReport,
)
from .support import UNKNOWN, SupportClass, SupportSet, input_mismatch
from .transforms import pixels_for

__all__ = [
    "UNKNOWN",
    "ClassReport",
    "LabelProgress",
    "LabelSummary",
    "Labeler",
    "Prediction",
    "SupportClass",
    "SupportReport",
    "SupportSet",
]


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one thread to keep and score a streamed batch: for so little work a thread
    pool's wake-ups and spinning would only take the cores from the engine and the decoders."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def default_batch_size(device: torch.device) -> int:
    """Images per batch: on the CPU each engine stream (one core) takes a whole batch, and 16
    runs as fast as 32 with half the engine's working memory; a GPU wants more at once."""
    return 16 if device.type == "cpu" else 64


REFINE_SAMPLE = 4096
DECODE_AHEAD = 4  # batches decoding while the engine runs the ones before them
PREDICT_CHUNK = 512  # rows scored at once: their features stay in the processor's cache


@dataclass(frozen=True)
class _Decoded:
    """One batch out of the decoders: known vectors, errors, and the pixels still to embed
    (those of the files at `fresh`, in that order)."""

    paths: list[Path]
    keys: list[FileKey | str]
    vectors: list[np.ndarray | None]
    errors: list[str]
    fresh: list[int]
    pixels: np.ndarray | None


@dataclass(frozen=True)
class _Embedded:
    """One batch out of the embedding pipeline: a vector or an error message per path."""

    paths: list[Path]
    vectors: list[np.ndarray | None]
    errors: list[str]


class Labeler:
    """Holds a model on its device, embeds files once, and labels them under a support set.

    Embeddings are cached in memory and, with a `cache_dir`, on disk per model; a new support
    set or threshold re-labels everything embedded so far without reading a file again.
    The encoder runs on `engine` (see `engines.choose_engine`: `auto` takes the fastest
    measured); the rest of the model stays in torch on `device`. `half` re-labels through
    half-precision copies of the stored points (see `PointStore`); None decides by measurement.
    `batch_size` None takes `default_batch_size(device)`.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        device: str = "auto",
        cache_dir: Path | None = None,
        batch_size: int | None = None,
        decode_threads: int = 2,
        engine: str = "auto",
        transductive: bool = True,
        half: bool | None = None,
    ) -> None:
        self.loaded = loaded
        self.transductive = transductive
        self.spec = loaded.spec
        self.device, self.device_name = pick_device(device)
        self.model = loaded.model.to(self.device).eval()
        self.batch_size = batch_size or default_batch_size(self.device)
        self.decode_threads = decode_threads
        choice = choose_engine(
            loaded,
            self.device,
            engine,
            cache_dir=cache_dir / "engines" if cache_dir is not None else None,
            batch_size=self.batch_size,
        )
        self.engine = choice.engine
        self.engine_name = self.engine.name
        self.engine_reason = choice.reason
        self.disk_cache = (
            EmbeddingCache(cache_dir / "embeddings" / f"{self.model_key()}.sqlite")
            if cache_dir is not None
            else None
        )
        self.images_embedded = 0  # files run through the encoder, for tests and benchmarks
        self._memory: dict[FileKey, np.ndarray] = {}
        self._rows: dict[Path, int] = {}
        self._paths: list[Path] = []
        self._errors: list[str] = []
        on_cpu = self.device.type == "cpu"
        if half is None:  # the copies serve only the product `_scores` makes for such models
            half = on_cpu and self.model.scores_by_products and half_pays(self.spec.feature_dim)
        self._points = PointStore(half=half and on_cpu)
        self._ok = np.zeros(0, bool)  # per row: embedded (not failed)
        self._sample: torch.Tensor | None = None  # the refinement's rows, drawn once per change
        self._on_device: torch.Tensor | None = None
        self._class_names: tuple[str, ...] = ()
        self._unknown: str | float = "auto"
        self._auto_threshold: float | None = None
        self._support_features: tuple[torch.Tensor, torch.Tensor] | None = None

    def model_key(self) -> str:
        """Identifies the embeddings this model and engine make, to key the disk cache.

        Engines with float32 numerics share one cache: their embeddings agree to rounding.
        A file name stem: the card's name is sanitised, so it cannot lead out of the cache.
        """
        from .paths import safe_file_stem

        digest = hashlib.sha256()
        digest.update((self.loaded.path / WEIGHTS_FILE).read_bytes())
        digest.update(json.dumps([self.loaded.card.get("model"), self.engine.numerics]).encode())
        return f"{safe_file_stem(self.loaded.name)}-{digest.hexdigest()[:16]}"

    # --- support set and threshold -------------------------------------------------------

    def set_support(
        self, support: SupportSet, cancel: Callable[[], bool] | None = None
    ) -> Generator[Stage, None, SupportReport]:
        """Embed the examples (cached), adapt the model, and calibrate `unknown`."""
        paths = [p for c in support.classes for p in c.examples]
        yield Stage(f"reading {len(paths)} examples of {len(support.classes)} classes")
        found: dict[Path, np.ndarray] = {}
        errors: list[tuple[Path, str]] = []
        for batch in self._embed(paths, cancel):
            for path, vector, error in zip(batch.paths, batch.vectors, batch.errors, strict=True):
                if vector is None:
                    errors.append((path, error))
                else:
                    found[path] = vector
        names, features, labels = [], [], []
        empty: list[str] = []
        for support_class in support.classes:
            vectors = [found[p] for p in support_class.examples if p in found]
            if not vectors:
                empty.append(support_class.name)
                continue
            labels.extend([len(names)] * len(vectors))
            features.extend(vectors)
            names.append(support_class.name)
        if not names:
            raise ConfigError("no class has a readable example; add images the app can open")
        yield Stage(f"adapting to {len(names)} classes")
        support_features = torch.from_numpy(np.stack(features)).to(self.device)
        support_labels = torch.tensor(labels, device=self.device)
        calibration = calibrate(self.model, support_features, support_labels, names)
        self._class_names = tuple(names)
        self._support_features = (support_features, support_labels)
        self._auto_threshold = calibration.threshold
        unreadable = tuple(
            ClassReport(name, 0, None, "", ("no readable examples: this class is left out",))
            for name in empty
        )
        return SupportReport(
            calibration.reports + unreadable,
            calibration.threshold,
            tuple(errors),
            input_mismatch(self.spec.channels, list(found)),
        )

    def set_unknown(self, mode: str | float) -> None:
        """`auto` (the calibrated threshold), `off`, or a novelty threshold."""
        if isinstance(mode, str) and mode not in ("auto", "off"):
            raise ConfigError(f"unknown must be auto, off or a number; got {mode!r}")
        self._unknown = mode

    @property
    def threshold(self) -> float | None:
        if self._unknown == "auto":
            return self._auto_threshold
        return None if self._unknown == "off" else float(self._unknown)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._class_names

    # --- labeling ------------------------------------------------------------------------

    def label(
        self, paths: Sequence[Path], cancel: Callable[[], bool] | None = None
    ) -> Generator[LabelProgress, None, LabelSummary]:
        """Label `paths` in order, streaming predictions batch by batch."""
        if not self._class_names:
            raise ConfigError("set a support set with at least one class before labeling")
        started = time.perf_counter()
        self._points.reserve(len(self._paths) + sum(p not in self._rows for p in paths))
        done = 0
        tally = np.zeros(3, np.int64)  # labeled, unknown, unreadable
        for batch in self._embed(paths, cancel):
            with _one_thread():
                rows = self._store(batch)
                predictions = self._predict(rows)
            done += len(rows)
            tally += predictions.counts()
            elapsed = time.perf_counter() - started
            rate = done / elapsed if elapsed > 0 else 0.0
            yield LabelProgress(
                done,
                len(paths),
                rate,
                (len(paths) - done) / rate if rate else 0.0,
                tuple(predictions),
            )
        return LabelSummary(
            total=len(paths),
            labeled=int(tally[0]),
            unknown=int(tally[1]),
            errors=int(tally[2]),
            seconds=time.perf_counter() - started,
            cancelled=done < len(paths),
        )

    def relabel(self) -> Labels:
        """Every file labeled so far, under the current support set and threshold.

        Transductive models first refine their classes with the files themselves, so this
        is what to show once a folder is done; the stream from `label` is inductive.
        """
        self._refine()
        return self._predict(range(len(self._paths)))

    def _refine(self) -> None:
        """Soft k-means over (a sample of) the labeled files; see ProtoNet.refine."""
        refine = getattr(self.model, "refine", None)
        if refine is None or self._support_features is None:
            return
        self.model.fit_support_features(*self._support_features)  # undoes an earlier refine
        if not self.transductive:
            return
        if self._sample is None:
            rows = np.flatnonzero(self._ok[: len(self._paths)])
            if len(rows) > REFINE_SAMPLE:  # prototypes need a sample, not 100,000 points
                rows = np.sort(np.random.default_rng(0).choice(rows, REFINE_SAMPLE, replace=False))
            points = self._exact_points()
            self._sample = points[torch.from_numpy(rows).to(points.device)]
        if len(self._sample):
            refine(self._sample, self.threshold)

    def forget(self) -> None:
        """Drop the labeled files (not the embedding caches), e.g. for a new folder."""
        self._rows.clear()
        self._paths.clear()
        self._points.clear()
        self._errors.clear()
        self._ok = np.zeros(0, bool)
        self._on_device = self._sample = None

    # --- internals -----------------------------------------------------------------------

    @torch.no_grad()
    def _store(self, batch: _Embedded) -> list[int]:
        """Keep each file's points (what scoring needs of it under any support set)."""
        rows, embedded, vectors = [], [], []
        for i, (path, vector, error) in enumerate(
            zip(batch.paths, batch.vectors, batch.errors, strict=True)
        ):
            row = self._rows.get(path)
            if row is None:
                row = self._rows[path] = len(self._paths)
                self._paths.append(path)
                self._errors.append(error)
            else:
                self._errors[row] = error
            rows.append(row)
            if vector is not None:
                embedded.append(i)
                vectors.append(vector)
        points = None  # zeros for every row when none was embedded
        if vectors:
            features = torch.from_numpy(np.stack(vectors)).to(self.device)
            found = self.model.points(features)
            points = found.new_zeros((len(rows), *found.shape[1:]))
            points[embedded] = found
        self._points.put(rows, points)  # one write: a block fills (and is packed) once
        if len(self._ok) < len(self._paths):
            self._ok = np.concatenate([self._ok, np.zeros(len(self._ok) + len(rows), bool)])
        self._ok[rows] = [not self._errors[row] for row in rows]
        self._on_device = self._sample = None
        return rows

    def _exact_points(self) -> torch.Tensor:
        """Every file's float32 points on the device: a view on the CPU, else a cached copy."""
        points = self._points.exact()
        if self.device.type == "cpu":
            return points
        if self._on_device is None or len(self._on_device) != len(points):
            self._on_device = points.to(self.device)
        return self._on_device

    @torch.no_grad()
    def _predict(self, rows: Sequence[int]) -> Labels:
        """Score stored rows; thresholds and names are applied column-wise."""
        n = len(rows)
        everything = isinstance(rows, range) and rows == range(len(self._paths))
        paths = list(self._paths) if everything else [self._paths[row] for row in rows]
        errors = list(self._errors) if everything else [self._errors[row] for row in rows]
        label = np.full(n, ERROR_INDEX, np.int64)
        nearest = np.zeros(n, np.int64)
        runner_up = np.full(n, ERROR_INDEX, np.int64)
        confidence, runner_up_confidence, novelty = (np.zeros(n, np.float32) for _ in range(3))
        if n:
            scores, far = self._scores(rows, everything)
            k = min(2, len(self._class_names))
            top = scores.topk(k, dim=1)
            values = (top.values - scores.logsumexp(1, keepdim=True)).exp().cpu().numpy()
            indices = top.indices.cpu().numpy()
            novelty = far.float().cpu().numpy()
            ok = self._ok[:n] if everything else self._ok[np.asarray(rows)]
            nearest = indices[:, 0]
            label = np.where(ok, nearest, ERROR_INDEX)
            confidence = np.where(ok, values[:, 0], 0.0).astype(np.float32)
            if k > 1:
                runner_up = np.where(ok, indices[:, 1], ERROR_INDEX)
                runner_up_confidence = np.where(ok, values[:, 1], 0.0).astype(np.float32)
            threshold = self.threshold
            if threshold is not None:
                label = np.where(ok & (novelty > threshold), UNKNOWN_INDEX, label)
        return Labels(
            paths=paths,
            class_names=self._class_names,
            label=label,
            nearest=nearest,
            confidence=confidence,
            runner_up=runner_up,
            runner_up_confidence=runner_up_confidence,
            novelty=novelty,
            errors=errors,
        )

    def _scores(self, rows: Sequence[int], everything: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (n, n_way) and novelty (n,) of stored rows, in float32.

        Every file at once, for a model that scores through products with a few directions,
        is one pass over the points (`PointStore.times`). Otherwise rows go in chunks that
        keep each one's features in the processor's cache between the method's steps.
        """
        directions = self.model.scoring_directions()
        if everything and directions is not None and self.device.type == "cpu":
            return self.model.score_products(self._points.times(directions))
        points = self._exact_points()
        n = len(rows)
        index = None if everything else torch.tensor(list(rows), device=self.device)
        scores, far = [], []
        few = self.device.type == "cpu" and n <= PREDICT_CHUNK
        with _one_thread() if few else contextlib.nullcontext():
            for start in range(0, n, PREDICT_CHUNK):
                stop = min(start + PREDICT_CHUNK, n)
                part = points[start:stop] if index is None else points[index[start:stop]]
                chunk_scores, chunk_far = self.model.score_points(part)
                scores.append(chunk_scores.float())
                far.append(chunk_far.float())
        return torch.cat(scores), torch.cat(far)

    def _embed(
        self, paths: Sequence[Path], cancel: Callable[[], bool] | None
    ) -> Iterator[_Embedded]:
        """Embed `paths` batch by batch, in order: worker threads decode batches ahead while
        the engine runs the ones before (`embed_stream`).

        Each file is looked up in memory, then on disk, by its identity (path, size, mtime);
        only misses are read and run through the encoder.
        """
        keys: list[FileKey | str] = []
        for path in paths:
            try:
                keys.append(image_identity(path))
            except ImageLoadError as error:
                keys.append(str(error))
        known = {k: self._memory[k] for k in keys if not isinstance(k, str) and k in self._memory}
        if self.disk_cache is not None:
            missing = [k for k in keys if not isinstance(k, str) and k not in known]
            for key, vector in self.disk_cache.get_many(missing).items():
                known[key] = self._memory[key] = vector

        with ThreadPoolExecutor(self.decode_threads, thread_name_prefix="decode") as pool:
            decoded = self._decoded(paths, keys, known, pool, cancel)
            encoded = embed_stream(self.engine, decoded, lambda batch: batch.pixels)
            try:
                for batch, features in encoded:
                    if cancel is not None and cancel():
                        return
                    yield self._embedded(batch, features)
            finally:
                encoded.close()
                decoded.close()  # cancels the decoding not yet started

    def _decoded(
        self,
        paths: Sequence[Path],
        keys: list[FileKey | str],
        known: dict[FileKey, np.ndarray],
        pool: ThreadPoolExecutor,
        cancel: Callable[[], bool] | None,
    ) -> Generator[_Decoded, None, None]:
        """Batches with their pixels decoded on `pool`, DECODE_AHEAD batches ahead; none
        more, for the engine or the decoders, once `cancel` says so."""
        starts = range(0, len(paths), self.batch_size)
        ahead: deque[list[Future[np.ndarray] | None]] = deque()

        def submit(start: int) -> None:
            ahead.append(
                [
                    pool.submit(pixels_for, path, self.spec)
                    if not isinstance(key, str) and key not in known
                    else None
                    for path, key in zip(
                        paths[start : start + self.batch_size],
                        keys[start : start + self.batch_size],
                        strict=True,
                    )
                ]
            )

        try:
            for start in starts[:DECODE_AHEAD]:
                submit(start)
            for n, start in enumerate(starts):
                if cancel is not None and cancel():
                    return
                futures = ahead.popleft()
                if n + DECODE_AHEAD < len(starts):
                    submit(starts[n + DECODE_AHEAD])
                stop = start + self.batch_size
                yield self._collect(list(paths[start:stop]), keys[start:stop], futures, known)
        finally:
            for futures in ahead:
                for future in futures:
                    if future is not None:
                        future.cancel()

    @staticmethod
    def _collect(
        paths: list[Path],
        keys: list[FileKey | str],
        futures: list[Future[np.ndarray] | None],
        known: dict[FileKey, np.ndarray],
    ) -> _Decoded:
        """One batch: known vectors, per-file errors, and the pixels of the rest stacked."""
        vectors: list[np.ndarray | None] = []
        errors: list[str] = []
        fresh: list[int] = []
        pixels: list[np.ndarray] = []
        for i, (key, future) in enumerate(zip(keys, futures, strict=True)):
            vectors.append(None if isinstance(key, str) or future is not None else known[key])
            errors.append(key if isinstance(key, str) else "")
            if future is not None:
                try:
                    pixels.append(future.result())
                    fresh.append(i)
                except ImageLoadError as error:
                    errors[i] = str(error)
        stacked = np.stack(pixels) if pixels else None
        return _Decoded(paths, keys, vectors, errors, fresh, stacked)

    def _embedded(self, batch: _Decoded, features: np.ndarray | None) -> _Embedded:
        """The batch with the engine's features in place, remembered in both caches."""
        if features is not None:
            self.images_embedded += len(features)
            fresh = []
            for i, vector in zip(batch.fresh, features, strict=True):
                key = batch.keys[i]
                assert not isinstance(key, str)
                batch.vectors[i] = self._memory[key] = vector
                fresh.append((key, vector))
            if self.disk_cache is not None:
                self.disk_cache.put_many(fresh)
        return _Embedded(batch.paths, batch.vectors, batch.errors)
