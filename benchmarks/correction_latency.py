"""A correction at 100,000 rows in the core: adapt + relabel, chunked scoring before and after.

Reuses the files and embedding cache of `gui_label_100k.py` (run that first, or give
--cache of any Labeler cache holding those files). The shipped Euclidean handwriting model
scores without the product shortcut, through `LabeledRows.scores`; the "before" arm patches
it back to 512-row chunks on all threads, in the same process, interleaved with "after".

    python benchmarks/correction_latency.py --cache /tmp/fewshot-100k-run-XXXX/cache
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from pathlib import Path

from fewshot_gui.core import labeled_rows
from fewshot_gui.core.checkpoint import load_model
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import Labeler, SupportSet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/fewshot-100k"))
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--model", default="omniglot-conv4-protonet")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    images = sorted((args.work / "images").glob("*.png"))
    examples = sorted((args.work / "examples-src").glob("*.png"))
    labeler = Labeler(load_model(args.model), device="cpu", cache_dir=args.cache, engine="torch")
    drive(labeler.set_support(SupportSet.from_mapping({"a": examples[1::2], "b": examples[::2]})))
    drive(labeler.label(images))
    labeler.relabel()
    print(f"{len(images)} rows, load {os.getloadavg()[0]:.1f}")
    after = (labeled_rows.CHUNK_VALUES, labeled_rows.one_thread)
    before = (0, contextlib.nullcontext)
    for name, (chunk_values, threads) in [("before", before), ("after", after)] * 2:
        labeled_rows.CHUNK_VALUES, labeled_rows.one_thread = chunk_values, threads
        seconds = []
        for i in range(args.repeats):
            corrected = images[3 + i]
            support = {"a": examples[1::2], "b": [*examples[::2], corrected]}
            started = time.perf_counter()
            drive(labeler.set_support(SupportSet.from_mapping(support)))
            labeler.set_corrections({corrected: "b"})
            labeler.relabel()
            seconds.append(time.perf_counter() - started)
        print(
            f"  {name}: adapt + relabel best {1000 * min(seconds):.0f} ms, "
            f"median {1000 * statistics.median(seconds):.0f} ms"
        )


if __name__ == "__main__":
    main()
