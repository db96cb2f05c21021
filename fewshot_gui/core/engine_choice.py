"""Which engine embeds for a model on this machine: a safe one at once, the fastest once a
child process has timed them under a hard cap, so that no engine can freeze or slow the app."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import multiprocessing
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import write_json_atomic
from .checkpoint import LoadedModel
from .devices import describe_machine, pick_device
from .engines import (
    ENGINE_CHOICES,
    Engine,
    OnnxRuntimeEngine,
    OpenVinoEngine,
    TorchEngine,
    cached_export,
    embed_stream,
    encoder_digest,
    export_onnx,
    export_path,
    temporary_export_dir,
)
from .errors import ConfigError
from .evaluation import Stage

# Auto picks only among engines whose features equal torch float32's up to rounding, so the
# same inputs give the same labels whichever engine a machine measured fastest.
EXACT_ON_CPU = ("torch", "onnxruntime", "openvino")
PROBE_CAP_S = 180.0  # the whole measurement, export included; the child is killed after it
PROBE_NICE = 10  # the measuring child yields the cores to the app and to labeling
EXPORT_SHARE = 0.6  # of the progress shown, when the ONNX export has yet to be made


@dataclass(frozen=True)
class EngineChoice:
    engine: Engine
    reason: str  # one line for people: which engine and why
    measure_later: bool = False  # auto had no measurement yet: run an EngineProbe


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def engine_builders(
    loaded: LoadedModel, device: torch.device, export_dir: Path
) -> dict[str, Callable[[], Engine]]:
    """Every engine this device can run the model on, by key, cheapest to set up first."""
    encoder, spec = loaded.model.encoder, loaded.spec
    threads = torch.get_num_threads()

    def torch_engine(dtype: torch.dtype) -> Callable[[], Engine]:
        return lambda: TorchEngine(encoder, spec, device, dtype)

    found: dict[str, Callable[[], Engine]] = {
        "torch": torch_engine(torch.float32),
        "torch-bf16": torch_engine(torch.bfloat16),
    }
    if device.type == "cuda":
        found["torch-fp16"] = torch_engine(torch.float16)
    if device.type == "cpu" and _has("onnxruntime"):
        found["onnxruntime"] = lambda: OnnxRuntimeEngine(export_onnx(loaded, export_dir), threads)
    if device.type == "cpu" and _has("openvino"):
        for key, bfloat16 in (("openvino", False), ("openvino-bf16", True)):
            found[key] = lambda b=bfloat16: OpenVinoEngine(
                export_onnx(loaded, export_dir), threads, b
            )
    return found


def measure(engine: Engine, pixels: np.ndarray, seconds: float = 0.5) -> float:
    """Images per second of `engine` on `pixels` (B, H, W, C) sent batch after batch for
    `seconds`, as labeling feeds it (`embed_stream`), after one warm-up batch."""
    engine.embed(pixels)
    started = time.perf_counter()

    def batches() -> Generator[np.ndarray, None, None]:
        sent = 0
        while sent < max(2, 2 * engine.streams) or time.perf_counter() - started < seconds:
            sent += 1
            yield pixels

    runs = sum(1 for _ in embed_stream(engine, batches(), lambda batch: batch))
    return runs * len(pixels) / (time.perf_counter() - started)


DECISIONS_FILE = "choices.json"  # in the engines' cache folder, beside the ONNX exports
_DECISIONS: dict[str, dict[str, Any]] = {}  # this process's choices when nothing is on disk


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("onnxruntime", "openvino"):
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{package} {version(package)}")
    return ", ".join(found)


def _decision_key(loaded: LoadedModel, device: torch.device, batch_size: int, keys: list) -> str:
    setting = f"{device}, {torch.get_num_threads()} threads, batch {batch_size}"
    among = ", ".join(keys)
    return " | ".join([encoder_digest(loaded), setting, among, describe_machine(), _versions()])


def read_decisions(cache_dir: Path) -> dict[str, dict[str, Any]]:
    """The engine decisions recorded in `cache_dir` ({} where none, or the file is damaged)."""
    return _read_decisions(cache_dir / DECISIONS_FILE)


def _read_decisions(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return _DECISIONS
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _record(path: Path | None, key: str, decision: dict[str, Any]) -> None:
    decisions = _read_decisions(path)
    decisions[key] = decision
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, decisions)


def _describe(decision: dict[str, Any]) -> str:
    rates = ", ".join(f"{name} {rate:.0f}" for name, rate in decision.get("rates", {}).items())
    missed = ", ".join(f"{name}: {why}" for name, why in decision.get("failed", {}).items())
    return (
        f"the fastest measured {decision.get('date', '')} ({rates or 'none'} images/s"
        f"{'; not measured: ' + missed if missed else ''})"
    )


def choose_engine(
    loaded: LoadedModel,
    device: torch.device | str = "auto",
    requested: str = "auto",
    *,
    cache_dir: Path | None = None,
    batch_size: int = 32,
) -> EngineChoice:
    """The engine to embed with on `device`, and why; returns at once, timing nothing.

    A named `requested` engine is built as asked (a `ConfigError` if this device cannot run
    it). `auto` on a GPU is torch float32. On the CPU it builds the engine an earlier
    `EngineProbe` measured fastest (kept in `cache_dir/choices.json`, beside the ONNX
    exports; without a `cache_dir` for as long as the process lives); before any measurement
    it starts on a safe one (ONNX Runtime when the model is already exported, else torch)
    and says `measure_later`.
    """
    if requested not in ENGINE_CHOICES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINE_CHOICES)}, got {requested!r}")
    if isinstance(device, str):
        device = pick_device(device)[0]
    export_dir = cache_dir if cache_dir is not None else temporary_export_dir()
    builders = engine_builders(loaded, device, export_dir)
    if requested != "auto":
        if requested not in builders:
            raise ConfigError(
                f"engine {requested} cannot run on {device.type} here; "
                f"choose one of: auto, {', '.join(builders)}"
            )
        engine = builders[requested]()
        return EngineChoice(engine, f"{engine.name}, as requested")
    if device.type != "cpu":
        engine = builders["torch"]()
        return EngineChoice(engine, f"{engine.name}, the float32 engine on {device.type}")

    keys = [key for key in EXACT_ON_CPU if key in builders]
    decisions_file = None if cache_dir is None else cache_dir / DECISIONS_FILE
    decision = _read_decisions(decisions_file).get(_decision_key(loaded, device, batch_size, keys))
    if decision is not None and decision.get("engine") in builders:
        with contextlib.suppress(Exception):  # a broken install: fall back to measuring anew
            engine = builders[decision["engine"]]()
            return EngineChoice(engine, f"{engine.name}, {_describe(decision)}")
    # A damaged export is deleted here, so that it is redone by the child, not in this process.
    exported = "onnxruntime" in builders and cached_export(loaded, export_dir) is not None
    engine = builders["onnxruntime" if exported else "torch"]()
    return EngineChoice(
        engine, f"{engine.name} until the faster engines are measured", measure_later=True
    )


# --- measuring in a child process ------------------------------------------------------

_LIVE_PROBES: weakref.WeakSet[EngineProbe] = weakref.WeakSet()


def kill_all_probes() -> None:
    """Stop every measuring child at once (safe from any thread): for quitting."""
    for probe in list(_LIVE_PROBES):
        probe.kill()


class EngineProbe:
    """Times the CPU engines for `loaded` in a child process killed at `cap_s`.

    The child exports the model once (into `cache_dir`, for later runs too) and times each
    exact engine with `measure`; a candidate that hangs or crashes only loses its own figure
    (a deadlocking binding cannot reach this process). Call `step` until it returns None,
    then `choice()` builds the fastest engine and records the decision for `choose_engine`.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        cache_dir: Path | None = None,
        batch_size: int = 32,
        cap_s: float = PROBE_CAP_S,
    ) -> None:
        self.loaded, self.batch_size, self.cap_s = loaded, batch_size, cap_s
        self.export_dir = cache_dir if cache_dir is not None else temporary_export_dir()
        self.decisions_file = None if cache_dir is None else cache_dir / DECISIONS_FILE
        device = torch.device("cpu")
        self._builders = engine_builders(loaded, device, self.export_dir)
        self.keys = [key for key in EXACT_ON_CPU if key in self._builders]
        self._decision_key = _decision_key(loaded, device, batch_size, self.keys)
        self.rates: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        self.progress = 0.0
        needs_export = any(k != "torch" for k in self.keys)
        self._export_share = (
            EXPORT_SHARE
            if needs_export and not export_path(loaded, self.export_dir).is_file()
            else 0.0
        )
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._pipe, child_end = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_probe_child,
            args=(
                child_end,
                cap_s,
                str(loaded.path),
                self.keys,
                batch_size,
                str(self.export_dir),
                torch.get_num_threads(),
            ),
            name="fewshot-engine-probe",
            daemon=True,
        )
        self._started = time.monotonic()
        self._process.start()
        child_end.close()
        self._finished = False
        _LIVE_PROBES.add(self)

    def step(self, timeout: float = 0.0) -> float | None:
        """Read what the child said (waiting up to `timeout` s); the progress 0..1, or None
        once the child has finished, died or been killed at the cap."""
        if self._finished:
            return None
        deadline = time.monotonic() + timeout
        while True:
            try:
                ready = self._pipe.poll(max(0.0, deadline - time.monotonic()))
                message = self._pipe.recv() if ready else None
            except (EOFError, OSError):  # the child ended, or was killed
                self._finish("ended before measuring")
                return None
            if message is not None:
                self._take(message)
                if self._finished:
                    return self.progress  # 1.0 once; the next call says finished
            if time.monotonic() - self._started > self.cap_s:
                self._finish(f"not done within the {self.cap_s:.0f} s cap")
                return None
            if message is None or time.monotonic() >= deadline:
                return self.progress

    def _take(self, message: tuple[str, Any, Any]) -> None:
        kind, key, value = message
        if kind == "exported":
            self.progress = self._export_share
        elif kind == "rate":
            self.rates[key] = float(value)
        elif kind == "failed":
            self.failed[key] = str(value)
        done = sum(key in self.rates or key in self.failed for key in self.keys)
        self.progress = self._export_share + (1 - self._export_share) * done / len(self.keys)
        if done == len(self.keys):
            self._finish("")

    def _finish(self, why_missing: str) -> None:
        self._finished = True
        self.kill()
        for key in self.keys:
            if key not in self.rates and key not in self.failed and why_missing:
                self.failed[key] = why_missing

    @property
    def finished(self) -> bool:
        return self._finished

    def kill(self) -> None:
        """Stop the child now, and remove what it had half written (exports are renamed
        into place only when whole, so nothing half written is ever read)."""
        process = getattr(self, "_process", None)
        if process is not None and process.is_alive():
            with contextlib.suppress(OSError, ValueError):
                process.kill()
                process.join(1.0)
            for half_written in self.export_dir.glob(f".*.{process.pid}.tmp"):
                half_written.unlink(missing_ok=True)  # an export cut short by the kill

    def decision(self) -> dict[str, Any]:
        rates = {key: round(rate, 1) for key, rate in self.rates.items()}
        return {
            "model": self.loaded.name,  # for the model chooser's "images/s here"
            "engine": max(rates, key=rates.__getitem__) if rates else "torch",
            "rates": rates,
            "failed": dict(self.failed),
            "date": datetime.now(UTC).date().isoformat(),
        }

    def choice(self) -> EngineChoice:
        """The fastest engine measured, built here; the decision is kept for next time."""
        decision = self.decision()
        _record(self.decisions_file, self._decision_key, decision)
        engine = self._builders[decision["engine"]]()
        return EngineChoice(engine, f"{engine.name}, {_describe(decision)}")


def measure_engines(
    probe: EngineProbe, cancel: Callable[[], bool] | None = None
) -> Generator[Stage, None, EngineChoice | None]:
    """Drive `probe` to its end, a Stage for each new percent; None when cancelled."""
    shown = -1
    try:
        while (progress := probe.step(0.2)) is not None:
            if cancel is not None and cancel():
                return None
            if round(progress * 100) != shown:
                shown = round(progress * 100)
                yield Stage(f"preparing the model for this computer: {shown}%")
    finally:
        probe.kill()
    return probe.choice()


def _exit_when_orphaned(cap_s: float) -> None:
    """Leave at the cap, or as soon as the parent is gone (even one that could not kill us)."""
    parent, deadline = os.getppid(), time.monotonic() + cap_s

    def watch() -> None:
        while os.getppid() == parent and time.monotonic() < deadline:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def _probe_child(
    pipe: Connection,
    cap_s: float,
    model: str,
    keys: list[str],
    batch_size: int,
    export_dir: str,
    threads: int,
) -> None:
    """The child's work: export once, then time each engine, one message per result."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it kills the child
    _exit_when_orphaned(cap_s)
    with contextlib.suppress(OSError):
        os.nice(PROBE_NICE)
    torch.set_num_threads(threads)
    from .checkpoint import load_model

    loaded = load_model(model)
    builders = engine_builders(loaded, torch.device("cpu"), Path(export_dir))
    if any(key != "torch" for key in keys):
        try:
            export_onnx(loaded, Path(export_dir))
            pipe.send(("exported", "", None))
        except Exception as error:  # every exported engine then fails on its own, below
            pipe.send(("failed", "onnx export", f"{type(error).__name__}: {error}"))
    spec = loaded.spec
    shape = (batch_size, spec.input_size, spec.input_size, spec.channels)
    pixels = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    for key in keys:
        try:
            pipe.send(("rate", key, measure(builders[key](), pixels)))
        except Exception as error:
            pipe.send(("failed", key, f"{type(error).__name__}: {error}"))
    pipe.close()
