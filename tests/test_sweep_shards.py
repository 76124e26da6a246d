"""Real processes sharing one sweep directory: --shard array tasks and --devices workers."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from grok_tui.cli import main
from grok_tui.engine.core.config import ConfigError
from grok_tui.engine.lab.backends import parse_shard, shard_groups
from grok_tui.engine.lab.sweep import Sweep
from grok_tui.engine.lab.sweep_status import SweepWatcher
from tests.dist_harness import GRID, assert_same_sweep, local_reference, start

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return local_reference(tmp_path_factory)


def test_shards_split_the_groups_round_robin() -> None:
    assert parse_shard("0/4") == (0, 4) and parse_shard("3/4") == (3, 4)
    assert [shard_groups(10, (i, 4)) for i in range(4)] == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]
    assert shard_groups(2, (3, 4)) == []
    for bad in ("4/4", "-1/4", "1", "a/b", "0/0", "1/2/3"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--shard", "2/2", "--sweep-dir", "x"], "--shard '2/2': I must be in 0..N-1"),
        (["--shard", "0/2"], "--shard needs --sweep-dir DIR"),
        (["--address", "auto"], "--address is for --backend ray"),
        (["--devices", "cpu,"], "an empty device name"),
        (["--devices", "cpu,gpu7"], "--device 'gpu7' is not one of"),
        (["--devices", "cpu", "--device", "cpu"], "give --devices LIST or --device, not both"),
        (["--backend", "ray", "--devices", "cpu"], "--devices is for the local backend"),
        (["--claim-lease", "0"], "--claim-lease must be a positive number"),
    ],
)
def test_bad_distribution_options_are_one_line(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*GRID, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x").exists()


def test_a_shard_of_another_grid_is_refused(reference, capsys) -> None:
    argv = [a if a != "1,3" else "1,2" for a in GRID]  # another weight-decay axis
    assert main([*argv, "--sweep-dir", str(reference), "--shard", "0/2"]) == 2
    assert "holds a sweep of another grid" in capsys.readouterr().err


@pytest.mark.slow
def test_two_shards_started_at_once_make_the_local_sweep(reference, tmp_path) -> None:
    sweep_dir = tmp_path / "sweep"
    # Both race to create the directory: one makes it, the other joins it.
    procs = [start(*GRID, "--sweep-dir", str(sweep_dir), "--shard", f"{i}/2", cwd=tmp_path)
             for i in range(2)]  # fmt: skip
    for proc in procs:
        assert proc.wait(timeout=600) == 0, proc.stderr.read()
    assert_same_sweep(sweep_dir, reference)
    # Each group was claimed once, by one shard, and released.
    claims = sorted((sweep_dir / "claims").iterdir())
    assert [c.name for c in claims] == ["group-0000.0001.json", "group-0001.0001.json"]
    holders = {json.loads(c.read_text())["pid"] for c in claims}
    assert holders == {p.pid for p in procs}
    assert not list(tmp_path.glob(".sweep.creating-*"))  # the loser's staging copy is gone


def read_lines(proc, lines: list[str]) -> threading.Thread:
    def pump() -> None:
        for line in proc.stderr:
            lines.append(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_third_process_on_a_claimed_group_waits_and_never_trains_it_twice(tmp_path):
    """Shard 0 trains group 0; a second process for the same shard starts while the group is
    claimed: it waits. Then the first is stopped (SIGTERM: it saves and releases) and the
    second continues the group from the checkpoints; every epoch has exactly one row."""
    sweep_dir = tmp_path / "sweep"
    long = [a if a != "100" else "600" for a in GRID]
    first = start(*long, "--sweep-dir", str(sweep_dir), "--shard", "0/2", cwd=tmp_path)
    claim = sweep_dir / "claims" / "group-0000.0001.json"
    deadline = time.time() + 300
    while not (claim.exists() and list(sweep_dir.glob("members/*/checkpoints/*25.*"))):
        assert time.time() < deadline and first.poll() is None, first.stderr.read()
        time.sleep(0.05)
    # `grok-tui open DIR` follows whoever writes: its watcher sees the shard's progress.
    watcher = SweepWatcher(Sweep.open(sweep_dir))
    watcher.poll()
    names = Sweep.open(sweep_dir).meta().groups[0]
    assert all(watcher.members[n].epoch >= 25 for n in names)
    assert {watcher.members[n].status for n in names} == {"running"}
    lines: list[str] = []
    second = start(*long, "--sweep-dir", str(sweep_dir), "--shard", "0/2", cwd=tmp_path)
    pump = read_lines(second, lines)
    while not any("waiting for it" in line for line in lines):
        assert time.time() < deadline and second.poll() is None, "".join(lines)
        time.sleep(0.05)
    holder = json.loads(claim.read_text())
    assert holder["pid"] == first.pid and holder["state"] == "held"
    locks = [json.loads((sweep_dir / "members" / n / "lock").read_text()) for n in names]
    assert {lock["pid"] for lock in locks} == {first.pid}  # the waiting one holds nothing
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=300) in (0, 130), first.stderr.read()
    assert second.wait(timeout=600) == 0, "".join(lines)
    pump.join(timeout=10)
    sweep = Sweep.open(sweep_dir)
    for name in names:
        run = sweep.member_run(name)
        assert run.meta().status == "done"
        assert [int(r["epoch"]) for r in run.read_metrics()] == list(range(601))
        assert not run.lock_path.exists()
    final = json.loads((sweep_dir / "claims" / "group-0000.0002.json").read_text())
    assert final["pid"] == second.pid and final["state"] == "released"
    # Group 1 is shard 1's: neither process touched it.
    for name in sweep.meta().groups[1]:
        assert sweep.member_run(name).meta().status == "created"


@pytest.mark.slow
def test_devices_spread_the_groups_over_worker_processes(reference, tmp_path) -> None:
    sweep_dir = tmp_path / "sweep"
    proc = start(*GRID, "--sweep-dir", str(sweep_dir), "--devices", "cpu,cpu", cwd=tmp_path)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    assert_same_sweep(sweep_dir, reference)
    holders = {json.loads(c.read_text())["pid"] for c in (sweep_dir / "claims").iterdir()}
    assert proc.pid not in holders  # the workers trained, not the parent
