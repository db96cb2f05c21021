"""Labeling through a Ray cluster beside the local path, on this machine, in one run.

Labels two slices of a folder (--small and --large files) both ways with the same model,
engine and batch size, and prints for each path the seconds, images/s, and the marginal
cost per image (the slope between the two sizes, so that fixed costs such as Ray's start and
its actors' model load are apart), in wall time and in CPU time of this process and every
process below it (Ray's GCS, raylet and workers: on a shared machine wall time rewards
whichever path runs more processes); then the Ray path's cost per image over the local one
(target: at most 10% on one machine), and the driver's own share: stat, cache look-up and
scoring per image, with every embedding already known.

    python benchmarks/cluster_speed.py --data ../shared/data/caltech101-dev
    python benchmarks/cluster_speed.py --data ../shared/data/caltech101-dev --cpus 2 \
        --engine onnxruntime --small 200 --large 800
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

from fewshot_gui.core.checkpoint import DEFAULT_MODEL, load_model
from fewshot_gui.core.images import iter_image_files
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import Labeler
from fewshot_gui.core.support import SupportSet


def support_and_files(data: Path, classes: int, shots: int) -> tuple[SupportSet, list[Path]]:
    """`shots` examples of the first `classes` class folders; every other image is a query,
    interleaved across classes so any slice holds them all."""
    folders = sorted(p for p in data.iterdir() if p.is_dir())
    support, per_class = {}, []
    for folder in folders:
        files = sorted(iter_image_files(folder))
        if len(support) < classes:
            support[folder.name], files = files[:shots], files[shots:]
        per_class.append(files)
    queries = [f for row in zip(*per_class, strict=False) for f in row]
    rest = [f for files in per_class for f in files[min(map(len, per_class)) :]]
    return SupportSet.from_mapping(support), queries + rest


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) of `root` and every live process below it, with what
    their reaped children used: Ray's GCS, raylet and workers are all below the driver."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    used: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone since the listing
        children.setdefault(int(fields[1]), []).append(int(entry))
        used[int(entry)] = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += used.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total / tick


def timed(label: Callable[[list[Path]], object], files: list[Path]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and all below it) to run `label`."""
    cpu, started = tree_cpu_seconds(os.getpid()), time.perf_counter()
    label(files)
    return time.perf_counter() - started, tree_cpu_seconds(os.getpid()) - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--engine", default="onnxruntime")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="the local Ray's")
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=800)
    args = parser.parse_args()

    import ray

    from fewshot_gui.core.cluster import ray_session

    support, files = support_and_files(args.data, classes=5, shots=2)
    loaded = load_model(args.model)
    print(f"model {loaded.name}, engine {args.engine}, batch {args.batch_size}")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    def labeler() -> Labeler:
        made = Labeler(loaded, device="cpu", engine=args.engine, batch_size=args.batch_size)
        drive(made.set_support(support))
        return made

    def local(files: list[Path]) -> object:
        made = labeler()
        drive(made.label(files))
        return made.relabel()

    seconds: dict[str, dict[int, tuple[float, float]]] = {"local": {}, "ray": {}}
    sizes = (args.small, args.large)
    local(files[: args.batch_size])  # the ONNX export, once, as a first run
    for n in sizes:
        seconds["local"][n] = timed(local, files[:n])

    ray.init(num_cpus=args.cpus, include_dashboard=False, object_store_memory=200 * 2**20)
    started = time.perf_counter()
    with ray_session(None, lambda line: None) as cluster:

        def remote(files: list[Path]) -> object:
            made = labeler()
            engine = made.engine
            made.embed_through(lambda base: cluster.pipeline(base, loaded, engine, args.engine))
            drive(made.label(files))
            return made.relabel()

        remote(files[: args.batch_size])  # the nodes' ONNX exports, once, as a first run
        warm = time.perf_counter() - started
        for n in sizes:
            seconds["ray"][n] = timed(remote, files[:n])
        nodes = cluster.summary()
    ray.shutdown()

    made = labeler()
    drive(made.label(files[: args.large]))
    made.forget()  # every vector stays in the memory cache: what is left is the driver's
    driver, driver_cpu = timed(
        lambda f: (drive(made.label(f)), made.relabel()), files[: args.large]
    )

    wall, cpu = {}, {}
    extra = args.large - args.small
    for path, by_size in seconds.items():
        wall[path] = (by_size[args.large][0] - by_size[args.small][0]) / extra
        cpu[path] = (by_size[args.large][1] - by_size[args.small][1]) / extra
        for n, (s, c) in by_size.items():
            print(f"{path:5s} {n:5d} images: {s:6.1f} s, {n / s:6.1f} images/s, CPU {c:6.1f} s")
        print(
            f"{path:5s} marginal: {1000 * wall[path]:.2f} ms/image ({1 / wall[path]:.1f} "
            f"images/s), CPU {1000 * cpu[path]:.2f} ms/image"
        )
    print(f"ray start and first run (exports): {warm:.1f} s; nodes: {'; '.join(nodes)}")
    print(
        f"ray cost per image over local: CPU {100 * (cpu['ray'] / cpu['local'] - 1):+.1f}% "
        f"(target <= +10%), wall {100 * (wall['ray'] / wall['local'] - 1):+.1f}%"
    )
    print(
        f"driver only (stat, look-up, scoring): {1000 * driver / args.large:.3f} ms/image, "
        f"CPU {1000 * driver_cpu / args.large:.3f} ms/image"
    )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
