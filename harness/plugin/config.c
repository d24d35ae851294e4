/* config.c — telepathy.ini through inih, environment and command-line overrides, per-value
 * origins, model aliases. The schema below is the one list of what the file may contain; every
 * error names file:line and lists the keys that exist. */
#include "plugin/config.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "util/canon_json.h"
#include "util/fsutil.h"
#include "util/strutil.h"

#ifndef TP_PLUGIN_BUILD_DIR
#define TP_PLUGIN_BUILD_DIR "plugins"
#endif

typedef enum { CT_STRING, CT_PATH, CT_PATHLIST, CT_INT, CT_ENUM } ctype;

typedef struct key_spec {
    const char *section, *key;
    ctype type;
    const char *def;
    long long min, max;
    const char *choices; /* CT_ENUM: "a|b" */
} key_spec;

static const key_spec SCHEMA[] = {
    {"paths", "models", CT_PATH, "models", 0, 0, NULL},
    {"paths", "data", CT_PATH, "data", 0, 0, NULL},
    {"paths", "results", CT_PATH, "results.db", 0, 0, NULL},
    {"paths", "plugins", CT_PATHLIST, TP_PLUGIN_BUILD_DIR, 0, 0, NULL},
    {"device", "device", CT_ENUM, "cpu", 0, 0, "cpu|cuda"},
    {"device", "dtype", CT_ENUM, "f32", 0, 0, "f32|bf16"},
    {"device", "threads", CT_INT, "0", 0, 4096, NULL},
    {"run", "seed", CT_INT, "0", 0, 2147483647LL, NULL},
    {"run", "log_level", CT_ENUM, "info", 0, 0, "debug|info|warn|error"},
};
#define N_SCHEMA ((int)(sizeof SCHEMA / sizeof SCHEMA[0]))
static const char *const SECTIONS[] = {"paths", "device", "models", "run"};
#define N_SECTIONS 4

typedef struct entry {
    char *key; /* "section.key" */
    char *value;
    tp_config_origin origin;
    char *detail;
    int line; /* file line when origin is FILE, for duplicate detection */
} entry;

struct tp_config {
    entry *e;
    int n, cap;
    char *file;
};

static const key_spec *find_spec(const char *section, const char *key) {
    for (int i = 0; i < N_SCHEMA; i++)
        if (!strcmp(SCHEMA[i].section, section) && !strcmp(SCHEMA[i].key, key)) return &SCHEMA[i];
    return NULL;
}

static int section_known(const char *s) {
    for (int i = 0; i < N_SECTIONS; i++)
        if (!strcmp(SECTIONS[i], s)) return 1;
    return 0;
}

static entry *find_entry(const tp_config *c, const char *key) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].key, key)) return &c->e[i];
    return NULL;
}

static int entry_cmp(const void *a, const void *b) {
    const entry *x = a, *y = b;
    int mx = tp_str_starts_with(x->key, "models."), my = tp_str_starts_with(y->key, "models.");
    if (mx != my) return mx - my; /* schema keys first, in insertion order (stable below) */
    if (!mx) return 0;
    return strcmp(x->key, y->key);
}

static tp_status put_entry(tp_config *c, const char *key, const char *value,
                           tp_config_origin origin, const char *detail, int line, tp_err *err) {
    entry *e = find_entry(c, key);
    if (!e) {
        if (c->n == c->cap) {
            int cap = c->cap ? c->cap * 2 : 16;
            entry *ne = realloc(c->e, (size_t)cap * sizeof *ne);
            if (!ne) return tp_errf(err, TP_ENOMEM, "config: out of memory");
            c->e = ne;
            c->cap = cap;
        }
        e = &c->e[c->n++];
        memset(e, 0, sizeof *e);
        e->key = tp_strdup(key);
        if (!e->key) {
            c->n--;
            return tp_errf(err, TP_ENOMEM, "config: out of memory");
        }
    }
    char *v = tp_strdup(value), *d = tp_strdup(detail ? detail : "");
    if (!v || !d) {
        free(v);
        free(d);
        return tp_errf(err, TP_ENOMEM, "config: out of memory");
    }
    free(e->value);
    free(e->detail);
    e->value = v;
    e->detail = d;
    e->origin = origin;
    e->line = line;
    /* keep aliases sorted so iteration order is stable; schema keys keep their order because
     * they are inserted first, in schema order, and compare equal */
    if (tp_str_starts_with(key, "models.")) {
        int nschema = 0;
        while (nschema < c->n && !tp_str_starts_with(c->e[nschema].key, "models.")) nschema++;
        qsort(c->e + nschema, (size_t)(c->n - nschema), sizeof *c->e, entry_cmp);
    }
    return TP_OK;
}

static void keys_of_section(const char *section, char *buf, size_t cap) {
    const char *names[16];
    int n = 0;
    for (int i = 0; i < N_SCHEMA; i++)
        if (!strcmp(SCHEMA[i].section, section)) names[n++] = SCHEMA[i].key;
    tp_str_join_list(buf, cap, names, n);
}

static tp_status check_value(const key_spec *s, const char *value, const char *where, tp_err *err) {
    switch (s->type) {
    case CT_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!*value || *end || errno)
            return tp_errf(err, TP_EINVAL, "%s: %s.%s: expected an integer, got '%s'", where,
                           s->section, s->key, value);
        if (v < s->min || v > s->max)
            return tp_errf(err, TP_EINVAL, "%s: %s.%s: %lld is out of range [%lld, %lld]", where,
                           s->section, s->key, v, s->min, s->max);
        return TP_OK;
    }
    case CT_ENUM: {
        char buf[128];
        tp_strlcpy(buf, s->choices, sizeof buf);
        for (char *tok = strtok(buf, "|"); tok; tok = strtok(NULL, "|"))
            if (!strcmp(tok, value)) return TP_OK;
        return tp_errf(err, TP_EINVAL, "%s: %s.%s: '%s' is not one of %s", where, s->section,
                       s->key, value, s->choices);
    }
    case CT_PATH:
    case CT_PATHLIST:
    case CT_STRING:
        if (!*value && s->type != CT_STRING)
            return tp_errf(err, TP_EINVAL, "%s: %s.%s: expected a path, got an empty value", where,
                           s->section, s->key);
        return TP_OK;
    }
    return TP_OK;
}

/* Relative paths in a file are relative to the file's directory, so a config works from any
 * working directory. */
static tp_status resolve_rel(const char *base_dir, const char *value, int list, char **out,
                             tp_err *err) {
    tp_strbuf b;
    tp_strbuf_init(&b);
    const char *p = value;
    for (;;) {
        const char *end = list ? strchr(p, ':') : NULL;
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n && p[0] != '/' && base_dir && strcmp(base_dir, ".") != 0) {
            tp_strbuf_append(&b, base_dir);
            tp_strbuf_append(&b, "/");
        }
        tp_strbuf_appendn(&b, p, n);
        if (!end) break;
        tp_strbuf_append(&b, ":");
        p = end + 1;
    }
    *out = tp_strbuf_take(&b);
    if (!*out) return tp_errf(err, TP_ENOMEM, "config: out of memory");
    return TP_OK;
}

static tp_status set_checked(tp_config *c, const char *section, const char *key, const char *value,
                             tp_config_origin origin, const char *detail, const char *base_dir,
                             int line, tp_err *err) {
    char full[256];
    snprintf(full, sizeof full, "%s.%s", section, key);
    const char *where = detail && *detail ? detail : full;
    if (!section_known(section)) {
        const char *hint = tp_suggest(section, SECTIONS, N_SECTIONS);
        char list[256];
        tp_str_join_list(list, sizeof list, SECTIONS, N_SECTIONS);
        return tp_errf(err, TP_EINVAL, "%s: unknown section [%s]%s%s%s; sections: %s", where,
                       section, hint ? "; did you mean [" : "", hint ? hint : "", hint ? "]?" : "",
                       list);
    }
    if (!strcmp(section, "models")) {
        /* aliases: free names, but they become identifiers in scripts and messages */
        if (!*key || strchr(key, '.') || strchr(key, ' '))
            return tp_errf(err, TP_EINVAL, "%s: bad model alias name '%s' (no '.', no spaces)",
                           where, key);
        if (!*value)
            return tp_errf(err, TP_EINVAL, "%s: models.%s: expected a path or model name", where,
                           key);
        char *v = NULL;
        TP_TRY(resolve_rel(strchr(value, '/') ? base_dir : NULL, value, 0, &v, err));
        tp_status st = put_entry(c, full, v, origin, detail, line, err);
        free(v);
        return st;
    }
    const key_spec *s = find_spec(section, key);
    if (!s) {
        const char *names[16];
        int n = 0;
        for (int i = 0; i < N_SCHEMA; i++)
            if (!strcmp(SCHEMA[i].section, section)) names[n++] = SCHEMA[i].key;
        const char *hint = tp_suggest(key, names, n);
        char list[256];
        keys_of_section(section, list, sizeof list);
        return tp_errf(err, TP_EINVAL, "%s: unknown key '%s' in [%s]%s%s%s; keys in [%s]: %s",
                       where, key, section, hint ? "; did you mean '" : "", hint ? hint : "",
                       hint ? "'?" : "", section, list);
    }
    TP_TRY(check_value(s, value, where, err));
    if (s->type == CT_PATH || s->type == CT_PATHLIST) {
        char *v = NULL;
        TP_TRY(resolve_rel(base_dir, value, s->type == CT_PATHLIST, &v, err));
        tp_status st = put_entry(c, full, v, origin, detail, line, err);
        free(v);
        return st;
    }
    return put_entry(c, full, value, origin, detail, line, err);
}

tp_status tp_config_defaults(int use_env, tp_config **out, tp_err *err) {
    *out = NULL;
    tp_config *c = calloc(1, sizeof *c);
    if (!c) return tp_errf(err, TP_ENOMEM, "config: out of memory");
    for (int i = 0; i < N_SCHEMA; i++) {
        char full[256];
        snprintf(full, sizeof full, "%s.%s", SCHEMA[i].section, SCHEMA[i].key);
        tp_status st = put_entry(c, full, SCHEMA[i].def, TP_ORIGIN_DEFAULT, "", 0, err);
        if (st != TP_OK) {
            tp_config_free(c);
            return st;
        }
    }
    *out = c;
    if (!use_env) return TP_OK;
    const char *pp = getenv("TELEPATHY_PLUGIN_PATH");
    if (pp && *pp) {
        tp_status st = set_checked(c, "paths", "plugins", pp, TP_ORIGIN_ENV,
                                   "TELEPATHY_PLUGIN_PATH", NULL, 0, err);
        if (st != TP_OK) {
            tp_config_free(c);
            *out = NULL;
            return st;
        }
    }
    return TP_OK;
}

void tp_config_free(tp_config *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        free(c->e[i].key);
        free(c->e[i].value);
        free(c->e[i].detail);
    }
    free(c->e);
    free(c->file);
    free(c);
}

/* ---- INI parsing ---------------------------------------------------------------------------
 * inih reports values without line numbers, so the reader counts lines itself (the handler is
 * always called while the line just read is the current one) and checks section headers,
 * which inih does not report when a section is empty. */
typedef struct parse_ctx {
    tp_config *c;
    FILE *f;
    const char *path;
    char *dir;
    int line;
    int failed;
    int continuation; /* the line just read is indented: inih continues the previous value */
    int has_prev;     /* a key was set since the last section header */
    char *buf;        /* getline buffer */
    size_t buf_cap;
    tp_err *err;
    /* entries set by this file, to refuse duplicate keys */
    char **seen;
    int *seen_line;
    int n_seen, cap_seen;
} parse_ctx;

static char *reader(char *str, int num, void *stream) {
    parse_ctx *p = stream;
    if (p->failed) return NULL;
    /* whole lines, so a line longer than inih's buffer is an error here rather than being cut
     * into pieces that inih would parse as separate lines */
    ssize_t n = getline(&p->buf, &p->buf_cap, p->f);
    if (n < 0) return NULL;
    p->line++;
    size_t len = (size_t)n;
    while (len && (p->buf[len - 1] == '\n' || p->buf[len - 1] == '\r')) len--;
    if (len + 3 > (size_t)num) {
        tp_errf(p->err, TP_EFORMAT,
                "%s:%d: line is %zu characters long; the INI reader takes at most %d (a long "
                "plugin path can continue on the following lines, indented)",
                p->path, p->line, len, num - 3);
        p->failed = 1;
        return NULL;
    }
    memcpy(str, p->buf, (size_t)n + 1);
    char *r = str;
    char *t = tp_str_trim(p->buf);
    /* inih treats an indented line after a key as a continuation of its value */
    p->continuation = p->has_prev && (str[0] == ' ' || str[0] == '\t') && *t && !strchr(";#[", *t);
    if (*t == '[') p->has_prev = 0; /* inih forgets the previous key at a section header */
    if (t[0] == '[') {
        char *close = strchr(t, ']');
        if (!close) {
            tp_errf(p->err, TP_EFORMAT, "%s:%d: section header without ']': %s", p->path, p->line,
                    t);
            p->failed = 1;
            return NULL;
        }
        *close = 0;
        char *name = tp_str_trim(t + 1);
        if (!section_known(name)) {
            char where[600];
            snprintf(where, sizeof where, "%s:%d", p->path, p->line);
            set_checked(p->c, name, "x", "x", TP_ORIGIN_FILE, where, NULL, p->line, p->err);
            p->failed = 1;
            return NULL;
        }
    }
    return r;
}

/* An indented line continues the previous key's value: only the plugin path, a list, may
 * span lines (each line adds directories); anything else would be ambiguous. */
static int continue_value(parse_ctx *p, const char *full, const char *value, const char *where) {
    if (strcmp(full, "paths.plugins") != 0) {
        tp_errf(p->err, TP_EFORMAT,
                "%s: indented line continues '%s'; only paths.plugins may span several lines "
                "(remove the indentation to start a new key)",
                where, full);
        p->failed = 1;
        return 0;
    }
    entry *e = find_entry(p->c, full);
    char *more = NULL;
    if (!*value) return 1;
    if (resolve_rel(p->dir, value, 1, &more, p->err) != TP_OK) {
        p->failed = 1;
        return 0;
    }
    tp_strbuf b;
    tp_strbuf_init(&b);
    tp_strbuf_printf(&b, "%s:%s", e ? e->value : "", more);
    free(more);
    char *joined = tp_strbuf_take(&b);
    tp_status st = joined ? put_entry(p->c, full, joined, TP_ORIGIN_FILE, e ? e->detail : where,
                                      e ? e->line : p->line, p->err)
                          : tp_errf(p->err, TP_ENOMEM, "config: out of memory");
    free(joined);
    if (st != TP_OK) p->failed = 1;
    return st == TP_OK;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
    parse_ctx *p = user;
    char where[600];
    snprintf(where, sizeof where, "%s:%d", p->path, p->line);
    if (!*section) {
        tp_errf(p->err, TP_EFORMAT,
                "%s: key '%s' outside any section; put it under [paths], "
                "[device], [models] or [run]",
                where, name);
        p->failed = 1;
        return 0;
    }
    char full[256];
    snprintf(full, sizeof full, "%s.%s", section, name);
    if (p->continuation) return continue_value(p, full, value, where);
    for (int i = 0; i < p->n_seen; i++)
        if (!strcmp(p->seen[i], full)) {
            tp_errf(p->err, TP_EFORMAT, "%s: duplicate key '%s' in [%s] (first set at line %d)",
                    where, name, section, p->seen_line[i]);
            p->failed = 1;
            return 0;
        }
    if (set_checked(p->c, section, name, value, TP_ORIGIN_FILE, where, p->dir, p->line, p->err) !=
        TP_OK) {
        p->failed = 1;
        return 0;
    }
    if (p->n_seen == p->cap_seen) {
        int cap = p->cap_seen ? p->cap_seen * 2 : 16;
        char **ns = realloc(p->seen, (size_t)cap * sizeof *ns);
        if (ns) p->seen = ns;
        int *nl = realloc(p->seen_line, (size_t)cap * sizeof *nl);
        if (nl) p->seen_line = nl;
        if (!ns || !nl) {
            tp_errf(p->err, TP_ENOMEM, "config: out of memory");
            p->failed = 1;
            return 0;
        }
        p->cap_seen = cap;
    }
    p->seen[p->n_seen] = tp_strdup(full);
    p->seen_line[p->n_seen++] = p->line;
    p->has_prev = 1;
    return 1;
}

tp_status tp_config_load_file(tp_config *c, const char *path, tp_err *err) {
    FILE *f = fopen(path, "r");
    if (!f) return tp_errf(err, TP_EIO, "%s: cannot open configuration: %s", path, strerror(errno));
    char dirbuf[4096];
    tp_strlcpy(dirbuf, path, sizeof dirbuf);
    parse_ctx p = {.c = c, .f = f, .path = path, .dir = tp_strdup(dirname(dirbuf)), .err = err};
    int rc = ini_parse_stream(reader, &p, handler, &p);
    fclose(f);
    for (int i = 0; i < p.n_seen; i++) free(p.seen[i]);
    free(p.seen);
    free(p.seen_line);
    free(p.dir);
    free(p.buf);
    if (p.failed) return err ? err->code : TP_EFORMAT;
    if (rc > 0)
        return tp_errf(err, TP_EFORMAT,
                       "%s:%d: not an INI line (expected [section] or key = value)", path, rc);
    if (rc < 0) return tp_errf(err, TP_EIO, "%s: cannot parse configuration (rc %d)", path, rc);
    free(c->file);
    c->file = tp_strdup(path);
    return TP_OK;
}

tp_status tp_config_load(const char *explicit_path, tp_config **out, tp_err *err) {
    tp_config *c;
    /* the file is read before environment overrides are applied again below, so env wins */
    TP_TRY(tp_config_defaults(0, &c, err));
    const char *path = explicit_path;
    const char *how = "$TELEPATHY_CONFIG";
    if (!path) {
        path = getenv("TELEPATHY_CONFIG");
        if (path && !*path) path = NULL;
    }
    int from_env = path != NULL && !explicit_path;
    if (!path && tp_file_exists("telepathy.ini")) path = "telepathy.ini";
    tp_status st = TP_OK;
    if (path) {
        st = tp_config_load_file(c, path, err);
        if (st != TP_OK && from_env) tp_err_prefix(err, "%s", how);
    }
    const char *pp = getenv("TELEPATHY_PLUGIN_PATH");
    if (st == TP_OK && pp && *pp)
        st = set_checked(c, "paths", "plugins", pp, TP_ORIGIN_ENV, "TELEPATHY_PLUGIN_PATH", NULL, 0,
                         err);
    if (st != TP_OK) {
        tp_config_free(c);
        *out = NULL;
        return st;
    }
    *out = c;
    return TP_OK;
}

tp_status tp_config_set(tp_config *c, const char *key, const char *value, tp_config_origin origin,
                        const char *origin_detail, tp_err *err) {
    const char *dot = strchr(key, '.');
    if (!dot || dot == key || !dot[1]) {
        const char *names[32];
        char full[N_SCHEMA][64];
        for (int i = 0; i < N_SCHEMA; i++) {
            snprintf(full[i], sizeof full[i], "%s.%s", SCHEMA[i].section, SCHEMA[i].key);
            names[i] = full[i];
        }
        const char *hint = tp_suggest(key, names, N_SCHEMA);
        char list[512];
        tp_str_join_list(list, sizeof list, names, N_SCHEMA);
        return tp_errf(err, TP_EINVAL,
                       "configuration key '%s' must be section.key%s%s%s; keys: %s, models.<alias>",
                       key, hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "",
                       list);
    }
    char section[64];
    size_t sl = (size_t)(dot - key);
    if (sl >= sizeof section)
        return tp_errf(err, TP_EINVAL, "configuration key '%s': section too long", key);
    memcpy(section, key, sl);
    section[sl] = 0;
    return set_checked(c, section, dot + 1, value, origin, origin_detail ? origin_detail : "", NULL,
                       0, err);
}

tp_status tp_config_set_arg(tp_config *c, const char *assignment, tp_err *err) {
    const char *eq = strchr(assignment, '=');
    if (!eq) return tp_errf(err, TP_EINVAL, "--set '%s': expected section.key=value", assignment);
    char key[256];
    size_t kl = (size_t)(eq - assignment);
    if (kl >= sizeof key) return tp_errf(err, TP_EINVAL, "--set '%s': key too long", assignment);
    memcpy(key, assignment, kl);
    key[kl] = 0;
    return tp_config_set(c, tp_str_trim(key), eq + 1, TP_ORIGIN_CLI, "--set", err);
}

const char *tp_config_get(const tp_config *c, const char *key) {
    entry *e = find_entry(c, key);
    return e ? e->value : NULL;
}

int64_t tp_config_get_int(const tp_config *c, const char *key) {
    const char *v = tp_config_get(c, key);
    return v ? strtoll(v, NULL, 10) : 0;
}

const char *tp_config_origin_str(const tp_config *c, const char *key, char *buf, size_t cap) {
    entry *e = find_entry(c, key);
    if (!e)
        snprintf(buf, cap, "unknown");
    else if (e->origin == TP_ORIGIN_DEFAULT)
        snprintf(buf, cap, "default");
    else if (e->origin == TP_ORIGIN_FILE)
        snprintf(buf, cap, "%s", e->detail);
    else if (e->origin == TP_ORIGIN_ENV)
        snprintf(buf, cap, "env %s", e->detail);
    else
        snprintf(buf, cap, "command line %s", e->detail);
    return buf;
}

const char *tp_config_file(const tp_config *c) {
    return c->file;
}
int tp_config_count(const tp_config *c) {
    return c->n;
}
const char *tp_config_key_at(const tp_config *c, int i) {
    return i >= 0 && i < c->n ? c->e[i].key : NULL;
}

tp_status tp_config_resolve_model(const tp_config *c, const char *ref, char *out, size_t cap,
                                  tp_err *err) {
    const char *cur = ref;
    char key[300];
    for (int hop = 0; hop < 16; hop++) {
        snprintf(key, sizeof key, "models.%s", cur);
        const char *v = tp_config_get(c, key);
        if (!v) {
            int n;
            if (strchr(cur, '/'))
                n = snprintf(out, cap, "%s", cur);
            else
                n = snprintf(out, cap, "%s/%s", tp_config_get(c, "paths.models"), cur);
            if ((size_t)n >= cap) return tp_errf(err, TP_EINVAL, "model '%s': path too long", ref);
            return TP_OK;
        }
        if (strchr(v, '/')) {
            if ((size_t)snprintf(out, cap, "%s", v) >= cap)
                return tp_errf(err, TP_EINVAL, "model '%s': path too long", ref);
            return TP_OK;
        }
        if (!strcmp(v, cur)) break;
        cur = v;
    }
    return tp_errf(err, TP_EINVAL,
                   "model alias '%s': aliases in [models] form a cycle; make one of them a path",
                   ref);
}

char *tp_config_to_json(const tp_config *c) {
    json_t *root = json_object();
    for (int i = 0; i < c->n; i++) {
        const char *k = c->e[i].key, *dot = strchr(k, '.');
        char section[64];
        size_t sl = (size_t)(dot - k) < sizeof section ? (size_t)(dot - k) : sizeof section - 1;
        memcpy(section, k, sl);
        section[sl] = 0;
        json_t *sec = json_object_get(root, section);
        if (!sec) {
            sec = json_object();
            json_object_set_new(root, section, sec);
        }
        const key_spec *s = find_spec(section, dot + 1);
        if (s && s->type == CT_INT)
            json_object_set_new(sec, dot + 1, json_integer(strtoll(c->e[i].value, NULL, 10)));
        else
            json_object_set_new(sec, dot + 1, json_string(c->e[i].value));
    }
    char *out = NULL;
    tp_err err;
    if (tp_canon_json(root, &out, &err) != TP_OK) out = NULL;
    json_decref(root);
    return out;
}
