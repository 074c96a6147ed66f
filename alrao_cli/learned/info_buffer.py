"""The information buffer of reversible learning: one arbitrary-precision integer per entry.

Maclaurin, Duvenaud & Adams (2015), "Gradient-based Hyperparameter Optimization through
Reversible Learning", Sec. 2.3: multiplying a fixed-point velocity by γ < 1 throws away
about log2(1/γ) bits per entry, which reversal needs back. They are kept in an
"information buffer": a natural number per entry onto which small digits are pushed and
popped, in any base (multiplying by γ = n/d uses both n and d, Algorithm 3).

Python integers would do, one object per entry; this keeps the same numbers in a
vectorised form instead: entry j's buffer is Σ_k limbs[k][j] · 2^(31k), with the limbs in
int32 tensors (31 bits used, so every intermediate fits in int64). A push or a pop is one
sweep over the limbs, the limbs grow (and shrink) with the largest number, and the
memory is 4 bytes per entry per 31 bits of that number, close to the information held.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

LIMB_BITS = 31
_LIMB_MASK = (1 << LIMB_BITS) - 1
MAX_BASE = 1 << 16  # keeps limb · base + carry below 2^47


class InformationBuffer:
    """A natural number per entry (all zero at first) with digit push/pop in any base ≤ 2^16."""

    def __init__(self, size: int, device: torch.device | str | None = None) -> None:
        self.size = size
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._limbs: list[Tensor] = []  # least significant first; the top one is never all zero

    def push(self, digit: Tensor, base: Tensor | int) -> None:
        """buffer ← buffer · base + digit, entrywise (requires 0 ≤ digit < base ≤ 2^16)."""
        _check_base(base)
        carry = digit.to(torch.int64)
        for k, limb in enumerate(self._limbs):
            total = limb.to(torch.int64) * base + carry
            self._limbs[k] = (total & _LIMB_MASK).to(torch.int32)
            carry = total >> LIMB_BITS
        if bool(carry.any()):
            self._limbs.append(carry.to(torch.int32))

    def pop(self, base: Tensor | int) -> Tensor:
        """The last digit pushed in ``base``, removed: (buffer mod base), buffer ← buffer // base.

        An entry whose buffer is 0 yields 0, as the integer would: the buffer needs no
        starting bits.
        """
        _check_base(base)
        remainder = torch.zeros(self.size, dtype=torch.int64, device=self.device)
        for k in reversed(range(len(self._limbs))):
            total = (remainder << LIMB_BITS) | self._limbs[k].to(torch.int64)
            self._limbs[k] = torch.div(total, base, rounding_mode="floor").to(torch.int32)
            remainder = total - self._limbs[k].to(torch.int64) * base
        while self._limbs and not bool(self._limbs[-1].any()):
            self._limbs.pop()
        return remainder

    def is_empty(self) -> bool:
        """Whether every entry is back to 0 (as after reversing everything pushed)."""
        return not self._limbs

    def nbytes(self) -> int:
        """Memory held by the numbers now."""
        return sum(limb.numel() * limb.element_size() for limb in self._limbs)

    def state_dict(self) -> dict[str, Any]:
        """The numbers, as a [limbs, size] int32 tensor."""
        limbs = torch.stack(self._limbs) if self._limbs else torch.zeros(0, self.size, dtype=torch.int32)
        return {"size": self.size, "limbs": limbs.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take the numbers of a buffer saved with :meth:`state_dict`."""
        limbs: Tensor = state["limbs"]
        if state["size"] != self.size or limbs.dim() != 2 or limbs.shape[1] != self.size:
            raise ValueError(
                f"information buffer of size {state['size']} cannot load into one of size {self.size}"
            )
        self._limbs = [limb.to(self.device, torch.int32).clone() for limb in limbs]


def _check_base(base: Tensor | int) -> None:
    """Bases outside [1, 2^16] would overflow the int64 sweep or divide by zero."""
    low, high = (int(base.min()), int(base.max())) if isinstance(base, Tensor) else (base, base)
    if low < 1 or high > MAX_BASE:
        raise ValueError(f"information buffer bases must lie in [1, {MAX_BASE}], got [{low}, {high}]")
