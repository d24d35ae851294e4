/* loader.c — the plugin registry: dlopen, entry point, descriptor validation (ABI version and
 * size first, then kind, name, version, option schema, vtable), duplicate refusal, .so
 * fingerprints, lookup with "did you mean". */
#include "plugin/loader.h"

#include <dirent.h>
#include <errno.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin/options.h"
#include "telepathy/bridge.h"
#include "telepathy/loss.h"
#include "telepathy/task.h"
#include "util/fsutil.h"
#include "util/sha256.h"
#include "util/strutil.h"

struct tp_registry {
    tp_plugin **p;
    int n, cap;
    char **real; /* realpath of each loaded .so, to load a file once when dirs repeat */
    int n_real, cap_real;
    char scanned[4096]; /* the path list, for "no such plugin" messages */
};

const char *tp_plugin_kind_name(tp_plugin_kind k) {
    switch (k) {
    case TP_PLUGIN_BRIDGE:
        return "bridge";
    case TP_PLUGIN_TASK:
        return "task";
    case TP_PLUGIN_LOSS:
        return "loss";
    }
    return "?";
}

tp_plugin_kind tp_plugin_kind_parse(const char *s) {
    if (!strcmp(s, "bridge")) return TP_PLUGIN_BRIDGE;
    if (!strcmp(s, "task")) return TP_PLUGIN_TASK;
    if (!strcmp(s, "loss")) return TP_PLUGIN_LOSS;
    return (tp_plugin_kind)0;
}

tp_status tp_registry_new(tp_registry **out, tp_err *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return tp_errf(err, TP_ENOMEM, "plugin registry: out of memory");
    return TP_OK;
}

void tp_registry_free(tp_registry *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) {
        if (r->p[i]->handle) dlclose(r->p[i]->handle);
        free(r->p[i]);
    }
    for (int i = 0; i < r->n_real; i++) free(r->real[i]);
    free(r->p);
    free(r->real);
    free(r);
}

static int valid_name(const char *s) {
    if (!s || !(*s >= 'a' && *s <= 'z')) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) return 0;
    return strlen(s) < 64;
}

/* What each kind's vtable must provide; optional members are not listed. */
static tp_status check_vtable(const tp_plugin_desc *d, const char *what, tp_err *err) {
    if (!d->vtable) return tp_errf(err, TP_EPLUGIN, "%s: vtable is NULL", what);
    uint32_t need = 0;
    const char *missing = NULL;
    switch (d->kind) {
    case TP_PLUGIN_TASK: {
        need = sizeof(tp_task_vtable);
        if (d->vtable_size < need) break;
        const tp_task_vtable *v = d->vtable;
        if (!v->open)
            missing = "open";
        else if (!v->info)
            missing = "info";
        else if (!v->load)
            missing = "load";
        else if (!v->free_dataset)
            missing = "free_dataset";
        else if (!v->close)
            missing = "close";
        break;
    }
    case TP_PLUGIN_BRIDGE: {
        /* members from `flags` on were appended in ABI 1.1 and are optional (the host tests
         * them with TP_BRIDGE_HAS), so a bridge built against 1.0 headers still loads */
        need = (uint32_t)offsetof(tp_bridge_vtable, flags);
        if (d->vtable_size < need) break;
        const tp_bridge_vtable *v = d->vtable;
        if (!v->create)
            missing = "create";
        else if (!v->forward)
            missing = "forward";
        else if (!v->num_tokens)
            missing = "num_tokens";
        else if (!v->destroy)
            missing = "destroy";
        break;
    }
    case TP_PLUGIN_LOSS: {
        need = sizeof(tp_loss_vtable);
        if (d->vtable_size < need) break;
        const tp_loss_vtable *v = d->vtable;
        if (!v->create)
            missing = "create";
        else if (!v->needs)
            missing = "needs";
        else if (!v->compute)
            missing = "compute";
        else if (!v->destroy)
            missing = "destroy";
        break;
    }
    }
    if (d->vtable_size < need)
        return tp_errf(err, TP_EPLUGIN,
                       "%s: vtable_size %u is smaller than the host's %s vtable (%u bytes); "
                       "rebuild the plugin against these headers",
                       what, d->vtable_size, tp_plugin_kind_name(d->kind), need);
    /* the vtable's own size member must agree with what the descriptor claims */
    uint32_t inner;
    memcpy(&inner, d->vtable, sizeof inner);
    if (inner < need)
        return tp_errf(err, TP_EPLUGIN,
                       "%s: vtable.size %u is smaller than the host's %s vtable (%u bytes)", what,
                       inner, tp_plugin_kind_name(d->kind), need);
    if (missing)
        return tp_errf(err, TP_EPLUGIN, "%s: required vtable function '%s' is NULL", what, missing);
    return TP_OK;
}

tp_status tp_plugin_desc_validate(const tp_plugin_desc *d, tp_err *err) {
    uint32_t major = d->abi_version >> 16, minor = d->abi_version & 0xffff;
    if (major != TP_ABI_MAJOR || minor > TP_ABI_MINOR)
        return tp_errf(err, TP_EPLUGIN,
                       "plugin ABI version %u.%u is not compatible with the host's %d.%d "
                       "(major must match, minor <= host); rebuild the plugin against these "
                       "headers",
                       major, minor, TP_ABI_MAJOR, TP_ABI_MINOR);
    if (d->size != sizeof(tp_plugin_desc))
        return tp_errf(err, TP_EPLUGIN,
                       "descriptor size %u differs from the host's sizeof(tp_plugin_desc) = %zu; "
                       "the plugin set desc->size wrongly or was built against other headers",
                       d->size, sizeof(tp_plugin_desc));
    if (d->kind != TP_PLUGIN_BRIDGE && d->kind != TP_PLUGIN_TASK && d->kind != TP_PLUGIN_LOSS)
        return tp_errf(err, TP_EPLUGIN, "unknown plugin kind %d (expected bridge, task or loss)",
                       (int)d->kind);
    if (!valid_name(d->name))
        return tp_errf(err, TP_EPLUGIN, "bad %s name '%s' (expected [a-z][a-z0-9_]*, < 64 chars)",
                       tp_plugin_kind_name(d->kind), d->name ? d->name : "(null)");
    char what[128];
    snprintf(what, sizeof what, "%s '%s'", tp_plugin_kind_name(d->kind), d->name);
    if (!d->version || !*d->version)
        return tp_errf(err, TP_EPLUGIN, "%s: empty version (bump it on any change of behaviour)",
                       what);
    TP_TRY(tp_option_schema_validate(what, d->options, d->n_options, err));
    return check_vtable(d, what, err);
}

static int plugin_cmp(const void *a, const void *b) {
    const tp_plugin *x = *(tp_plugin *const *)a, *y = *(tp_plugin *const *)b;
    if (x->desc.kind != y->desc.kind) return (int)x->desc.kind - (int)y->desc.kind;
    return strcmp(x->desc.name, y->desc.name);
}

/* The descriptor buffer is much larger than tp_plugin_desc so that a plugin built against a
 * newer (bigger) descriptor cannot write past it before its version is checked. */
typedef union desc_buf {
    tp_plugin_desc d;
    unsigned char pad[4096];
} desc_buf;

tp_status tp_registry_load(tp_registry *r, const char *so_path, tp_err *err) {
    char real[PATH_MAX];
    if (!realpath(so_path, real))
        return tp_errf(err, TP_EPLUGIN, "%s: cannot resolve path: %s", so_path, strerror(errno));
    for (int i = 0; i < r->n_real; i++)
        if (!strcmp(r->real[i], real)) return TP_OK; /* same file reached twice */
    dlerror();
    void *h = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        return tp_errf(err, TP_EPLUGIN, "%s: dlopen failed: %s", so_path, e ? e : "unknown");
    }
    dlerror();
    void *sym = dlsym(h, TP_PLUGIN_ENTRY);
    if (!sym) {
        const char *e = dlerror();
        tp_errf(err, TP_EPLUGIN,
                "%s: symbol '%s' not found (dlerror: %s); a plugin exports "
                "TP_PLUGIN_EXPORT tp_status tp_plugin_init(const tp_host_api *, tp_plugin_desc *, "
                "tp_err *)",
                so_path, TP_PLUGIN_ENTRY, e ? e : "none");
        dlclose(h);
        return TP_EPLUGIN;
    }
    tp_plugin_init_fn init;
    memcpy(&init, &sym, sizeof init);
    desc_buf buf;
    memset(&buf, 0, sizeof buf);
    tp_err perr = {0};
    tp_status st = init(tp_host_api_table(), &buf.d, &perr);
    if (st != TP_OK) {
        tp_errf(err, TP_EPLUGIN, "%s: symbol '%s' returned %s: %s", so_path, TP_PLUGIN_ENTRY,
                tp_status_name(st), perr.msg[0] ? perr.msg : "(no message)");
        dlclose(h);
        return TP_EPLUGIN;
    }
    st = tp_plugin_desc_validate(&buf.d, err);
    if (st != TP_OK) {
        tp_err_prefix(err, "%s: symbol '%s'", so_path, TP_PLUGIN_ENTRY);
        dlclose(h);
        return st;
    }
    for (int i = 0; i < r->n; i++)
        if (r->p[i]->desc.kind == buf.d.kind && !strcmp(r->p[i]->desc.name, buf.d.name)) {
            tp_errf(err, TP_EPLUGIN,
                    "duplicate %s '%s': %s and %s both define it; remove one from the plugin "
                    "path",
                    tp_plugin_kind_name(buf.d.kind), buf.d.name, r->p[i]->path, so_path);
            dlclose(h);
            return TP_EPLUGIN;
        }
    tp_plugin *p = calloc(1, sizeof *p);
    char *rcopy = tp_strdup(real);
    if (!p || !rcopy) {
        free(p);
        free(rcopy);
        dlclose(h);
        return tp_errf(err, TP_ENOMEM, "plugin registry: out of memory");
    }
    p->desc = buf.d;
    if (!p->desc.summary) p->desc.summary = "";
    {
        size_t n = p->desc.vtable_size < sizeof p->vtable_copy ? p->desc.vtable_size
                                                               : sizeof p->vtable_copy;
        memset(p->vtable_copy, 0, sizeof p->vtable_copy);
        memcpy(p->vtable_copy, p->desc.vtable, n);
        p->desc.vtable = p->vtable_copy;
    }
    tp_strlcpy(p->path, so_path, sizeof p->path);
    p->handle = h;
    st = tp_sha256_file_hex(so_path, p->sha256, err);
    if (st == TP_OK && r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 16;
        tp_plugin **np = realloc(r->p, (size_t)cap * sizeof *np);
        if (np) {
            r->p = np;
            r->cap = cap;
        } else
            st = tp_errf(err, TP_ENOMEM, "plugin registry: out of memory");
    }
    if (st == TP_OK && r->n_real == r->cap_real) {
        int cap = r->cap_real ? r->cap_real * 2 : 16;
        char **nr = realloc(r->real, (size_t)cap * sizeof *nr);
        if (nr) {
            r->real = nr;
            r->cap_real = cap;
        } else
            st = tp_errf(err, TP_ENOMEM, "plugin registry: out of memory");
    }
    if (st != TP_OK) {
        free(p);
        free(rcopy);
        dlclose(h);
        return st;
    }
    r->p[r->n++] = p;
    r->real[r->n_real++] = rcopy;
    qsort(r->p, (size_t)r->n, sizeof *r->p, plugin_cmp);
    return TP_OK;
}

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the entries of dir (readdir order is arbitrary; loading order must not be). */
static tp_status list_dir(const char *dir, char ***names, int *n, tp_err *err) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return tp_errf(err, TP_EIO, "plugin path: %s: cannot open directory: %s", dir,
                       strerror(errno));
    int cap = 0;
    struct dirent *e;
    tp_status st = TP_OK;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nn = realloc(*names, (size_t)cap * sizeof *nn);
            if (!nn) {
                st = tp_errf(err, TP_ENOMEM, "plugin path: out of memory");
                break;
            }
            *names = nn;
        }
        (*names)[*n] = tp_strdup(e->d_name);
        if (!(*names)[*n]) {
            st = tp_errf(err, TP_ENOMEM, "plugin path: out of memory");
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (*n) qsort(*names, (size_t)*n, sizeof **names, str_cmp);
    return st;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static tp_status scan_dir(tp_registry *r, const char *dir, int depth, tp_err *err) {
    char **names;
    int n;
    tp_status st = list_dir(dir, &names, &n, err);
    for (int i = 0; i < n && st == TP_OK; i++) {
        char path[4096];
        st = tp_path_join(path, sizeof path, dir, names[i], err);
        if (st != TP_OK) break;
        struct stat sb;
        if (stat(path, &sb) != 0) continue; /* dangling link: not a plugin */
        if (S_ISDIR(sb.st_mode)) {
            if (depth == 0) st = scan_dir(r, path, 1, err);
        } else if (S_ISREG(sb.st_mode) && tp_str_ends_with(names[i], ".so")) {
            st = tp_registry_load(r, path, err);
        }
    }
    free_names(names, n);
    return st;
}

tp_status tp_registry_scan(tp_registry *r, const char *path_list, tp_err *err) {
    if (r->scanned[0]) strncat(r->scanned, ":", sizeof r->scanned - strlen(r->scanned) - 1);
    strncat(r->scanned, path_list, sizeof r->scanned - strlen(r->scanned) - 1);
    char *copy = tp_strdup(path_list);
    if (!copy) return tp_errf(err, TP_ENOMEM, "plugin path: out of memory");
    tp_status st = TP_OK;
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir && st == TP_OK;
         dir = strtok_r(NULL, ":", &save)) {
        if (!tp_dir_exists(dir)) {
            st = tp_errf(err, TP_EIO,
                         "plugin path: %s is not a directory (check paths.plugins, "
                         "TELEPATHY_PLUGIN_PATH or --plugin-path; `telepathy config` shows which "
                         "one set it)",
                         dir);
            break;
        }
        st = scan_dir(r, dir, 0, err);
    }
    free(copy);
    return st;
}

int tp_registry_count(const tp_registry *r) {
    return r->n;
}
const tp_plugin *tp_registry_at(const tp_registry *r, int i) {
    return i >= 0 && i < r->n ? r->p[i] : NULL;
}

tp_status tp_registry_find(const tp_registry *r, tp_plugin_kind kind, const char *name,
                           const tp_plugin **out, tp_err *err) {
    *out = NULL;
    const char *names[512];
    int n = 0;
    for (int i = 0; i < r->n; i++) {
        if (r->p[i]->desc.kind != kind) continue;
        if (!strcmp(r->p[i]->desc.name, name)) {
            *out = r->p[i];
            return TP_OK;
        }
        if (n < 512) names[n++] = r->p[i]->desc.name;
    }
    const char *k = tp_plugin_kind_name(kind);
    if (!n)
        return tp_errf(err, TP_EPLUGIN,
                       "unknown %s '%s': no %s plugins were found on the plugin path (%s)", k, name,
                       k, r->scanned[0] ? r->scanned : "nothing scanned");
    const char *hint = tp_suggest(name, names, n);
    char list[1024];
    tp_str_join_list(list, sizeof list, names, n);
    return tp_errf(err, TP_EPLUGIN, "unknown %s '%s'%s%s%s; available: %s", k, name,
                   hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "", list);
}

_Static_assert(sizeof(tp_bridge_vtable) <= sizeof(((tp_plugin *)0)->vtable_copy),
               "tp_plugin.vtable_copy must hold the largest vtable");
_Static_assert(sizeof(tp_task_vtable) <= sizeof(((tp_plugin *)0)->vtable_copy),
               "tp_plugin.vtable_copy must hold the largest vtable");
_Static_assert(sizeof(tp_loss_vtable) <= sizeof(((tp_plugin *)0)->vtable_copy),
               "tp_plugin.vtable_copy must hold the largest vtable");
