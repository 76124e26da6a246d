"""The sweep directory: a grid of member runs, trained in batched groups.

    SWEEP/
      sweep.json      format, the grid (axes and values), fixed options, members, groups,
                      backend, device, disk budget and the checkpoint plan it chose
      members/NAME/   one normal run directory per member (run.json, metrics.jsonl, ...)

A member is a normal run: every pane, `open`, `analyze` and `export` works on it unchanged.
Members of one shape (one p, one architecture) are split into groups, each trained as one
batched model by one process (`backends.train_group`); `sweep.json` fixes the groups when
the sweep is made, so any number of processes, shards or workers agree on them; a claim file
per group keeps each group to one of them at a time (claims.py, backends.py).
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grok_tui.engine.core.config import ConfigError, RunConfig
from grok_tui.engine.store.atomic import atomic_write_bytes
from grok_tui.engine.store.naming import stamped_path
from grok_tui.engine.store.run_meta import now_iso, software_versions
from grok_tui.engine.store.runs import Run, RunError
from grok_tui.engine.training.checkpoints import CheckpointPolicy, DiskPlan, plan_checkpoints
from grok_tui.engine.training.stepper import SHAPE_FIELDS, large

SWEEP_FORMAT = 1
KIND = "grok-tui-sweep"
DEFAULT_BUDGET = 2 * 10**9
# Config fields a sweep may vary, and the short names member names use.
AXES = {
    "p": "p",
    "frac_train": "frac",
    "lr": "lr",
    "weight_decay": "wd",
    "beta1": "b1",
    "beta2": "b2",
    "warmup_steps": "warm",
    "epochs": "ep",
    "seed": "s",
    "data_seed": "ds",
    "d_model": "dm",
    "n_heads": "h",
    "d_head": "dh",
    "d_mlp": "mlp",
    "op": "op",
    "grokfast": "gf",
    "grokfast_alpha": "gfa",
    "grokfast_lamb": "gfl",
    "grokfast_window": "gfw",
    "loss": "loss-",
    "orthogonal_grad": "og",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,120}$")


class SweepError(RunError):
    """A sweep directory or spec that cannot be used; the message is one line."""


class SweepExists(SweepError):
    """The sweep directory exists and is not empty."""


@dataclass(frozen=True)
class Member:
    name: str
    values: dict[str, Any]  # this member's value of each axis
    config: RunConfig


@dataclass(frozen=True)
class SweepSpec:
    """A grid: fixed options (`base`) and the values of each swept field (`axes`)."""

    base: RunConfig
    axes: dict[str, list[Any]]
    disk_budget: int = DEFAULT_BUDGET
    group_size: int = 0  # most members per batched model; 0: as many as memory allows
    chunk_size: int = 0  # members per forward/backward pass; 0: the stepper's; 1: bit-exact

    def validated(self) -> SweepSpec:
        for name, values in self.axes.items():
            if name not in AXES:
                raise ConfigError(f"{name!r} cannot be a sweep axis (one of {', '.join(AXES)})")
            if not values:
                raise ConfigError(f"sweep axis {name!r} has no values")
            if len(set(values)) != len(values):
                raise ConfigError(f"sweep axis {name!r} repeats a value: {values}")
        if self.group_size < 0:
            raise ConfigError(f"--group-size must be >= 0, got {self.group_size}")
        if self.chunk_size < 0:
            raise ConfigError(f"--chunk-size must be >= 0, got {self.chunk_size}")
        self.members()  # every combination must be a valid config
        return self

    def members(self) -> list[Member]:
        names = list(self.axes)
        out = []
        for combo in itertools.product(*(self.axes[n] for n in names)):
            values = dict(zip(names, combo, strict=True))
            try:
                cfg = self.base.replace(**values).validated()
            except ConfigError as exc:
                where = ", ".join(f"{k}={v}" for k, v in values.items())
                raise ConfigError(f"sweep member {where}: {exc}") from None
            out.append(Member(member_name(values), values, cfg))
        return out

    def plan(self) -> DiskPlan:
        return plan_checkpoints([m.config for m in self.members()], self.disk_budget)


def member_name(values: dict[str, Any]) -> str:
    """wd0.3_frac0.2_s1: each swept field's short name and value, in axis order."""
    if not values:
        return "member"
    return "_".join(f"{AXES[k]}{fmt_value(v)}" for k, v in values.items())


def fmt_value(v: Any) -> str:
    if isinstance(v, bool):
        return str(int(v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def make_groups(
    members: Sequence[Member],
    group_size: int,
    size_of: Callable[[RunConfig], int] | None = None,
) -> list[list[str]]:
    """Members of one shape, fewest train examples first (equal sizes share one GEMM block),
    cut into groups of at most group_size (0: `size_of` the shape's first member, each
    shape its own, as a sweep over p needs; without it, one group per shape)."""
    by_shape: dict[tuple[Any, ...], list[Member]] = {}
    for m in members:
        by_shape.setdefault(tuple(getattr(m.config, f) for f in SHAPE_FIELDS), []).append(m)
    groups = []
    for shape_members in by_shape.values():
        ordered = sorted(shape_members, key=lambda m: m.config.n_train)  # stable
        size = group_size or (size_of(ordered[0].config) if size_of else 0) or len(ordered)
        for start in range(0, len(ordered), size):
            groups.append([m.name for m in ordered[start : start + size]])
    return groups


def auto_group_size(cfg: RunConfig, device: str) -> int:
    """Members whose activations fit a quarter of free memory (CPU) or half (GPU), <= 256;
    on a CPU, one for a model small enough to step on one thread (not `stepper.large`).

    Per member and step the fast path holds, for all p^2 inputs, the bag (d_mlp + d_vocab
    floats), logits and the loss's buffers (~3 d_vocab), and as much again in gradients.

    Why one on a CPU: batching a small model's members saves a CPU little (0.99-1.10x at
    one thread), while members trained alone, one worker process per core, each take a core
    of their own with no lock between them (`backends.local_processes`): 16 quick members
    end to end 2.0x one by one, against 1.6x as one group in one process (bench/RESULTS.md);
    and each member is then bit for bit its own single run.
    """
    if device == "cpu" and not large(cfg):
        return 1
    per_member = cfg.p**2 * (cfg.d_mlp + 4 * cfg.d_vocab) * 4 * 2
    free = free_memory(device)
    share = 0.5 if device.startswith("cuda") else 0.25
    return max(1, min(256, int(free * share // per_member)))


def free_memory(device: str) -> int:
    """Bytes free for training on `device` (a CPU: MemAvailable; 4 GB if unknown)."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 10**9


@dataclass
class SweepMeta:
    """sweep.json, checked."""

    base: RunConfig
    axes: dict[str, list[Any]]
    members: list[Member]
    groups: list[list[str]]
    disk_budget: int
    plan: DiskPlan
    device: str
    backend: str = "local"
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    chunk_size: int = 0  # members per pass (`SweepSpec.chunk_size`); absent before: 0

    def to_json(self) -> dict[str, Any]:
        p = self.plan
        return {
            "format": SWEEP_FORMAT,
            "kind": KIND,
            "created": self.created,
            "base": self.base.to_dict(),
            "axes": self.axes,
            "members": [{"name": m.name, "values": m.values} for m in self.members],
            "groups": self.groups,
            "backend": self.backend,
            "device": self.device,
            "disk_budget": self.disk_budget,
            "chunk_size": self.chunk_size,
            "checkpoints": {
                "every": p.every,
                "dense_every": p.dense_every,
                "dense_quota": p.dense_quota,
                "expected_bytes": p.base_bytes,
                "max_bytes": p.base_bytes + p.dense_bytes,
            },
            "versions": self.versions,
        }

    def same_grid(self, spec: SweepSpec) -> bool:
        """Whether `spec` asks for this sweep: same fixed options, axes and disk budget (and
        groups, when it fixes their size)."""
        spec = spec.validated()
        same = (
            self.base.to_dict() == spec.base.to_dict()
            and self.axes == json.loads(json.dumps(spec.axes))
            and self.disk_budget == spec.disk_budget
            and self.chunk_size == spec.chunk_size
        )
        if same and spec.group_size:
            same = self.groups == make_groups(spec.members(), spec.group_size)
        return same

    @classmethod
    def from_json(cls, data: Any, where: Path) -> SweepMeta:
        def bad(what: str) -> SweepError:
            return SweepError(f"{where}: {what}")

        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise bad("not a grok-tui sweep.json")
        if data.get("format") != SWEEP_FORMAT:
            raise bad(f"format {data.get('format')!r} is not {SWEEP_FORMAT}")
        try:
            base = RunConfig.from_dict(data.get("base"))
        except ConfigError as exc:
            raise bad(f"base config: {exc}") from None
        axes = data.get("axes")
        if not isinstance(axes, dict) or not all(
            k in AXES and isinstance(v, list) for k, v in axes.items()
        ):
            raise bad("'axes' must map sweepable fields to lists")
        members = []
        raw_members = data.get("members")
        if not isinstance(raw_members, list) or not raw_members:
            raise bad("'members' must be a non-empty list")
        for entry in raw_members:
            if not isinstance(entry, dict):
                raise bad("a member entry is not an object")
            name, values = entry.get("name"), entry.get("values")
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise bad(f"member name {name!r} is not a plain directory name")
            if not isinstance(values, dict) or set(values) != set(axes):
                raise bad(f"member {name}: values must give each axis")
            try:
                cfg = RunConfig.from_dict({**base.to_dict(), **values})
            except ConfigError as exc:
                raise bad(f"member {name}: {exc}") from None
            members.append(Member(name, values, cfg))
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise bad("member names repeat")
        groups = data.get("groups")
        if (
            not isinstance(groups, list)
            or not all(isinstance(g, list) and g for g in groups)
            or sorted(n for g in groups for n in g) != sorted(names)
        ):
            raise bad("'groups' must split the members, each once")
        ck = data.get("checkpoints")
        numbers = ("every", "dense_every", "dense_quota", "expected_bytes", "max_bytes")
        if not isinstance(ck, dict) or not all(
            isinstance(ck.get(k), int) and ck[k] >= 0 for k in numbers
        ):
            raise bad("'checkpoints' must hold the checkpoint plan")
        budget = data.get("disk_budget")
        if not isinstance(budget, int) or ck["every"] < 1:
            raise bad("'disk_budget' and the checkpoint spacing must be positive integers")
        plan = DiskPlan(
            ck["every"],
            ck["dense_every"],
            ck["dense_quota"],
            ck["expected_bytes"],
            ck["max_bytes"] - ck["expected_bytes"],
            budget,
        )
        strings = {k: data.get(k, "") for k in ("device", "backend", "created")}
        if not all(isinstance(v, str) for v in strings.values()):
            raise bad("'device', 'backend' and 'created' must be strings")
        versions = data.get("versions", {})
        if not isinstance(versions, dict):
            raise bad("'versions' must be an object")
        chunk_size = data.get("chunk_size", 0)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 0:
            raise bad("'chunk_size' must be an integer >= 0")
        return cls(
            base, axes, members, groups, budget, plan, versions=versions, chunk_size=chunk_size,
            **strings,
        )  # fmt: skip


class Sweep:
    """One sweep directory on disk."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def meta_path(self) -> Path:
        return self.path / "sweep.json"

    @property
    def members_dir(self) -> Path:
        return self.path / "members"

    def member_run(self, name: str) -> Run:
        return Run(self.members_dir / name)

    @staticmethod
    def is_sweep(path: Path | str) -> bool:
        return (Path(path) / "sweep.json").is_file()

    # -- create / open ----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path | str, spec: SweepSpec, device: str) -> Sweep:
        """Write sweep.json and every member's run directory (status created)."""
        spec = spec.validated()
        sweep = cls(path)
        if sweep.path.exists() and (not sweep.path.is_dir() or any(sweep.path.iterdir())):
            raise SweepExists(f"sweep directory {sweep.path} already exists and is not empty")
        members = spec.members()
        plan = spec.plan()
        meta = SweepMeta(
            base=spec.base,
            axes=spec.axes,
            members=members,
            groups=make_groups(members, spec.group_size, lambda c: auto_group_size(c, device)),
            disk_budget=spec.disk_budget,
            plan=plan,
            device=device,
            created=now_iso(),
            versions=software_versions(),
            chunk_size=spec.chunk_size,
        )
        # Made aside and renamed into place: several shards started at once with the same
        # grid race to create it, one rename wins, and nobody sees a half-made sweep.
        staging = cls(sweep.path.parent / f".{sweep.path.name}.creating-{uuid.uuid4().hex[:12]}")
        try:
            staging.members_dir.mkdir(parents=True)
            for m in members:
                Run.create(staging.members_dir / m.name, staging.member_config(m, plan), device)
            staging.write_meta(meta)
            os.rename(staging.path, sweep.path)  # onto nothing or an empty directory
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise SweepExists(
                    f"sweep directory {sweep.path} already exists and is not empty"
                ) from None
            raise SweepError(f"cannot create {sweep.path}: {exc.strerror}") from None
        finally:
            shutil.rmtree(staging.path, ignore_errors=True)
        return sweep

    @classmethod
    def create_or_join(cls, path: Path | str, spec: SweepSpec, device: str) -> Sweep:
        """Create the sweep, or open it if another process made it with this very grid."""
        try:
            return cls.create(path, spec, device)
        except SweepExists:
            sweep = cls.open(path)
            if not sweep.meta().same_grid(spec):
                raise SweepError(
                    f"{sweep.path} holds a sweep of another grid; give the same options as "
                    "the process that made it, or --resume DIR"
                ) from None
            return sweep

    @staticmethod
    def member_config(member: Member, plan: DiskPlan) -> RunConfig:
        return member.config.replace(checkpoint_every=plan.every)

    @classmethod
    def open(cls, path: Path | str) -> Sweep:
        sweep = cls(path)
        if not sweep.meta_path.is_file():
            raise SweepError(f"{sweep.path} is not a sweep directory (no sweep.json)")
        sweep.meta()
        return sweep

    def meta(self) -> SweepMeta:
        try:
            data = json.loads(self.meta_path.read_text())
        except OSError as exc:
            raise SweepError(f"cannot read {self.meta_path}: {exc.strerror}") from None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise SweepError(f"{self.meta_path} is not valid JSON") from None
        return SweepMeta.from_json(data, self.meta_path)

    def write_meta(self, meta: SweepMeta) -> None:
        atomic_write_bytes(self.meta_path, json.dumps(meta.to_json(), indent=1).encode() + b"\n")

    # -- members ----------------------------------------------------------------------------------
    def runs(self) -> dict[str, Run]:
        return {m.name: self.member_run(m.name) for m in self.meta().members}

    def policy(self, run: Run, plan: DiskPlan) -> CheckpointPolicy:
        """The member's checkpoint policy, with the dense checkpoints it already used."""
        cfg = run.meta().config
        used = sum(1 for e in run.checkpoint_epochs() if e % plan.every and e != cfg.epochs)
        return CheckpointPolicy(plan.every, plan.dense_every, max(plan.dense_quota - used, 0))


def member_needs_training(run: Run) -> bool:
    """Not done, and not diverged (a NaN member would diverge again: it stays stopped)."""
    return run.meta().status != "done" and not run.diverged()


def default_sweep_path(root: Path, spec: SweepSpec) -> Path:
    return stamped_path(root, f"sweep-{spec.base.preset}")
