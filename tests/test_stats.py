"""The statistics behind ``gpucnn reproduce``'s verdicts, on numbers with known answers."""
import math

import numpy as np
import pytest

from gpucnn.experiments.stats import (Interval, band, direction, family_level, mean_interval,
                                      paired_difference, t975, t_cdf, t_quantile, verdict)

# t(0.975, df) as printed in standard tables (4 decimals).
TABLE = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 6: 2.4469, 7: 2.3646,
         8: 2.3060, 9: 2.2622, 10: 2.2281, 15: 2.1314, 20: 2.0860, 25: 2.0595, 30: 2.0423,
         40: 2.0211, 60: 2.0003, 120: 1.9799}


@pytest.mark.parametrize("df, expected", sorted(TABLE.items()))
def test_t_quantile_matches_the_tables(df, expected):
    assert t975(df) == pytest.approx(expected, abs=6e-5)


def t_cdf_from_zero(q, df, steps=200_000):
    """P(0 < T < q) for Student's t with ``df`` degrees of freedom, by Simpson's rule."""
    x = np.linspace(0.0, q, steps + 1)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    pdf = np.exp(log_c - (df + 1) / 2 * np.log1p(x * x / df))
    h = q / steps
    return h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())


@pytest.mark.parametrize("df", [1, 2, 3, 7, 29, 30, 31, 35, 50, 100, 1000])
def test_t_quantile_leaves_2_5_percent_in_each_tail(df):
    # An independent check of the table and of the expansion beyond it: the density integrates
    # to 0.475 between 0 and the quantile.
    assert t_cdf_from_zero(t975(df), df) == pytest.approx(0.475, abs=2e-6)


# Other quantiles, as printed in standard tables (4 decimals): (p, df) -> t.
OTHER = {(0.95, 1): 6.3138, (0.95, 10): 1.8125, (0.99, 5): 3.3649, (0.995, 5): 4.0321,
         (0.995, 30): 2.7500, (0.9975, 10): 3.5814, (0.999, 1): 318.3088, (0.9995, 7): 5.4079,
         (0.5, 4): 0.0}


@pytest.mark.parametrize("p_df, expected", sorted(OTHER.items()))
def test_other_quantiles_match_the_tables(p_df, expected):
    assert t_quantile(*p_df) == pytest.approx(expected, abs=6e-5)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.99, 0.9975])
@pytest.mark.parametrize("df", [1, 3, 12])
def test_quantile_inverts_the_distribution_function(p, df):
    # Simpson's rule of the density is independent of the incomplete beta function behind both.
    q = t_quantile(p, df)
    assert t_cdf(q, df) == pytest.approx(p, abs=1e-12)
    assert 0.5 + t_cdf_from_zero(q, df, steps=400_000) == pytest.approx(p, abs=1e-6)
    assert t_cdf(-q, df) == pytest.approx(1 - p, abs=1e-12)   # symmetric


def test_quantile_refuses_what_it_cannot_give():
    for bad in (0.4, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"p=.*: expected a probability in \[0.5, 1\)"):
            t_quantile(bad, 3)
    t975(1)
    with pytest.raises(ValueError, match=r"df=True"):   # not taken for the cached df=1
        t_quantile(0.975, True)


def test_t_quantile_tends_to_the_normal_one_and_refuses_bad_df():
    assert t975(10**7) == pytest.approx(1.959964, abs=1e-6)
    assert all(t975(d) > t975(d + 1) for d in range(1, 200))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=r"df=.*: expected an integer number of degrees"):
            t975(bad)


def test_mean_interval_by_hand():
    iv = mean_interval([1, 2, 3, 4, 5])   # mean 3, sd sqrt(2.5), se sqrt(0.5), t(4) 2.776445
    assert (iv.mean, iv.n) == (3.0, 5)
    assert iv.half == pytest.approx(2.776445105 * math.sqrt(0.5))
    assert iv.excludes_zero() and not mean_interval([-1, 1, 0.5]).excludes_zero()
    one = mean_interval([0.2])
    assert one.n == 1 and math.isnan(one.low) and "no interval" in one.text()
    with pytest.raises(ValueError, match="expected a non-empty 1-D sequence"):
        mean_interval([])


def test_intervals_cover_the_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(4000):
        iv = mean_interval(rng.normal(0.3, 0.05, size=4))
        covered += iv.low <= 0.3 <= iv.high
    assert 0.935 <= covered / 4000 <= 0.965


def test_pairing_by_seed_finds_what_unpaired_intervals_hide():
    # Seeds differ a lot (+/-0.05), the effect is a steady -0.02: only pairing sees it.
    rng = np.random.default_rng(1)
    per_seed = rng.normal(0.10, 0.05, size=6)
    before = {s: float(g) for s, g in enumerate(per_seed)}
    after = {s: g - 0.02 + float(rng.normal(0, 0.002)) for s, g in before.items()}
    a, b = mean_interval(list(before.values())), mean_interval(list(after.values()))
    assert a.low < b.high and b.low < a.high            # the unpaired intervals overlap
    d = paired_difference(before, after)
    assert d.high < 0 and d.mean == pytest.approx(-0.02, abs=0.003)
    assert verdict(d, margin=0.005) == "narrows"


def test_pairs_only_the_seeds_both_sides_have():
    d = paired_difference({0: 0.1, 1: 0.2, 2: 0.3}, {1: 0.25, 2: 0.35, 7: 9.0})
    assert d.n == 2 and d.mean == pytest.approx(0.05)
    with pytest.raises(ValueError, match="expected some in common"):
        paired_difference({0: 0.1}, {1: 0.1})


def simulate_verdicts(effect, sd, seeds, margin, trials=400, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(trials):
        base = rng.normal(0.1, 0.05, size=seeds)
        after = base + effect + rng.normal(0, sd, size=seeds)
        out.append(verdict(paired_difference(dict(enumerate(base)), dict(enumerate(after))),
                           margin))
    return {v: out.count(v) / trials for v in set(out)}


def test_an_effect_that_exists_is_found():
    found = simulate_verdicts(effect=-0.02, sd=0.01, seeds=8, margin=0.01)
    assert found.get("narrows", 0) >= 0.95
    assert found.get("widens", 0) == 0
    widened = simulate_verdicts(effect=+0.02, sd=0.01, seeds=8, margin=0.01)
    assert widened.get("widens", 0) >= 0.95


def test_an_effect_that_does_not_exist_is_not_found():
    # With no effect, an interval excludes zero in about 5% of experiments, no more.
    none = simulate_verdicts(effect=0.0, sd=0.01, seeds=8, margin=0.05, trials=2000)
    assert none.get("narrows", 0) + none.get("widens", 0) <= 0.075
    assert none.get("little", 0) >= 0.92         # and the change is shown to be small
    # Too few seeds for a tight interval: "unclear", not "little".
    noisy = simulate_verdicts(effect=0.0, sd=0.05, seeds=3, margin=0.01)
    assert noisy.get("unclear", 0) >= 0.85


def test_verdict_rules():
    assert verdict(Interval(-0.02, -0.03, -0.01, 5), 0.05) == "narrows"
    assert verdict(Interval(0.02, 0.01, 0.03, 5), 0.05) == "widens"
    assert verdict(Interval(0.0, -0.01, 0.01, 5), 0.02) == "little"
    assert verdict(Interval(0.0, -0.03, 0.03, 5), 0.02) == "unclear"
    assert verdict(Interval(-0.5, math.nan, math.nan, 1), 0.02) == "unclear"


def test_intervals_at_other_levels_and_their_family():
    x = [1, 2, 3, 4, 5]
    wide = mean_interval(x, level=0.99)
    assert wide.half == pytest.approx(4.604095 * math.sqrt(0.5), rel=1e-6)   # t(0.995, 4)
    assert wide.level == 0.99 and "99% interval" in wide.text()
    assert "95% interval" in mean_interval(x).text()
    assert family_level(10) == pytest.approx(0.995) and family_level(1) == 0.95
    assert family_level(0) == 0.95
    d = paired_difference({0: 0.1, 1: 0.2, 2: 0.3}, {0: 0.2, 1: 0.25, 2: 0.45}, level=0.9)
    assert d.level == 0.9 and d.mean == pytest.approx(0.1)


def test_family_wise_intervals_hold_together_95_percent_of_the_time():
    # Ten null comparisons of 6 seeds: at 95% each, some interval misses zero in ~40% of
    # experiments; at the family level, in at most ~5%.
    rng = np.random.default_rng(2)
    each = family = 0
    for _ in range(1000):
        diffs = rng.normal(0, 0.01, size=(10, 6))
        each += any(mean_interval(d).excludes_zero() for d in diffs)
        family += any(mean_interval(d, family_level(10)).excludes_zero() for d in diffs)
    assert 0.33 <= each / 1000 <= 0.47
    assert family / 1000 <= 0.065


def test_direction_of_a_change():
    assert direction(Interval(0.02, 0.01, 0.03, 5)) == "higher"
    assert direction(Interval(-0.02, -0.03, -0.01, 5)) == "lower"
    assert direction(Interval(0.0, -0.01, 0.01, 5)) == "indistinguishable"
    assert direction(Interval(0.0, 0.0, 0.0, 5)) == "indistinguishable"   # exactly no change
    assert direction(Interval(0.5, math.nan, math.nan, 1)) == "indistinguishable"


def test_band_per_epoch():
    mean, half = band([[0.1, 0.5], [0.3, 0.5], [0.2, 0.8]])
    assert mean == pytest.approx([0.2, 0.6])
    assert half[0] == pytest.approx(t975(2) * 0.1 / math.sqrt(3))
    assert half[1] == pytest.approx(t975(2) * math.sqrt(0.03) / math.sqrt(3))
    mean, half = band([[0.1, 0.5]])
    assert mean.tolist() == [0.1, 0.5] and half.tolist() == [0.0, 0.0]
