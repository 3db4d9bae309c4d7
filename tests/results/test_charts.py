"""The charts (poolbench.results.charts): a sweep comparing pooled modes draws one series per mode."""

from __future__ import annotations

import re

import pytest


@pytest.mark.django_db
def test_chart_of_a_sweep_comparing_pooled_modes_draws_one_series_per_mode():
    from poolbench.results import charts, export
    from tests.sample_sweeps import make_sweep

    sweep = make_sweep(
        [
            {"pool_size": 4, "rps": 400.0},
            {"pool_size": 8, "rps": 800.0},
            {"pool_size": 4, "mode": "queuepool", "max_overflow": 0, "rps": 300.0},
            {"pool_size": 8, "mode": "queuepool", "max_overflow": 0, "rps": 500.0},
            {"pool_size": None, "mode": "none", "conn_max_age": 0, "rps": 100.0},
        ]
    )
    series = charts.series_for([sweep])
    assert [(s.mode, [t.index for t in s.trials]) for s in series] == [
        ("pool", [1, 2]),
        ("queuepool", [3, 4]),
    ]
    assert [t.index for t in series[0].references] == [5] and series[1].references == []
    html = export.to_html([sweep])
    chart = html[html.index('data-metric="rps"') :]
    chart = chart[: chart.index("</svg>")]
    # Two median lines, one per mode: size 8 of the QueuePool is not averaged with size 8 of Django's pool.
    medians = re.findall(r'<polyline class="pb-median" points="([^"]+)"', chart)
    assert len(medians) == 2
    assert f"#{sweep.pk} pool" in chart and f"#{sweep.pk} queuepool" in chart
