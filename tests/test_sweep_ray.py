"""The Ray backend on a local Ray started by the test (ray.init(num_cpus=2)): it makes the
directory the local backend makes, and a task whose worker is killed is retried and resumes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from grok_tui.cli import main
from grok_tui.cli.grid import spec_from_args
from grok_tui.cli.parser import build_parser
from grok_tui.engine.lab.ray_backend import train_on_ray
from grok_tui.engine.lab.sweep import Sweep
from tests.dist_harness import EPOCHS, GRID, assert_same_sweep, local_reference

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Sparse CSR")]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return local_reference(tmp_path_factory)


def test_a_ray_sweep_of_two_groups_equals_the_local_one(ray_cluster, reference, tmp_path):
    sweep_dir = tmp_path / "sweep"
    assert main([*GRID, "--backend", "ray", "--sweep-dir", str(sweep_dir)]) == 0
    assert_same_sweep(sweep_dir, reference)
    # Two tasks in two Ray worker processes, neither of them this one.
    holders = {json.loads(c.read_text())["pid"] for c in (sweep_dir / "claims").iterdir()}
    assert len(holders) == 2 and os.getpid() not in holders
    assert ray_cluster.is_initialized()  # a Ray the caller started is left running


def test_a_killed_ray_worker_is_retried_and_loses_nothing(ray_cluster, tmp_path) -> None:
    epochs = 1000
    long = [a if a != str(EPOCHS) else str(epochs) for a in GRID]
    sweep_dir = tmp_path / "sweep"
    # The sweep directory as the CLI makes it, then the backend run from a thread.
    sweep = Sweep.create(sweep_dir, spec_from_args(build_parser().parse_args(long)), "cpu")
    group = sweep.meta().groups[0]
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["results"] = train_on_ray(sweep, "cpu", lease_s=600)
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    claim = sweep_dir / "claims" / "group-0000.0001.json"
    deadline = time.time() + 300
    victim = None
    while victim is None:
        assert time.time() < deadline and thread.is_alive(), outcome
        checkpoints = len(list((sweep_dir / "members" / group[0]).glob("checkpoints/*")))
        if claim.exists() and checkpoints >= 4:
            victim = json.loads(claim.read_text())["pid"]
        time.sleep(0.01)
    os.kill(victim, signal.SIGKILL)
    run = sweep.member_run(group[0])
    assert run.checkpoint_epochs()[-1] < epochs  # killed mid-group
    thread.join(timeout=900)
    assert not thread.is_alive() and "error" not in outcome, outcome
    # The retry (same task id) took the claim over at once and finished the group.
    final = json.loads((sweep_dir / "claims" / "group-0000.0002.json").read_text())
    assert final["pid"] != victim and final["state"] == "released"
    for member in sweep.meta().members:
        run = sweep.member_run(member.name)
        assert run.meta().status == "done", member.name
        epochs_seen = [int(r["epoch"]) for r in run.read_metrics()]
        assert epochs_seen == list(range(epochs + 1)), f"{member.name}: a row lost or repeated"
        assert run.checkpoint_epochs()[-1] == epochs and not run.lock_path.exists()
    assert {r.status for r in outcome["results"]} == {"done"}
