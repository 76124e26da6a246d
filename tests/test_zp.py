"""The multiplicative group of Z_p (engine/core/zp.py), checked by brute force."""

from __future__ import annotations

from grok_tui.engine.core import zp

PRIMES = (3, 5, 7, 23, 53, 113)


def test_prime_factors_by_trial_division() -> None:
    for n in (1, 2, 12, 22, 52, 97, 112, 360, 1001):
        brute = [q for q in range(2, n + 1) if n % q == 0 and all(q % d for d in range(2, q))]
        assert zp.prime_factors(n) == brute


def test_generator_and_discrete_log_by_brute_force() -> None:
    for p in PRIMES:
        g = zp.generator(p)
        powers = {pow(g, a, p) for a in range(p - 1)}
        assert powers == set(range(1, p))  # g generates Z_p^*
        assert all(len({pow(h, a, p) for a in range(p - 1)}) < p - 1 for h in range(2, g))
        log = zp.discrete_log(p)
        assert log[0] == -1
        assert all(pow(g, int(log[t]), p) == t for t in range(1, p))


def test_log_order_lists_the_powers_of_the_generator_then_zero() -> None:
    for p in PRIMES:
        g = zp.generator(p)
        assert zp.log_order(p).tolist() == [pow(g, a, p) for a in range(p - 1)] + [0]
