/* golden_file.h — reader for the golden arrays written by tests/golden/models/make_golden.py
 * (format documented at the top of that script: "TPGD", version 1, named f32/i32 arrays).
 * Header-only so each golden test program includes it; errors are messages, never crashes. */
#ifndef TP_TESTS_GOLDEN_FILE_H
#define TP_TESTS_GOLDEN_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tpg_array {
    char name[64];
    int dtype; /* 0 f32, 3 i32 */
    int ndim;
    int64_t shape[4];
    int64_t numel;
    void *data;
} tpg_array;

typedef struct tpg_file {
    int n;
    tpg_array *a;
} tpg_file;

static inline void tpg_free(tpg_file *g) {
    for (int i = 0; g->a && i < g->n; i++) free(g->a[i].data);
    free(g->a);
    g->a = NULL;
    g->n = 0;
}

/* 0 on success; on failure writes a message into msg and returns -1. */
static inline int tpg_load(tpg_file *g, const char *path, char *msg, size_t cap) {
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(msg, cap, "%s: cannot open", path);
        return -1;
    }
    char magic[4];
    uint32_t hdr[2];
    if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "TPGD", 4) != 0 || fread(hdr, 4, 2, f) != 2 ||
        hdr[0] != 1 || hdr[1] > 4096) {
        snprintf(msg, cap, "%s: not a TPGD version-1 golden file", path);
        fclose(f);
        return -1;
    }
    g->a = calloc(hdr[1] ? hdr[1] : 1, sizeof *g->a);
    for (uint32_t i = 0; g->a && i < hdr[1]; i++) {
        tpg_array *a = &g->a[i];
        uint32_t len, dt, nd;
        if (fread(&len, 4, 1, f) != 1 || len == 0 || len >= sizeof a->name ||
            fread(a->name, 1, len, f) != len || fread(&dt, 4, 1, f) != 1 ||
            fread(&nd, 4, 1, f) != 1 || (dt != 0 && dt != 3) || nd > 4)
            goto bad;
        a->dtype = (int)dt;
        a->ndim = (int)nd;
        a->numel = 1;
        for (uint32_t d = 0; d < nd; d++) {
            if (fread(&a->shape[d], 8, 1, f) != 1 || a->shape[d] < 0 || a->shape[d] > (1 << 28))
                goto bad;
            a->numel *= a->shape[d];
        }
        if (a->numel > (1 << 28)) goto bad;
        a->data = malloc((size_t)(a->numel ? a->numel : 1) * 4);
        if (!a->data || fread(a->data, 4, (size_t)a->numel, f) != (size_t)a->numel) goto bad;
        g->n++;
    }
    fclose(f);
    return 0;
bad:
    snprintf(msg, cap, "%s: truncated or malformed array %d", path, g->n);
    fclose(f);
    tpg_free(g);
    return -1;
}

static inline const tpg_array *tpg_get(const tpg_file *g, const char *name) {
    for (int i = 0; i < g->n; i++)
        if (strcmp(g->a[i].name, name) == 0) return &g->a[i];
    return NULL;
}

#endif
