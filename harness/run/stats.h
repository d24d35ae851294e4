/* stats.h — the statistics the study reported, computed the way scipy / statsmodels compute them
 * (tests/golden/stats/ holds reference values from those libraries): mean ± sample std over seeds,
 * Wilson and bootstrap (BCa, seeded Philox) intervals, McNemar on paired predictions (exact
 * binomial below 25 discordant pairs, else chi-square with continuity correction), the paired
 * t-test (Student t CDF through the regularised incomplete beta), the paired bootstrap of a
 * difference, Cohen's d and the Holm correction. Pure functions of their inputs: the same data
 * and seed give the same numbers on any machine. */
#ifndef TP_RUN_STATS_H
#define TP_RUN_STATS_H

#include <stdint.h>

#include "telepathy/status.h"

/* Resamples of the study (and of every bootstrap the harness stores). */
#define TP_STATS_BOOT_B 10000
/* Below this many discordant pairs McNemar is exact (binomial), as in the study. */
#define TP_STATS_MCNEMAR_EXACT_BELOW 25

/* ---- distributions ----------------------------------------------------------------------------
 */
double tp_stats_norm_cdf(double x);
/* Inverse of the standard normal CDF on (0, 1); -inf / +inf at 0 / 1, NaN outside. */
double tp_stats_norm_ppf(double p);
/* Regularised incomplete beta I_x(a, b) for a, b > 0 and 0 <= x <= 1 (NaN otherwise). */
double tp_stats_betainc(double a, double b, double x);
/* Student t CDF with df > 0 degrees of freedom. */
double tp_stats_t_cdf(double t, double df);
/* P(X <= k) for X ~ Binomial(n, p). */
double tp_stats_binom_cdf(int64_t k, int64_t n, double p);
/* Upper tail of chi-square with 1 degree of freedom. */
double tp_stats_chi2_1_sf(double x);

/* ---- summaries --------------------------------------------------------------------------------
 */
/* Mean and sample standard deviation (ddof = 1); std is NaN when n < 2, both NaN when n = 0. */
void tp_stats_mean_std(const double *x, int n, double *mean, double *std);
/* Wilson score interval for k successes of n at confidence `level` (0.95); n = 0 gives [0, 1]. */
void tp_stats_wilson(int64_t k, int64_t n, double level, double *lo, double *hi);

/* BCa bootstrap interval of the mean of x[0..n) (scipy.stats.bootstrap semantics: jackknife
 * acceleration, bias from the fraction of replicates below the estimate, linear-interpolated
 * percentiles). Resamples draw indices from Philox (seed, stream 0). */
tp_status tp_stats_bootstrap_bca(const double *x, int n, int resamples, uint64_t seed, double level,
                                 double *lo, double *hi, tp_err *err);

/* ---- paired tests -----------------------------------------------------------------------------
 */
typedef struct tp_mcnemar {
    int64_t b, c;     /* discordant pairs: only A correct, only B correct */
    int exact;        /* 1: exact binomial (b + c < 25), 0: chi-square with continuity correction */
    double statistic; /* exact: min(b, c); chi-square: (|b - c| - 1)^2 / (b + c) */
    double p;         /* two-sided */
} tp_mcnemar;
/* statsmodels.stats.contingency_tables.mcnemar(exact = b + c < 25, correction = True). */
void tp_stats_mcnemar(int64_t b, int64_t c, tp_mcnemar *out);
/* The same from paired 0/1 outcomes (a[i], b[i] for the same example i). */
void tp_stats_mcnemar_pairs(const int *a, const int *b, int n, tp_mcnemar *out);

typedef struct tp_ttest {
    double t, df, p;  /* two-sided p */
    double mean_diff; /* mean of x - y */
    double sd_diff;   /* sample std of x - y */
} tp_ttest;
/* scipy.stats.ttest_rel(x, y): needs n >= 2 and differences that are not all equal. */
tp_status tp_stats_paired_t(const double *x, const double *y, int n, tp_ttest *out, tp_err *err);

typedef struct tp_paired_boot {
    double diff;   /* mean of x - y */
    double lo, hi; /* BCa interval of the mean difference */
    double p;      /* two-sided: 2 x the smaller fraction of replicates on either side of 0 */
} tp_paired_boot;
/* Paired bootstrap of the mean difference: examples (pairs) are resampled together. */
tp_status tp_stats_paired_bootstrap(const double *x, const double *y, int n, int resamples,
                                    uint64_t seed, double level, tp_paired_boot *out, tp_err *err);

/* Cohen's d for two independent groups, pooled sample std (NaN when undefined). */
double tp_stats_cohens_d(const double *x, int nx, const double *y, int ny);
/* Cohen's d_z for paired data: mean(x - y) / sd(x - y). */
double tp_stats_cohens_dz(const double *x, const double *y, int n);

/* Holm step-down adjusted p-values (statsmodels multipletests(method="holm")); adj may alias p. */
tp_status tp_stats_holm(const double *p, int m, double *adj, tp_err *err);

#endif
