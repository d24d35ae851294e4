/* canon_json.c — canonical JSON serialisation (sorted keys, fixed number forms) and its hash. */
#include "util/canon_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strutil.h"

void tp_canon_real(double x, char *buf, size_t cap) {
    /* the shortest %.*g that round-trips: stable across libcs, readable for humans */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    if (!strpbrk(buf, ".eEn")) {
        size_t n = strlen(buf);
        if (n + 3 <= cap) memcpy(buf + n, ".0", 3);
    }
}

static void put_string(tp_strbuf *b, const char *s, size_t n) {
    tp_strbuf_append(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            tp_strbuf_append(b, "\\\"");
            break;
        case '\\':
            tp_strbuf_append(b, "\\\\");
            break;
        case '\b':
            tp_strbuf_append(b, "\\b");
            break;
        case '\f':
            tp_strbuf_append(b, "\\f");
            break;
        case '\n':
            tp_strbuf_append(b, "\\n");
            break;
        case '\r':
            tp_strbuf_append(b, "\\r");
            break;
        case '\t':
            tp_strbuf_append(b, "\\t");
            break;
        default:
            if (c < 0x20)
                tp_strbuf_printf(b, "\\u%04x", c);
            else
                tp_strbuf_appendn(b, (const char *)&s[i], 1);
        }
    }
    tp_strbuf_append(b, "\"");
}

static int key_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static tp_status put(tp_strbuf *b, const json_t *v, const char *where, tp_err *err) {
    char num[64];
    switch (json_typeof(v)) {
    case JSON_NULL:
        tp_strbuf_append(b, "null");
        return TP_OK;
    case JSON_TRUE:
        tp_strbuf_append(b, "true");
        return TP_OK;
    case JSON_FALSE:
        tp_strbuf_append(b, "false");
        return TP_OK;
    case JSON_INTEGER:
        tp_strbuf_printf(b, "%lld", (long long)json_integer_value(v));
        return TP_OK;
    case JSON_REAL: {
        double x = json_real_value(v);
        if (!isfinite(x))
            return tp_errf(err, TP_EINVAL, "canonical JSON: %s: %g is not representable in JSON",
                           where, x);
        tp_canon_real(x, num, sizeof num);
        tp_strbuf_append(b, num);
        return TP_OK;
    }
    case JSON_STRING:
        put_string(b, json_string_value(v), json_string_length(v));
        return TP_OK;
    case JSON_ARRAY: {
        tp_strbuf_append(b, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) tp_strbuf_append(b, ",");
            char sub[256];
            snprintf(sub, sizeof sub, "%s[%zu]", where, i);
            TP_TRY(put(b, json_array_get(v, i), sub, err));
        }
        tp_strbuf_append(b, "]");
        return TP_OK;
    }
    case JSON_OBJECT: {
        size_t n = json_object_size(v);
        const char **keys = malloc((n ? n : 1) * sizeof *keys);
        if (!keys) return tp_errf(err, TP_ENOMEM, "canonical JSON: out of memory");
        size_t k = 0;
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val) keys[k++] = key;
        qsort(keys, k, sizeof *keys, key_cmp);
        tp_strbuf_append(b, "{");
        tp_status st = TP_OK;
        for (size_t i = 0; i < k && st == TP_OK; i++) {
            if (i) tp_strbuf_append(b, ",");
            put_string(b, keys[i], strlen(keys[i]));
            tp_strbuf_append(b, ":");
            char sub[256];
            snprintf(sub, sizeof sub, "%s.%s", where, keys[i]);
            st = put(b, json_object_get(v, keys[i]), sub, err);
        }
        free(keys);
        tp_strbuf_append(b, "}");
        return st;
    }
    }
    return tp_errf(err, TP_EINVAL, "canonical JSON: %s: unknown JSON type", where);
}

tp_status tp_canon_json(const json_t *v, char **out, tp_err *err) {
    *out = NULL;
    if (!v) return tp_errf(err, TP_EINVAL, "canonical JSON: no value given");
    tp_strbuf b;
    tp_strbuf_init(&b);
    tp_status st = put(&b, v, "$", err);
    if (st != TP_OK) {
        tp_strbuf_free(&b);
        return st;
    }
    *out = tp_strbuf_take(&b);
    if (!*out) return tp_errf(err, TP_ENOMEM, "canonical JSON: out of memory");
    return TP_OK;
}

tp_status tp_canon_json_hash(const json_t *v, char **canon, char *hex, tp_err *err) {
    char *s;
    TP_TRY(tp_canon_json(v, &s, err));
    tp_sha256_hex(s, strlen(s), hex);
    if (canon)
        *canon = s;
    else
        free(s);
    return TP_OK;
}
