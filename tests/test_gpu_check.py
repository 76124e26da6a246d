"""bench/gpu_check.sh runs end to end without a GPU (--device cpu --small) and writes every
figure the GPU day needs (issues 21 and 24), so the script is known to work before a GPU is
lent."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES = [
    "environment",
    "device",
    "tests_device",
    "tests_rest",
    "train_speed_reference",
    "train_speed_fast",
    "train_speed_floor",
    "train_speed_with_io",
    "paper_run_wall",
    "paper_run_grok_epoch",
    "snapshot",
    "progress_measures",
    *(f"sweep_{size}_{what}" for size in ("smaller", "larger") for what in
      ("members", "one_by_one", "batched")),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils' timeout")
def test_gpu_check_writes_every_figure_on_a_cpu(tmp_path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    env.pop("GROK_TUI_TEST_DEVICE", None)
    venv = ROOT / ".venv" / "bin" / "python"
    if not venv.exists():  # the script runs .venv's python; point it at this one
        pytest.skip(f"no {venv}; run scripts/setup --test first (this python: {sys.executable})")
    done = subprocess.run(
        [
            "bash",
            str(ROOT / "bench" / "gpu_check.sh"),
            "--device",
            "cpu",
            "--small",
            "--no-setup",
            "--limit-scale",
            "20",
        ],  # a busy neighbour may slow each step many times over
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=7200,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = (tmp_path / "gpu_check.txt").read_text()
    figures = dict(re.findall(r"^figure (\w+): (.*)$", report, re.MULTILINE))
    assert sorted(figures) == sorted(FIGURES), report
    missing = {k: v for k, v in figures.items() if v.startswith("MISSING")}
    assert not missing, report
    assert figures["device"].startswith("cpu")
    assert " passed" in figures["tests_device"] and "failed" not in figures["tests_device"]
    assert " passed" in figures["tests_rest"] and "failed" not in figures["tests_rest"]
    assert figures["paper_run_wall"].startswith("paper run: done, 20 epochs")
    steps = re.findall(r"^step (\w+): (.*)$", report, re.MULTILINE)
    assert all(result.startswith("rc=0 ") for _, result in steps), report
