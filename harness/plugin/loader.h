/* loader.h — the plugin registry: scans the plugin path, dlopens each .so, calls its
 * TP_PLUGIN_ENTRY with the host table, validates the descriptor fully before registering, and
 * answers lookups by kind + name ("did you mean" and the list of what exists on a miss). */
#ifndef TP_PLUGIN_LOADER_H
#define TP_PLUGIN_LOADER_H

#include "telepathy/plugin.h"

typedef struct tp_plugin {
    tp_plugin_desc desc; /* copy of what the plugin filled (strings point into the .so) */
    char path[4096];     /* the .so as found on the plugin path */
    char sha256[65];     /* hex digest of the .so file, for the run environment */
    void *handle;        /* dlopen handle, closed by tp_registry_free */
    /* Host-owned copy of the plugin's vtable, zero-extended to the host's size: a plugin built
     * against an older minor ABI has a shorter vtable, and the host must read its appended
     * members as NULL/0 instead of past the end of the plugin's struct. desc.vtable points here. */
    _Alignas(16) unsigned char vtable_copy[512];
} tp_plugin;

typedef struct tp_registry tp_registry;

tp_status tp_registry_new(tp_registry **out, tp_err *err);
void tp_registry_free(tp_registry *r);

/* Loads one .so and registers it. On error nothing is registered and the .so is dlclose'd. */
tp_status tp_registry_load(tp_registry *r, const char *so_path, tp_err *err);
/* Scans colon-separated dirs: *.so in each dir and in its immediate subdirectories (bridges/,
 * tasks/, losses/, ...). A missing dir is an error; the first bad plugin stops the scan. */
tp_status tp_registry_scan(tp_registry *r, const char *path_list, tp_err *err);

int tp_registry_count(const tp_registry *r);
const tp_plugin *tp_registry_at(const tp_registry *r, int i); /* sorted by kind, then name */
/* Finds kind+name; on a miss the error says "unknown <kind> 'x'; did you mean 'y'? available:
 * a, b, c". */
tp_status tp_registry_find(const tp_registry *r, tp_plugin_kind kind, const char *name,
                           const tp_plugin **out, tp_err *err);

const char *tp_plugin_kind_name(tp_plugin_kind k); /* "bridge" | "task" | "loss" | "?" */
/* Parses "bridge" | "task" | "loss"; returns 0 if unknown. */
tp_plugin_kind tp_plugin_kind_parse(const char *s);

/* The host's function table handed to every plugin (host_api.c). */
const tp_host_api *tp_host_api_table(void);

/* Checks a descriptor as the loader does (exported for tests and static linking). */
tp_status tp_plugin_desc_validate(const tp_plugin_desc *d, tp_err *err);

#endif
