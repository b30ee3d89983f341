"""WorkGrinder: batches many small submissions onto leased executors."""

from __future__ import annotations

import logging

from ._engine import WorkGrinder

__all__ = ["WorkGrinder", "logger"]

logger = logging.getLogger(__name__)
