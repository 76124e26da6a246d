"""`grok-tui sweep` beyond one process: --shard I/N, --devices LIST, --backend ray.

Each of these trains headless (a live table on stderr; `grok-tui open DIR` follows the
sweep from anywhere), through the claims that let any number of them share one sweep
directory (engine/lab/backends.py). The options are checked with the rest of the command
line (`distribution_from_args`); devices are resolved and Ray joined after (`place`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import torch

from grok_tui.cli.options import say
from grok_tui.console.sweep import train_sweep_headless
from grok_tui.engine.core.config import ConfigError
from grok_tui.engine.core.device import resolve_device
from grok_tui.engine.lab.backends import parse_shard, shard_groups, train_on_devices, train_sweep
from grok_tui.engine.lab.ray_backend import connect, task_device, train_on_ray
from grok_tui.engine.lab.sweep import Sweep


@dataclass
class Distribution:
    """How this process takes part in training a sweep."""

    shard: tuple[int, int] | None = None
    device_names: list[str] | None = None  # --devices as given
    backend: str = "local"
    address: str | None = None
    cpus_per_group: int = 1
    lease_s: float | None = None
    devices: list[str] | None = None  # --devices resolved (`place`)
    _ray_started: bool = False

    def place(self, requested: str, group_size: int | None, connect_ray: bool = True) -> str:
        """The device the groups train on (sweep.json records it and sizes groups for it):
        --devices resolved, or Ray joined (unless `connect_ray` is False: a dry run)."""
        if self.device_names:
            self.devices = [resolve_device(n) for n in self.device_names]
            return self.devices[0]
        if self.backend != "ray" or not connect_ray:
            return resolve_device(requested)
        ray, self._ray_started = connect(self.address)
        device = task_device(ray, requested)
        if device == "cuda" and not group_size and not torch.cuda.is_available():
            raise ConfigError(
                "--backend ray on GPUs this machine lacks: give --group-size N (members per GPU)"
            )
        return device

    def close(self) -> None:
        """Shut down a Ray this process started."""
        if self._ray_started:
            import ray

            ray.shutdown()
            self._ray_started = False

    def options(self) -> dict[str, Any]:
        return {} if self.lease_s is None else {"lease_s": self.lease_s}

    def run(self, sweep: Sweep, device: str) -> int:
        """Train this process's share of the sweep headless; the exit code."""
        groups = shard_groups(len(sweep.meta().groups), self.shard)
        if self.shard is not None:
            say(f"shard {self.shard[0]}/{self.shard[1]}: groups {describe(groups)}")
            if not groups:
                return 0
        if self.backend == "ray":

            def runner(on_event: Any, control: Any, say: Any) -> list[Any]:
                return train_on_ray(sweep, device, groups, on_event, control,
                                    address=self.address, cpus_per_group=self.cpus_per_group,
                                    **self.options())  # fmt: skip

            where = f"Ray at {self.address}" if self.address else "Ray"
        elif self.devices:
            devices = self.devices

            def runner(on_event: Any, control: Any, say: Any) -> list[Any]:
                return train_on_devices(sweep, devices, groups, on_event, control, say=say,
                                        **self.options())  # fmt: skip

            where = ", ".join(devices)
        else:

            def runner(on_event: Any, control: Any, say: Any) -> list[Any]:
                return train_sweep(sweep, device, on_event, control, groups, say=say,
                                   **self.options())  # fmt: skip

            where = device
        say(f"training on {where}; follow it from anywhere with: grok-tui open {sweep.path}")
        return train_sweep_headless(sweep, where, runner=runner)


def describe(groups: list[int]) -> str:
    if not groups:
        return "none (more shards than groups)"
    return ", ".join(map(str, groups[:12])) + (f" ... ({len(groups)})" if len(groups) > 12 else "")


def distribution_from_args(args: argparse.Namespace) -> Distribution | None:
    """The options beyond one process, checked; None when none is given."""
    given = (
        args.shard is not None
        or args.devices is not None
        or args.backend != "local"
        or args.address is not None
        or args.cpus_per_group is not None
        or args.claim_lease is not None
    )
    if not given:
        return None
    dist = Distribution(backend=args.backend, address=args.address)
    if args.shard is not None:
        dist.shard = parse_shard(args.shard)
        if args.resume is None and args.sweep_dir is None:
            raise ConfigError(
                "--shard needs --sweep-dir DIR (the same for every shard) or --resume DIR"
            )
    if args.backend != "ray":
        for flag, value in (("--address", args.address), ("--cpus-per-group", args.cpus_per_group)):
            if value is not None:
                raise ConfigError(f"{flag} is for --backend ray")
    if args.cpus_per_group is not None:
        if args.cpus_per_group < 1:
            raise ConfigError(f"--cpus-per-group must be >= 1, got {args.cpus_per_group}")
        dist.cpus_per_group = args.cpus_per_group
    if args.claim_lease is not None:
        if not args.claim_lease > 0:
            raise ConfigError(f"--claim-lease must be a positive number, got {args.claim_lease}")
        dist.lease_s = args.claim_lease
    if args.devices is not None:
        if args.backend == "ray":
            raise ConfigError("--devices is for the local backend: Ray gives each task its GPU")
        if args.device != "auto":
            raise ConfigError("give --devices LIST or --device, not both")
        names = [d.strip() for d in args.devices.split(",")]
        if not all(names):
            raise ConfigError(f"--devices {args.devices!r}: an empty device name")
        dist.device_names = names
    return dist
