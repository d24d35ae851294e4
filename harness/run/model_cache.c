/* model_cache.c — the runner's models: each directory loaded once (tp.model caches across the runs
 * of a script) and fingerprinted, so the run config names the exact weights it used.
 *
 * Fingerprint: sha256 over, for config.json and every *.safetensors / *.index.json file of the
 * directory in name order, the file name, its size and its bytes. Files above 512 MiB are
 * sampled (first and last 16 MiB plus 64 evenly spaced 64 KiB blocks) and the fingerprint is
 * then spelled "sampled-sha256:" so nobody mistakes it for a full hash; tiny and test models are
 * always hashed in full. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "run/run_config.h"
#include "util/sha256.h"
#include "util/strutil.h"

#define FP_FULL_LIMIT (512ull << 20)
#define FP_EDGE       (16ull << 20)
#define FP_BLOCK      (64ull << 10)
#define FP_BLOCKS     64

static int fp_wanted(const char *name) {
    return !strcmp(name, "config.json") || tp_str_ends_with(name, ".safetensors") ||
           tp_str_ends_with(name, ".index.json");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static tp_status hash_range(tp_sha256 *h, FILE *f, const char *path, uint64_t off, uint64_t n,
                            char *buf, size_t cap, tp_err *err) {
    if (fseeko(f, (off_t)off, SEEK_SET) != 0)
        return tp_errf(err, TP_EIO, "fingerprint: cannot seek in %s", path);
    while (n > 0) {
        size_t want = n < cap ? (size_t)n : cap;
        size_t got = fread(buf, 1, want, f);
        if (got != want) return tp_errf(err, TP_EIO, "fingerprint: short read on %s", path);
        tp_sha256_update(h, buf, got);
        n -= got;
    }
    return TP_OK;
}

static tp_status fingerprint_dir(const char *dir, char *out, size_t cap, tp_err *err) {
    DIR *d = opendir(dir);
    if (!d) return tp_errf(err, TP_EIO, "model '%s': cannot open the directory", dir);
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 256)
        if (fp_wanted(e->d_name)) names[n++] = tp_strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    tp_sha256 h;
    tp_sha256_init(&h);
    int sampled = 0;
    tp_status st = TP_OK;
    size_t bcap = 1 << 20;
    char *buf = malloc(bcap);
    if (!buf) st = tp_errf(err, TP_ENOMEM, "fingerprint: out of memory");
    for (int i = 0; i < n && st == TP_OK; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat sb;
        FILE *f = fopen(path, "rb");
        if (!f || fstat(fileno(f), &sb) != 0) {
            if (f) fclose(f);
            st = tp_errf(err, TP_EIO, "fingerprint: cannot read %s", path);
            break;
        }
        uint64_t size = (uint64_t)sb.st_size;
        char head[320];
        int hl = snprintf(head, sizeof head, "%s\n%llu\n", names[i], (unsigned long long)size);
        tp_sha256_update(&h, head, (size_t)hl);
        if (size <= FP_FULL_LIMIT) {
            st = hash_range(&h, f, path, 0, size, buf, bcap, err);
        } else {
            sampled = 1;
            st = hash_range(&h, f, path, 0, FP_EDGE, buf, bcap, err);
            for (int b = 0; b < FP_BLOCKS && st == TP_OK; b++) {
                uint64_t off = FP_EDGE + (size - 2 * FP_EDGE - FP_BLOCK) / FP_BLOCKS * (uint64_t)b;
                st = hash_range(&h, f, path, off, FP_BLOCK, buf, bcap, err);
            }
            if (st == TP_OK) st = hash_range(&h, f, path, size - FP_EDGE, FP_EDGE, buf, bcap, err);
        }
        fclose(f);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(buf);
    if (st != TP_OK) return st;
    if (n == 0) return tp_errf(err, TP_EIO, "model '%s': no config.json or safetensors files", dir);
    uint8_t dig[32];
    char hex[TP_SHA256_HEX];
    tp_sha256_final(&h, dig);
    tp_sha256_to_hex(dig, hex);
    snprintf(out, cap, "%s:%s", sampled ? "sampled-sha256" : "sha256", hex);
    return TP_OK;
}

tp_status tp_run_model_load(tp_run_model *rm, const char *path, tp_err *err) {
    char real[PATH_MAX];
    if (!realpath(path, real))
        return tp_errf(err, TP_EIO,
                       "model '%s': no such directory (expected a Hugging Face model directory "
                       "with config.json and model.safetensors; `telepathy make-tiny` makes one)",
                       path);
    tp_strlcpy(rm->path, real, sizeof rm->path);
    TP_TRY(fingerprint_dir(real, rm->fingerprint, sizeof rm->fingerprint, err));
    tp_status st = tp_model_load(&rm->m, real, NULL, err);
    if (st != TP_OK) return st;
    if (!rm->m->tok) {
        tp_model_free(rm->m);
        rm->m = NULL;
        return tp_errf(err, TP_EFORMAT,
                       "model '%s': no tokenizer (tokenizer.json or tokenizer.model) in the "
                       "directory; the runner tokenises text with each model's own tokenizer",
                       real);
    }
    return TP_OK;
}
