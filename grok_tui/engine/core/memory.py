"""Give the heap that large temporaries leave behind back to the operating system.

Analysing one checkpoint allocates tens of megabytes of short-lived tensors (p^2 x d_mlp
activations) and keeps a few small arrays (its record). glibc serves both from the same
heap once its dynamic mmap threshold has risen past the temporaries' size, so each small
survivor pins the heap top above freed temporaries, which then stay resident: about 15 MB
per checkpoint at p = 113 (bench/RESULTS.md, "Memory per checkpoint"). `malloc_trim(0)`
returns every free page of every arena (glibc >= 2.8 also madvises the middle of a heap).
Records now run their forward a block of neurons at a time (measures/record.py), which
alone removed the growth in tests; the trim stays as the backstop for the larger
temporaries elsewhere (snapshots, excluded losses), and bounds the peak of a record too,
called after each block (freed blocks split by small survivors took new pages: 75-85 MB
where 25 were live); a call costs microseconds when there is little to return (measured
8 us; 50 ms for the first, loading libc and freeing 120 MB).
Elsewhere (macOS, musl, Windows) this is a no-op: their allocators behave otherwise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return freed heap pages to the OS; True if the allocator could be asked to."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
