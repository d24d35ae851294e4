/* cmd_version.c — `telepathy version`: harness version, git commit (when the build recorded
 * one), plugin ABI, and the versions of the libraries linked in (recorded with every run by
 * the store; printed here for bug reports). */
#include <jansson.h>
#include <lua.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "cli/cli.h"
#include "telepathy/plugin.h"

#if defined(TP_HAVE_CUDA) && __has_include(<cuda_runtime_api.h>)
#include <cuda_runtime_api.h>
#define TP_VERSION_CUDA 1
#endif

/* written by cmake/gitinfo.cmake into the build directory at every build */
#if __has_include("tp_gitinfo.h")
#include "tp_gitinfo.h"
#endif

#ifndef TP_VERSION
#define TP_VERSION "unknown"
#endif

/* OpenBLAS's own query; declared here so the include path of cblas.h does not matter. */
char *openblas_get_config(void);

static void help(void) {
    printf("usage: telepathy version\n"
           "\n"
           "Prints the harness version, git commit, plugin ABI version and the versions of\n"
           "Lua, SQLite, jansson, PCRE2, OpenBLAS and CUDA (when built with it).\n"
           "\n"
           "  -h, --help  this help\n");
}

int tp_cmd_version(int argc, char **argv, tp_cli_env *env) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            help();
            return 0;
        }
        return tp_cli_usage_error("version", "unexpected argument '%s'", argv[i]);
    }
#ifdef TP_GIT_COMMIT
    const char *commit = TP_GIT_COMMIT;
#else
    const char *commit = "unknown (not recorded at build time)";
#endif
    printf("telepathy   %s\n", TP_VERSION);
    printf("git commit  %s\n", commit);
    printf("plugin ABI  %d.%d\n", TP_ABI_MAJOR, TP_ABI_MINOR);
    printf("compiler    %s\n", __VERSION__);
    printf("Lua         %s\n", LUA_RELEASE);
    printf("SQLite      %s (built against %s)\n", sqlite3_libversion(), SQLITE_VERSION);
    printf("jansson     %s\n", jansson_version_str());
    char pcre[64] = "?";
    pcre2_config(PCRE2_CONFIG_VERSION, pcre);
    printf("PCRE2       %s\n", pcre);
    printf("OpenBLAS    %s\n", openblas_get_config());
#ifdef TP_VERSION_CUDA
    int rt = 0, drv = 0;
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    printf("CUDA        runtime %d.%d, driver %d.%d\n", rt / 1000, (rt % 1000) / 10, drv / 1000,
           (drv % 1000) / 10);
#elif defined(TP_HAVE_CUDA)
    printf("CUDA        built with the CUDA backend (runtime headers not visible to the CLI)\n");
#else
    printf("CUDA        not built (CPU-only binary)\n");
#endif
    return 0;
}
