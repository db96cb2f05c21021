"""Meta-training under torchrun: an averaged step of two gloo processes equals one process's
step over the union of their episodes (ProtoNet and second-order MAML); only rank 0 writes
checkpoints; a group resumes where it stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fewshot_gui.core.checkpoint import WEIGHTS_FILE, load_tensors
from fewshot_gui.core.datasets import EpisodeSampler
from fewshot_gui.core.distributed import Group
from fewshot_gui.core.methods import build_model
from fewshot_gui.core.training import LAST_DIR
from tests.conftest import make_glyph_dataset
from tests.core import ddp_worker

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ddp_worker.py wrote under `torchrun --nproc_per_node 2`."""
    out = tmp_path_factory.mktemp("ddp")
    data = make_glyph_dataset(out / "data", groups=2, classes_per_group=5, images_per_class=4)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(ROOT / "tests" / "core" / "ddp_worker.py"),
        str(out),
        str(data),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.parametrize("method", list(ddp_worker.METHODS))
def test_averaged_step_equals_one_step_over_the_union(two_ranks: Path, method: str) -> None:
    _, labels = ddp_worker.step_inputs()
    union = []
    for rank in range(2):
        seed = Group(rank, 2).seed(ddp_worker.SEED)
        sampler = EpisodeSampler(labels, ddp_worker.EPISODE, seed)
        union += [sampler.sample() for _ in range(ddp_worker.TASKS)]
    assert not all(
        (a.support == b.support).all() for a, b in zip(union[:2], union[2:], strict=True)
    )  # each rank drew its own episodes
    torch.set_num_threads(1)
    expected = ddp_worker.one_step(method, union)
    start = ddp_worker.one_step(method, [])  # no episodes: Adam moves nothing
    parameters = {name for name, _ in build_model(ddp_worker.METHODS[method]).named_parameters()}
    ranks = [load_tensors(two_ranks / f"{method}-rank{rank}.st") for rank in range(2)]
    for got in ranks:
        assert got.keys() == expected.keys()
        for key in parameters:
            torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)
        assert any(not torch.equal(expected[key], start[key]) for key in parameters)
    for key in expected.keys() - parameters:  # batch-norm statistics: rank 0's on every rank
        assert torch.equal(ranks[0][key], ranks[1][key])


def test_only_rank_0_writes_and_a_group_resumes(two_ranks: Path) -> None:
    assert (two_ranks / "whole" / LAST_DIR / WEIGHTS_FILE).is_file()
    assert (two_ranks / "whole" / "best" / WEIGHTS_FILE).is_file()
    assert not (two_ranks / "whole-rank1").exists()
    whole = load_tensors(two_ranks / "whole" / LAST_DIR / WEIGHTS_FILE)
    resumed = load_tensors(two_ranks / "part" / LAST_DIR / WEIGHTS_FILE)
    assert whole.keys() == resumed.keys()
    for key, value in whole.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)
