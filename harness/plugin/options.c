/* options.c — option schema checks, value validation and the opaque tp_options. */
#include "plugin/options.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/canon_json.h"
#include "util/log.h"
#include "util/strutil.h"

typedef struct opt_value {
    char *text;  /* normalised text (bools as true/false) */
    int64_t i;   /* INT */
    double f;    /* FLOAT (NAN when a word choice was given) */
    int b;       /* BOOL */
    int is_word; /* FLOAT given one of its word choices */
    int set;     /* given by the user */
} opt_value;

struct tp_options {
    char kind[32], name[64];
    const tp_option_spec *spec;
    int n;
    opt_value v[TP_MAX_OPTIONS];
};

const char *tp_opt_type_name(tp_opt_type t) {
    switch (t) {
    case TP_OPT_INT:
        return "int";
    case TP_OPT_FLOAT:
        return "float";
    case TP_OPT_BOOL:
        return "bool";
    case TP_OPT_STRING:
        return "string";
    case TP_OPT_ENUM:
        return "enum";
    }
    return "?";
}

static int valid_name(const char *s) {
    if (!s || !(*s >= 'a' && *s <= 'z')) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) return 0;
    return 1;
}

/* Is word one of "a|b|c"? */
static int in_choices(const char *choices, const char *word) {
    if (!choices) return 0;
    size_t n = strlen(word);
    for (const char *p = choices;;) {
        const char *bar = strchr(p, '|');
        size_t k = bar ? (size_t)(bar - p) : strlen(p);
        if (k == n && n && !strncmp(p, word, n)) return 1;
        if (!bar) return 0;
        p = bar + 1;
    }
}

static const char *choices_suggest(const char *choices, const char *word, char *buf, size_t cap) {
    char tmp[512];
    tp_strlcpy(tmp, choices ? choices : "", sizeof tmp);
    const char *names[64];
    int n = 0;
    for (char *tok = strtok(tmp, "|"); tok && n < 64; tok = strtok(NULL, "|")) names[n++] = tok;
    const char *s = tp_suggest(word, names, n);
    if (!s) return NULL;
    tp_strlcpy(buf, s, cap);
    return buf;
}

/* Parses text for spec into out (if non-NULL). where prefixes messages. */
static tp_status parse_value(const tp_option_spec *s, const char *text, const char *where,
                             opt_value *out, tp_err *err) {
    opt_value v = {0};
    v.f = NAN;
    int bounded = s->min <= s->max;
    switch (s->type) {
    case TP_OPT_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(text, &end, 10);
        if (!*text || *end || errno)
            return tp_errf(err, TP_EINVAL, "%s: option '%s': expected an integer, got '%s'", where,
                           s->name, text);
        if (bounded && (x < s->min || x > s->max))
            return tp_errf(err, TP_EINVAL, "%s: option '%s': %lld is out of range [%g, %g]", where,
                           s->name, x, s->min, s->max);
        v.i = x;
        v.f = (double)x;
        break;
    }
    case TP_OPT_FLOAT: {
        if (in_choices(s->choices, text)) {
            v.is_word = 1;
            break;
        }
        char *end;
        errno = 0;
        double x = strtod(text, &end);
        if (!*text || *end || errno == ERANGE || !isfinite(x))
            return tp_errf(err, TP_EINVAL, "%s: option '%s': expected a number%s%s, got '%s'",
                           where, s->name, s->choices ? " or one of " : "",
                           s->choices ? s->choices : "", text);
        if (bounded && (x < s->min || x > s->max))
            return tp_errf(err, TP_EINVAL, "%s: option '%s': %g is out of range [%g, %g]", where,
                           s->name, x, s->min, s->max);
        v.f = x;
        break;
    }
    case TP_OPT_BOOL:
        if (!strcmp(text, "true") || !strcmp(text, "1") || !strcmp(text, "yes") ||
            !strcmp(text, "on"))
            v.b = 1;
        else if (!strcmp(text, "false") || !strcmp(text, "0") || !strcmp(text, "no") ||
                 !strcmp(text, "off"))
            v.b = 0;
        else
            return tp_errf(err, TP_EINVAL, "%s: option '%s': expected true or false, got '%s'",
                           where, s->name, text);
        text = v.b ? "true" : "false";
        break;
    case TP_OPT_STRING:
        break;
    case TP_OPT_ENUM:
        if (!in_choices(s->choices, text)) {
            char hint[128];
            const char *h = choices_suggest(s->choices, text, hint, sizeof hint);
            return tp_errf(err, TP_EINVAL, "%s: option '%s': '%s' is not one of %s%s%s%s", where,
                           s->name, text, s->choices ? s->choices : "(none)",
                           h ? "; did you mean '" : "", h ? h : "", h ? "'?" : "");
        }
        break;
    default:
        return tp_errf(err, TP_EINVAL, "%s: option '%s': unknown type %d", where, s->name,
                       (int)s->type);
    }
    if (out) {
        v.text = tp_strdup(text);
        if (!v.text) return tp_errf(err, TP_ENOMEM, "%s: out of memory", where);
        *out = v;
    }
    return TP_OK;
}

tp_status tp_option_schema_validate(const char *what, const tp_option_spec *spec, int n,
                                    tp_err *err) {
    if (n < 0 || n > TP_MAX_OPTIONS)
        return tp_errf(err, TP_EPLUGIN, "%s: option schema: n_options = %d (allowed 0..%d)", what,
                       n, TP_MAX_OPTIONS);
    if (n > 0 && !spec)
        return tp_errf(err, TP_EPLUGIN, "%s: option schema: n_options = %d but options is NULL",
                       what, n);
    for (int i = 0; i < n; i++) {
        const tp_option_spec *s = &spec[i];
        if (!valid_name(s->name))
            return tp_errf(err, TP_EPLUGIN,
                           "%s: option #%d: bad name '%s' (expected [a-z][a-z0-9_]*)", what, i,
                           s->name ? s->name : "(null)");
        for (int j = 0; j < i; j++)
            if (!strcmp(spec[j].name, s->name))
                return tp_errf(err, TP_EPLUGIN, "%s: option '%s' is declared twice (#%d and #%d)",
                               what, s->name, j, i);
        if (s->type < TP_OPT_INT || s->type > TP_OPT_ENUM)
            return tp_errf(err, TP_EPLUGIN, "%s: option '%s': unknown type %d", what, s->name,
                           (int)s->type);
        if (s->type == TP_OPT_ENUM) {
            if (!s->choices || !*s->choices)
                return tp_errf(err, TP_EPLUGIN, "%s: option '%s': enum without choices", what,
                               s->name);
            size_t L = strlen(s->choices);
            if (s->choices[0] == '|' || s->choices[L - 1] == '|' || strstr(s->choices, "||"))
                return tp_errf(err, TP_EPLUGIN, "%s: option '%s': empty choice in '%s'", what,
                               s->name, s->choices);
        }
        if ((s->type == TP_OPT_INT || s->type == TP_OPT_FLOAT) && s->min <= s->max &&
            (!isfinite(s->min) || !isfinite(s->max)))
            return tp_errf(err, TP_EPLUGIN, "%s: option '%s': range bounds must be finite", what,
                           s->name);
        if (!s->def) return tp_errf(err, TP_EPLUGIN, "%s: option '%s': no default", what, s->name);
        char where[160];
        snprintf(where, sizeof where, "%s: default", what);
        if (parse_value(s, s->def, where, NULL, err) != TP_OK) {
            err->code = TP_EPLUGIN;
            return TP_EPLUGIN;
        }
        if (!s->doc || !*s->doc)
            return tp_errf(err, TP_EPLUGIN, "%s: option '%s': missing one-line doc", what, s->name);
    }
    return TP_OK;
}

static void values_free(tp_options *o) {
    for (int i = 0; i < o->n; i++) {
        free(o->v[i].text);
        o->v[i].text = NULL;
    }
}

tp_status tp_options_new(const char *kind, const char *name, const tp_option_spec *spec, int n,
                         tp_options **out, tp_err *err) {
    *out = NULL;
    char what[128];
    snprintf(what, sizeof what, "%s '%s'", kind, name);
    TP_TRY(tp_option_schema_validate(what, spec, n, err));
    tp_options *o = calloc(1, sizeof *o);
    if (!o) return tp_errf(err, TP_ENOMEM, "options: out of memory");
    tp_strlcpy(o->kind, kind, sizeof o->kind);
    tp_strlcpy(o->name, name, sizeof o->name);
    o->spec = spec;
    o->n = n;
    for (int i = 0; i < n; i++) {
        tp_status st = parse_value(&spec[i], spec[i].def, what, &o->v[i], err);
        if (st != TP_OK) {
            values_free(o);
            free(o);
            return st;
        }
    }
    *out = o;
    return TP_OK;
}

void tp_options_free(tp_options *o) {
    if (!o) return;
    values_free(o);
    free(o);
}

static int find(const tp_options *o, const char *name) {
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->spec[i].name, name)) return i;
    return -1;
}

static tp_status unknown(const tp_options *o, const char *name, tp_err *err) {
    const char *names[TP_MAX_OPTIONS];
    for (int i = 0; i < o->n; i++) names[i] = o->spec[i].name;
    const char *hint = tp_suggest(name, names, o->n);
    char list[512];
    tp_str_join_list(list, sizeof list, names, o->n);
    return tp_errf(err, TP_EINVAL, "unknown option '%s' for %s '%s'%s%s%s; options: %s", name,
                   o->kind, o->name, hint ? "; did you mean '" : "", hint ? hint : "",
                   hint ? "'?" : "", o->n ? list : "(none)");
}

tp_status tp_options_set(tp_options *o, const char *name, const char *value, tp_err *err) {
    int i = find(o, name);
    if (i < 0) return unknown(o, name, err);
    char where[128];
    snprintf(where, sizeof where, "%s '%s'", o->kind, o->name);
    opt_value v;
    TP_TRY(parse_value(&o->spec[i], value, where, &v, err));
    free(o->v[i].text);
    o->v[i] = v;
    o->v[i].set = 1;
    return TP_OK;
}

tp_status tp_options_set_json(tp_options *o, const char *name, const json_t *v, tp_err *err) {
    char buf[64];
    const char *text = buf;
    int i = find(o, name);
    if (i < 0) return unknown(o, name, err);
    tp_opt_type t = o->spec[i].type;
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL: {
        double x = json_real_value(v);
        /* an integral real for an int option (Lua 16.0) is the integer it spells */
        if (t == TP_OPT_INT && x == floor(x) && fabs(x) < 9.0e15)
            snprintf(buf, sizeof buf, "%lld", (long long)x);
        else
            tp_canon_real(x, buf, sizeof buf);
        break;
    }
    case JSON_TRUE:
        text = "true";
        break;
    case JSON_FALSE:
        text = "false";
        break;
    case JSON_STRING:
        text = json_string_value(v);
        break;
    default:
        return tp_errf(err, TP_EINVAL, "%s '%s': option '%s': expected a %s value, got %s", o->kind,
                       o->name, name, tp_opt_type_name(t), json_is_null(v) ? "null" : "a table");
    }
    if (t == TP_OPT_BOOL && (json_is_integer(v) || json_is_real(v) || json_is_string(v)) &&
        !json_is_boolean(v)) {
        /* accept "true"/"false" strings but not numbers: 0/1 from a script is usually a typo */
        if (!json_is_string(v))
            return tp_errf(err, TP_EINVAL, "%s '%s': option '%s': expected true or false, got %s",
                           o->kind, o->name, name, text);
    }
    if ((t == TP_OPT_STRING || t == TP_OPT_ENUM) && !json_is_string(v))
        return tp_errf(err, TP_EINVAL, "%s '%s': option '%s': expected a string, got %s", o->kind,
                       o->name, name, text);
    if ((t == TP_OPT_INT) && json_is_boolean(v))
        return tp_errf(err, TP_EINVAL, "%s '%s': option '%s': expected an integer, got %s", o->kind,
                       o->name, name, text);
    return tp_options_set(o, name, text, err);
}

tp_status tp_options_set_object(tp_options *o, const json_t *obj, tp_err *err) {
    if (!json_is_object(obj))
        return tp_errf(err, TP_EINVAL, "%s '%s': options must be a table of name = value", o->kind,
                       o->name);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) TP_TRY(tp_options_set_json(o, k, v, err));
    return TP_OK;
}

tp_status tp_options_set_list(tp_options *o, const char *list, tp_err *err) {
    char *copy = tp_strdup(list);
    if (!copy) return tp_errf(err, TP_ENOMEM, "options: out of memory");
    tp_status st = TP_OK;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && st == TP_OK;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            st = tp_errf(err, TP_EINVAL, "%s '%s': option '%s': expected name=value", o->kind,
                         o->name, tp_str_trim(tok));
            break;
        }
        *eq = 0;
        st = tp_options_set(o, tp_str_trim(tok), tp_str_trim(eq + 1), err);
    }
    free(copy);
    return st;
}

static const opt_value *get(const tp_options *o, const char *name, const char *accessor) {
    if (!o) {
        tp_log(TP_LOG_ERROR, "options", "%s('%s') on NULL options", accessor, name);
        return NULL;
    }
    int i = find(o, name);
    if (i < 0) {
        tp_log(TP_LOG_ERROR, o->name, "%s('%s'): the %s declares no such option", accessor, name,
               o->kind);
        return NULL;
    }
    return &o->v[i];
}

int64_t tp_options_int(const tp_options *o, const char *name) {
    const opt_value *v = get(o, name, "opt_int");
    if (!v) return 0;
    int i = find(o, name);
    if (o->spec[i].type == TP_OPT_FLOAT) return (int64_t)v->f;
    if (o->spec[i].type == TP_OPT_BOOL) return v->b;
    return v->i;
}

double tp_options_float(const tp_options *o, const char *name) {
    const opt_value *v = get(o, name, "opt_float");
    if (!v) return NAN;
    int i = find(o, name);
    if (o->spec[i].type == TP_OPT_INT) return (double)v->i;
    if (o->spec[i].type == TP_OPT_BOOL) return v->b;
    return v->f;
}

int tp_options_bool(const tp_options *o, const char *name) {
    const opt_value *v = get(o, name, "opt_bool");
    if (!v) return 0;
    int i = find(o, name);
    if (o->spec[i].type == TP_OPT_INT) return v->i != 0;
    return v->b;
}

const char *tp_options_string(const tp_options *o, const char *name) {
    const opt_value *v = get(o, name, "opt_string");
    return v ? v->text : NULL;
}

int tp_options_is_set(const tp_options *o, const char *name) {
    int i = o ? find(o, name) : -1;
    return i >= 0 && o->v[i].set;
}

json_t *tp_options_json(const tp_options *o) {
    json_t *obj = json_object();
    for (int i = 0; i < o->n && obj; i++) {
        const opt_value *v = &o->v[i];
        json_t *j;
        switch (o->spec[i].type) {
        case TP_OPT_INT:
            j = json_integer(v->i);
            break;
        case TP_OPT_FLOAT:
            j = v->is_word ? json_string(v->text) : json_real(v->f);
            break;
        case TP_OPT_BOOL:
            j = json_boolean(v->b);
            break;
        default:
            j = json_string(v->text);
            break;
        }
        json_object_set_new(obj, o->spec[i].name, j);
    }
    return obj;
}

tp_status tp_options_canon(const tp_options *o, char **out, tp_err *err) {
    json_t *j = tp_options_json(o);
    if (!j) return tp_errf(err, TP_ENOMEM, "options: out of memory");
    tp_status st = tp_canon_json(j, out, err);
    json_decref(j);
    return st;
}
