"""Non-finite steps: a step whose loss or gradient holds NaN or inf is skipped (no weight changes), logged and
counted; more than `limit` in a row stop the run with a one-line FloatingPointError naming the step and the likely
cause."""
from __future__ import annotations


class NonFiniteGuard:
    """Counts skipped steps, in a row and in total; `record` raises once too many come in a row."""

    def __init__(self, limit: int, in_a_row: int = 0, total: int = 0) -> None:
        self.limit, self.in_a_row, self.total = limit, in_a_row, total

    def record(self, finite: bool, step: int, lr: float) -> None:
        """Note whether step `step` (1-based) was finite; raise FloatingPointError after `limit` skips in a row."""
        if finite:
            self.in_a_row = 0
            return
        self.in_a_row += 1
        self.total += 1
        if self.in_a_row > self.limit:
            raise FloatingPointError(
                f"training diverged: the loss or gradient was NaN or inf at {self.in_a_row} steps in a row up to step "
                f"{step} (learning rate {lr:.3g}); those steps were skipped and nothing non-finite was saved. Lower "
                f"optim.lr (e.g. --set optim.lr={lr / 10:.1g}) and resume from the last checkpoint or start again")

    def state(self) -> dict[str, int]:
        return {"in_a_row": self.in_a_row, "total": self.total}
