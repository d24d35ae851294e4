/* cmd_config.c — `telepathy config`: the resolved configuration, one key per line, with where
 * each value came from (default, file:line, environment, command line). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "plugin/config.h"

static void help(void) {
    printf("usage: telepathy config [--get KEY] [--json] [--set KEY=VALUE ...]\n"
           "\n"
           "Prints the resolved configuration: every key, its value and where it came from\n"
           "(default, FILE:LINE, env VAR, command line). The file is found via --config,\n"
           "$TELEPATHY_CONFIG, then ./telepathy.ini.\n"
           "\n"
           "  --get KEY          print only the value of KEY (section.key)\n"
           "  --json             the resolved configuration as canonical JSON\n"
           "  --set KEY=VALUE    override a value for this invocation (validated)\n"
           "  -h, --help         this help\n");
}

int tp_cmd_config(int argc, char **argv, tp_cli_env *env) {
    const char *get = NULL;
    int json = 0;
    /* validate the command line before touching the file, so usage errors stay exit 2 */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            help();
            return 0;
        } else if (!strcmp(argv[i], "--get")) {
            if (i + 1 >= argc) return tp_cli_usage_error("config", "--get needs a KEY");
            get = argv[++i];
        } else if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--set")) {
            if (i + 1 >= argc) return tp_cli_usage_error("config", "--set needs KEY=VALUE");
            i++;
        } else
            return tp_cli_usage_error("config", "unknown argument '%s'", argv[i]);
    }
    tp_err err = {0};
    struct tp_config *c;
    if (tp_cli_config(env, &c, &err) != TP_OK) return tp_cli_fail("config", &err);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--set")) {
            if (tp_config_set_arg(c, argv[++i], &err) != TP_OK) return tp_cli_fail("config", &err);
        } else if (!strcmp(argv[i], "--get"))
            i++;
    if (get) {
        const char *v = tp_config_get(c, get);
        if (!v) {
            tp_errf(&err, TP_EINVAL, "unknown key '%s' (see `telepathy config` for all keys)", get);
            return tp_cli_fail("config", &err);
        }
        printf("%s\n", v);
        return 0;
    }
    if (json) {
        char *s = tp_config_to_json(c);
        if (!s) {
            tp_errf(&err, TP_ENOMEM, "cannot render the configuration as JSON");
            return tp_cli_fail("config", &err);
        }
        printf("%s\n", s);
        free(s);
        return 0;
    }
    printf("# configuration file: %s\n", tp_config_file(c) ? tp_config_file(c) : "(none)");
    for (int i = 0; i < tp_config_count(c); i++) {
        const char *k = tp_config_key_at(c, i);
        char origin[512];
        printf("%-18s = %-40s # %s\n", k, tp_config_get(c, k),
               tp_config_origin_str(c, k, origin, sizeof origin));
    }
    return 0;
}
