/* status.c — formatting of tp_err messages and status names. */
#include "telepathy/status.h"

#include <stdio.h>
#include <string.h>

tp_status tp_verrf(tp_err *err, tp_status code, const char *fmt, va_list ap) {
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

tp_status tp_errf(tp_err *err, tp_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tp_verrf(err, code, fmt, ap);
    va_end(ap);
    return code;
}

tp_status tp_err_prefix(tp_err *err, const char *fmt, ...) {
    if (!err) return TP_OK;
    char pre[TP_ERR_MAX], old[TP_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", pre, old);
    return err->code;
}

void tp_err_clear(tp_err *err) {
    if (err) {
        err->code = TP_OK;
        err->msg[0] = 0;
    }
}

const char *tp_status_name(tp_status s) {
    static const char *names[] = {
        "ok",           "invalid argument", "out of memory",  "i/o error",
        "bad format",   "shape mismatch",   "dtype mismatch", "out of range",
        "plugin error", "database error",   "script error",   "unsupported",
        "cuda error",   "interrupted",      "bad state"};
    if ((unsigned)s < sizeof names / sizeof names[0]) return names[s];
    return "unknown status";
}
