"""When staff may record a visit status (scheduling.servicer.too_early)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.scheduling.servicer import too_early

BERLIN = ZoneInfo("Europe/Berlin")
# 09:00 in Berlin on 28 March 2027, the day clocks go forward (07:00 UTC).
STARTS = datetime(2027, 3, 28, 9, tzinfo=BERLIN)
MIDNIGHT = datetime(2027, 3, 28, tzinfo=BERLIN)  # 23:00 UTC the day before


@pytest.mark.parametrize("status", ["arrived", "fulfilled"])
def test_arrival_and_fulfilment_count_from_the_clinics_midnight(status: str) -> None:
    assert too_early(status, STARTS, MIDNIGHT - timedelta(seconds=1), BERLIN)
    assert not too_early(status, STARTS, MIDNIGHT, BERLIN)
    # Not from UTC's midnight, an hour later.
    assert not too_early(status, STARTS, datetime(2027, 3, 27, 23, 30, tzinfo=UTC), BERLIN)


def test_no_show_only_once_the_appointment_was_due() -> None:
    assert too_early("noshow", STARTS, STARTS - timedelta(minutes=1), BERLIN)
    assert not too_early("noshow", STARTS, STARTS, BERLIN)
