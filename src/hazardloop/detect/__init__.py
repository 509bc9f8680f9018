"""Detection core: sensor health, alarm limits, univariate and multivariate detectors, fusion.

Every detector follows one protocol (``fit(history)`` / ``score(batch)``, one score per row or per
row and sensor, higher = worse); thresholds are separate objects fitted on training scores only.
``pipeline.TableDetector`` runs the whole chain over a table (the ``hazardloop detect`` command);
``pipeline.StreamingMonitor`` is the fast univariate path for live data, with state in arrays.
"""

from hazardloop.detect.base import DetectInputError, Detector
from hazardloop.detect.limits import AlarmLimits, LimitBank
from hazardloop.detect.pipeline import StreamingMonitor
from hazardloop.detect.table import TableDetector

__all__ = ["AlarmLimits", "DetectInputError", "Detector", "LimitBank", "StreamingMonitor", "TableDetector"]
