"""The number theory of Z_p that the ops and the bases share: the multiplicative group.

Z_p^* is cyclic of order p - 1: every non-zero token is a power of one generator g, so a
multiplicative op is addition of discrete logs. Both the ops (`ops.py`: what a label is, the
circuit's coordinate) and the log basis (`fourier.py`) read tokens in that log order; this
module is the one place both import (it imports neither).
"""

from __future__ import annotations

import functools

import numpy as np


def prime_factors(n: int) -> list[int]:
    """The distinct primes dividing n, ascending."""
    out, f = [], 2
    while f * f <= n:
        if n % f == 0:
            out.append(f)
            while n % f == 0:
                n //= f
        f += 1
    if n > 1:
        out.append(n)
    return out


@functools.lru_cache(maxsize=16)
def generator(p: int) -> int:
    """The smallest primitive root mod p: g^((p-1)/q) != 1 for every prime q dividing p - 1."""
    qs = prime_factors(p - 1)
    for g in range(2, p):
        if all(pow(g, (p - 1) // q, p) != 1 for q in qs):
            return g
    if p == 2:
        return 1
    raise ValueError(f"{p} has no primitive root (not a prime?)")


@functools.lru_cache(maxsize=16)
def discrete_log(p: int) -> np.ndarray:
    """log_g(t) for t = 0..p-1 (entry 0, which has no log, is -1); g = `generator(p)`."""
    g = generator(p)
    out = np.full(p, -1, dtype=np.int64)
    t = 1
    for a in range(p - 1):
        out[t] = a
        t = t * g % p
    out.setflags(write=False)
    return out


def log_order(p: int) -> np.ndarray:
    """Tokens 1..p-1 sorted by their discrete log (g^0, g^1, ...), then 0."""
    powers = np.argsort(discrete_log(p)[1:]) + 1
    return np.concatenate([powers, [0]])
