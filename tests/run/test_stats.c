/* test_stats.c — harness/run/stats.c against values checkable by hand (textbook examples) and
 * against tests/golden/stats/stats_golden.json (scipy / statsmodels, made by
 * make_stats_golden.py): distributions, Wilson, McNemar, paired t, Cohen's d, Holm to ~1e-9;
 * BCa bootstrap intervals within Monte Carlo error of scipy's (different resamples); seeded
 * bootstrap reproducibility. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "run/stats.h"
#include "tp_test.h"

#ifndef TP_SOURCE_DIR
#define TP_SOURCE_DIR "."
#endif

static void test_hand_values(void) {
    /* Phi^-1(0.975) = 1.959963984540054 (every table); Phi(0) = 1/2 */
    TP_CHECK_NEAR(tp_stats_norm_ppf(0.975), 1.959963984540054, 1e-13);
    TP_CHECK_NEAR(tp_stats_norm_ppf(0.5), 0.0, 1e-15);
    TP_CHECK_NEAR(tp_stats_norm_cdf(0), 0.5, 1e-16);
    TP_CHECK(isinf(tp_stats_norm_ppf(0)) && isnan(tp_stats_norm_ppf(1.5)));
    /* I_x(1,1) = x; I_x(a,1) = x^a; I_x(1,b) = 1-(1-x)^b */
    TP_CHECK_NEAR(tp_stats_betainc(1, 1, 0.37), 0.37, 1e-14);
    TP_CHECK_NEAR(tp_stats_betainc(3, 1, 0.6), 0.216, 1e-14);
    TP_CHECK_NEAR(tp_stats_betainc(1, 4, 0.25), 1 - pow(0.75, 4), 1e-14);
    TP_CHECK(isnan(tp_stats_betainc(-1, 1, 0.5)));
    /* t with 1 df is Cauchy: F(t) = 1/2 + atan(t)/pi; t(4) critical value 2.776445 at 0.975 */
    TP_CHECK_NEAR(tp_stats_t_cdf(2.5, 1), 0.5 + atan(2.5) / M_PI, 1e-13);
    TP_CHECK_NEAR(tp_stats_t_cdf(2.776445105, 4), 0.975, 1e-9);
    /* t with 2 df: F(t) = 1/2 + t / (2 sqrt(t^2 + 2)) */
    TP_CHECK_NEAR(tp_stats_t_cdf(-1.3, 2), 0.5 - 1.3 / (2 * sqrt(1.69 + 2)), 1e-13);
    /* Binomial(10, 1/2): P(X <= 2) = (1 + 10 + 45) / 1024 */
    TP_CHECK_NEAR(tp_stats_binom_cdf(2, 10, 0.5), 56.0 / 1024, 1e-14);
    /* chi2(1) sf at 3.841458820694124 = 0.05 */
    TP_CHECK_NEAR(tp_stats_chi2_1_sf(3.841458820694124), 0.05, 1e-13);

    double m, s;
    const double x[] = {2, 4, 4, 4,
                        5, 5, 7, 9}; /* mean 5, population std 2, sample std sqrt(32/7) */
    tp_stats_mean_std(x, 8, &m, &s);
    TP_CHECK_NEAR(m, 5, 1e-15);
    TP_CHECK_NEAR(s, sqrt(32.0 / 7), 1e-14);
    tp_stats_mean_std(x, 1, &m, &s);
    TP_CHECK(m == 2 && isnan(s));

    /* Wilson 95% for 815/872 by the closed form */
    double lo, hi, z = 1.959963984540054, n = 872, p = 815.0 / 872;
    double c = (p + z * z / (2 * n)) / (1 + z * z / n);
    double h = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n);
    tp_stats_wilson(815, 872, 0.95, &lo, &hi);
    TP_CHECK_NEAR(lo, c - h, 1e-14);
    TP_CHECK_NEAR(hi, c + h, 1e-14);
    tp_stats_wilson(0, 0, 0.95, &lo, &hi);
    TP_CHECK(lo == 0 && hi == 1);

    /* McNemar: b=3, c=9 exact: 2 * P(Bin(12, .5) <= 3) = 2 * 299 / 4096 */
    tp_mcnemar mc;
    tp_stats_mcnemar(3, 9, &mc);
    TP_CHECK(mc.exact == 1);
    TP_CHECK_NEAR(mc.p, 2 * 299.0 / 4096, 1e-14);
    tp_stats_mcnemar(0, 0, &mc);
    TP_CHECK(mc.p == 1);
    /* 24 discordant pairs is still exact; 25 switches to chi-square (|20-5|-1)^2/25 = 7.84 */
    tp_stats_mcnemar(12, 12, &mc);
    TP_CHECK(mc.exact == 1 && mc.p == 1);
    tp_stats_mcnemar(20, 5, &mc);
    TP_CHECK(mc.exact == 0);
    TP_CHECK_NEAR(mc.statistic, 7.84, 1e-12);
    TP_CHECK_NEAR(mc.p, erfc(sqrt(7.84 / 2)), 1e-15);
    const int a[] = {1, 1, 0, 0, 1, 0}, b[] = {1, 0, 1, 1, 1, 1};
    tp_stats_mcnemar_pairs(a, b, 6, &mc);
    TP_CHECK(mc.b == 1 && mc.c == 3);

    /* paired t: differences 1, 2, 3 -> mean 2, sd 1, t = 2 sqrt 3, df 2 */
    const double tx[] = {3, 5, 7}, ty[] = {2, 3, 4};
    tp_ttest t;
    tp_err err = {0};
    TP_CHECK(tp_stats_paired_t(tx, ty, 3, &t, &err) == TP_OK);
    TP_CHECK_NEAR(t.t, 2 * sqrt(3.0), 1e-13);
    TP_CHECK(t.df == 2);
    /* two-sided p for t(2): 1 - t / sqrt(t^2 + 2) */
    TP_CHECK_NEAR(t.p, 1 - 2 * sqrt(3.0) / sqrt(12 + 2), 1e-13);
    TP_CHECK_NEAR(tp_stats_cohens_dz(tx, ty, 3), 2.0, 1e-14);
    const double same[] = {1, 2, 3};
    TP_CHECK(tp_stats_paired_t(same, same, 3, &t, &err) == TP_EINVAL);
    TP_CHECK(strstr(err.msg, "differences are equal") != NULL);
    TP_CHECK(tp_stats_paired_t(tx, ty, 1, &t, &err) == TP_EINVAL);

    /* Cohen's d: groups {1,2,3} and {3,4,5}: pooled sd 1, d = -2 */
    const double g2[] = {3, 4, 5};
    TP_CHECK_NEAR(tp_stats_cohens_d(same, 3, g2, 3), -2.0, 1e-14);

    /* Holm on (0.01, 0.04, 0.03, 0.005): sorted .005 .01 .03 .04 -> .02 .03 .06 .06 */
    const double hp[] = {0.01, 0.04, 0.03, 0.005};
    double adj[4];
    TP_CHECK(tp_stats_holm(hp, 4, adj, &err) == TP_OK);
    TP_CHECK_NEAR(adj[3], 0.02, 1e-15);
    TP_CHECK_NEAR(adj[0], 0.03, 1e-15);
    TP_CHECK_NEAR(adj[2], 0.06, 1e-15);
    TP_CHECK_NEAR(adj[1], 0.06, 1e-15);
    const double badp[] = {0.5, 1.5};
    TP_CHECK(tp_stats_holm(badp, 2, adj, &err) == TP_EINVAL);
}

static void test_bootstrap_seeded(void) {
    double x[100];
    for (int i = 0; i < 100; i++) x[i] = i % 10 < 8; /* 80% correct */
    double lo1, hi1, lo2, hi2, lo3, hi3;
    tp_err err = {0};
    TP_CHECK(tp_stats_bootstrap_bca(x, 100, TP_STATS_BOOT_B, 7, 0.95, &lo1, &hi1, &err) == TP_OK);
    TP_CHECK(tp_stats_bootstrap_bca(x, 100, TP_STATS_BOOT_B, 7, 0.95, &lo2, &hi2, &err) == TP_OK);
    TP_CHECK(tp_stats_bootstrap_bca(x, 100, TP_STATS_BOOT_B, 8, 0.95, &lo3, &hi3, &err) == TP_OK);
    TP_CHECK(lo1 == lo2 && hi1 == hi2); /* same seed, same interval */
    /* another seed, other resamples (continuous data: 0/1 means are too discrete to differ) */
    double y[50];
    for (int i = 0; i < 50; i++) y[i] = (double)((i * 37) % 101) / 101;
    TP_CHECK(tp_stats_bootstrap_bca(y, 50, 2000, 7, 0.95, &lo2, &hi2, &err) == TP_OK);
    TP_CHECK(tp_stats_bootstrap_bca(y, 50, 2000, 8, 0.95, &lo3, &hi3, &err) == TP_OK);
    TP_CHECK(lo2 != lo3 || hi2 != hi3);
    TP_CHECK(lo1 < 0.8 && hi1 > 0.8);  /* brackets the estimate */
    TP_CHECK(lo1 > 0.68 && hi1 < 0.9); /* ~ +-1.96 * 0.04 */
    double same[5] = {1, 1, 1, 1, 1};
    TP_CHECK(tp_stats_bootstrap_bca(same, 5, 1000, 1, 0.95, &lo1, &hi1, &err) == TP_OK);
    TP_CHECK(lo1 == 1 && hi1 == 1);
    TP_CHECK(tp_stats_bootstrap_bca(x, 1, 1000, 1, 0.95, &lo1, &hi1, &err) == TP_EINVAL);
    TP_CHECK(tp_stats_bootstrap_bca(x, 100, 10, 1, 0.95, &lo1, &hi1, &err) == TP_EINVAL);
    TP_CHECK(tp_stats_bootstrap_bca(x, 100, 1000, 1, 1.5, &lo1, &hi1, &err) == TP_EINVAL);
}

/* ---- the scipy / statsmodels fixture -----------------------------------------------------------
 */

static json_t *golden(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/golden/stats/stats_golden.json", TP_SOURCE_DIR);
    json_error_t je;
    json_t *g = json_load_file(path, 0, &je);
    if (!g) fprintf(stderr, "FAIL: %s: %s (line %d)\n", path, je.text, je.line);
    TP_CHECK(g != NULL);
    return g;
}

static double num(json_t *a, size_t i) {
    return json_number_value(json_array_get(a, i));
}

static double *vec(json_t *a, int *n) {
    *n = (int)json_array_size(a);
    double *v = malloc(((size_t)*n + 1) * sizeof *v);
    for (int i = 0; i < *n; i++) v[i] = num(a, (size_t)i);
    return v;
}

static int section(json_t *g, const char *name, json_t **out) {
    *out = json_object_get(g, name);
    TP_CHECKF(json_is_array(*out) && json_array_size(*out) > 0, "fixture lacks section %s", name);
    return json_is_array(*out);
}

static void test_golden_distributions(void) {
    json_t *g = golden(), *s, *e;
    if (!g) return;
    size_t i;
    if (section(g, "norm_ppf", &s)) json_array_foreach(s, i, e) {
            double want = num(e, 1), got = tp_stats_norm_ppf(num(e, 0));
            TP_CHECKF(fabs(got - want) <= 1e-12 * fmax(1, fabs(want)), "ppf(%g) = %.17g vs %.17g",
                      num(e, 0), got, want);
        }
    if (section(g, "norm_cdf", &s)) json_array_foreach(s, i, e) {
            double want = num(e, 1), got = tp_stats_norm_cdf(num(e, 0));
            TP_CHECKF(fabs(got - want) <= 1e-13 * fmax(want, 1e-300) + 1e-300,
                      "cdf(%g) = %.17g vs %.17g", num(e, 0), got, want);
        }
    if (section(g, "betainc", &s)) json_array_foreach(s, i, e) {
            double want = num(e, 3), got = tp_stats_betainc(num(e, 0), num(e, 1), num(e, 2));
            TP_CHECKF(fabs(got - want) <= 1e-12, "I(%g,%g,%g) = %.17g vs %.17g", num(e, 0),
                      num(e, 1), num(e, 2), got, want);
        }
    if (section(g, "t_cdf", &s)) json_array_foreach(s, i, e) {
            double want = num(e, 2), got = tp_stats_t_cdf(num(e, 0), num(e, 1));
            TP_CHECKF(fabs(got - want) <= 1e-12, "t_cdf(%g, %g) = %.17g vs %.17g", num(e, 0),
                      num(e, 1), got, want);
        }
    if (section(g, "binom_cdf", &s)) json_array_foreach(s, i, e) {
            double want = num(e, 3);
            double got = tp_stats_binom_cdf((int64_t)num(e, 0), (int64_t)num(e, 1), num(e, 2));
            TP_CHECKF(fabs(got - want) <= 1e-12, "binom_cdf = %.17g vs %.17g", got, want);
        }
    json_decref(g);
}

static void test_golden_tests(void) {
    json_t *g = golden(), *s, *e;
    if (!g) return;
    size_t i;
    tp_err err = {0};
    if (section(g, "mean_std", &s)) json_array_foreach(s, i, e) {
            int n;
            double *x = vec(json_object_get(e, "x"), &n), m, sd;
            tp_stats_mean_std(x, n, &m, &sd);
            TP_CHECK_NEAR(m, json_number_value(json_object_get(e, "mean")), 1e-14);
            TP_CHECK_NEAR(sd, json_number_value(json_object_get(e, "std")), 1e-14);
            free(x);
        }
    if (section(g, "wilson", &s)) json_array_foreach(s, i, e) {
            double lo, hi;
            tp_stats_wilson((int64_t)num(e, 0), (int64_t)num(e, 1), 0.95, &lo, &hi);
            TP_CHECKF(fabs(lo - num(e, 2)) < 1e-12 && fabs(hi - num(e, 3)) < 1e-12,
                      "wilson %g/%g: [%.15g, %.15g] vs [%.15g, %.15g]", num(e, 0), num(e, 1), lo,
                      hi, num(e, 2), num(e, 3));
        }
    if (section(g, "mcnemar", &s)) json_array_foreach(s, i, e) {
            tp_mcnemar mc;
            int64_t b = json_integer_value(json_object_get(e, "b"));
            int64_t c = json_integer_value(json_object_get(e, "c"));
            tp_stats_mcnemar(b, c, &mc);
            double wp = json_number_value(json_object_get(e, "p"));
            double ws = json_number_value(json_object_get(e, "statistic"));
            TP_CHECK(mc.exact == json_is_true(json_object_get(e, "exact")));
            TP_CHECKF(fabs(mc.p - wp) <= 1e-12 && fabs(mc.statistic - ws) <= 1e-12,
                      "mcnemar(%lld, %lld): p %.17g stat %.17g vs %.17g %.17g", (long long)b,
                      (long long)c, mc.p, mc.statistic, wp, ws);
        }
    if (section(g, "paired_t", &s)) json_array_foreach(s, i, e) {
            int n, m;
            double *x = vec(json_object_get(e, "x"), &n), *y = vec(json_object_get(e, "y"), &m);
            tp_ttest t;
            TP_CHECKF(tp_stats_paired_t(x, y, n, &t, &err) == TP_OK, "%s", err.msg);
            double wt = json_number_value(json_object_get(e, "t"));
            TP_CHECK_NEAR(t.t, wt, 1e-10 * fmax(1, fabs(wt)));
            TP_CHECK_NEAR(t.p, json_number_value(json_object_get(e, "p")), 1e-12);
            TP_CHECK_NEAR(tp_stats_cohens_dz(x, y, n), json_number_value(json_object_get(e, "dz")),
                          1e-10);
            free(x);
            free(y);
        }
    if (section(g, "cohens_d", &s)) json_array_foreach(s, i, e) {
            int n, m;
            double *x = vec(json_object_get(e, "x"), &n), *y = vec(json_object_get(e, "y"), &m);
            TP_CHECK_NEAR(tp_stats_cohens_d(x, n, y, m), json_number_value(json_object_get(e, "d")),
                          1e-12);
            free(x);
            free(y);
        }
    if (section(g, "holm", &s)) json_array_foreach(s, i, e) {
            int n, m;
            double *p = vec(json_object_get(e, "p"), &n), *w = vec(json_object_get(e, "adj"), &m);
            double *adj = malloc((size_t)n * sizeof *adj);
            TP_CHECK(tp_stats_holm(p, n, adj, &err) == TP_OK);
            for (int k = 0; k < n; k++) TP_CHECK_NEAR(adj[k], w[k], 1e-15);
            free(p);
            free(w);
            free(adj);
        }
    json_decref(g);
}

/* scipy's BCa uses its own resamples: the ends agree within a fraction of the standard error
 * (Monte Carlo error of a 2.5% quantile from 10,000 resamples is ~0.05 se). */
static void test_golden_bootstrap(void) {
    json_t *g = golden(), *s, *e;
    if (!g) return;
    size_t i;
    tp_err err = {0};
    if (section(g, "bootstrap_bca", &s)) json_array_foreach(s, i, e) {
            int n;
            double *x = vec(json_object_get(e, "x"), &n), lo, hi;
            double se = json_number_value(json_object_get(e, "se"));
            TP_CHECK(tp_stats_bootstrap_bca(x, n, TP_STATS_BOOT_B, 1, 0.95, &lo, &hi, &err) ==
                     TP_OK);
            double wl = json_number_value(json_object_get(e, "lo"));
            double wh = json_number_value(json_object_get(e, "hi"));
            TP_CHECKF(fabs(lo - wl) <= 0.15 * se && fabs(hi - wh) <= 0.15 * se,
                      "BCa n=%d: [%.5f, %.5f] vs scipy [%.5f, %.5f] (se %.5f)", n, lo, hi, wl, wh,
                      se);
            free(x);
        }
    if (section(g, "paired_bootstrap", &s)) json_array_foreach(s, i, e) {
            int n, m;
            double *x = vec(json_object_get(e, "x"), &n), *y = vec(json_object_get(e, "y"), &m);
            double se = json_number_value(json_object_get(e, "se"));
            tp_paired_boot pb;
            TP_CHECK(tp_stats_paired_bootstrap(x, y, n, TP_STATS_BOOT_B, 3, 0.95, &pb, &err) ==
                     TP_OK);
            TP_CHECK_NEAR(pb.diff, json_number_value(json_object_get(e, "diff")), 1e-12);
            double wl = json_number_value(json_object_get(e, "lo"));
            double wh = json_number_value(json_object_get(e, "hi"));
            TP_CHECKF(fabs(pb.lo - wl) <= 0.15 * se && fabs(pb.hi - wh) <= 0.15 * se,
                      "paired BCa n=%d: [%.5f, %.5f] vs scipy [%.5f, %.5f] (se %.5f)", n, pb.lo,
                      pb.hi, wl, wh, se);
            /* the interval and the p-value agree about 0 */
            TP_CHECK((pb.lo > 0 || pb.hi < 0) == (pb.p < 0.05) || fabs(pb.p - 0.05) < 0.01);
            free(x);
            free(y);
        }
    json_decref(g);
}

TP_TEST_RUN(TP_CASE(test_hand_values), TP_CASE(test_bootstrap_seeded),
            TP_CASE(test_golden_distributions), TP_CASE(test_golden_tests),
            TP_CASE(test_golden_bootstrap))
