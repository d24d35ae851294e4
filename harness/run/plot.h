/* plot.h — figures straight from results.db through gnuplot (Debian package gnuplot-nox): the
 * output format follows the file name (.png via pngcairo, .svg, .pdf via pdfcairo).
 *   scaling   metric vs bridge.options.tokens (log2 x axis), one line per series key (default
 *             task), mean over seeds with std error bars: the inverse-token-scaling curve
 *   layers    metric vs the sender layer, same shape
 *   xy        metric vs any numeric key (x), one line per series key
 *   curve     a per-step metric (default train/loss) vs step, one line per run
 *   latency   latency rows as bars (ms per call, std error bars), one bar per run, stage, batch
 * Filters: experiment name, runs.origin, explicit run ids (curve, latency). No data is an error,
 * never an empty figure. */
#ifndef TP_RUN_PLOT_H
#define TP_RUN_PLOT_H

#include <stdint.h>

#include "store/store.h"

typedef struct tp_plot_opts {
    const char *kind;       /* scaling | layers | xy | curve | latency */
    const char *out;        /* FILE.png | FILE.svg | FILE.pdf */
    const char *metric;     /* results metric (default accuracy) or metrics name for curve
                               (default train/loss) */
    const char *x;          /* xy: the x key (a runs column or config path) */
    const char *series;     /* key naming each line (default task) */
    const char *split;      /* default eval */
    const char *experiment; /* experiments.name filter, or NULL */
    const char *origin;     /* runs.origin filter, or NULL */
    const int64_t *runs;    /* curve / latency: only these runs (n_runs = 0: all that match) */
    int n_runs;
    const char *title;   /* NULL = made from the kind and metric */
    const char *gnuplot; /* executable (NULL = "gnuplot" on PATH) */
} tp_plot_opts;

tp_status tp_plot(tp_store *s, const tp_plot_opts *o, tp_err *err);

#endif
