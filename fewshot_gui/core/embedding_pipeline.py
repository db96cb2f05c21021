"""Files -> embeddings, batch by batch: threads decode ahead of the engine, and a memory and a
disk cache in front of both, so that each file is read and encoded once."""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backbones import BackboneSpec
from .checkpoint import WEIGHTS_FILE, LoadedModel
from .embedding_cache import EmbeddingCache, FileKey
from .engines import Engine, embed_stream
from .errors import ImageLoadError
from .images import image_identity
from .paths import safe_file_stem
from .transforms import pixels_for

DECODE_AHEAD = 4  # batches decoding while the engine runs the ones before them


def cache_name(loaded: LoadedModel, numerics: str) -> str:
    """Identifies the embeddings this model makes with engines of `numerics`, to key the disk
    cache: engines with float32 numerics share one cache, their embeddings agree to rounding.
    A file name stem: the card's name is sanitised, so it cannot lead out of the cache."""
    digest = hashlib.sha256()
    digest.update((loaded.path / WEIGHTS_FILE).read_bytes())
    digest.update(json.dumps([loaded.card.get("model"), numerics]).encode())
    return f"{safe_file_stem(loaded.name)}-{digest.hexdigest()[:16]}"


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
class Embedded:
    """One batch out of the embedding pipeline: a vector or an error message per path."""

    paths: list[Path]
    vectors: list[np.ndarray | None]
    errors: list[str]


class EmbeddingPipeline:
    """Embeds files for one model: `batch_size` files a batch, decoded on `decode_threads`
    threads into the pixels `spec` asks for, encoded by the engine each run is given.

    Owns the caches: `memory` (file identity -> vector) and, if given, `disk_cache`, which
    must hold the embeddings of engines with that engine's numerics (`cache_name`).
    """

    def __init__(
        self,
        spec: BackboneSpec,
        *,
        batch_size: int,
        decode_threads: int,
        disk_cache: EmbeddingCache | None,
    ) -> None:
        self.spec = spec
        self.batch_size = batch_size
        self.decode_threads = decode_threads
        self.disk_cache = disk_cache
        self.memory: dict[FileKey, np.ndarray] = {}
        self.images_embedded = 0  # files run through the encoder, for tests and benchmarks

    def embed(
        self, engine: Engine, paths: Sequence[Path], cancel: Callable[[], bool] | None
    ) -> Iterator[Embedded]:
        """Embed `paths` batch by batch, in order: worker threads decode batches ahead while
        `engine` runs the ones before (`embed_stream`).

        Each file is looked up in memory, then on disk, by its identity (path, size, mtime);
        only misses are read and run through the encoder.
        """
        keys, known = self._look_up(paths)

        with ThreadPoolExecutor(self.decode_threads, thread_name_prefix="decode") as pool:
            decoded = self._decoded(paths, keys, known, pool, cancel)
            encoded = embed_stream(engine, decoded, lambda batch: batch.pixels)
            try:
                for batch, features in encoded:
                    if cancel is not None and cancel():
                        return
                    yield self._embedded(batch, features)
            finally:
                encoded.close()
                decoded.close()  # cancels the decoding not yet started

    def _look_up(
        self, paths: Sequence[Path]
    ) -> tuple[list[FileKey | str], dict[FileKey, np.ndarray]]:
        """Each path's identity (or why it has none), and the vectors memory and disk know."""
        keys: list[FileKey | str] = []
        for path in paths:
            try:
                keys.append(image_identity(path))
            except ImageLoadError as error:
                keys.append(str(error))
        known = {k: self.memory[k] for k in keys if not isinstance(k, str) and k in self.memory}
        if self.disk_cache is not None:
            missing = [k for k in keys if not isinstance(k, str) and k not in known]
            for key, vector in self.disk_cache.get_many(missing).items():
                known[key] = self.memory[key] = vector
        return keys, known

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
                yield _collect(list(paths[start:stop]), keys[start:stop], futures, known)
        finally:
            for futures in ahead:
                for future in futures:
                    if future is not None:
                        future.cancel()

    def _embedded(self, batch: _Decoded, features: np.ndarray | None) -> Embedded:
        """The batch with the engine's features in place, remembered in both caches."""
        if features is not None:
            self.images_embedded += len(features)
            fresh = []
            for i, vector in zip(batch.fresh, features, strict=True):
                key = batch.keys[i]
                assert not isinstance(key, str)
                batch.vectors[i] = self.memory[key] = vector
                fresh.append((key, vector))
            if self.disk_cache is not None:
                self.disk_cache.put_many(fresh)
        return Embedded(batch.paths, batch.vectors, batch.errors)


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
