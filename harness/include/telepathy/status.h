/* status.h — the status codes and error-message buffer every harness function uses.
 * Library code never exits: it returns a tp_status and fills a tp_err; only main() decides how
 * the process ends. Messages name the file / field / op and end with a hint for the fix. */
#ifndef TELEPATHY_STATUS_H
#define TELEPATHY_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tp_status {
    TP_OK = 0,
    TP_EINVAL = 1,   /* bad argument, option or config value */
    TP_ENOMEM = 2,   /* allocation failed */
    TP_EIO = 3,      /* file missing, unreadable, short read/write, disk full */
    TP_EFORMAT = 4,  /* malformed file: JSON, safetensors, tokenizer, INI, CSV */
    TP_ESHAPE = 5,   /* tensor shape mismatch */
    TP_EDTYPE = 6,   /* tensor dtype mismatch or unsupported dtype */
    TP_ERANGE = 7,   /* index out of range (token id >= vocab, layer > N, ...) */
    TP_EPLUGIN = 8,  /* plugin ABI / load / registration error */
    TP_EDB = 9,      /* SQLite error */
    TP_ESCRIPT = 10, /* Lua error */
    TP_EUNSUP = 11,  /* not supported (op on backend, architecture, dtype) */
    TP_ECUDA = 12,   /* CUDA / cuBLAS / cuDNN error */
    TP_EINTR = 13,   /* interrupted (signal) */
    TP_ESTATE = 14,  /* call made in the wrong state */
} tp_status;

#define TP_ERR_MAX 1024

typedef struct tp_err {
    tp_status code;
    char msg[TP_ERR_MAX];
} tp_err;

/* Sets err (if non-NULL) to code + formatted message; returns code so callers can write
 * `return tp_errf(err, TP_EINVAL, "...")`. */
tp_status tp_errf(tp_err *err, tp_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
tp_status tp_verrf(tp_err *err, tp_status code, const char *fmt, va_list ap);
/* Prepends "prefix: " to an existing message (adds context while unwinding). */
tp_status tp_err_prefix(tp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tp_err_clear(tp_err *err);
const char *tp_status_name(tp_status s);

#define TP_TRY(expr)                                                                               \
    do {                                                                                           \
        tp_status tp_try_s_ = (expr);                                                              \
        if (tp_try_s_ != TP_OK) return tp_try_s_;                                                  \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
