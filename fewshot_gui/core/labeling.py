"""Support set -> adapted classifier -> a stream of predictions over files."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .calibration import Calibration, ClassReport, calibrate
from .checkpoint import LoadedModel
from .corrections import (
    AnchorScorer,
    Evidence,
    Spread,
    as_prototypes,
    claim_candidates,
    claim_clutter,
    claimed_rows,
    reach_boundary,
    widen_boundary,
)
from .devices import pick_device
from .embedding_cache import EmbeddingCache
from .embedding_pipeline import Embedded, EmbeddingPipeline, cache_name
from .engine_choice import EngineChoice, choose_engine
from .engines import Engine
from .errors import ConfigError
from .evaluation import Stage
from .labeled_rows import LabeledRows, one_thread
from .point_store import half_pays
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


def default_batch_size(device: torch.device) -> int:
    """Images per batch: on the CPU each engine stream (one core) takes a whole batch, and 16
    runs as fast as 32 with half the engine's working memory; a GPU wants more at once."""
    return 16 if device.type == "cpu" else 64


REFINE_SAMPLE = 4096

_Embedded = Embedded  # the name benchmarks/label_speed.py imports from here


class _Anchors(NamedTuple):
    """The readable corrected files among those labeled, as anchors: their rows (pins,) and
    label indices (pins,), points (pins, ...), and the scores and distances (n, pins) of the
    scored rows against them."""

    rows: np.ndarray
    labels: torch.Tensor
    points: torch.Tensor
    near: torch.Tensor
    distance: torch.Tensor


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
        batch_size = batch_size or default_batch_size(self.device)
        # `measure_later`: an EngineProbe may find a faster one (`use_engine`)
        self.engine_choice = choose_engine(
            loaded,
            self.device,
            engine,
            cache_dir=cache_dir / "engines" if cache_dir is not None else None,
            batch_size=batch_size,
        )
        self._embeddings = EmbeddingPipeline(
            self.spec,
            batch_size=batch_size,
            decode_threads=decode_threads,
            disk_cache=EmbeddingCache(cache_dir / "embeddings" / f"{self.model_key()}.sqlite")
            if cache_dir is not None
            else None,
        )
        on_cpu = self.device.type == "cpu"
        if half is None:  # the copies serve only the product `_scores` makes for such models
            half = on_cpu and self.model.scores_by_products and half_pays(self.spec.feature_dim)
        self._labeled = LabeledRows(self.device, half=half and on_cpu)
        self._sample: torch.Tensor | None = None  # the refinement's rows, drawn once per change
        self._by_hash: np.ndarray | None = None  # readable rows by path hash, sorted once
        self._support_names: tuple[str, ...] = ()
        self._examples: dict[str, dict[Path, np.ndarray]] = {}  # per class, readable ones
        self._fitted_without: frozenset[Path] = frozenset()
        self._corrections: dict[Path, str] = {}
        self._class_names: tuple[str, ...] = ()
        self._unknown: str | float = "auto"
        self._auto_threshold: float | None = None
        self._support_features: tuple[torch.Tensor, torch.Tensor] | None = None
        self._guessed = torch.zeros(0, dtype=torch.bool)  # per class: its boundary is a guess
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

    def embed_through(self, wrap: Callable[[EmbeddingPipeline], EmbeddingPipeline]) -> None:
        """Embed from now on through `wrap(pipeline)`, e.g. `cluster.RayPipeline`, which keeps
        the same caches: what it embeds serves later runs and the app alike."""
        self._embeddings = wrap(self._embeddings)

    @property
    def engine(self) -> Engine:
        return self.engine_choice.engine

    @property
    def engine_name(self) -> str:
        return self.engine.name

    @property
    def engine_reason(self) -> str:
        return self.engine_choice.reason

    @property
    def batch_size(self) -> int:
        return self._embeddings.batch_size

    @property
    def decode_threads(self) -> int:
        return self._embeddings.decode_threads

    @property
    def disk_cache(self) -> EmbeddingCache | None:
        return self._embeddings.disk_cache

    @property
    def images_embedded(self) -> int:
        """Files run through the encoder, for tests and benchmarks."""
        return self._embeddings.images_embedded

    def model_key(self) -> str:
        """Identifies the embeddings this model and engine make, to key the disk cache
        (see `embedding_pipeline.cache_name`)."""
        return cache_name(self.loaded, self.engine.numerics)

    # --- support set and threshold -------------------------------------------------------

    def set_support(
        self, support: SupportSet, cancel: Callable[[], bool] | None = None
    ) -> Generator[Stage, None, SupportReport]:
        """Embed the examples (cached), adapt the model, and calibrate `unknown`."""
        paths = [p for c in support.classes for p in c.examples]
        yield Stage(f"reading {len(paths)} examples of {len(support.classes)} classes")
        found: dict[Path, np.ndarray] = {}
        errors: list[tuple[Path, str]] = []
        for batch in self._embeddings.embed(self.engine, paths, cancel):
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
            calibration.confusion,
        )

    @one_thread()  # see relabel
    def _adapt(self) -> Calibration:
        """Calibrate `unknown` on the examples that are not also corrections (a reviewer
        corrects the hardest images, which would drag the threshold), then fit the class
        means on every example, corrections included (`benchmarks/review_effort.py`). A
        class made only of corrections calibrates on them."""
        names, features, labels, counts = [], [], [], []
        for name, vectors in self._examples.items():
            kept = [v for p, v in vectors.items() if self._corrections.get(p) != name]
            labels.extend([len(names)] * len(kept or vectors))
            features.extend(kept or vectors.values())
            names.append(name)
            counts.append(len(kept or vectors))
        support_features = torch.from_numpy(np.stack(features)).to(self.device)
        support_labels = torch.tensor(labels, device=self.device)
        calibration = calibrate(self.model, support_features, support_labels, names)
        if len(features) < sum(map(len, self._examples.values())):
            every = [v for vectors in self._examples.values() for v in vectors.values()]
            support_features = torch.from_numpy(np.stack(every)).to(self.device)
            support_labels = torch.tensor(
                [c for c, vectors in enumerate(self._examples.values()) for _ in vectors],
                device=self.device,
            )
            self.model.fit_support_features(support_features, support_labels)
        self._guessed = torch.tensor([n < 2 for n in counts], device=self.device)
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
        if not isinstance(mode, str) and not math.isfinite(mode):
            raise ConfigError(f"the unknown threshold must be a finite number; got {mode!r}")
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

    @torch.no_grad()
    def example_points(self) -> np.ndarray:
        """The points (examples, D) that scoring sees of every readable example, corrections
        made examples included; float32 on the CPU, none before a support set."""
        if self._support_features is None:
            return np.zeros((0, 1), np.float32)
        points = self.model.points(self._support_features[0])
        return points.float().cpu().numpy().reshape(len(points), -1)

    # --- labeling ------------------------------------------------------------------------

    def label(
        self, paths: Sequence[Path], cancel: Callable[[], bool] | None = None
    ) -> Generator[LabelProgress, None, LabelSummary]:
        """Label `paths` in order, streaming predictions batch by batch."""
        if not self._class_names:
            raise ConfigError("set a support set with at least one class before labeling")
        started = time.perf_counter()
        self._labeled.reserve(paths)
        done = 0
        tally = np.zeros(3, np.int64)  # labeled, unknown, unreadable
        for batch in self._embeddings.embed(self.engine, paths, cancel):
            with one_thread():
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

    # Small steps on one thread: on a busy machine (load 25) a correction's adapt + relabel
    # took 1,069 ms (median) on torch's two threads, which wait for each other's cores, and
    # 65 ms on one (300 rows; 1,192 against 243 ms at 100,000 rows).
    @one_thread()
    def relabel(self) -> Labels:
        """Every file labeled so far, under the current support set and threshold.

        Transductive models first refine their classes with the files themselves, so this
        is what to show once a folder is done; the stream from `label` is inductive.
        """
        self._refine()
        return self._predict(range(len(self._labeled)))

    def _refine(self) -> None:
        """Soft k-means over (a sample of) the labeled files; see ProtoNet.refine."""
        refine = getattr(self.model, "refine", None)
        if refine is None or self._support_features is None:
            return
        self.model.fit_support_features(*self._support_features)  # undoes an earlier refine
        if not self.transductive:
            return
        if self._sample is None:
            if self._by_hash is None:
                # Ordered by the hash of their paths, never by when they were labeled: the
                # same folder gives the same sample, summed in the same order (prototypes
                # need a sample, not 100,000 points). Sorted once: 34 of a correction's
                # 60 ms of relabel at 100,000 rows went to sorting again.
                rows = np.flatnonzero(self._labeled.ok[: len(self._labeled)])
                self._by_hash = rows[np.argsort(self._labeled.order[rows], kind="stable")]
            pinned = np.zeros(len(self._labeled), bool)
            pinned[self._pins()[0]] = True  # known, not guessed: examples or clutter
            rows = self._by_hash[: REFINE_SAMPLE + int(pinned.sum())]
            rows = rows[~pinned[rows]][:REFINE_SAMPLE]
            points = self._labeled.exact()
            self._sample = points[torch.from_numpy(rows).to(points.device)]
        if len(self._sample):
            refine(self._sample, self.threshold)
            claimed = self._claimed(self._sample)
            if claimed is not None and bool(claimed.any()):  # clutter pulls no class mean
                refine(self._sample[~claimed], self.threshold)

    def _claimed(self, points: torch.Tensor) -> torch.Tensor | None:
        """Which of `points` (n, ...) `unknown` corrections claim as clutter, as the final
        re-labeling will (`corrections.claimed_rows`); None where no correction may."""
        pin_rows, pin_labels = self._pins()
        spread, anchor_scores = self.spread, getattr(self.model, "anchor_scores", None)
        if not (spread and spread.claim and (pin_labels < 0).any() and anchor_scores):
            return None
        threshold = self.threshold
        if threshold is None or self._support_features is None:
            return None
        stored = self._labeled.exact()
        pins = stored[torch.from_numpy(pin_rows).to(stored.device)]
        labels = torch.from_numpy(pin_labels).to(stored.device)
        examples = self.model.points(self._support_features[0])
        model: AnchorScorer = self.model  # type: ignore[assignment]
        return claimed_rows(model, points, (pins, labels), examples, self._guessed, threshold)

    def stored_points(self, rows: np.ndarray) -> np.ndarray:
        """The points (len(rows), D) that scoring sees of labeled rows (as `relabel` orders
        them): unit vectors for a cosine model. A copy in float32 on the CPU."""
        points = self._labeled.exact()[torch.from_numpy(np.asarray(rows, np.int64))]
        return points.float().cpu().numpy().reshape(len(rows), -1)

    def forget(self) -> None:
        """Drop the labeled files (not the embedding caches), e.g. for a new folder."""
        self._labeled.clear()
        self._sample = self._by_hash = None

    # --- internals -----------------------------------------------------------------------

    @torch.no_grad()
    def _store(self, batch: Embedded) -> list[int]:
        """Keep each file's points (what scoring needs of it under any support set)."""
        embedded = [
            i
            for i, (_, vector) in enumerate(zip(batch.paths, batch.vectors, strict=True))
            if vector is not None
        ]
        points = None
        if embedded:
            vectors = np.stack([batch.vectors[i] for i in embedded])
            points = self.model.points(torch.from_numpy(vectors).to(self.device))
        rows = self._labeled.put(batch.paths, batch.errors, embedded, points)
        self._sample = self._by_hash = None
        return rows

    def _pins(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, label indices) of the readable corrected files, among those labeled."""
        index = {name: i for i, name in enumerate(self._class_names)} | {UNKNOWN: UNKNOWN_INDEX}
        pins = [
            (row, index[label])
            for path, label in self._corrections.items()
            if label in index
            and (row := self._labeled.row_of.get(path)) is not None
            and self._labeled.ok[row]
        ]
        return (
            np.array([row for row, _ in pins], np.int64),
            np.array([label for _, label in pins], np.int64),
        )

    @torch.no_grad()
    def _predict(self, rows: Sequence[int]) -> Labels:
        """Score stored rows, with the corrections, and name them."""
        everything = isinstance(rows, range) and rows == range(len(self._labeled))
        scored = self._corrected(rows, everything) if len(rows) else None
        return self._labels(rows, everything, scored)

    def _corrected(
        self, rows: Sequence[int], everything: bool
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Scores (n, n_way) and novelty (n,) with every corrected image as a prototype of its
        own label, and per row a verdict on `unknown`: 1 unknown, -1 known, 0 as the
        threshold says (see `corrections.as_prototypes`).

        A final (transductive) re-labeling also moves the unknown boundary near each
        correction (`corrections.reach_boundary`), and the whole boundary of a class whose
        boundary was a guess (`corrections.widen_boundary`), and each `unknown` correction
        claims the rows it is the nearest labeled image of (`corrections.claim_clutter`).
        Images far from every correction keep their labels: a correction changes only what
        it is evidence for.
        """
        scores, far = self._labeled.scores(self.model, rows, everything)
        anchors = self._anchors(rows, everything)
        if anchors is None:
            return scores, far, np.zeros(len(scores), np.int8)
        pinned, pinned_far, verdict = as_prototypes(
            scores, far, anchors.near, anchors.distance, anchors.labels
        )
        threshold, spread = self.threshold, self.spread
        if everything and self.transductive and spread and threshold is not None:
            pin_scores, pin_far = self.model.score_points(anchors.points)
            usable = torch.from_numpy(self._labeled.ok[: len(far)]).to(far.device)
            evidence = Evidence(
                scores,
                far,
                anchors.distance,
                pin_scores,
                pin_far,
                anchors.labels,
                usable,
                threshold,
            )
            if spread.widen:
                verdict = widen_boundary(verdict, evidence, self._guessed)
            if spread.reach:
                verdict = reach_boundary(verdict, evidence, spread.reach)
            candidates = claim_candidates(evidence, spread.claim)
            if len(candidates) and self._support_features is not None:
                examples = self.model.points(self._support_features[0])
                anchor_scores = self.model.anchor_scores  # type: ignore[attr-defined]
                found = self._labeled.anchor_scores(
                    self.model, anchor_scores, examples, candidates.tolist(), False
                )[1]
                to_examples = torch.full_like(far, torch.inf)  # inf: no claim
                to_examples[torch.from_numpy(candidates).to(far.device)] = found.min(1).values
                verdict = claim_clutter(verdict, evidence, to_examples, self._guessed)
        return pinned, pinned_far, verdict

    def _anchors(self, rows: Sequence[int], everything: bool) -> _Anchors | None:
        """The corrections as anchors scored against `rows`; None when there are none, or the
        model cannot score against anchors."""
        anchor_scores = getattr(self.model, "anchor_scores", None)
        pin_rows, pin_labels = self._pins()
        if anchor_scores is None or not len(pin_rows):
            return None
        points = self._labeled.exact()
        anchors = points[torch.from_numpy(pin_rows).to(points.device)]
        near, distance = self._labeled.anchor_scores(
            self.model, anchor_scores, anchors, rows, everything
        )
        labels = torch.from_numpy(pin_labels).to(near.device)
        return _Anchors(pin_rows, labels, anchors, near, distance)

    def _labels(
        self,
        rows: Sequence[int],
        everything: bool,
        scored: tuple[torch.Tensor, torch.Tensor, np.ndarray] | None,
    ) -> Labels:
        """`Labels` of stored rows from their scores, novelty and verdict (`_corrected`; None
        for no rows): thresholds and names are applied column-wise, corrections pinned."""
        n = len(rows)
        labeled = self._labeled
        paths = list(labeled.paths) if everything else [labeled.paths[row] for row in rows]
        errors = list(labeled.errors) if everything else [labeled.errors[row] for row in rows]
        label = np.full(n, ERROR_INDEX, np.int64)
        nearest = np.zeros(n, np.int64)
        runner_up = np.full(n, ERROR_INDEX, np.int64)
        confidence, runner_up_confidence, novelty = (np.zeros(n, np.float32) for _ in range(3))
        if scored is not None:
            scores, far, verdict = scored
            k = min(2, len(self._class_names))
            top = scores.topk(k, dim=1)
            values = (top.values - scores.logsumexp(1, keepdim=True)).exp().cpu().numpy()
            indices = top.indices.cpu().numpy()
            novelty = far.float().cpu().numpy()
            ok = labeled.ok[:n] if everything else labeled.ok[np.asarray(rows)]
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
                position = np.full(len(labeled), -1)
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
