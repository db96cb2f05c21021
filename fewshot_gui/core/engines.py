"""Engines that run a model's frozen encoder on uint8 pixels, and the measured choice of one."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import os
import queue
import tempfile
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from .backbones import BackboneSpec
from .checkpoint import LoadedModel
from .transforms import to_tensor

ENGINE_CHOICES = (
    "auto",
    "torch",
    "torch-bf16",
    "torch-fp16",
    "onnxruntime",
    "openvino",
    "openvino-bf16",
)
FLOAT32 = "float32"
# Bump when the exported graph changes, so old exports are not reused. 2: each export has
# its SHA-256 beside it, checked before reuse.
EXPORT_FORMAT = 2

_log = logging.getLogger(__name__)


class Engine(Protocol):
    """Runs the encoder: uint8 pixels (B, H, W, C) -> float32 features (B, ...).

    `embed` runs one batch now, shared among all the engine's streams; `submit` gives a
    batch whole to the next free stream, so that `streams` batches run at once in the
    background and no stream waits for another (see `embed_stream`); an engine with no
    streams of its own (0) runs a submitted batch at once, in the caller. `numerics` is
    "float32" for engines whose features equal torch float32's up to rounding (their cached
    embeddings are interchangeable), else the engine's own name.
    """

    name: str
    numerics: str
    streams: int

    def embed(self, pixels: np.ndarray) -> np.ndarray: ...

    def submit(self, pixels: np.ndarray) -> Future[np.ndarray]: ...


Batch = TypeVar("Batch")


def embed_stream(
    engine: Engine, batches: Iterable[Batch], pixels_of: Callable[[Batch], np.ndarray | None]
) -> Iterator[tuple[Batch, np.ndarray | None]]:
    """Each batch with its features (None where `pixels_of` gives None), in order.

    One batch more than the engine has streams is kept submitted, so a stream that finishes
    finds the next batch waiting while the caller handles the one before (an engine without
    streams runs each batch just before it is handed back). Closing the iterator early lets
    the batches already submitted finish unread.
    """
    pending: deque[tuple[Batch, Future[np.ndarray] | None]] = deque()
    try:
        for batch in batches:
            pixels = pixels_of(batch)
            pending.append((batch, None if pixels is None else engine.submit(pixels)))
            if len(pending) > engine.streams:
                yield _result(*pending.popleft())
        while pending:
            yield _result(*pending.popleft())
    finally:
        for _, future in pending:
            if future is not None:
                future.cancel()


def _result(batch: Batch, future: Future[np.ndarray] | None) -> tuple[Batch, np.ndarray | None]:
    return batch, None if future is None else future.result()


def _ran(job: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray) -> Future[np.ndarray]:
    """`job(pixels)` run now, as a finished future."""
    future: Future[np.ndarray] = Future()
    try:
        future.set_result(job(pixels))
    except Exception as error:  # handed to whoever reads the future
        future.set_exception(error)
    return future


class TorchEngine:
    """The encoder in torch: float32, or autocast to bfloat16/float16 (channels-last on CPU).
    No streams: a batch runs in the caller, torch spreading each operation over the cores."""

    streams = 0

    def __init__(
        self, encoder: nn.Module, spec: BackboneSpec, device: torch.device, dtype: torch.dtype
    ) -> None:
        self.spec, self.device, self.dtype = spec, device, dtype
        # Channels-last suits oneDNN's bf16 kernels; a copy leaves the caller's model as it was.
        self.channels_last = dtype != torch.float32 and device.type == "cpu"
        if self.channels_last:
            encoder = copy.deepcopy(encoder).to(memory_format=torch.channels_last)
        self.encoder = encoder.to(device).eval()
        precision = str(dtype).removeprefix("torch.")
        layout = " channels-last" if self.channels_last else ""
        self.name = f"torch {precision}{layout}"
        self.numerics = FLOAT32 if dtype == torch.float32 else self.name

    @torch.no_grad()
    def embed(self, pixels: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(pixels)
        if self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        else:
            batch = batch.to(self.device)
        inputs = to_tensor(batch, self.spec)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        reduced = self.dtype != torch.float32
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=reduced):
            features = self.encoder(inputs)
        return features.float().cpu().numpy()

    def submit(self, pixels: np.ndarray) -> Future[np.ndarray]:
        return _ran(self.embed, pixels)


class _StreamPool:
    """One thread per stream, each running whole batches through `_run` single-threaded.

    `embed` splits a batch into one part per stream and joins them; `submit` gives a batch
    whole to the next free thread. An error in `_run` reaches the batch's future.
    """

    streams: int
    _pool: ThreadPoolExecutor

    def _start_streams(self, streams: int, name: str) -> None:
        self.streams = max(1, streams)
        self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix=name)

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        parts = np.array_split(pixels, min(self.streams, len(pixels)))
        return np.concatenate(list(self._pool.map(self._run, parts)))

    def submit(self, pixels: np.ndarray) -> Future[np.ndarray]:
        return self._pool.submit(self._run, pixels)

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OnnxRuntimeEngine(_StreamPool):
    """The exported encoder in ONNX Runtime on the CPU, float32, one stream per thread: one
    join per batch (or none, streamed) instead of one per layer, which also shares the cores
    better with the threads decoding the next batch."""

    numerics = FLOAT32

    def __init__(self, model_file: Path, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._start_streams(threads, "onnxruntime")
        self.name = f"onnxruntime {FLOAT32}"

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: np.ascontiguousarray(pixels)})[0]


_OPENVINO_FIRST_USE = threading.Lock()


class OpenVinoEngine(_StreamPool):
    """The exported encoder in OpenVINO on the CPU, float32 or bfloat16; like
    `OnnxRuntimeEngine`, one stream per thread, each with an inference request of its own."""

    def __init__(self, model_file: Path, threads: int, bfloat16: bool) -> None:
        import openvino

        self._start_streams(threads, "openvino")
        compiled = openvino.Core().compile_model(
            str(model_file),
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": "bf16" if bfloat16 else "f32",
                "INFERENCE_NUM_THREADS": self.streams,
                "NUM_STREAMS": self.streams,
            },
        )
        self._idle: queue.SimpleQueue[openvino.InferRequest] = queue.SimpleQueue()
        shape = [1 if d.is_dynamic else d.get_length() for d in compiled.input(0).partial_shape]
        warm_up = np.zeros(shape, np.uint8)
        for _ in range(self.streams):  # as many requests as threads: one is always free
            request = compiled.create_infer_request()
            with _OPENVINO_FIRST_USE:
                # The binding's first tensor read sets up numpy under a C++ static guard:
                # two stream threads doing it at once deadlock, so it happens here, once.
                request.infer({0: warm_up})
                request.get_output_tensor(0).data.copy()
            self._idle.put(request)
        self.name = f"openvino {'bfloat16' if bfloat16 else FLOAT32}"
        self.numerics = self.name if bfloat16 else FLOAT32

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        request = self._idle.get()
        try:
            request.infer({0: np.ascontiguousarray(pixels)})  # releases the GIL while it runs
            return request.get_output_tensor(0).data.copy()
        finally:
            self._idle.put(request)


class PixelEncoder(nn.Module):
    """uint8 pixels (N, H, W, C) -> features (N, ...): the spec's normalization, then the
    encoder, so an exported graph needs nothing but the decoded image."""

    def __init__(self, encoder: nn.Module, spec: BackboneSpec) -> None:
        super().__init__()
        self.encoder = encoder
        self.invert = spec.invert
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # The same operations, in the same order, as transforms.to_tensor.
        batch = pixels.permute(0, 3, 1, 2).float() / 255.0
        if self.invert:
            batch = 1.0 - batch
        return self.encoder((batch - self.mean) / self.std)


def encoder_digest(loaded: LoadedModel) -> str:
    """A hash of everything the encoder computes with: its tensors and the input spec."""
    digest = hashlib.sha256()
    spec = loaded.spec
    fields = [spec.name, spec.input_size, spec.channels, spec.mean, spec.std, spec.invert]
    digest.update(json.dumps([EXPORT_FORMAT, fields, type(loaded.model.encoder).__name__]).encode())
    for name, tensor in loaded.model.encoder.state_dict().items():
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:20]


def export_path(loaded: LoadedModel, directory: Path) -> Path:
    """Where `export_onnx` keeps the model's export: named by `encoder_digest`, so a
    retrained model gets a new one."""
    return directory / f"encoder-{encoder_digest(loaded)}.onnx"


def _checksum_path(export: Path) -> Path:
    return export.with_name(f"{export.name}.sha256")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_export(loaded: LoadedModel, directory: Path) -> Path | None:
    """The model's export in `directory` if one is there whole: its bytes hash to the
    SHA-256 written beside it. A damaged one (cut short, overwritten, or its checksum lost)
    is deleted with a one-line notice on the `fewshot_gui` logger, and None returned, so
    that it is exported again."""
    path = export_path(loaded, directory)
    return path if _whole(path) else None


def _whole(path: Path) -> bool:
    if not os.path.lexists(path):
        return False
    checksum = _checksum_path(path)
    try:
        # Regular files only: reading a FIFO would block.
        if path.is_file() and checksum.is_file():
            recorded = checksum.read_text(encoding="ascii").strip()
            if _sha256(path) == recorded:
                return True
    except (OSError, ValueError):
        pass  # unreadable or not ASCII: damaged all the same
    _log.warning("engine export %s was damaged; deleted, exporting it again", path)
    for damaged in (path, checksum):
        with contextlib.suppress(FileNotFoundError):
            damaged.unlink()
    return False


def export_onnx(loaded: LoadedModel, directory: Path) -> Path:
    """The encoder as ONNX taking uint8 (N, H, W, C), any N; exported once, then reused
    while its checksum holds (`cached_export`)."""
    path = export_path(loaded, directory)
    if _whole(path):
        return path
    directory.mkdir(parents=True, exist_ok=True)
    spec = loaded.spec
    module = PixelEncoder(copy.deepcopy(loaded.model.encoder).cpu().float(), spec).eval()
    # A batch of two, since an exporter takes a size-1 dimension for a constant.
    example = torch.zeros((2, spec.input_size, spec.input_size, spec.channels), dtype=torch.uint8)
    chatter = io.StringIO()
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(chatter),
        contextlib.redirect_stderr(chatter),
    ):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            dynamic_shapes=({0: torch.export.Dim.DYNAMIC},),
            input_names=["pixels"],
            output_names=["features"],
            verbose=False,
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    program.save(str(tmp))
    # The checksum first: an export killed between the two renames has none, and is redone.
    checksum = _checksum_path(path)
    checksum_tmp = checksum.with_name(f".{checksum.name}.{os.getpid()}.tmp")
    checksum_tmp.write_text(_sha256(tmp) + "\n", encoding="ascii")
    os.replace(checksum_tmp, checksum)
    os.replace(tmp, path)
    return path


_TEMP_EXPORTS: tempfile.TemporaryDirectory[str] | None = None


def temporary_export_dir() -> Path:
    """A folder for exports when there is no cache folder, removed when the process ends."""
    global _TEMP_EXPORTS
    if _TEMP_EXPORTS is None:
        _TEMP_EXPORTS = tempfile.TemporaryDirectory(prefix="fewshot-engines-")
    return Path(_TEMP_EXPORTS.name)
