"""Built-in adaptive sizing: ``LeasedExecutorManager(autoscale=AutoScale())``.

The engine sets the manager's sizing target (``desired``: the pools kept ready) from what
it observes instead of a load signal the application computes: pools in use plus callers
waiting (the target rises to it at once), each window's p95 acquire wait against
``target_wait_seconds`` (the target grows by half when it is exceeded), and the pools a
window's peak left idle (after ``scale_down_windows`` windows of surplus the target steps
down, by at most a quarter). It never revokes a leased pool, stays within
``min_pools``/``max_pools``, and a steady load never resizes. See ``docs/autoscale.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["AutoScale"]


def _positive_seconds(name: str, value: object, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class AutoScale:
    """How the engine sizes a manager's pools from observed load.

    ``window_seconds``: how often the controller decides (and the span its p95 wait and
    peak demand cover). ``target_wait_seconds``: the acquire wait a window's p95 is held
    against. ``scale_down_windows``: how many windows in a row must leave pools idle
    before the target steps down.
    """

    window_seconds: float = 5.0
    target_wait_seconds: float = 0.010
    scale_down_windows: int = 3

    def __post_init__(self) -> None:
        window = _positive_seconds("window_seconds", self.window_seconds, allow_zero=False)
        wait = _positive_seconds("target_wait_seconds", self.target_wait_seconds, allow_zero=True)
        windows = self.scale_down_windows
        if isinstance(windows, bool) or not isinstance(windows, int):
            raise TypeError(f"scale_down_windows must be an int, not {type(windows).__name__}")
        if not 1 <= windows <= 2**32 - 1:
            raise ValueError(f"scale_down_windows must be at least 1, got {windows!r}")
        object.__setattr__(self, "window_seconds", window)
        object.__setattr__(self, "target_wait_seconds", wait)
