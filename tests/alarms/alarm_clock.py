"""The fixed start time of the alarm tests (importable by name from every test module)."""

import datetime as dt

T0 = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
