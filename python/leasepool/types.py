"""Type aliases shared by leasepool's public signatures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = ["SizeProvider", "SyncCallable"]

SyncCallable: TypeAlias = Callable[..., Any]
SizeProvider: TypeAlias = Callable[[], int]
