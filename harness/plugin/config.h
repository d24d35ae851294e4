/* config.h — the resolved telepathy configuration: telepathy.ini (inih) plus environment and
 * command-line overrides, each value remembering where it came from.
 *
 * Keys are "section.key": paths.models, paths.data, paths.results, paths.plugins,
 * device.device (cpu|cuda), device.dtype (f32|bf16), device.threads, run.seed, run.log_level,
 * and models.<alias> (free names in [models]: `sender = /path/to/model` or another alias/name).
 * Precedence, lowest first: built-in default < file < environment (TELEPATHY_PLUGIN_PATH for
 * paths.plugins) < command line (--plugin-path, --set). An unknown section or key in the file is
 * an error naming file:line and the keys that exist; a value of the wrong type is an error. */
#ifndef TP_PLUGIN_CONFIG_H
#define TP_PLUGIN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "telepathy/status.h"

typedef struct tp_config tp_config;

typedef enum tp_config_origin {
    TP_ORIGIN_DEFAULT = 0,
    TP_ORIGIN_FILE = 1, /* detail: "file:line" */
    TP_ORIGIN_ENV = 2,  /* detail: variable name */
    TP_ORIGIN_CLI = 3,  /* detail: the option, e.g. "--set" or "--plugin-path" */
} tp_config_origin;

/* Finds and loads the configuration: explicit_path (--config) if non-NULL (missing file is an
 * error), else $TELEPATHY_CONFIG (missing file is an error), else ./telepathy.ini if it exists,
 * else defaults only. Then applies environment overrides. */
tp_status tp_config_load(const char *explicit_path, tp_config **out, tp_err *err);
/* Defaults only (plus environment overrides when use_env), no file. */
tp_status tp_config_defaults(int use_env, tp_config **out, tp_err *err);
/* Loads one INI file over the current values. */
tp_status tp_config_load_file(tp_config *c, const char *path, tp_err *err);
void tp_config_free(tp_config *c);

/* Sets "section.key" = value after checking key and type; origin_detail e.g. "--set". A key in
 * [models] may be new; anything else unknown is an error with "did you mean". */
tp_status tp_config_set(tp_config *c, const char *key, const char *value, tp_config_origin origin,
                        const char *origin_detail, tp_err *err);
/* Parses "section.key=value" (the --set syntax) and calls tp_config_set with TP_ORIGIN_CLI. */
tp_status tp_config_set_arg(tp_config *c, const char *assignment, tp_err *err);

/* Value as text, or NULL if the key is unknown. Never NULL for a known key (may be ""). */
const char *tp_config_get(const tp_config *c, const char *key);
int64_t tp_config_get_int(const tp_config *c, const char *key); /* 0 if unknown */
/* Where the value came from, e.g. "default", "telepathy.ini:12", "env TELEPATHY_PLUGIN_PATH",
 * "command line --set". Written into buf; returns buf. */
const char *tp_config_origin_str(const tp_config *c, const char *key, char *buf, size_t cap);
/* The file the configuration was read from, or NULL if none. */
const char *tp_config_file(const tp_config *c);

/* Iteration in a stable order (sections in schema order, then model aliases by name). */
int tp_config_count(const tp_config *c);
const char *tp_config_key_at(const tp_config *c, int i);

/* Resolves a model reference: an alias in [models] (followed through aliases, cycles are an
 * error) to its value; a value with no '/' that is not an alias is taken relative to
 * paths.models. Writes the resulting path into out. */
tp_status tp_config_resolve_model(const tp_config *c, const char *ref, char *out, size_t cap,
                                  tp_err *err);

/* The resolved configuration as canonical JSON (for the run record); caller frees. */
char *tp_config_to_json(const tp_config *c);

#endif
