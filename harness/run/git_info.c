/* git_info.c — the git commit (and whether the tree had uncommitted changes) of the source tree
 * the harness was built from, recorded with every run; one place for `telepathy run` and the
 * sweep worker. */
#include <stdio.h>
#include <string.h>

#include "run/run.h"

int tp_source_git_info(char *commit, size_t cap, int *dirty) {
#ifdef TP_SOURCE_DIR
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse HEAD 2>/dev/null", TP_SOURCE_DIR);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    int ok = fgets(commit, (int)cap, p) != NULL;
    pclose(p);
    if (!ok) return 0;
    commit[strcspn(commit, "\r\n")] = 0;
    snprintf(cmd, sizeof cmd, "git -C '%s' status --porcelain --untracked-files=no 2>/dev/null",
             TP_SOURCE_DIR);
    p = popen(cmd, "r");
    char line[16];
    *dirty = p && fgets(line, sizeof line, p) != NULL;
    if (p) pclose(p);
    return commit[0] != 0;
#else
    (void)commit, (void)cap, (void)dirty;
    return 0;
#endif
}
