/* cmd_plugins.c — `telepathy plugins`: what the plugin path holds — kind, name, version, path,
 * summary, and each option with type, default, range or choices, and doc. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "plugin/loader.h"
#include "plugin/options.h"

static void help(void) {
    printf("usage: telepathy plugins [--kind bridge|task|loss] [NAME]\n"
           "\n"
           "Lists the plugins found on the plugin path (see `telepathy config`, key\n"
           "paths.plugins) with their options. NAME shows only plugins of that name.\n"
           "\n"
           "  --kind K    only bridges, tasks or losses\n"
           "  --sha256    also print each .so's SHA-256 (recorded with every run)\n"
           "  -h, --help  this help\n");
}

static void range_text(const tp_option_spec *s, char *buf, size_t cap) {
    buf[0] = 0;
    if (s->type == TP_OPT_ENUM)
        snprintf(buf, cap, "one of %s", s->choices);
    else if ((s->type == TP_OPT_INT || s->type == TP_OPT_FLOAT) && s->min <= s->max) {
        /* %.15g: integer bounds like 2147483647 print exactly, not as 2.14748e+09 */
        snprintf(buf, cap, "[%.15g, %.15g]%s%s", s->min, s->max, s->choices ? " or " : "",
                 s->choices ? s->choices : "");
    } else if (s->type == TP_OPT_FLOAT && s->choices)
        snprintf(buf, cap, "number or %s", s->choices);
}

int tp_cmd_plugins(int argc, char **argv, tp_cli_env *env) {
    const char *name = NULL;
    tp_plugin_kind kind = 0;
    int sha = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            help();
            return 0;
        } else if (!strcmp(argv[i], "--kind") || !strncmp(argv[i], "--kind=", 7)) {
            const char *k = argv[i][6] == '=' ? argv[i] + 7 : (i + 1 < argc ? argv[++i] : NULL);
            if (!k) return tp_cli_usage_error("plugins", "--kind needs a value");
            kind = tp_plugin_kind_parse(k);
            if (!kind)
                return tp_cli_usage_error("plugins", "--kind '%s': expected bridge, task or loss",
                                          k);
        } else if (!strcmp(argv[i], "--sha256"))
            sha = 1;
        else if (argv[i][0] == '-')
            return tp_cli_usage_error("plugins", "unknown option '%s'", argv[i]);
        else if (!name)
            name = argv[i];
        else
            return tp_cli_usage_error("plugins", "unexpected argument '%s'", argv[i]);
    }
    tp_err err = {0};
    struct tp_registry *r;
    if (tp_cli_registry(env, &r, &err) != TP_OK) return tp_cli_fail("plugins", &err);
    int shown = 0;
    for (int i = 0; i < tp_registry_count(r); i++) {
        const tp_plugin *p = tp_registry_at(r, i);
        if (kind && p->desc.kind != kind) continue;
        if (name && strcmp(p->desc.name, name)) continue;
        if (shown++) printf("\n");
        printf("%-6s %s %s  %s\n", tp_plugin_kind_name(p->desc.kind), p->desc.name, p->desc.version,
               p->path);
        if (p->desc.summary && *p->desc.summary) printf("  %s\n", p->desc.summary);
        if (sha) printf("  sha256 %s\n", p->sha256);
        if (!p->desc.n_options) printf("  (no options)\n");
        for (int j = 0; j < p->desc.n_options; j++) {
            const tp_option_spec *s = &p->desc.options[j];
            char range[256], def[80];
            range_text(s, range, sizeof range);
            snprintf(def, sizeof def, "= %s", *s->def ? s->def : "\"\"");
            printf("  %-16s %-6s %-14s %-22s %s\n", s->name, tp_opt_type_name(s->type), def, range,
                   s->doc);
        }
    }
    if (!shown) {
        if (name || kind) {
            fprintf(stderr, "telepathy plugins: no %s%s%s found on the plugin path\n",
                    kind ? tp_plugin_kind_name(kind) : "plugin", name ? " named " : "",
                    name ? name : "");
            return 1;
        }
        printf("no plugins found on the plugin path (see `telepathy config`, paths.plugins)\n");
    }
    return 0;
}
