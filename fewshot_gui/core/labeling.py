"""Support set -> adapted classifier -> a stream of predictions over files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .calibration import Calibration, ClassReport, calibrate
from .checkpoint import WEIGHTS_FILE, LoadedModel
from .devices import pick_device
from .embedding_cache import EmbeddingCache, FileKey
from .engine_choice import EngineChoice, choose_engine
from .engines import embed_stream
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
from .propagation import Spread, near_rows, neighbour_graph, propagate
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


def path_order(path: Path) -> int:
    """A stable 64-bit hash of a path (any bytes, also not UTF-8), to order rows by content
    rather than by when they were labeled."""
    digest = hashlib.blake2b(os.fsencode(path), digest_size=8).digest()
    return int.from_bytes(digest, "little")


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
    The encoder runs on `engine` (see `engine_choice.choose_engine`: `auto` takes the fastest
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
        self.engine_choice = choice  # `measure_later`: an EngineProbe may find a faster one
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
        self._order = np.zeros(0, np.uint64)  # per row: a hash of its path, see `_refine`
        self._sample: torch.Tensor | None = None  # the refinement's rows, drawn once per change
        self._support_names: tuple[str, ...] = ()
        self._examples: dict[str, dict[Path, np.ndarray]] = {}  # per class, readable ones
        self._fitted_without: frozenset[Path] = frozenset()
        self._corrections: dict[Path, str] = {}
        self._on_device: torch.Tensor | None = None
        self._class_names: tuple[str, ...] = ()
        self._unknown: str | float = "auto"
        self._auto_threshold: float | None = None
        self._support_features: tuple[torch.Tensor, torch.Tensor] | None = None
        self.spread: Spread | None = Spread()  # how far corrections act; None: only pinned

    def use_engine(self, choice: EngineChoice) -> None:
        """Embed with another engine from now on (a run in progress keeps its own).

        Only an engine with the same numerics may replace the current one: the cached
        embeddings, and so the labels, stay the same.
        """
        if choice.engine.numerics != self.engine.numerics:
            raise ConfigError(
                f"{choice.engine.name} computes other embeddings than {self.engine.name}"
            )
        self.engine_choice = choice
        self.engine = choice.engine
        self.engine_name = self.engine.name
        self.engine_reason = choice.reason

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
        examples = {
            c.name: {p: found[p] for p in c.examples if p in found} for c in support.classes
        }
        if not any(examples.values()):
            raise ConfigError("no class has a readable example; add images the app can open")
        self._support_names = support.names
        self._examples = {name: vectors for name, vectors in examples.items() if vectors}
        yield Stage(f"adapting to {len(self._examples)} classes")
        calibration = self._adapt()
        unreadable = tuple(
            ClassReport(name, 0, None, "", ("no readable examples: this class is left out",))
            for name, vectors in examples.items()
            if not vectors
        )
        return SupportReport(
            calibration.reports + unreadable,
            calibration.threshold,
            tuple(errors),
            input_mismatch(self.spec.channels, list(found)),
        )

    def _adapt(self) -> Calibration:
        """Fit the class means and calibrate `unknown` on the examples that are not also
        corrections: a correction is its own prototype (`_with_corrections`), so that it
        moves no mean and no threshold. A class made only of corrections keeps them."""
        names, features, labels = [], [], []
        for name, vectors in self._examples.items():
            kept = [v for p, v in vectors.items() if self._corrections.get(p) != name]
            labels.extend([len(names)] * len(kept or vectors))
            features.extend(kept or vectors.values())
            names.append(name)
        support_features = torch.from_numpy(np.stack(features)).to(self.device)
        support_labels = torch.tensor(labels, device=self.device)
        calibration = calibrate(self.model, support_features, support_labels, names)
        self._class_names = tuple(names)
        self._support_features = (support_features, support_labels)
        self._auto_threshold = calibration.threshold
        self._fitted_without = self._set_aside()
        return calibration

    def _set_aside(self) -> frozenset[Path]:
        """The examples that `_adapt` leaves out as corrections under the current ones."""
        return frozenset(
            p
            for name, vectors in self._examples.items()
            for p in vectors
            if self._corrections.get(p) == name
        )

    def set_unknown(self, mode: str | float) -> None:
        """`auto` (the calibrated threshold), `off`, or a novelty threshold."""
        if isinstance(mode, str) and mode not in ("auto", "off"):
            raise ConfigError(f"unknown must be auto, off or a number; got {mode!r}")
        self._unknown = mode

    def set_corrections(self, corrections: Mapping[Path, str]) -> None:
        """Pin each file to a person's label: a class of the support set, or `unknown`.

        A pinned file keeps its label (confidence 1) in every prediction, and the refinement
        takes it as known rather than as a guess: a class correction should also be an
        example of its class in the support set (as the app makes it), an `unknown` one
        pulls no class. Call after `set_support`; a class the support set left out for want
        of readable examples pins nothing.
        """
        names = {*self._support_names, UNKNOWN}
        wrong = sorted({label for label in corrections.values() if label not in names})
        if wrong and self._support_names:
            raise ConfigError(
                f"corrections name classes the examples do not have: {', '.join(wrong)}; "
                f"use one of {', '.join(sorted(names))}"
            )
        corrections = {Path(path): label for path, label in corrections.items()}
        if corrections != self._corrections:
            self._corrections = corrections
            self._sample = None
            if self._examples and self._set_aside() != self._fitted_without:
                self._adapt()

    @property
    def corrections(self) -> dict[Path, str]:
        return dict(self._corrections)

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
                predictions,
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
            unlabeled = self._ok[: len(self._paths)].copy()
            unlabeled[self._pins()[0]] = False  # known, not guessed: examples or clutter
            rows = np.flatnonzero(unlabeled)
            # Ordered by the hash of their paths, never by when they were labeled: the same
            # folder gives the same sample, summed in the same order (prototypes need a
            # sample, not 100,000 points).
            rows = rows[np.argsort(self._order[rows], kind="stable")][:REFINE_SAMPLE]
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
        self._order = np.zeros(0, np.uint64)
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
            grow = len(self._ok) + len(rows)
            self._ok = np.concatenate([self._ok, np.zeros(grow, bool)])
            self._order = np.concatenate([self._order, np.zeros(grow, np.uint64)])
        self._ok[rows] = [not self._errors[row] for row in rows]
        self._order[rows] = [path_order(self._paths[row]) for row in rows]
        self._on_device = self._sample = None
        return rows

    def _pins(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, label indices) of the readable corrected files, among those labeled."""
        index = {name: i for i, name in enumerate(self._class_names)} | {UNKNOWN: UNKNOWN_INDEX}
        pins = [
            (row, index[label])
            for path, label in self._corrections.items()
            if label in index and (row := self._rows.get(path)) is not None and self._ok[row]
        ]
        return (
            np.array([row for row, _ in pins], np.int64),
            np.array([label for _, label in pins], np.int64),
        )

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
            scores, far, verdict = self._with_corrections(rows, everything, scores, far)
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
                label = np.where(ok & (novelty > threshold) & (verdict >= 0), UNKNOWN_INDEX, label)
            label = np.where(ok & (verdict > 0), UNKNOWN_INDEX, label)
        pinned = np.zeros(n, bool)
        pin_rows, pin_labels = self._pins()
        if len(pin_rows):
            at = pin_rows  # where each pinned row sits among `rows`, -1 where it is not
            if not everything:
                position = np.full(len(self._paths), -1)
                position[np.asarray(rows, np.int64)] = np.arange(n)
                at = position[pin_rows]
            keep = at >= 0
            at, pin_labels = at[keep], pin_labels[keep]
            label[at], confidence[at], pinned[at] = pin_labels, 1.0, True
            runner_up[at], runner_up_confidence[at] = ERROR_INDEX, 0.0
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
            pinned=pinned,
        )

    def _with_corrections(
        self, rows: Sequence[int], everything: bool, scores: torch.Tensor, far: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Scores and novelty with every corrected image as a prototype of its own label, and
        per row a verdict on `unknown`: 1 unknown, -1 known, 0 as the threshold says.

        A class correction raises its class's score, and lowers the novelty, of the images
        nearer to it than to their class means; an `unknown` one makes unknown the images
        nearer to it than to any class. A final (transductive) re-labeling also moves the
        unknown boundary near each correction (`_reach`) and, if `spread.scale`, propagates
        it over the graph of its neighbours (`_spread`). Images far from every correction
        keep their labels: a correction changes only what it is evidence for.
        """
        n = len(scores)
        verdict = np.zeros(n, np.int8)
        model = (scores, far)  # what the prototypes alone say
        anchor_scores = getattr(self.model, "anchor_scores", None)
        pin_rows, pin_labels = self._pins()
        if anchor_scores is None or not len(pin_rows):
            return scores, far, verdict
        points = self._exact_points()
        anchors = points[torch.from_numpy(pin_rows).to(points.device)]
        if everything and self.device.type == "cpu" and self.model.scores_by_products:
            found = self.model.anchor_products(
                self._points.times(anchors)
            )  # one pass, as `_scores`
            near, distance = (part.float() for part in found)
        elif everything:  # one product with a few anchors: chunks would only add calls
            near, distance = (part.float() for part in anchor_scores(points, anchors))
        else:
            part = points[torch.tensor(list(rows), device=self.device)]
            near, distance = (found.float() for found in anchor_scores(part, anchors))
        labels = torch.from_numpy(pin_labels).to(scores.device)
        of_class = labels >= 0
        if bool(of_class.any()):
            best = torch.full_like(scores, -torch.inf).scatter_reduce(
                1, labels[of_class].expand(n, -1), near[:, of_class], "amax"
            )
            scores = torch.maximum(scores, best)
            far = torch.minimum(far, distance[:, of_class].min(1).values)
        if not bool(of_class.all()):
            unknown = near[:, ~of_class].max(1).values
            verdict[(unknown > scores.max(1).values).cpu().numpy()] = 1
        if everything and self.transductive and self.spread is not None and self.spread.reach:
            self._reach(anchors, labels, model, distance, verdict)
        if everything and self.transductive and self.spread is not None and self.spread.scale:
            scores = self._spread(model, scores, far, verdict, distance, pin_rows, labels)
        return scores, far, verdict

    def _reach(
        self,
        anchors: torch.Tensor,
        pin_labels: torch.Tensor,
        model: tuple[torch.Tensor, torch.Tensor],
        distance: torch.Tensor,
        verdict: np.ndarray,
    ) -> None:
        """How far each class reaches near each correction: a class correction of an image the
        threshold made unknown makes known the rows of the same nearest class among its
        `reach` nearest that are no farther from the class; an `unknown` correction of an
        image under the threshold makes unknown such rows that are no nearer. Where both
        say something of a row, the threshold decides. `verdict` is updated in place."""
        threshold = self.threshold
        spread = self.spread
        if threshold is None or spread is None:
            return
        scores, far = model
        n = len(far)
        pin_scores, pin_far = self.model.score_points(anchors)
        pin_near = pin_scores.argmax(1)
        stretch = (pin_labels >= 0) & (pin_near == pin_labels) & (pin_far > threshold)
        stop = (pin_labels < 0) & (pin_far <= threshold)
        acting = stretch | stop  # only these pins move the boundary: the rest cost nothing
        if not bool(acting.any()):
            return
        stretch, pin_near, pin_far = stretch[acting], pin_near[acting], pin_far[acting]
        usable = torch.from_numpy(self._ok[:n]).to(far.device)
        local = distance.T[acting].masked_fill(~usable, torch.inf)  # (pins, n): rows contiguous
        radius = local.topk(min(spread.reach, n), dim=1, largest=False).values[:, -1:]
        close = (local <= radius) & usable & (pin_near[:, None] == scores.argmax(1))
        known = (close & (stretch[:, None] & (far <= pin_far[:, None]))).any(0)
        unknown = (close & (~stretch[:, None] & (far >= pin_far[:, None]))).any(0)
        known, unknown = known & (far > threshold), unknown & (far <= threshold)
        known, unknown = (known & ~unknown).cpu().numpy(), (unknown & ~known).cpu().numpy()
        verdict[known & (verdict == 0)] = -1
        verdict[unknown & (verdict == 0)] = 1

    def _spread(
        self,
        model: tuple[torch.Tensor, torch.Tensor],
        scores: torch.Tensor,
        far: torch.Tensor,
        verdict: np.ndarray,
        distance: torch.Tensor,
        pin_rows: np.ndarray,
        pin_labels: torch.Tensor,
    ) -> torch.Tensor:
        """Propagate what each correction says beyond the prototypes (its label minus the
        `model` scores' and novelty's probabilities, `unknown` as one more column) over the
        kNN graph of the rows near the corrections, and add it to those rows' probabilities
        with the corrections as anchors (Correct and Smooth's residual step, Huang et al.
        2021). Scores of every row, `verdict` updated in place.

        Linear: the same as propagating the examples and corrections, minus what the
        examples alone give, so without corrections nothing moves.
        """
        spread = self.spread
        assert spread is not None
        n, n_way = scores.shape
        usable = torch.from_numpy(self._ok[:n]).to(scores.device)
        per_seed = max(spread.neighbours + 1, spread.near_rows // len(pin_rows))
        rows = np.flatnonzero(near_rows(distance, usable, per_seed).cpu().numpy())
        rows = rows[np.argsort(self._order[rows], kind="stable")]  # the graph in path order
        at = torch.from_numpy(rows).to(scores.device)
        points = self._exact_points()[at]
        pairs = self.model.anchor_scores(points, points)[1].float()
        graph = neighbour_graph(pairs, spread.neighbours)
        anchored = torch.from_numpy(verdict[rows] > 0).to(scores.device)
        said = self._probabilities(model[0][at], model[1][at], torch.zeros_like(anchored))
        base = self._probabilities(scores[at], far[at], anchored)
        position = np.full(n, -1)
        position[rows] = np.arange(len(rows))
        seeds = torch.from_numpy(position[pin_rows]).to(scores.device)
        target = said[seeds].clone()  # an `unknown` correction says nothing of the classes
        of_class = pin_labels >= 0
        target[of_class, :n_way] = torch.nn.functional.one_hot(pin_labels[of_class], n_way).to(
            target.dtype
        )
        target[:, n_way] = (~of_class).to(target.dtype)
        residual = torch.zeros_like(base).index_copy(0, seeds, target - said[seeds])
        moved = base + spread.scale * propagate(graph, residual, spread.alpha, spread.steps)
        scores = scores.clone()
        scores[at] = moved[:, :n_way].clamp_min(1e-6).log()
        verdict[rows] = np.where((moved[:, n_way] > 0.5).cpu().numpy(), 1, -1)
        return scores

    def _probabilities(
        self, scores: torch.Tensor, far: torch.Tensor, unknown: torch.Tensor
    ) -> torch.Tensor:
        """Scores (m, n_way), novelty (m,) and rows made unknown otherwise (m,) as (m, n_way
        + 1): the classes' softmax, then 1 where the row is unknown, else 0."""
        threshold = self.threshold
        if threshold is not None:
            unknown = unknown | (far > threshold)
        return torch.cat([torch.softmax(scores, 1), unknown.to(scores.dtype)[:, None]], 1)

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
