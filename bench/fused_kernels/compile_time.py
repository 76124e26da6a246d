"""Cold compile (the build folder cleared) and cached load of both builds, each in a fresh
process: .venv/bin/python bench/fused_kernels/compile_time.py (needs g++ and ninja)."""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
BUILDS = pathlib.Path(
    os.environ.get("TORCH_EXTENSIONS_DIR")
    or pathlib.Path(tempfile.gettempdir()) / "grok-tui-fused-kernels"  # as build.py
)
code = (
    "import sys; sys.path.insert(0, %r); import build, torch; "
    "m, t = build.load(%s); print(f'{t:.2f}')"
)
for native in (True, False):
    name = "fusedk_native" if native else "fusedk_portable"
    shutil.rmtree(BUILDS / name, ignore_errors=True)
    times = []
    for _ in range(3):  # cold, then cached twice
        out = subprocess.run(
            [sys.executable, "-c", code % (str(HERE), native)],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(out.stdout.strip().splitlines()[-1])
    print(f"{name}: cold compile+load {times[0]} s, cached load {times[1]} s, {times[2]} s")
