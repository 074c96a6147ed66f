"""Fixed-point numbers and exactly invertible arithmetic on them, for reversible SGD.

Maclaurin, Duvenaud & Adams (2015), Sec. 2.3: floating-point SGD cannot be run
backwards (w + αv - αv ≠ w in floats), so weights and velocities are kept as integers
counting units of 2^-radix_bits. Then

* adding a quantity computed from the *other* variable is undone exactly by
  subtracting the same quantity, recomputed from the same bits (integer addition is
  exact and the float computation is deterministic);
* multiplying by a rational γ = n/d loses the remainder of the division by d; Algorithm 3
  ("exact multiplication by a ratio") keeps it on the information buffer and takes
  digits back in base n, so the map (value, buffer) → (value, buffer) is a bijection
  whose inverse is the same procedure with n and d swapped.

γ is approximated by n / 2^16 (n a positive integer ≤ 2^16), so the momentum actually
used is the quantised one; :func:`quantize_ratio` says which.
"""

from __future__ import annotations

import torch
from torch import Tensor

from alrao_cli.learned.info_buffer import MAX_BASE, InformationBuffer

RATIO_DENOMINATOR = MAX_BASE  # γ ≈ n / 2^16
_LIMIT = 2.0**62  # room for adding two in-range numbers without int64 overflow


def to_fixed(x: Tensor, radix_bits: int) -> Tensor:
    """round(x · 2^radix_bits) as int64; OverflowError if it leaves ±2^62 or is not finite."""
    scaled = x.to(torch.float64) * 2.0**radix_bits
    if not bool(torch.isfinite(scaled).all()) or bool((scaled.abs() >= _LIMIT).any()):
        raise OverflowError(
            f"a value left the fixed-point range ±2^{62 - radix_bits} (radix_bits={radix_bits}): "
            "the run diverged or needs fewer fractional bits"
        )
    return torch.round(scaled).to(torch.int64)


def from_fixed(i: Tensor, radix_bits: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """i · 2^-radix_bits as ``dtype`` (deterministic, so both directions see the same floats)."""
    return (i.to(torch.float64) * 2.0**-radix_bits).to(dtype)


def quantize_ratio(ratio: Tensor) -> Tensor:
    """The numerators n with n / 2^16 nearest to ``ratio`` (int64), refusing ratios outside (0, 1]."""
    if not bool(((ratio > 0) & (ratio <= 1)).all()):
        low, high = float(ratio.min()), float(ratio.max())
        raise ValueError(f"momentum decay γ must lie in (0, 1], got values in [{low}, {high}]")
    numerator = torch.round(ratio.to(torch.float64) * RATIO_DENOMINATOR)
    return numerator.clamp(1, RATIO_DENOMINATOR).to(torch.int64)


def checked_add(a: Tensor, b: Tensor) -> Tensor:
    """a + b on int64, refusing results outside ±2^62 (they would overflow later)."""
    total = a + b
    if bool((total.abs() >= int(_LIMIT)).any()):
        raise OverflowError("a fixed-point weight or velocity overflowed: the run diverged")
    return total


def multiply_ratio(value: Tensor, numerator: Tensor, buffer: InformationBuffer) -> Tensor:
    """value · n / 2^16, within one unit, exactly invertible with :func:`divide_ratio`.

    The paper's trick (Sec. 2.3, Algorithm 3) in a slightly different order: pop a digit
    r < n off the buffer, form x = value · n + r (a bijection of (value, r)), keep
    x // d and push x mod d. Algorithm 3 divides first and adds the popped digit last,
    which leaves an error of up to n units (2^-36 at the default radix); popping first
    puts the digit below the division, so the result is off by less than one unit. The
    buffer grows by the same log2(d/n) bits per entry and call, after a one-time 16 bits
    (the first call pops nothing from an empty buffer). x is formed in two halves
    (value = high · d + low) so that nothing overflows int64.
    """
    high, low = (
        torch.div(value, RATIO_DENOMINATOR, rounding_mode="floor"),
        torch.remainder(value, RATIO_DENOMINATOR),
    )
    below = low * numerator + buffer.pop(numerator)  # x - high · d · n, in [0, d · n)
    buffer.push(torch.remainder(below, RATIO_DENOMINATOR), RATIO_DENOMINATOR)
    return high * numerator + torch.div(below, RATIO_DENOMINATOR, rounding_mode="floor")


def divide_ratio(value: Tensor, numerator: Tensor, buffer: InformationBuffer) -> Tensor:
    """The inverse of :func:`multiply_ratio`: x = value · d + (popped digit), then x // n."""
    high, low = torch.div(value, numerator, rounding_mode="floor"), torch.remainder(value, numerator)
    below = low * RATIO_DENOMINATOR + buffer.pop(RATIO_DENOMINATOR)  # x - high · n · d, in [0, n · d)
    buffer.push(torch.remainder(below, numerator), numerator)
    return high * RATIO_DENOMINATOR + torch.div(below, numerator, rounding_mode="floor")
