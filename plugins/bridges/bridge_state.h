/* bridge_state.h — reading and writing a bridge's checkpointed hidden state (bridge.h
 * state_size / save_state / load_state, ABI 1.2): a 16-byte header (magic word naming the
 * bridge's layout, layout version, payload byte count), then the payload as fixed-size fields
 * in native byte order. Readers check the header and the exact size first and parse into
 * temporaries, so a bridge commits a state only once all of it has been read (load_state must
 * leave the state unchanged on error). Used by perceiver (dropout RNG), diffusion (training
 * noise RNG + EMA weights) and vq (dead-code counters).
 *
 * Static functions in a header, like bridge_util.h (include it first): each bridge stays one
 * self-contained .so. */
#ifndef TP_BRIDGE_STATE_H
#define TP_BRIDGE_STATE_H

#include <stdint.h>
#include <string.h>

#define BS_HEADER 16u
#define BS_RNG    24u /* seed, stream, offset */

typedef struct bs_cur {
    unsigned char *w;       /* writing: the buffer; NULL when reading */
    const unsigned char *r; /* reading */
    size_t n, off;
} bs_cur;

BU_STATIC bs_cur bs_begin_write(void *buf, size_t n, uint32_t magic, uint32_t version) {
    bs_cur c = {buf, NULL, n, BS_HEADER};
    uint32_t h[4] = {magic, version, (uint32_t)(n - BS_HEADER), 0};
    memcpy(buf, h, sizeof h);
    return c;
}

BU_STATIC void bs_put(bs_cur *c, const void *src, size_t k) {
    if (c->off + k <= c->n) memcpy(c->w + c->off, src, k);
    c->off += k;
}

BU_STATIC void bs_put_u64(bs_cur *c, uint64_t v) {
    bs_put(c, &v, sizeof v);
}

BU_STATIC void bs_put_rng(bs_cur *c, const tp_rng *rng) {
    bs_put_u64(c, rng->seed);
    bs_put_u64(c, rng->stream);
    bs_put_u64(c, rng->offset);
}

/* After the last put: the writer must have filled exactly n bytes (state_size's promise). */
BU_STATIC tp_status bs_end_write(const bs_cur *c, const char *bridge, tp_err *err) {
    if (c->off != c->n)
        return BU_API->errf(err, TP_EINVAL,
                            "%s: save_state wrote %zu bytes into a buffer of %zu (state_size and "
                            "save_state disagree: a bug in the bridge)",
                            bridge, c->off, c->n);
    return TP_OK;
}

/* Checks the header: magic, version, payload size = n - header. */
BU_STATIC tp_status bs_begin_read(bs_cur *c, const void *buf, size_t n, uint32_t magic,
                                  uint32_t version, const char *bridge, tp_err *err) {
    memset(c, 0, sizeof *c);
    uint32_t h[4];
    if (n < BS_HEADER)
        return BU_API->errf(err, TP_EFORMAT, "%s: state of %zu bytes is shorter than its header",
                            bridge, n);
    memcpy(h, buf, sizeof h);
    if (h[0] != magic)
        return BU_API->errf(err, TP_EFORMAT,
                            "%s: state starts with 0x%08x, not this bridge's magic 0x%08x (the "
                            "state of another bridge?)",
                            bridge, h[0], magic);
    if (h[1] != version)
        return BU_API->errf(err, TP_EFORMAT,
                            "%s: state layout version %u; this build reads version %u", bridge,
                            h[1], version);
    if ((size_t)h[2] != n - BS_HEADER || h[3] != 0)
        return BU_API->errf(err, TP_EFORMAT,
                            "%s: state header says %u payload bytes, the state holds %zu", bridge,
                            h[2], n - BS_HEADER);
    c->r = buf;
    c->n = n;
    c->off = BS_HEADER;
    return TP_OK;
}

/* 0 when fewer than k bytes are left (nothing read). */
BU_STATIC int bs_get(bs_cur *c, void *dst, size_t k) {
    if (c->off + k > c->n) return 0;
    memcpy(dst, c->r + c->off, k);
    c->off += k;
    return 1;
}

/* Reads an RNG that must continue `expect` (same seed and stream: only the position moves). */
BU_STATIC tp_status bs_get_rng(bs_cur *c, const tp_rng *expect, tp_rng *out, const char *bridge,
                               const char *what, tp_err *err) {
    uint64_t v[3];
    if (!bs_get(c, v, sizeof v))
        return BU_API->errf(err, TP_EFORMAT, "%s: state ends inside the %s RNG", bridge, what);
    if (v[0] != expect->seed || v[1] != expect->stream)
        return BU_API->errf(err, TP_EFORMAT,
                            "%s: the %s RNG in the state has seed %llu stream 0x%llx; this run's "
                            "is seed %llu stream 0x%llx (a checkpoint of another seed?)",
                            bridge, what, (unsigned long long)v[0], (unsigned long long)v[1],
                            (unsigned long long)expect->seed, (unsigned long long)expect->stream);
    *out = (tp_rng){v[0], v[1], v[2]};
    return TP_OK;
}

/* After the last get: every byte must have been read. */
BU_STATIC tp_status bs_end_read(const bs_cur *c, const char *bridge, tp_err *err) {
    if (c->off != c->n)
        return BU_API->errf(err, TP_EFORMAT, "%s: state has %zu bytes more than its fields", bridge,
                            c->n - c->off);
    return TP_OK;
}

#endif
