"""HyperLogLog: how many different messages were opened (or clicked), without
a list of them.

    registers = new()                      PRECISION-bit index, one byte each
    add(registers, hash64)                 a message seen (its 64-bit keyed hash)
    estimate(registers) ──> int            about how many different ones

A hash's first :data:`PRECISION` bits pick one of :data:`REGISTERS`
registers, which keeps the longest run of leading zeros (plus one) seen in
the rest. The estimate is Flajolet et al.'s, with linear counting while
many registers are still empty: for a few hundred messages it is exact or
off by one or two; the standard error is 1.04/sqrt(REGISTERS), about 1.6 %,
beyond. Registers are plain bytes, stored as a blob, merged by taking the
larger value of each.

What goes in is a keyed hash (:mod:`subscribers.engagement.counting` keeps
the key per issue, and drops it after 30 days): without the key the
registers cannot be tested against any message id.
"""

from __future__ import annotations

import math

PRECISION = 12
REGISTERS = 1 << PRECISION
_REST = 64 - PRECISION
_REST_MASK = (1 << _REST) - 1


def new() -> bytearray:
    return bytearray(REGISTERS)


def load(blob: bytes | None) -> bytearray:
    """Registers read back from the database (empty ones for a missing or
    damaged blob)."""
    if blob is None or len(blob) != REGISTERS:
        return new()
    return bytearray(blob)


def add(registers: bytearray, hash64: int) -> None:
    """Count one item by its 64-bit hash (uniformly distributed)."""
    index = hash64 >> _REST
    rank = _REST - (hash64 & _REST_MASK).bit_length() + 1
    if rank > registers[index]:
        registers[index] = rank


def merge(registers: bytearray, other: bytes) -> None:
    """Make ``registers`` count what ``other`` counted too."""
    for index, value in enumerate(other):
        if value > registers[index]:
            registers[index] = value


def estimate(registers: bytes | bytearray) -> int:
    """About how many different items were added."""
    m = len(registers)
    zeros = registers.count(0)
    if zeros == m:
        return 0
    alpha = 0.7213 / (1 + 1.079 / m)
    raw = alpha * m * m / sum(2.0 ** -value for value in registers)
    if raw <= 2.5 * m and zeros:
        return round(m * math.log(m / zeros))  # linear counting: small numbers
    return round(raw)
