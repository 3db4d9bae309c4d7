"""The USL fit: parameters recovered from data made with known ones, the published pool-size table of
the seed (002: Spring + HikariCP, JMeter) peaking where it peaks, and plain words for a poor or
straight fit."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from poolbench.results import usl

# The seed's own figures (/work/shared/seeds/002_*.txt): pool 5: 9,751.3/s, 10: 9,947.3/s, 16: 9,938.4/s,
# 200: 6,147.4/s. Sizes 12 and 32 are only in its screenshots ("no big difference"), so not used here.
SEED_002 = [(5, 9751.3), (10, 9947.3), (16, 9938.4), (200, 6147.4)]


def test_the_seed_table_peaks_between_10_and_32_as_the_table_does():
    f = usl.fit(SEED_002)
    assert 10 <= f.n_star <= 32
    assert f.r2 > 0.99 and not f.poor and f.peak_in_range
    assert f.peak_rps == pytest.approx(9950, rel=0.02)
    # Its prediction at a size the table measured only in a screenshot is close to its neighbours.
    assert f.predict(12) == pytest.approx(9950, rel=0.02)
    assert f.predict(32) < f.predict(16)


@pytest.mark.parametrize(
    ("lam", "sigma", "kappa"), [(100.0, 0.05, 0.002), (950.0, 0.2, 0.0005), (40.0, 0.01, 0.01)]
)
def test_known_parameters_are_recovered(lam, sigma, kappa):
    ns = [1, 2, 4, 8, 16, 32, 64, 128]
    # +-1% deterministic "noise", alternating, so the fit has something to average.
    points = [(n, float(usl.usl(n, lam, sigma, kappa)) * (1 + 0.01 * (-1) ** i)) for i, n in enumerate(ns)]
    f = usl.fit(points)
    assert f.lam == pytest.approx(lam, rel=0.05)
    assert f.sigma == pytest.approx(sigma, abs=0.03)
    assert f.kappa == pytest.approx(kappa, rel=0.25)
    assert f.n_star == pytest.approx(((1 - sigma) / kappa) ** 0.5, rel=0.15)


def test_straight_data_have_no_peak_in_range():
    f = usl.fit([(n, 100.0 * n) for n in (1, 2, 4, 8)])
    assert not f.peak_in_range
    lines = usl.report_lines([_trial(n, 100.0 * n) for n in (1, 2, 4, 8)])
    assert "The data do not bend: no peak within the measured range" in lines[1]


def test_scattered_data_are_called_a_poor_fit():
    f = usl.fit([(1, 500.0), (2, 100.0), (4, 900.0), (8, 80.0), (16, 700.0)])
    assert f.poor
    lines = usl.report_lines(
        [_trial(n, x) for n, x in [(1, 500.0), (2, 100.0), (4, 900.0), (8, 80.0), (16, 700.0)]]
    )
    assert any("The fit is poor" in line for line in lines)


def _trial(size, rps, used=None, target_rate=None):
    return SimpleNamespace(
        status="ok", pool_size=size, rps=rps, mode="pool", workers=1, threads=32, target_rate=target_rate,
        mean_connections=used if used is not None else size, peak_connections=size, index=size,
    )  # fmt: skip


def test_the_fit_uses_connections_in_use_not_the_configured_size():
    # Pool 200 behind 21 busy threads is a concurrency of 21 (the README's sweep).
    trials = [_trial(5, 909.2, 5), _trial(10, 979.5, 10), _trial(16, 1043.8, 16), _trial(200, 889.4, 21)]
    points, sizes = usl.sweep_points(trials)
    assert points == [(5, 909.2), (10, 979.5), (16, 1043.8), (21, 889.4)] and sizes == [5, 10, 16, 200]
    lines = usl.report_lines(trials)
    assert lines[0].startswith("USL fit (throughput vs connections in use, 4 sizes): lambda ")
    assert "sigma " in lines[0] and "kappa " in lines[0] and "N* = " in lines[0]


def test_open_model_trials_and_three_sizes_give_no_fit():
    trials = [_trial(n, 100.0 * n) for n in (1, 2, 4)] + [_trial(8, 800.0, target_rate=800.0)]
    assert usl.sweep_fit(trials) is None and usl.report_lines(trials) == []


def test_curve_points_for_the_chart_follow_the_fit():
    f = usl.fit(SEED_002)
    points = usl.curve(f, steps=20)
    assert len(points) == 20 and points[0][0] == 1.0 and points[-1][0] >= 200
    for n, x in points:
        assert x == pytest.approx(f.predict(n))


def test_sweep_curve_is_empty_without_a_fit_and_follows_it_with_one():
    assert usl.sweep_curve([_trial(n, 100.0 * n) for n in (1, 2, 4)]) == []
    trials = [_trial(n, x) for n, x in SEED_002]
    points = usl.sweep_curve(trials, steps=10)
    f = usl.sweep_fit(trials)
    assert len(points) == 10 and all(x == pytest.approx(f.predict(n)) for n, x in points)
