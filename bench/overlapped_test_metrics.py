"""The test metrics on a thread of their own, overlapping the rest (issue 21), in one process.

A large model's epoch on two cores (the paper preset: two shards side by side) leaves one
core idle while the caller runs the serial O(p) work: the table forward, the shards' sum,
the table backward and AdamW (~3.7 of 20.2 ms in "An epoch's anatomy"). The test metrics
of epoch t read only the table of epoch t, so they could run on a third thread while the
caller goes on: through the serial part and the next epoch's train shards, joined before
the next epoch's test metrics start (one epoch in flight at most). Every number stays bit
for bit the step's (checked below); the question is whether two cores run three threads
faster than the step runs its two.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/overlapped_test_metrics.py [--blocks 4]

Blocks of each alternate; the ratio is the median of per-block ratios. Measured once
(bench/RESULTS.md, "An epoch's anatomy"): slower, so not built into the trainer.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train_speed import cpu_model, load, ratio_text

from grok_tui.engine.core import closed_form as cf
from grok_tui.engine.core.config import RunConfig
from grok_tui.engine.core.model import paper_init
from grok_tui.engine.core.threads import torch_threads
from grok_tui.engine.training.stepper import MemberState, Stepper
from grok_tui.engine.training.train import keep_freed_memory


class Overlapped:
    """A one-member stepper's epochs with the test metrics on their own thread."""

    def __init__(self, stepper: Stepper) -> None:
        if stepper.shard_pool is None:
            raise SystemExit("needs two shards side by side: two torch threads or more")
        self.stepper, self.step = stepper, stepper.chunks[0].closed_form
        self.tests = ThreadPoolExecutor(1, thread_name_prefix="test-metrics")
        self.pending: Future | None = None
        self.metrics: list[tuple[torch.Tensor, torch.Tensor]] = []  # (train sums, test sums)

    def _test(self, f: cf.TableForward, halves: tuple, out: torch.Tensor) -> None:
        with torch_threads(1):
            for k, shard in enumerate(self.step.shards):  # in shard order, as the step
                shard.test_metrics(f, halves, out[k])

    def epoch(self) -> None:
        st, step = self.stepper, self.step
        w, grads, stablemax = st._views[0]
        views = step.views(w, grads)
        with torch_threads(1):
            f = cf.table_forward(views, step.train.p)
            halves = cf.read_halves(f)
        if self.pending is not None:
            self.pending.result()  # epoch t - 1's test metrics: their buffers are reused
        for shard in step.shards:
            shard._scratch_for(f)  # allocated here, at the first epoch, not on two threads
        tests = f.table.new_empty(len(step.shards), st.n_members, 2)
        self.pending = self.tests.submit(self._test, f, halves, tests)
        jobs = []
        for shard in step.shards:
            sums = f.table.new_zeros(st.n_members, 2, 2)  # the test columns stay 0 here
            jobs.append(
                functools.partial(
                    shard.train_gradients, f, halves, stablemax, step.gradient_floor, sums
                )
            )
        results = st.shard_pool.run(jobs)
        metrics = step.backward(views, f, results, st.shard_pool.run)
        self.metrics.append((metrics, tests))
        st.grads = list(st._grad_list)
        st.step()

    def finish(self) -> None:
        if self.pending is not None:
            self.pending.result()

    def close(self) -> None:
        self.finish()
        self.tests.shutdown()


def same_numbers(a: Stepper, b: Overlapped, epochs: int) -> bool:
    """Both from the same weights for `epochs`: equal weights and metrics, bit for bit."""
    want = []
    for _ in range(epochs):
        want.append(a.measure().clone())
        a.step()
    for _ in range(epochs):
        b.epoch()
    b.finish()
    counts = b.step.counts[:, 0, 1]  # the test examples per member
    ok = torch.equal(a.flat, b.stepper.flat)
    for m, (metrics, tests) in zip(want, b.metrics, strict=True):
        test = tests[0] + sum(tests[1:]) if len(tests) > 1 else tests[0]
        test = test / counts[:, None]
        ok &= torch.equal(m[:, [0, 2]], metrics[:, [0, 2]]) and torch.equal(m[:, [1, 3]], test)
    b.metrics.clear()
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=30, help="epochs per block")
    args = parser.parse_args()
    keep_freed_memory()
    cfg = RunConfig()
    init = paper_init(cfg)
    now = Stepper([cfg], "cpu", [MemberState(0, {k: v.clone() for k, v in init.items()})])
    alt = Overlapped(Stepper([cfg], "cpu", [MemberState(0, dict(init))]))
    print("bit for bit the step's numbers over 5 epochs:", same_numbers(now, alt, 5))
    load_before = load()
    ms: dict[str, list[float]] = {"the step as it is": [], "test metrics overlapped": []}
    for _ in range(args.blocks):
        for name, epoch in zip(ms, (lambda: (now.measure(), now.step()), alt.epoch), strict=True):
            start = time.perf_counter()
            for _ in range(args.epochs):
                epoch()
            alt.finish()
            ms[name].append(1e3 * (time.perf_counter() - start) / args.epochs)
            alt.metrics.clear()
    alt.close()
    now.close()
    alt.stepper.close()
    print(f"{cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"paper preset; {load_before} before, {load()} after")  # fmt: skip
    for name, times in ms.items():
        print(f"{name}: {statistics.median(times):.2f} ms/epoch "
              f"(blocks: {', '.join(f'{t:.1f}' for t in times)})")  # fmt: skip
    print(f"overlapped vs as it is: {ratio_text(*ms.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
