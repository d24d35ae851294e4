/* options.h — plugin options: validation of a plugin's tp_option_spec schema (at load time) and
 * of the values a user gives (at run time) — types, ranges, enum choices, defaults filled in,
 * unknown names with "did you mean". Implements the opaque tp_options of telepathy/plugin.h and
 * the host's opt_* accessors, and renders resolved options as canonical JSON for the run
 * config. */
#ifndef TP_PLUGIN_OPTIONS_H
#define TP_PLUGIN_OPTIONS_H

#include <jansson.h>
#include <stdint.h>

#include "telepathy/plugin.h"

#define TP_MAX_OPTIONS 64

/* Checks a schema: names [a-z][a-z0-9_]* and unique, known types, defaults that parse and lie
 * in range, enum choices non-empty (and the default among them), a doc line. what names the
 * plugin for messages, e.g. "bridge 'perceiver'". */
tp_status tp_option_schema_validate(const char *what, const tp_option_spec *spec, int n,
                                    tp_err *err);

/* Options for one plugin instance, every option at its default. kind/name are for messages
 * ("unknown option 'tokns' for bridge 'perceiver'"). The spec must outlive the options. */
tp_status tp_options_new(const char *kind, const char *name, const tp_option_spec *spec, int n,
                         tp_options **out, tp_err *err);
void tp_options_free(tp_options *o);
/* Sets one option from text, validating it against the schema. */
tp_status tp_options_set(tp_options *o, const char *name, const char *value, tp_err *err);
/* Sets one option from a JSON scalar (integer, real, true/false, string). */
tp_status tp_options_set_json(tp_options *o, const char *name, const json_t *v, tp_err *err);
/* Sets every member of a JSON object; stops at the first bad one. */
tp_status tp_options_set_object(tp_options *o, const json_t *obj, tp_err *err);
/* Parses "k=v,k=v" (command-line form). */
tp_status tp_options_set_list(tp_options *o, const char *list, tp_err *err);

/* Accessors (also the host table's opt_*). An unknown name logs an error and returns 0 / NAN /
 * NULL: it is a bug in the plugin, which the loader's schema check cannot see. */
int64_t tp_options_int(const tp_options *o, const char *name);
double tp_options_float(const tp_options *o, const char *name); /* NAN if a word was given */
int tp_options_bool(const tp_options *o, const char *name);
const char *tp_options_string(const tp_options *o, const char *name); /* raw text, any type */
/* 1 if the user set the option (not just its default). */
int tp_options_is_set(const tp_options *o, const char *name);

/* {"name": value, ...} with every option (defaults included), typed: integers, reals, booleans,
 * strings. New reference. */
json_t *tp_options_json(const tp_options *o);
/* Canonical JSON text of tp_options_json (malloc'd). */
tp_status tp_options_canon(const tp_options *o, char **out, tp_err *err);

/* "int" | "float" | "bool" | "string" | "enum" */
const char *tp_opt_type_name(tp_opt_type t);

#endif
