/* stats.c — the study's statistics (see stats.h). Distribution functions are written out here
 * (erfc and lgamma come from libm) so the harness needs no numerics library; every formula
 * follows the scipy / statsmodels function named in stats.h, whose values the tests compare. */
#include "run/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "telepathy/tensor.h"

double tp_stats_norm_cdf(double x) {
    return 0.5 * erfc(-x / sqrt(2.0));
}

double tp_stats_norm_ppf(double p) {
    if (!(p >= 0 && p <= 1)) return NAN;
    if (p == 0) return -INFINITY;
    if (p == 1) return INFINITY;
    /* Acklam's rational approximation (rel. error 1.2e-9), then one Halley step on erfc, which
     * brings it to double precision. */
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    double x, q, r;
    if (p < 0.02425) {
        q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p <= 1 - 0.02425) {
        q = p - 0.5;
        r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    } else {
        q = sqrt(-2 * log1p(-p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    }
    for (int it = 0; it < 2; it++) {
        /* the residual from the nearer tail keeps its relative precision */
        double e = p < 0.5 ? 0.5 * erfc(-x / sqrt(2.0)) - p : (1 - p) - 0.5 * erfc(x / sqrt(2.0));
        double u = e * sqrt(2 * M_PI) * exp(x * x / 2);
        x = x - u / (1 + x * u / 2);
    }
    return x;
}

/* Continued fraction of the incomplete beta (modified Lentz). */
static double betacf(double a, double b, double x) {
    const double tiny = 1e-300, eps = 1e-16;
    double qab = a + b, qap = a + 1, qam = a - 1;
    double c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 10000; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < eps) break;
    }
    return h;
}

double tp_stats_betainc(double a, double b, double x) {
    if (!(a > 0 && b > 0 && x >= 0 && x <= 1)) return NAN;
    if (x == 0) return 0;
    if (x == 1) return 1;
    double lf = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    double front = exp(lf);
    /* the continued fraction converges fast on this side of the mean; use symmetry otherwise */
    if (x < (a + 1) / (a + b + 2)) return front * betacf(a, b, x) / a;
    return 1 - front * betacf(b, a, 1 - x) / b;
}

double tp_stats_t_cdf(double t, double df) {
    if (!(df > 0) || isnan(t)) return NAN;
    if (isinf(t)) return t > 0 ? 1 : 0;
    double tail = 0.5 * tp_stats_betainc(df / 2, 0.5, df / (df + t * t));
    return t > 0 ? 1 - tail : tail;
}

double tp_stats_binom_cdf(int64_t k, int64_t n, double p) {
    if (n < 0 || !(p >= 0 && p <= 1)) return NAN;
    if (k < 0) return 0;
    if (k >= n) return 1;
    return tp_stats_betainc((double)(n - k), (double)k + 1, 1 - p);
}

double tp_stats_chi2_1_sf(double x) {
    if (isnan(x)) return NAN;
    if (x <= 0) return 1;
    return erfc(sqrt(x / 2));
}

void tp_stats_mean_std(const double *x, int n, double *mean, double *std) {
    if (n <= 0) {
        *mean = *std = NAN;
        return;
    }
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    double m = s / n, ss = 0;
    for (int i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    *mean = m;
    *std = n > 1 ? sqrt(ss / (n - 1)) : NAN;
}

void tp_stats_wilson(int64_t k, int64_t n, double level, double *lo, double *hi) {
    if (n <= 0) {
        *lo = 0;
        *hi = 1;
        return;
    }
    double z = tp_stats_norm_ppf(1 - (1 - level) / 2);
    double ph = (double)k / (double)n, z2 = z * z, nn = (double)n;
    double den = 1 + z2 / nn;
    double centre = (ph + z2 / (2 * nn)) / den;
    double half = z * sqrt(ph * (1 - ph) / nn + z2 / (4 * nn * nn)) / den;
    *lo = centre - half;
    *hi = centre + half;
    if (*lo < 0) *lo = 0;
    if (*hi > 1) *hi = 1;
}

/* numpy.percentile(v, 100 q) with linear interpolation; v sorted ascending. */
static double percentile_sorted(const double *v, int n, double q) {
    if (isnan(q)) return NAN;
    double pos = q * (n - 1);
    if (pos <= 0) return v[0];
    if (pos >= n - 1) return v[n - 1];
    int i = (int)floor(pos);
    double f = pos - i;
    return v[i] + f * (v[i + 1] - v[i]);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* B bootstrap means of x (indices drawn uniformly from Philox stream 0 of seed). */
static tp_status boot_means(const double *x, int n, int B, uint64_t seed, double *out,
                            tp_err *err) {
    uint32_t *u = malloc((size_t)n * sizeof *u);
    if (!u) return tp_errf(err, TP_ENOMEM, "bootstrap: out of memory");
    tp_rng rng = {seed, 0, 0};
    for (int b = 0; b < B; b++) {
        tp_rng_u32(&rng, u, (size_t)n);
        double s = 0;
        /* multiply-shift maps a 32-bit draw onto [0, n): bias < n / 2^32, far below the
         * Monte Carlo error of 10,000 resamples */
        for (int i = 0; i < n; i++) s += x[(uint64_t)u[i] * (uint64_t)n >> 32];
        out[b] = s / n;
    }
    free(u);
    return TP_OK;
}

/* BCa interval from the estimate, the replicates (sorted in place) and the jackknife. */
static void bca_interval(const double *x, int n, double theta, double *reps, int B, double level,
                         double *lo, double *hi) {
    qsort(reps, (size_t)B, sizeof *reps, cmp_double);
    int below = 0, at_or_below = 0;
    for (int b = 0; b < B; b++) {
        below += reps[b] < theta;
        at_or_below += reps[b] <= theta;
    }
    double z0 = tp_stats_norm_ppf((double)(below + at_or_below) / (2.0 * B));
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    double jm = 0;
    for (int i = 0; i < n; i++) jm += (s - x[i]) / (n - 1);
    jm /= n;
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        double d = jm - (s - x[i]) / (n - 1);
        num += d * d * d;
        den += d * d;
    }
    double a = num / (6 * pow(den, 1.5));
    double alpha = (1 - level) / 2;
    double za = tp_stats_norm_ppf(alpha), zb = tp_stats_norm_ppf(1 - alpha);
    double a1 = tp_stats_norm_cdf(z0 + (z0 + za) / (1 - a * (z0 + za)));
    double a2 = tp_stats_norm_cdf(z0 + (z0 + zb) / (1 - a * (z0 + zb)));
    *lo = percentile_sorted(reps, B, a1);
    *hi = percentile_sorted(reps, B, a2);
}

static int all_equal(const double *x, int n) {
    for (int i = 1; i < n; i++)
        if (x[i] != x[0]) return 0;
    return 1;
}

tp_status tp_stats_bootstrap_bca(const double *x, int n, int resamples, uint64_t seed, double level,
                                 double *lo, double *hi, tp_err *err) {
    if (n < 2) return tp_errf(err, TP_EINVAL, "bootstrap: needs at least 2 values (got %d)", n);
    if (resamples < 100)
        return tp_errf(err, TP_EINVAL, "bootstrap: %d resamples; expected at least 100", resamples);
    if (!(level > 0 && level < 1))
        return tp_errf(err, TP_EINVAL, "bootstrap: level %g; expected 0 < level < 1", level);
    double m, sd;
    tp_stats_mean_std(x, n, &m, &sd);
    if (all_equal(x, n)) { /* every resample equals the estimate: the interval is a point */
        *lo = *hi = m;
        return TP_OK;
    }
    double *reps = malloc((size_t)resamples * sizeof *reps);
    if (!reps) return tp_errf(err, TP_ENOMEM, "bootstrap: out of memory");
    tp_status st = boot_means(x, n, resamples, seed, reps, err);
    if (st == TP_OK) bca_interval(x, n, m, reps, resamples, level, lo, hi);
    free(reps);
    return st;
}

void tp_stats_mcnemar(int64_t b, int64_t c, tp_mcnemar *o) {
    o->b = b;
    o->c = c;
    int64_t nd = b + c;
    if (nd < TP_STATS_MCNEMAR_EXACT_BELOW) {
        o->exact = 1;
        int64_t k = b < c ? b : c;
        o->statistic = (double)k;
        double p = 2 * tp_stats_binom_cdf(k, nd, 0.5);
        o->p = p > 1 ? 1 : p;
    } else {
        o->exact = 0;
        double d = fabs((double)(b - c)) - 1;
        o->statistic = d * d / (double)nd;
        o->p = tp_stats_chi2_1_sf(o->statistic);
    }
}

void tp_stats_mcnemar_pairs(const int *a, const int *b, int n, tp_mcnemar *out) {
    int64_t only_a = 0, only_b = 0;
    for (int i = 0; i < n; i++) {
        only_a += a[i] && !b[i];
        only_b += !a[i] && b[i];
    }
    tp_stats_mcnemar(only_a, only_b, out);
}

tp_status tp_stats_paired_t(const double *x, const double *y, int n, tp_ttest *o, tp_err *err) {
    if (n < 2) return tp_errf(err, TP_EINVAL, "paired t-test: needs at least 2 pairs (got %d)", n);
    double *d = malloc((size_t)n * sizeof *d);
    if (!d) return tp_errf(err, TP_ENOMEM, "paired t-test: out of memory");
    for (int i = 0; i < n; i++) d[i] = x[i] - y[i];
    tp_stats_mean_std(d, n, &o->mean_diff, &o->sd_diff);
    free(d);
    if (!(o->sd_diff > 0))
        return tp_errf(err, TP_EINVAL,
                       "paired t-test: all %d differences are equal (%g); the test is undefined", n,
                       o->mean_diff);
    o->df = n - 1;
    o->t = o->mean_diff / (o->sd_diff / sqrt((double)n));
    o->p = tp_stats_betainc(o->df / 2, 0.5, o->df / (o->df + o->t * o->t));
    return TP_OK;
}

tp_status tp_stats_paired_bootstrap(const double *x, const double *y, int n, int resamples,
                                    uint64_t seed, double level, tp_paired_boot *o, tp_err *err) {
    if (n < 2)
        return tp_errf(err, TP_EINVAL, "paired bootstrap: needs at least 2 pairs (got %d)", n);
    double *d = malloc((size_t)n * sizeof *d);
    if (!d) return tp_errf(err, TP_ENOMEM, "paired bootstrap: out of memory");
    for (int i = 0; i < n; i++) d[i] = x[i] - y[i];
    double sd;
    tp_stats_mean_std(d, n, &o->diff, &sd);
    tp_status st = TP_OK;
    if (all_equal(d, n)) {
        o->lo = o->hi = o->diff;
        o->p = o->diff == 0 ? 1 : 0;
    } else {
        double *reps = malloc((size_t)resamples * sizeof *reps);
        if (!reps) st = tp_errf(err, TP_ENOMEM, "paired bootstrap: out of memory");
        if (st == TP_OK && resamples < 100)
            st = tp_errf(err, TP_EINVAL, "paired bootstrap: %d resamples; expected at least 100",
                         resamples);
        if (st == TP_OK) st = boot_means(d, n, resamples, seed, reps, err);
        if (st == TP_OK) {
            int le = 0, ge = 0;
            for (int b = 0; b < resamples; b++) {
                le += reps[b] <= 0;
                ge += reps[b] >= 0;
            }
            double p = 2.0 * (le < ge ? le : ge) / resamples;
            o->p = p > 1 ? 1 : p;
            bca_interval(d, n, o->diff, reps, resamples, level, &o->lo, &o->hi);
        }
        free(reps);
    }
    free(d);
    return st;
}

double tp_stats_cohens_d(const double *x, int nx, const double *y, int ny) {
    if (nx < 2 || ny < 2) return NAN;
    double mx, sx, my, sy;
    tp_stats_mean_std(x, nx, &mx, &sx);
    tp_stats_mean_std(y, ny, &my, &sy);
    double pooled = sqrt(((nx - 1) * sx * sx + (ny - 1) * sy * sy) / (nx + ny - 2));
    return pooled > 0 ? (mx - my) / pooled : NAN;
}

double tp_stats_cohens_dz(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double *d = malloc((size_t)n * sizeof *d);
    if (!d) return NAN;
    for (int i = 0; i < n; i++) d[i] = x[i] - y[i];
    double m, s;
    tp_stats_mean_std(d, n, &m, &s);
    free(d);
    return s > 0 ? m / s : NAN;
}

tp_status tp_stats_holm(const double *p, int m, double *adj, tp_err *err) {
    if (m <= 0) return TP_OK;
    int *ord = malloc((size_t)m * sizeof *ord);
    double *out = malloc((size_t)m * sizeof *out);
    if (!ord || !out) {
        free(ord);
        free(out);
        return tp_errf(err, TP_ENOMEM, "holm: out of memory");
    }
    for (int i = 0; i < m; i++) {
        if (!(p[i] >= 0 && p[i] <= 1)) {
            free(ord);
            free(out);
            return tp_errf(err, TP_EINVAL, "holm: p-value %d is %g; expected 0..1", i + 1, p[i]);
        }
        ord[i] = i;
    }
    /* stable insertion sort by p (ties keep input order, as numpy's mergesort does) */
    for (int i = 1; i < m; i++)
        for (int j = i; j > 0 && p[ord[j - 1]] > p[ord[j]]; j--) {
            int t = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = t;
        }
    double run = 0;
    for (int k = 0; k < m; k++) {
        double v = (double)(m - k) * p[ord[k]];
        if (v > 1) v = 1;
        if (v > run) run = v;
        out[ord[k]] = run;
    }
    memcpy(adj, out, (size_t)m * sizeof *adj);
    free(ord);
    free(out);
    return TP_OK;
}
