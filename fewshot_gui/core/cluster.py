"""Embedding on a Ray cluster: Ray Data actors, one engine each, read and encode the files the
caches miss, and stream the vectors back to the driver's caches and scoring.

Ray is imported only here, and only when a cluster is asked for: the base install has none.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .checkpoint import CARD_FILE, WEIGHTS_FILE, LoadedModel
from .embedding_cache import FileKey
from .embedding_pipeline import Embedded, EmbeddingPipeline
from .engines import Engine
from .errors import ConfigError, FewShotError, ImageLoadError

INSTALL_HINT = "--cluster needs Ray: pip install 'fewshot-gui[cluster]'"
BATCHES_PER_BLOCK = 1  # a block is what Ray retries when a worker dies: one batch is lost
CPUS_PER_GPU_ACTOR = 2  # decoding threads beside each GPU engine

_log = logging.getLogger(__name__)


class ClusterError(FewShotError):
    """The cluster could not be reached, or its workers could not run the job."""


def parse_cluster(value: str) -> str | None:
    """`--cluster ray` (a local instance, started and stopped) or `ray=ADDRESS`: the address,
    or None for a local one."""
    engine, sep, address = value.partition("=")
    if engine != "ray" or (sep and not address):
        raise ConfigError(
            f"--cluster takes ray or ray=ADDRESS (e.g. ray=10.0.0.1:6379), not {value!r}"
        )
    return address or None


def import_ray() -> ModuleType:
    """The `ray` module, or a one-line error saying how to install it."""
    try:
        import ray
        import ray.data  # a bare `ray` lacks Data's dependencies; the extra has both
    except ImportError as error:
        raise ConfigError(INSTALL_HINT) from error
    return ray


@contextlib.contextmanager
def ray_session(address: str | None, say: Callable[[str], None]) -> Iterator[RaySession]:
    """Connected to the cluster at `address` (or a local instance started for this run and
    stopped after it); a Ray already initialised in this process is used as it is."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if address is None:
            options["include_dashboard"] = False
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ClusterError(f"cannot reach the Ray cluster at {address}: {error}") from error
    _quiet_ray_data(ray)
    resources = ray.cluster_resources()
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    say(
        f"ray cluster {address or 'started locally'}: {len(nodes)} nodes, "
        f"{resources.get('CPU', 0):.0f} CPUs, {resources.get('GPU', 0):.0f} GPUs"
    )
    try:
        yield RaySession(ray, resources, say)
    finally:
        if started:
            ray.shutdown()


def _quiet_ray_data(ray: ModuleType) -> None:
    """Batches come back in the order they were sent (the manifest's order), without Ray
    Data's progress bars, which would fight ours on the terminal."""
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


@dataclass
class RaySession:
    """A connected cluster: makes the pipelines that embed on it."""

    ray: ModuleType
    resources: dict[str, float]
    say: Callable[[str], None]
    pipelines: list[RayPipeline] = field(default_factory=list)

    def pipeline(
        self,
        base: EmbeddingPipeline,
        loaded: LoadedModel,
        engine: Engine,
        requested: str,
        *,
        keep_exports: bool = True,
        actor: type[EmbedActor] | None = None,
    ) -> RayPipeline:
        """A pipeline with `base`'s caches and batches that embeds misses on the cluster, with
        `requested` engines of `engine`'s numerics (`actor` lets tests make workers fail)."""
        gpus = int(self.resources.get("GPU", 0))
        cpus = int(self.resources.get("CPU", 1))
        workers = gpus or max(1, cpus)
        decode = CPUS_PER_GPU_ACTOR if gpus else 1
        options = {"num_gpus": 1, "num_cpus": decode} if gpus else {"num_cpus": 1}
        pipeline = RayPipeline(
            base,
            self.ray,
            actor=actor or EmbedActor,
            actor_kwargs={
                "model_files": model_files(loaded),
                "engine": requested,
                "numerics": engine.numerics,
                "decode_threads": decode,
                "keep_exports": keep_exports,
            },
            workers=workers,
            resources=options,
            say=self.say,
        )
        self.pipelines.append(pipeline)
        return pipeline

    def summary(self) -> list[str]:
        """One line per node that worked for this session's pipelines."""
        return [line for pipeline in self.pipelines for line in pipeline.summary()]


def model_files(loaded: LoadedModel) -> dict[str, bytes]:
    """The model's card and weights, sent to each worker: no node needs the driver's paths."""
    return {name: (loaded.path / name).read_bytes() for name in (CARD_FILE, WEIGHTS_FILE)}


def node_name() -> str:
    """Who did the work, for the logs: host name and IP."""
    host = socket.gethostname()
    try:
        address = socket.gethostbyname(host)
    except OSError:
        address = "?"
    return f"{host} ({address}, pid {os.getpid()})"


class EmbedActor:
    """One Ray worker: the model and one engine (on its GPU if Ray gave it one), reading its
    files itself. Called with rows of {batch, paths}; gives one row per file."""

    def __init__(
        self,
        model_files: dict[str, bytes],
        engine: str,
        numerics: str,
        decode_threads: int,
        keep_exports: bool = True,
    ) -> None:
        from .checkpoint import load_model
        from .devices import pick_device
        from .engine_choice import choose_engine
        from .paths import cache_dir

        self._folder = tempfile.TemporaryDirectory(prefix="fewshot-model-")
        for name, data in model_files.items():
            Path(self._folder.name, name).write_bytes(data)
        self.loaded = load_model(Path(self._folder.name))
        device, device_name = pick_device("auto")
        # The node's own cache keeps the ONNX export, made once per node, not per actor.
        exports = cache_dir() / "engines" if keep_exports else None
        self.engine = choose_engine(self.loaded, device, engine, cache_dir=exports).engine
        self.node = node_name()
        if self.engine.numerics != numerics:
            raise ClusterError(
                f"node {self.node}: engine {self.engine.name} computes other embeddings than "
                f"the driver's ({numerics}); pass --engine explicitly"
            )
        self._decoders = ThreadPoolExecutor(decode_threads, thread_name_prefix="decode")
        _log.warning("node %s: %s on %s ready", self.node, self.engine.name, device_name)

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batches, slots, vectors, errors = [], [], [], []
        for batch, paths in zip(rows["batch"], rows["paths"], strict=True):
            found, why = self.embed([Path(p) for p in paths])
            batches.extend([batch] * len(paths))
            slots.extend(range(len(paths)))
            vectors.append(found)
            errors.extend(why)
        return {
            "batch": np.asarray(batches, np.int64),
            "slot": np.asarray(slots, np.int64),
            "vector": np.concatenate(vectors),
            "error": np.asarray(errors, dtype=object),
            "node": np.asarray([self.node] * len(slots), dtype=object),
        }

    def embed(self, paths: list[Path]) -> tuple[np.ndarray, list[str]]:
        """Vectors (len(paths), ...) of one batch, zeros where a file could not be read, and
        per file its error ('' when read). Submitted whole, as the local pipeline does, so
        that the engine sees the same batches and gives the same numbers."""
        from .transforms import pixels_for

        def read(path: Path) -> np.ndarray | str:
            try:
                return pixels_for(path, self.loaded.spec)
            except ImageLoadError as error:
                return str(error)

        decoded = list(self._decoders.map(read, paths))
        readable = [i for i, item in enumerate(decoded) if not isinstance(item, str)]
        errors = [item if isinstance(item, str) else "" for item in decoded]
        features = None
        if readable:
            features = self.engine.submit(np.stack([decoded[i] for i in readable])).result()
        shape = features.shape[1:] if features is not None else self._feature_shape()
        vectors = np.zeros((len(paths), *shape), np.float32)
        if features is not None:
            vectors[readable] = features
        return vectors, errors

    def _feature_shape(self) -> tuple[int, ...]:
        spec = self.loaded.spec
        pixels = np.zeros((1, spec.input_size, spec.input_size, spec.channels), np.uint8)
        return tuple(self.engine.embed(pixels).shape[1:])


@dataclass
class NodeTally:
    """What one worker did: files embedded, files it could not read, its first error."""

    embedded: int = 0
    unreadable: int = 0
    first_error: str = ""


@dataclass
class _Pending:
    """A batch on its way: its files, their identities, known vectors and errors."""

    paths: list[Path]
    keys: list[FileKey | str]
    vectors: list[np.ndarray | None]
    errors: list[str]
    fresh: list[int]
    arrived: int = 0
    slots: set[int] = field(default_factory=set)


class RayPipeline(EmbeddingPipeline):
    """`EmbeddingPipeline` whose misses are embedded by a Ray Data actor pool: same caches,
    same batches, same order; the driver only stats files and scores."""

    def __init__(
        self,
        base: EmbeddingPipeline,
        ray: ModuleType,
        *,
        actor: type[EmbedActor],
        actor_kwargs: dict[str, Any],
        workers: int,
        resources: dict[str, float],
        say: Callable[[str], None],
    ) -> None:
        super().__init__(
            base.spec,
            batch_size=base.batch_size,
            decode_threads=base.decode_threads,
            disk_cache=base.disk_cache,
        )
        self.memory = base.memory  # one memory cache: the support set's vectors stay known
        self.images_embedded = base.images_embedded
        self._ray = ray
        self._actor, self._actor_kwargs = actor, actor_kwargs
        self._workers, self._resources, self._say = workers, resources, say
        self.nodes: dict[str, NodeTally] = {}

    def embed(
        self, engine: Engine, paths: Sequence[Path], cancel: Callable[[], bool] | None
    ) -> Iterator[Embedded]:
        """Embed `paths` batch by batch, in order; `engine` is the driver's and runs nothing:
        each worker has its own, of the same numerics."""
        keys, known = self._look_up(paths)
        pending: list[_Pending | None] = []
        for start in range(0, len(paths), self.batch_size):
            chunk = keys[start : start + self.batch_size]
            pending.append(
                _Pending(
                    list(paths[start : start + self.batch_size]),
                    chunk,
                    [known.get(k) if not isinstance(k, str) else None for k in chunk],
                    [k if isinstance(k, str) else "" for k in chunk],
                    [i for i, k in enumerate(chunk) if not isinstance(k, str) and k not in known],
                )
            )
        # Absolute: a worker's working folder is not the driver's.
        requests = [
            {"batch": n, "paths": [os.path.abspath(batch.paths[i]) for i in batch.fresh]}
            for n, batch in enumerate(pending)
            if batch.fresh
        ]
        ready = 0  # batches before this one have been handed on
        for out in self._stream(requests):
            if cancel is not None and cancel():
                return
            self._take(out, pending)
            while ready < len(pending) and pending[ready].arrived == len(pending[ready].fresh):
                batch = pending[ready]
                yield Embedded(batch.paths, batch.vectors, batch.errors)
                pending[ready] = None  # handed on: the labeler keeps what it needs
                ready += 1
        while ready < len(pending):  # nothing left to embed: all known or unreadable
            if cancel is not None and cancel():
                return
            batch = pending[ready]
            yield Embedded(batch.paths, batch.vectors, batch.errors)
            ready += 1

    def _stream(self, requests: list[dict[str, Any]]) -> Iterator[dict[str, np.ndarray]]:
        """The workers' rows as they come, in the order of `requests`; Ray retries the
        batches of a worker that dies (its actor is restarted)."""
        if not requests:
            return
        ray = self._ray
        blocks = max(1, len(requests) // BATCHES_PER_BLOCK)
        dataset = ray.data.from_items(requests, override_num_blocks=blocks).map_batches(
            self._actor,
            fn_constructor_kwargs=self._actor_kwargs,
            batch_size=1,
            batch_format="numpy",
            # Every worker at once: a pool that grows on demand stayed at one actor here.
            compute=ray.data.ActorPoolStrategy(size=min(self._workers, len(requests))),
            **self._resources,
        )
        try:
            yield from dataset.iter_batches(batch_size=None, batch_format="numpy")
        except ray.exceptions.RayError as error:
            raise ClusterError(f"the Ray workers failed: {_first_line(error)}") from error

    def _take(self, out: dict[str, np.ndarray], pending: list[_Pending | None]) -> None:
        """Put the workers' vectors in their batches and in both caches; tally per node."""
        fresh: list[tuple[FileKey, np.ndarray]] = []
        for batch_no, slot, vector, error, node in zip(
            out["batch"], out["slot"], out["vector"], out["error"], out["node"], strict=True
        ):
            batch = pending[int(batch_no)]
            if batch is None or int(slot) in batch.slots:  # a retried batch, delivered again
                continue
            batch.slots.add(int(slot))
            i = batch.fresh[int(slot)]
            batch.arrived += 1
            tally = self.nodes.get(node)
            if tally is None:
                tally = self.nodes[node] = NodeTally()
                self._say(f"node {node}: first batch back")
            if error:  # worded with the path as the driver was given it, as a local run words it
                given = batch.paths[i]
                batch.errors[i] = str(error).replace(os.path.abspath(given), str(given))
                tally.unreadable += 1
                tally.first_error = tally.first_error or str(error)
                continue
            tally.embedded += 1
            vector = np.ascontiguousarray(vector, np.float32)
            batch.vectors[i] = vector
            key = batch.keys[i]
            assert not isinstance(key, str)
            self.memory[key] = vector
            fresh.append((key, vector))
        self.images_embedded += len(fresh)
        if self.disk_cache is not None and fresh:
            self.disk_cache.put_many(fresh)

    def summary(self) -> list[str]:
        """One line per node: what it embedded and what it could not read."""
        lines = []
        others_read = {node for node, tally in self.nodes.items() if tally.embedded}
        for node, tally in sorted(self.nodes.items()):
            line = f"node {node}: {tally.embedded} embedded, {tally.unreadable} unreadable"
            if tally.unreadable and not tally.embedded and others_read:
                line += (
                    f"; it read none of its files, others did (first: {tally.first_error}); "
                    "every node must see the images at the same path (a shared mount)"
                )
            lines.append(line)
        return lines


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__
