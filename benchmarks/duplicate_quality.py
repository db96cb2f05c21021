"""Near-duplicate quality on caltech101-dev, and the pair search's time beside brute force.

quality  Near copies of --photos photos, made with Pillow, one of each kind (half scale, JPEG
         quality 40, a 10% crop, 5 degrees turned, gray, and all five at once), sit in a temp
         folder among the untouched class folders (linked). Everything runs through
         `find_duplicates` with the default photo model, as labeling embeds. A true pair is
         two files made from one photo (or two photos with the same bytes); every other
         pair is a negative, different photos of one class the hard ones. Prints recall per
         kind (photo, copy) and precision over every pair the groups make, at the shipped
         thresholds, and a grid of thresholds over the candidate pairs, on the classes at
         even and at odd positions apart (tune on one half, read on the other).
timing   `similar_pairs` on 10k, 30k and 100k synthetic embeddings (the folder's real
         features, each drawn with noise to a cosine of about 0.7 with its source, plus
         planted near copies at about 0.95) beside a brute-force search (matrix products
         in chunks) in the same run; time per size and its growth.

    OMP_NUM_THREADS=1 python benchmarks/duplicate_quality.py --data ../shared/data/caltech101-dev
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fewshot_gui.core import duplicates
from fewshot_gui.core.checkpoint import DEFAULT_MODEL, load_model
from fewshot_gui.core.duplicates import (
    DuplicateGroups,
    find_duplicates,
    pipeline_embed,
    similar_pairs,
)
from fewshot_gui.core.images import iter_image_files
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import Labeler
from fewshot_gui.core.picture_match import Thumbnail, picture_match, read_thumbnail

KINDS = ("half", "jpeg40", "crop10", "rotate5", "gray", "all")


def near_copy(source: Path, kind: str, target_stem: Path, rng: random.Random) -> Path:
    """One Pillow-made near copy of `source`; the file it wrote."""
    image = Image.open(source).convert("RGB")
    quality = 90
    if kind in ("half", "all"):
        image = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    if kind in ("rotate5", "all"):
        image = image.rotate(rng.choice((-5, 5)), Image.Resampling.BICUBIC)
    if kind in ("crop10", "all"):
        width, height = round(image.width * 0.9), round(image.height * 0.9)
        left = rng.randint(0, image.width - width)
        top = rng.randint(0, image.height - height)
        image = image.crop((left, top, left + width, top + height))
    if kind in ("gray", "all"):
        image = image.convert("L")
    if kind in ("jpeg40", "all"):
        quality = 40
    target = target_stem.with_suffix(".jpg")
    image.save(target, quality=quality)
    return target


def build_folder(data: Path, root: Path, photos: int, seed: int) -> dict[Path, tuple[str, int]]:
    """Links to every photo of `data` plus near copies of `photos` of them under `root`;
    per file, its class and the number of the photo it shows."""
    rng = random.Random(seed)
    truth: dict[Path, tuple[str, int]] = {}
    originals = sorted(iter_image_files(data))
    for number, source in enumerate(originals):
        link = root / source.relative_to(data)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source)
        truth[link] = (source.parent.name, number)
    copies = root / "near-copies"
    copies.mkdir()
    for number in sorted(rng.sample(range(len(originals)), photos)):
        source = originals[number]
        for kind in KINDS:
            stem = copies / f"{source.parent.name}-{source.stem}-{kind}"
            truth[near_copy(source, kind, stem, rng)] = (source.parent.name, number)
    return truth


def cached_folder(data: Path, root: Path, photos: int, seed: int) -> dict[Path, tuple[str, int]]:
    """`build_folder` once: later runs reuse its files (so the embedding cache holds them)."""
    record = root / ".truth.json"
    if not record.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        truth = build_folder(data, root, photos, seed)
        record.write_text(json.dumps({str(p): list(t) for p, t in truth.items()}))
    return {Path(p): (c, n) for p, (c, n) in json.loads(record.read_text()).items()}


def same_bytes(paths: list[Path]) -> dict[int, int]:
    """Photo number -> the number of the first photo with the same bytes."""
    first: dict[str, int] = {}
    alias: dict[int, int] = {}
    for number, path in enumerate(paths):
        digest = duplicates.file_digest(path)
        alias[number] = first.setdefault(digest, number)
    return alias


def pair_counts(
    result: DuplicateGroups, truth: dict[Path, tuple[str, int]], keep_class: set[str] | None
) -> dict[str, int]:
    """True and false pairs the groups make, and true pairs per kind found (photo, copy)."""
    counts: Counter[str] = Counter()
    photo = [truth[p][1] for p in result.paths]
    classes = [truth[p][0] for p in result.paths]
    kinds = [next((k for k in KINDS if p.stem.endswith(f"-{k}")), "photo") for p in result.paths]
    groups = result.group
    wanted = [keep_class is None or c in keep_class for c in classes]
    by_photo: dict[int, list[int]] = {}
    for i, number in enumerate(photo):
        if wanted[i]:
            by_photo.setdefault(number, []).append(i)
    for members in by_photo.values():
        source = next((i for i in members if kinds[i] == "photo"), None)
        for i in members:
            if kinds[i] != "photo" and source is not None:
                counts[f"truth {kinds[i]}"] += 1
                counts[f"found {kinds[i]}"] += int(groups[i] != 0 and groups[i] == groups[source])
    for number in np.unique(groups[groups > 0]).tolist():
        members = [i for i in np.flatnonzero(groups == number).tolist() if wanted[i]]
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                i, j = members[a], members[b]
                true = photo[i] == photo[j]
                counts["predicted"] += 1
                counts["predicted true"] += int(true)
                if not true:
                    counts["false same class" if classes[i] == classes[j] else "false other"] += 1
    return dict(counts)


def report_quality(result: DuplicateGroups, truth: dict, halves: dict[str, set[str]]) -> None:
    for name, keep in [("all classes", None), *halves.items()]:
        counts = pair_counts(result, truth, keep)
        print(f"\n[{name}] at min_cosine {duplicates.MIN_COSINE}, min_match {duplicates.MIN_MATCH}")
        found = sum(counts.get(f"found {k}", 0) for k in KINDS)
        total = sum(counts.get(f"truth {k}", 0) for k in KINDS)
        for kind in KINDS:
            t, f = counts.get(f"truth {kind}", 0), counts.get(f"found {kind}", 0)
            print(f"  recall {kind:8s} {f:4d}/{t:4d} = {100 * f / max(t, 1):6.2f}%")
        single = [k for k in KINDS if k != "all"]
        found1 = sum(counts.get(f"found {k}", 0) for k in single)
        total1 = sum(counts.get(f"truth {k}", 0) for k in single)
        print(f"  recall single kinds {found1}/{total1} = {100 * found1 / max(total1, 1):.2f}%")
        print(f"  recall every kind   {found}/{total} = {100 * found / max(total, 1):.2f}%")
        predicted, true = counts.get("predicted", 0), counts.get("predicted true", 0)
        print(
            f"  precision {true}/{predicted} = {100 * true / max(predicted, 1):.2f}% "
            f"(false pairs: {counts.get('false same class', 0)} same class, "
            f"{counts.get('false other', 0)} other classes)"
        )


def threshold_grid(
    paths: list[Path],
    vectors: np.ndarray,
    truth: dict[Path, tuple[str, int]],
    halves: dict[str, set[str]],
) -> None:
    """Recall and precision on candidate pairs (not groups) over a grid of both thresholds."""
    pairs = drive(similar_pairs(vectors, 0.6))
    cosine = np.einsum(
        "pd,pd->p",
        vectors[pairs[:, 0]] / np.linalg.norm(vectors[pairs[:, 0]], axis=1, keepdims=True),
        vectors[pairs[:, 1]] / np.linalg.norm(vectors[pairs[:, 1]], axis=1, keepdims=True),
    )
    views: dict[int, Thumbnail] = {}
    match = np.array(
        [
            picture_match(
                views.setdefault(i, read_thumbnail(paths[i])),
                views.setdefault(j, read_thumbnail(paths[j])),
            )
            for i, j in pairs.tolist()
        ]
    )
    photo = np.array([truth[p][1] for p in paths])
    classes = [truth[p][0] for p in paths]
    true = photo[pairs[:, 0]] == photo[pairs[:, 1]]
    same_class = np.array([classes[i] == classes[j] for i, j in pairs.tolist()])
    print(f"\ncandidate pairs at cosine >= 0.6: {len(pairs)} ({true.sum()} true)")
    for name, keep in halves.items():
        inside = np.array([classes[i] in keep for i in pairs[:, 0].tolist()])
        print(f"[{name}] recall/precision of pairs (rows: min_cosine; columns: min_match)")
        matches = (0.0, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94)
        print("         " + " ".join(f"{m:>13}" for m in matches))
        for min_cosine in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85):
            cells = []
            for min_match in matches:
                hit = inside & (cosine >= min_cosine) & (match >= min_match)
                recall = (hit & true).sum() / max((inside & true).sum(), 1)
                precision = (hit & true).sum() / max(hit.sum(), 1)
                cells.append(f"{100 * recall:5.1f}/{100 * precision:5.1f}")
            print(f"  {min_cosine:5.2f}  " + " ".join(f"{c:>13}" for c in cells))
        negatives = inside & ~true & same_class
        print(
            f"  hard negatives (same class, cosine >= 0.6): {negatives.sum()}; their best "
            f"match {match[negatives].max() if negatives.any() else float('nan'):.3f}; "
            f"true pairs' worst match {match[inside & true].min():.3f}"
        )


def brute_pairs(vectors: np.ndarray, min_cosine: float) -> np.ndarray:
    """The baseline: every row against every later row, in chunks of matrix products."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    found = []
    for start in range(0, len(unit), 1024):
        block = unit[start : start + 1024] @ unit.T
        i, j = np.nonzero(block >= min_cosine)
        i = i + start
        later = j > i
        found.append(np.stack([i[later], j[later]], axis=1))
    return np.concatenate(found)


def synthetic(real: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n vectors, each a real one plus noise (cosine ~0.7 with it); 1% planted near copies."""
    rng = np.random.default_rng(seed)
    unit = real / np.linalg.norm(real, axis=1, keepdims=True)
    d = unit.shape[1]

    def noisy(rows: np.ndarray, cosine: float) -> np.ndarray:
        # Noise of norm tan(acos(cosine)) against a unit vector gives that cosine.
        noise = rng.standard_normal((len(rows), d)).astype(np.float32)
        noise *= math.tan(math.acos(cosine)) / np.linalg.norm(noise, axis=1, keepdims=True)
        return rows + noise

    vectors = noisy(unit[rng.integers(0, len(unit), n)], 0.7).astype(np.float32)
    planted = rng.choice(n, n // 100, replace=False)
    source = rng.choice(np.setdiff1d(np.arange(n), planted), len(planted), replace=False)
    vectors[planted] = noisy(
        vectors[source] / np.linalg.norm(vectors[source], axis=1)[:, None], 0.95
    )
    return vectors


def report_timing(real: np.ndarray, sizes: list[int], brute_max: int) -> None:
    print(f"\ntiming at min_cosine {duplicates.MIN_COSINE} (s; found: of brute force's pairs)")
    print(f"  {'n':>7} {'blocked':>8} {'brute':>8} {'pairs':>7} {'found':>7}")
    previous = None
    for n in sizes:
        vectors = synthetic(real, n, seed=n)
        started = time.perf_counter()
        pairs = drive(similar_pairs(vectors, duplicates.MIN_COSINE))
        index_s = time.perf_counter() - started
        brute_s, found = float("nan"), "-"
        if n <= brute_max:
            started = time.perf_counter()
            baseline = brute_pairs(vectors, duplicates.MIN_COSINE)
            brute_s = time.perf_counter() - started
            both = set(map(tuple, pairs.tolist())) & set(map(tuple, baseline.tolist()))
            found = f"{100 * len(both) / max(len(baseline), 1):.1f}%"
        growth = ""
        if previous is not None:
            ratio = n / previous[0]
            growth = f"  x{index_s / previous[1]:.1f} for x{ratio:.1f} rows"
            if not math.isnan(brute_s) and not math.isnan(previous[2]):
                growth += f" (brute x{brute_s / previous[2]:.1f})"
        print(f"  {n:7d} {index_s:8.2f} {brute_s:8.2f} {len(pairs):7d} {found:>7}{growth}")
        previous = (n, index_s, brute_s)
    print(f"  load {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--engine", default="torch")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "dup-bench")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 30_000, 100_000])
    parser.add_argument("--brute-max", type=int, default=100_000)
    parser.add_argument("--only", choices=("quality", "timing"))
    parser.add_argument("--grid", action="store_true", help="also the threshold grid (slow)")
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.1f} at start; {os.cpu_count()} CPUs")
    labeler = Labeler(
        load_model(args.model), device="cpu", cache_dir=args.cache, engine=args.engine
    )
    root = args.cache / f"folder-{args.photos}-{args.seed}"
    truth = cached_folder(args.data, root, args.photos, args.seed)
    paths = sorted(truth)
    originals = sorted(iter_image_files(args.data))
    alias = same_bytes(originals)
    truth = {p: (c, alias[n]) for p, (c, n) in truth.items()}
    names = sorted({c for c, _n in truth.values()})
    halves = {"even classes": set(names[0::2]), "odd classes": set(names[1::2])}
    print(f"{len(paths)} files: {len(originals)} photos, {args.photos} x {len(KINDS)} copies")
    embed = pipeline_embed(labeler)
    vectors = np.stack([v for batch in embed(paths, None) for v in batch.vectors])
    if args.only != "timing":
        started = time.perf_counter()
        result = drive(find_duplicates(paths, embed))
        seconds = time.perf_counter() - started
        print(
            f"find_duplicates: {seconds:.1f} s (embeddings cached), {len(result.groups())} "
            f"groups, {result.exact_pairs} exact and {result.near_pairs} near pairs, "
            f"{len(result.errors)} unreadable; load {os.getloadavg()[0]:.1f}"
        )
        report_quality(result, truth, halves)
        if args.grid:
            threshold_grid(paths, vectors, truth, halves)
    if args.only != "quality":
        report_timing(vectors, args.sizes, args.brute_max)
    print(f"load {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
