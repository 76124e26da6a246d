"""The Ray backend: one Ray task per group, writing into the sweep directory all nodes share.

Each task asks Ray for one GPU (or `cpus_per_group` CPU slots on a CPU cluster), claims its
group and trains it (`backends.run_groups`), so a task Ray retries after its worker died
finds its own claim (same task id), takes it over at once and resumes every member from its
last checkpoint. Ray is imported here only: `pip install grok-tui[ray]`.

The package and torch must be installed on every node, and the sweep directory must be on
a filesystem every node mounts at the same path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from grok_tui.engine.core.config import ConfigError
from grok_tui.engine.lab.backends import SweepEvent, Waiting, results_from_dir, run_groups
from grok_tui.engine.lab.claims import DEFAULT_LEASE_S
from grok_tui.engine.lab.sweep import Sweep
from grok_tui.engine.store.runs import RunError
from grok_tui.engine.training.train import Finished, TrainControl

MAX_RETRIES = 3  # attempts after a worker dies (a Python exception is not retried)


def import_ray() -> Any:
    try:
        import ray
    except ModuleNotFoundError:
        raise ConfigError(
            "--backend ray needs Ray: pip install 'grok-tui[ray]' (or pip install ray)"
        ) from None
    return ray


def connect(address: str | None) -> tuple[Any, bool]:
    """Join the cluster at `address` (None: RAY_ADDRESS, else a new local Ray); returns the
    module and whether this call started Ray (then the caller shuts it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    try:
        ray.init(
            address=address or None,
            include_dashboard=False,
            log_to_driver=False,  # the workers' output would tear the live table
            logging_level="ERROR",
            configure_logging=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "the local machine"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot start or join Ray at {where}: {first}") from None
    return ray, True


def task_device(ray: Any, requested: str) -> str:
    """The device every task trains on: 'cuda' (the GPU Ray gives the task) or 'cpu'."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if requested == "auto":
        return "cuda" if gpus >= 1 else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested.startswith("cuda"):
        if gpus < 1:
            raise ConfigError(f"--device {requested}: the Ray cluster has no GPU")
        return "cuda"  # Ray sets CUDA_VISIBLE_DEVICES per task: its GPU is cuda:0 there
    raise ConfigError(f"--device {requested}: the Ray backend trains on cuda or cpu")


def group_task(sweep_path: str, group: int, device: str, lease_s: float, threads: int) -> list:
    """Runs in a Ray worker: claim the group and train it; its members' (status, epoch,
    message, name)."""
    import ray
    import torch

    if device == "cpu":
        torch.set_num_threads(threads)
    token = ray.get_runtime_context().get_task_id() or ""
    results = run_groups(Sweep(sweep_path), device, [group], lease_s=lease_s, token=token)
    return [(r.status, r.epoch, r.message, r.member) for r in results]


def train_on_ray(
    sweep: Sweep,
    device: str,
    groups: Sequence[int] | None = None,
    on_event: Callable[[SweepEvent], None] | None = None,
    control: TrainControl | None = None,
    *,
    address: str | None = None,
    cpus_per_group: int = 1,
    lease_s: float = DEFAULT_LEASE_S,
    max_retries: int = MAX_RETRIES,
    tick_s: float = 0.5,
) -> list[Finished]:
    """Run each group as a Ray task and wait for all; returns the members' Finished, read
    from the directory. A stop request cancels the tasks (members resume from their last
    checkpoints with `sweep --resume`)."""
    ray, started = connect(address)
    try:
        todo = list(range(len(sweep.meta().groups)) if groups is None else groups)
        on_task = task_device(ray, device)
        if on_task == "cuda":
            resources = {"num_gpus": 1, "num_cpus": 1}
        else:
            resources = {"num_cpus": cpus_per_group}
        remote = ray.remote(max_retries=max_retries, retry_exceptions=False)(group_task)
        path = str(sweep.path.resolve())
        refs = {
            remote.options(name=f"grok-tui-group-{g}", **resources).remote(
                path, g, on_task, lease_s, cpus_per_group
            ): g
            for g in todo
        }
        pending, errors, cancelled = list(refs), [], False
        emit = on_event or (lambda event: None)
        while pending:
            if control is not None and control.stop.is_set() and not cancelled:
                for ref in pending:
                    ray.cancel(ref)
                cancelled = True
            ready, pending = ray.wait(pending, num_returns=1, timeout=tick_s)
            for ref in ready:
                try:
                    ray.get(ref)
                except Exception as exc:  # the task failed for good (retries spent)
                    if not cancelled:
                        first = str(exc).strip().splitlines()
                        errors.append(f"group {refs[ref]}: {first[-1] if first else exc!r}")
            emit(Waiting([], []))
        if errors:
            raise RunError("; ".join(errors))
        return results_from_dir(sweep, todo)
    finally:
        if started:
            ray.shutdown()
