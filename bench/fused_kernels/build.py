# ruff: noqa: E402  (imports after the build folder is chosen)
"""Load (compiling if needed) the fused kernels: build.load(native=True|False).

Needs g++ and ninja (`pip install ninja`); builds into $TORCH_EXTENSIONS_DIR (default: a
folder in the system's temporary directory)."""

import os
import pathlib
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
os.environ.setdefault(
    "TORCH_EXTENSIONS_DIR", str(pathlib.Path(tempfile.gettempdir()) / "grok-tui-fused-kernels")
)
from torch.utils.cpp_extension import load_inline

FUNCS = [
    "bag_fwd",
    "bag_fwd_both",
    "bag_t_scatter",
    "bag_t_gather",
    "cross_entropy",
    "cross_entropy3",
]
FLAGS = {
    True: ["-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp-simd"],
    False: ["-O3", "-fopenmp-simd"],
}


def load(native: bool = True, verbose: bool = False):
    src = (HERE / "kernels.cpp").read_text()
    t0 = time.perf_counter()
    mod = load_inline(
        name="fusedk_native" if native else "fusedk_portable",
        cpp_sources=[src],
        functions=FUNCS,
        extra_cflags=FLAGS[native],
        verbose=verbose,
    )
    return mod, time.perf_counter() - t0
