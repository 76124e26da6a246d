"""`grok-tui sweep`: the grid, the sweep directory, its members as normal runs, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from grok_tui.cli import main
from grok_tui.engine.core.config import ConfigError, preset
from grok_tui.engine.lab.sweep import Sweep, SweepError, SweepSpec, make_groups, member_name
from grok_tui.engine.lab.sweep_status import SweepWatcher
from grok_tui.engine.store.runs import Run
from grok_tui.engine.training.train import Trainer
from tests.sweep_harness import TINY_ARGS, TINY_BASE, make_tiny_sweep

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR")


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    return make_tiny_sweep(tmp_path_factory.mktemp("sweep") / "tiny")


def test_the_grid_is_every_combination() -> None:
    spec = SweepSpec(
        preset("quick"), {"weight_decay": [0.3, 1.0, 3.0], "frac_train": [0.2, 0.5], "seed": [0, 1]}
    ).validated()
    members = spec.members()
    assert len(members) == 12
    assert members[0].name == "wd0.3_frac0.2_s0" and members[-1].name == "wd3_frac0.5_s1"
    assert len({m.name for m in members}) == 12
    m = members[5]
    assert m.config == preset("quick").replace(**m.values)
    assert m.values == {"weight_decay": 1.0, "frac_train": 0.2, "seed": 1}


def test_groups_split_by_shape_and_size() -> None:
    spec = SweepSpec(preset("quick"), {"p": [53, 59], "frac_train": [0.5, 0.2], "seed": [0, 1]})
    groups = make_groups(spec.members(), group_size=3)
    by_p = {53: [], 59: []}
    for g in groups:
        assert len(g) <= 3
        p = {int(n.split("_")[0][1:]) for n in g}
        assert len(p) == 1  # one p per batched model
        by_p[p.pop()] += g
    # Fewest train examples first, so members of equal size sit side by side.
    assert by_p[53] == ["p53_frac0.2_s0", "p53_frac0.2_s1", "p53_frac0.5_s0", "p53_frac0.5_s1"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--weight-decay", "0.3,x"], "--weight-decay: 'x' is not a number"),
        (["--seed", "1.5"], "--seed: '1.5' is not an int"),
        (["--seeds", "0"], "--seeds must be a positive integer"),
        (["--seeds", "2", "--seed", "1,2"], "give --seeds N or --seed LIST, not both"),
        (["--frac-train", "0.5,1.5"], "member frac_train=1.5: --frac-train must be in (0, 1)"),
        (["--p", "53,54"], "sweep member p=54: --p must be a prime"),
        (["--weight-decay", "1,1"], "repeats a value"),
        (["--disk-budget", "lots"], "--disk-budget 'lots' is not a size"),
        (["--disk-budget", "1MB", "--seeds", "8"], "too small for 8 members"),
        (["--resume", "/nonexistent"], "is not a sweep directory"),
        (["--resume", "x", "--seeds", "2"], "drop the grid options"),
        (["--chunk-size", "-1"], "--chunk-size must be >= 0"),
    ],
)
def test_bad_sweep_input_is_one_line(argv, needle, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--headless", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("grok-tui: error: ") and needle in err
    assert not (tmp_path / "runs").exists()


def test_dry_run_says_the_plan_and_makes_nothing(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--preset", "quick", "--weight-decay", "1,2", "--seeds", "3", "--dry-run"]
    assert main([*argv, "--disk-budget", "100MB"]) == 0
    err = capsys.readouterr().err
    assert "6 members, a checkpoint every" in err and "expected disk use" in err
    assert "wd2_s2" in err
    assert not (tmp_path / "runs").exists()


def test_a_toml_file_and_the_command_line(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    grid = tmp_path / "grid.toml"
    grid.write_text(
        'preset = "quick"\nweight_decay = [0.3, 1.0]\nfrac_train = 0.5\nseeds = 2\n'
        'disk_budget = "500MB"\n'
    )
    assert main(["sweep", str(grid), "--dry-run"]) == 0
    assert "4 members" in capsys.readouterr().err
    # The command line wins over the file.
    assert main(["sweep", str(grid), "--weight-decay", "1,2,3", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "6 members" in err and "wd3_s1" in err
    grid.write_text('preset = "quick"\nlearning_rate = [1, 2]\n')
    assert main(["sweep", str(grid), "--dry-run"]) == 2
    assert "unknown key 'learning_rate'" in capsys.readouterr().err
    grid.write_text("weight_decay = [0.3, \n")
    assert main(["sweep", str(grid), "--dry-run"]) == 2
    assert "is not valid TOML" in capsys.readouterr().err


def test_members_are_normal_runs_and_match_their_single_runs(tiny_sweep, tmp_path) -> None:
    sweep = Sweep.open(tiny_sweep)
    meta = sweep.meta()
    assert [m.name for m in meta.members] == ["wd1_s0", "wd1_s1", "wd3_s0", "wd3_s1"]
    data = json.loads((tiny_sweep / "sweep.json").read_text())
    assert data["axes"] == {"weight_decay": [1.0, 3.0], "seed": [0, 1]}
    # A model this small trains its members alone on a CPU (one worker process per core):
    # one group each, and each member bit for bit its own single run.
    assert data["base"]["p"] == TINY_BASE.p and data["groups"] == [[m.name] for m in meta.members]
    for member in meta.members:
        run = Run.open(sweep.member_run(member.name).path)
        assert run.meta().status == "done"
        rows = run.read_metrics()
        assert [r["epoch"] for r in rows] == list(range(TINY_BASE.epochs + 1))
        assert run.checkpoint_epochs()[0] == 0 and run.checkpoint_epochs()[-1] == TINY_BASE.epochs
        assert not run.lock_path.exists()
    assert data["chunk_size"] == 0  # the default: the stepper's
    member = meta.members[3]
    cfg = sweep.member_run(member.name).meta().config
    alone = Run.create(tmp_path / "alone", cfg.replace(epochs=20), "cpu")
    Trainer(alone, "cpu").train()
    ours = [r["test_loss"] for r in sweep.member_run(member.name).read_metrics()][:21]
    theirs = [r["test_loss"] for r in alone.read_metrics()]
    assert ours == theirs
    wrong = Run.create(tmp_path / "wrong", cfg.replace(epochs=20, weight_decay=1.0), "cpu")
    Trainer(wrong, "cpu").train()
    assert ours != pytest.approx([r["test_loss"] for r in wrong.read_metrics()], rel=1e-3)


def test_a_chunk_size_of_one_makes_members_their_single_runs_bit_for_bit(tmp_path) -> None:
    """`--chunk-size 1`, kept in sweep.json: the exact path, each member alone per pass."""
    sweep_dir = tmp_path / "exact"
    argv = [*TINY_ARGS, "--epochs", "30", "--weight-decay", "1", "--chunk-size", "1"]
    assert main([*argv, "--sweep-dir", str(sweep_dir)]) == 0
    sweep = Sweep.open(sweep_dir)
    assert json.loads((sweep_dir / "sweep.json").read_text())["chunk_size"] == 1
    assert sweep.meta().chunk_size == 1
    for member in sweep.meta().members:
        cfg = sweep.member_run(member.name).meta().config
        alone = Run.create(tmp_path / member.name, cfg, "cpu")
        Trainer(alone, "cpu").train()
        keys = ("train_loss", "test_loss", "train_acc", "test_acc")
        ours = [[r[k] for k in keys] for r in sweep.member_run(member.name).read_metrics()]
        assert ours == [[r[k] for k in keys] for r in alone.read_metrics()]
        final = sweep.member_run(member.name).load_checkpoint(30)
        assert all(torch.equal(t, alone.load_checkpoint(30)[n]) for n, t in final.items())


def test_disk_use_stays_within_the_plan(tiny_sweep) -> None:
    meta = Sweep.open(tiny_sweep).meta()
    used = sum(f.stat().st_size for f in (tiny_sweep / "members").rglob("*") if f.is_file())
    assert used <= meta.plan.base_bytes + meta.plan.dense_bytes <= meta.disk_budget


def test_the_watcher_reads_every_member(tiny_sweep) -> None:
    watcher = SweepWatcher(Sweep.open(tiny_sweep))
    assert watcher.poll()
    assert not watcher.poll()  # nothing new
    for name, summary in watcher.members.items():
        rows = Run(tiny_sweep / "members" / name).read_metrics()
        assert summary.epoch == TINY_BASE.epochs and summary.status == "done"
        assert summary.test_loss == rows[-1]["test_loss"]
        first = next((r["epoch"] for r in rows if r["train_acc"] >= 0.99), None)
        assert summary.memorised_at == first
        assert summary.outcome.final


def test_a_hostile_sweep_json_is_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for text, needle in [
        ("{", "is not valid JSON"),
        ('{"kind": "grok-tui-sweep", "format": 9}', "format 9"),
        (
            json.dumps(
                {
                    "kind": "grok-tui-sweep",
                    "format": 1,
                    "base": {},
                    "axes": {},
                    "members": [{"name": "../../etc", "values": {}}],
                }
            ),
            "is not a plain directory name",
        ),
    ]:
        (bad / "sweep.json").write_text(text)
        with pytest.raises(SweepError, match=r"sweep\.json") as info:
            Sweep.open(bad)
        assert needle in str(info.value) and "\n" not in str(info.value)
        assert main(["sweep", "--resume", str(bad), "--headless"]) == 2
        assert needle in capsys.readouterr().err


def test_member_names_come_from_the_axes() -> None:
    assert member_name({"weight_decay": 0.3, "frac_train": 0.25, "lr": 1e-3, "seed": 2}) == (
        "wd0.3_frac0.25_lr0.001_s2"
    )
    assert member_name({}) == "member"
    with pytest.raises(ConfigError, match="cannot be a sweep axis"):
        SweepSpec(TINY_BASE, {"checkpoint_every": [1, 2]}).validated()


def test_the_grid_is_checked_before_the_device_is_resolved_or_ray_joined(
    capsys, tmp_path, monkeypatch
) -> None:
    from grok_tui.cli import distribution

    joined: list[object] = []
    monkeypatch.setattr(distribution, "connect", lambda address: joined.append(address))
    monkeypatch.chdir(tmp_path)
    for argv in (["--backend", "ray"], ["--device", "tpu"]):
        assert main(["sweep", "--headless", "--weight-decay", "0.3,x", *argv]) == 2
        err = capsys.readouterr().err
        assert err == "grok-tui: error: --weight-decay: 'x' is not a number\n", err
    assert not joined and not (tmp_path / "runs").exists()
    assert main(["sweep", "--resume", "x", "--dry-run"]) == 2  # a dry run never trains
    assert "--dry-run plans a new sweep" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("chunk_size", "chunks"), [(0, [(0, 2), (2, 4)]), (3, [(0, 3), (3, 4)]), (4, [(0, 4)])]
)
def test_every_way_of_training_a_sweep_uses_its_chunk_size(
    chunk_size, chunks, tmp_path, monkeypatch
) -> None:
    """`train_group`, which the CLI, the sweep screen (SweepSession), shards, --devices and
    Ray all train through, gives the stepper sweep.json's chunk size (0: its default, which
    steps four members of a model this small as two chunks of two, side by side). One
    group of four (a CPU's default for this model is one member a group)."""
    import grok_tui.engine.lab.backends as backends

    seen = []

    class Recording(backends.GroupTrainer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            seen.append([(ch.start, ch.end) for ch in self.stepper.chunks])

    monkeypatch.setattr(backends, "GroupTrainer", Recording)
    spec = SweepSpec(
        TINY_BASE.replace(epochs=2), {"weight_decay": [1.0, 3.0], "seed": [0, 1]},
        group_size=4, chunk_size=chunk_size,
    )  # fmt: skip
    sweep = Sweep.create(tmp_path / "s", spec, "cpu")
    assert sweep.meta().chunk_size == chunk_size
    results = backends.train_sweep(sweep, "cpu")
    assert [r.status for r in results] == ["done"] * 4
    assert seen == [chunks]


def test_a_small_models_members_train_alone_one_process_per_core(tmp_path, monkeypatch) -> None:
    """On a CPU a small model's sweep has a group per member, trained in one worker process
    per usable core: no more than the groups left, nor than half the free memory holds at
    WORKER_BYTES each. A GPU, batched groups (the paper preset's, or --group-size) or one
    group left train in this process."""
    import grok_tui.engine.lab.backends as backends
    import grok_tui.engine.lab.sweep as sweep_module

    spec = SweepSpec(TINY_BASE.replace(epochs=2), {"seed": [0, 1, 2]})
    sweep = Sweep.create(tmp_path / "s", spec, "cpu")
    assert sweep.meta().groups == [[m.name] for m in sweep.meta().members]
    monkeypatch.setattr(backends, "usable_cores", lambda: 8)
    monkeypatch.setattr(backends, "free_memory", lambda device: 64 << 30)
    assert backends.local_processes(sweep, "cpu") == 3  # one per group left
    assert backends.local_processes(sweep, "cuda") == 1
    assert backends.local_processes(sweep, "cpu", [0]) == 1
    monkeypatch.setattr(backends, "usable_cores", lambda: 2)
    assert backends.local_processes(sweep, "cpu") == 2
    monkeypatch.setattr(backends, "free_memory", lambda device: 3 * backends.WORKER_BYTES)
    assert backends.local_processes(sweep, "cpu") == 1
    monkeypatch.setattr(backends, "free_memory", lambda device: 64 << 30)
    batched = Sweep.create(tmp_path / "b", SweepSpec(spec.base, spec.axes, group_size=3), "cpu")
    assert batched.meta().groups == [[m.name for m in batched.meta().members]]
    assert backends.local_processes(batched, "cpu") == 1
    monkeypatch.setattr(sweep_module, "free_memory", lambda device: 16 << 30)
    assert sweep_module.auto_group_size(preset("quick"), "cpu") == 1
    assert sweep_module.auto_group_size(preset("paper"), "cpu") > 1


def test_a_sweep_over_p_trains_its_small_members_in_workers_then_the_rest_here(
    tmp_path, monkeypatch
) -> None:
    """A sweep over a small and a large p: each shape's groups are sized for it (before,
    the first member's size served every shape), the small model's members (groups of one)
    go to the worker processes, then the large model's batched group trains here."""
    import grok_tui.engine.lab.backends as backends

    spec = SweepSpec(TINY_BASE.replace(epochs=2), {"p": [17, 113], "seed": [0, 1]})
    sweep = Sweep.create(tmp_path / "s", spec, "cpu")
    groups = sweep.meta().groups
    singles = [g for g, names in enumerate(groups) if len(names) == 1]
    batched = [g for g, names in enumerate(groups) if len(names) > 1]
    assert len(singles) == 2 and len(batched) == 1  # p = 113: 32 MB a member, batched
    monkeypatch.setattr(backends, "usable_cores", lambda: 8)
    monkeypatch.setattr(backends, "free_memory", lambda device: 64 << 30)
    assert backends.local_processes(sweep, "cpu") == 2
    calls = []

    def workers(sweep, devices, groups, *args, **kwargs):
        calls.append(("workers", len(devices), groups))
        return []

    def here(sweep, device, groups, *args, **kwargs):
        calls.append(("here", groups))
        return []

    monkeypatch.setattr(backends, "train_on_devices", workers)
    monkeypatch.setattr(backends, "run_groups", here)
    backends.train_sweep(sweep, "cpu")
    assert calls == [("workers", 2, singles), ("here", batched)]
    calls.clear()
    backends.train_sweep(sweep, "cpu", processes=1)
    assert calls == [("here", list(range(len(groups))))]
