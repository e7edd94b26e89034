"""Online anomaly and drift detectors for windowed series.

:class:`SeasonalBaseline` learns a series' normal range with weekday and
hour-of-day seasonality and a noise model for counts, rates or values;
:class:`ReferenceDistribution` learns a binned distribution and measures the
population stability index (:func:`psi`) of each new window against it.
"""

from online_models.anomaly.psi import ReferenceDistribution, psi
from online_models.anomaly.seasonal import SeasonalBaseline, Verdict

__all__ = ["ReferenceDistribution", "SeasonalBaseline", "Verdict", "psi"]
