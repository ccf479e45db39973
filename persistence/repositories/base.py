"""What every repository shares: the clock it stamps rows with (tests pass their own)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

Clock = Callable[[], datetime]
