/* tp_test.c — runner, shared-dir lookup and scratch dirs for the C test programs. */
#include "tp_test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int tp_test_failures = 0;
const char *tp_test_current = "";

int tp_test_main(int argc, char **argv, const tp_test_case *cases, int n) {
    int ran = 0;
    for (int i = 0; i < n; i++) {
        if (argc > 1 && !strstr(cases[i].name, argv[1])) continue;
        tp_test_current = cases[i].name;
        int before = tp_test_failures;
        cases[i].fn();
        ran++;
        fprintf(stderr, "%s %s\n", tp_test_failures == before ? "ok  " : "FAIL", cases[i].name);
    }
    fprintf(stderr, "%d case(s), %d failure(s)\n", ran, tp_test_failures);
    return tp_test_failures ? 1 : 0;
}

const char *tp_test_shared_dir(const char *what) {
    const char *d = getenv("TP_SHARED_DIR");
    struct stat st;
    if (d && stat(d, &st) == 0 && S_ISDIR(st.st_mode)) return d;
    fprintf(stderr,
            "SKIP %s: ../shared not found (set TP_SHARED_DIR); real data/tokenizers absent\n",
            what);
    return NULL;
}

const char *tp_test_tmpdir(void) {
    static char dir[512];
    if (dir[0]) return dir;
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/tp-test-%d", base ? base : "/tmp", (int)getpid());
    mkdir(dir, 0755);
    return dir;
}
