"""Labeling on a CUDA GPU: throughput per engine, and how far bf16/fp16 agree with float32.

Labels the folder with the default photo model on each CUDA engine (torch float32, bf16
and fp16 autocast), each beside its model-only bound (the same forward pass on ready
pixels), then compares the reduced-precision embeddings and labels with float32's. Without
a CUDA device it says so and exits 0.

    python benchmarks/gpu_check.py --data ../shared/data/caltech101-dev
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fewshot_gui.core.checkpoint import DEFAULT_MODEL, load_model
from fewshot_gui.core.devices import describe_machine
from fewshot_gui.core.images import iter_image_files
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import Labeler, SupportSet
from fewshot_gui.core.transforms import pixels_for

ENGINES = ("torch", "torch-bf16", "torch-fp16")


def support_set(root: Path, classes: int = 5, shots: int = 5) -> SupportSet:
    folders = sorted(p for p in root.iterdir() if p.is_dir())[:classes]
    return SupportSet.from_mapping({f.name: sorted(iter_image_files(f))[:shots] for f in folders})


def bound_rate(labeler: Labeler, pixels: np.ndarray, batch_size: int) -> float:
    labeler.engine.embed(pixels[:batch_size])
    torch.cuda.synchronize()
    started = time.perf_counter()
    for start in range(0, len(pixels), batch_size):
        labeler.engine.embed(pixels[start : start + batch_size])
    torch.cuda.synchronize()
    return len(pixels) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of class folders")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--images", type=int, default=0, help="label only N (default all)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--decode-threads", type=int, default=8)
    args = parser.parse_args()
    print(describe_machine())
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to check (run this on a machine with a GPU)")
        return 0
    paths = list(iter_image_files(args.data))
    if args.images:
        paths = random.Random(0).sample(paths, min(args.images, len(paths)))
    loaded = load_model(args.model)
    sample = np.stack([pixels_for(p, loaded.spec) for p in paths[: 8 * args.batch_size]])
    support = support_set(args.data)
    embeddings: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for engine in ENGINES:
        with tempfile.TemporaryDirectory() as scratch:
            labeler = Labeler(
                loaded,
                device="cuda",
                cache_dir=Path(scratch),
                batch_size=args.batch_size,
                decode_threads=args.decode_threads,
                engine=engine,
            )
            drive(labeler.set_support(support))
            summary = drive(labeler.label(paths))
            labels[engine] = labeler.relabel().label
            embeddings[engine] = labeler.engine.embed(sample)
            bound = bound_rate(labeler, sample, args.batch_size)
        rate = summary.total / summary.seconds
        print(
            f"{labeler.engine_name:16s} on {labeler.device_name}: labeling {summary.total} "
            f"images {rate:7.1f} img/s, model-only bound {bound:7.1f} img/s "
            f"({100 * rate / bound:.0f}%)"
        )
    reference = embeddings["torch"]
    for engine in ENGINES[1:]:
        found = embeddings[engine]
        cosine = (found * reference).sum(1) / (
            np.linalg.norm(found, axis=1) * np.linalg.norm(reference, axis=1)
        )
        same = float((labels[engine] == labels["torch"]).mean())
        print(
            f"{engine} vs float32: cosine min {cosine.min():.5f} mean {cosine.mean():.5f} over "
            f"{len(found)} images; same label for {100 * same:.2f}% of {len(paths)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
