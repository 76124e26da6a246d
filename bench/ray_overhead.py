"""What the Ray backend costs against the local one, for the same small sweep.

    .venv/bin/python bench/ray_overhead.py [--rounds 3] [--groups 4] [--epochs 200]

Startup: `ray.init` on this machine plus the first task in a fresh worker that imports the
trainer (torch): paid once per sweep. Per group: the same sweep (one member per group, p = 13)
trained by the local backend in this process and by Ray tasks on a warm local Ray with one
CPU slot (so its tasks run one after another, like the local loop), alternating, medians;
(Ray - local) / groups is what a group costs on top of its training. Both use one torch
thread. A Ray with two slots is timed too: on two cores its two tasks run side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_sweep(root: Path, name: str, groups: int, epochs: int):
    from grok_tui.engine.core.config import preset
    from grok_tui.engine.lab.sweep import Sweep, SweepSpec

    base = preset("quick").replace(p=13, frac_train=0.5, lr=1e-3, epochs=epochs,
                                   checkpoint_every=50)  # fmt: skip
    spec = SweepSpec(base, {"seed": list(range(groups))}, 100 * 10**6, group_size=1)
    return Sweep.create(root / name, spec, "cpu")


def warm_import() -> float:
    t0 = time.perf_counter()
    import grok_tui.engine.training.train  # noqa: F401  (torch and the trainer, as a task needs them)

    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=200)
    args = ap.parse_args()

    import ray
    import torch

    from grok_tui.engine.lab.backends import train_sweep
    from grok_tui.engine.lab.ray_backend import train_on_ray

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="ray_overhead_"))
    t0 = time.perf_counter()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    t_init = time.perf_counter() - t0
    t_import = ray.get(ray.remote(warm_import).remote())
    t_start = time.perf_counter() - t0
    print(f"ray.init {t_init:.2f} s; first task (fresh worker, imports torch: {t_import:.2f} s) "
          f"-> startup {t_start:.2f} s")  # fmt: skip
    noop = ray.remote(lambda: None)
    trips = []
    for _ in range(20):
        t = time.perf_counter()
        ray.get(noop.remote())
        trips.append(time.perf_counter() - t)
    print(f"an empty task, warm worker: {statistics.median(trips) * 1e3:.1f} ms (median of 20)")

    local, on_ray = [], []
    for r in range(args.rounds):
        for kind in ("local", "ray") if r % 2 == 0 else ("ray", "local"):
            sweep = make_sweep(root, f"{kind}{r}", args.groups, args.epochs)
            t = time.perf_counter()
            if kind == "local":
                train_sweep(sweep, "cpu")
                local.append(time.perf_counter() - t)
            else:
                train_on_ray(sweep, "cpu", cpus_per_group=1)
                on_ray.append(time.perf_counter() - t)
        print(f"round {r}: local {local[-1]:.2f} s, ray {on_ray[-1]:.2f} s", flush=True)
    ray.shutdown()

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.get(ray.remote(warm_import).remote())
    two = []
    for r in range(args.rounds):
        sweep = make_sweep(root, f"two{r}", args.groups, args.epochs)
        t = time.perf_counter()
        train_on_ray(sweep, "cpu", cpus_per_group=1)
        two.append(time.perf_counter() - t)
    ray.shutdown()

    ml, mr, m2 = (statistics.median(x) for x in (local, on_ray, two))
    print(f"{args.groups} groups x 1 member x {args.epochs} epochs (p = 13), medians of "
          f"{args.rounds}:")  # fmt: skip
    print(f"  local backend            {ml:.2f} s ({ml / args.groups:.2f} s / group)")
    print(f"  ray, 1 slot (in turn)    {mr:.2f} s ({mr / args.groups:.2f} s / group)")
    print(f"  overhead per group       {(mr - ml) / args.groups:+.2f} s ({mr / ml:.2f}x)")
    print(f"  ray, 2 slots (2 at once) {m2:.2f} s ({ml / m2:.2f}x the local speed)")


if __name__ == "__main__":
    main()
