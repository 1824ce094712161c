/* safetensors writer (see safetensors.h for the layout): validates the
 * tensors and metadata, checksums the tensors, builds the JSON header,
 * streams the little-endian floats and replaces the target atomically
 * (atomic_file.h). */
#define _POSIX_C_SOURCE 200809L

#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <zlib.h>

#include "core/error.h"
#include "core/json.h"
#include "io/atomic_file.h"

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const void *s, size_t n)
{
    if (b->oom)
        return;
    if (n > b->cap - b->len) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap - b->len < n) {
            if (ncap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            ncap *= 2;
        }
        char *p = realloc(b->p, ncap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%" PRIu64, v);
    sb_put(b, t, (size_t)n);
}

/* Quote and backslash escaped; every control character as \u00xx so that
 * any JSON reader (serde_json, Python's json) round-trips it. */
static void sb_json_string(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            sb_put(b, esc, 2);
        } else if (*p < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            sb_put(b, esc, 6);
        } else {
            sb_put(b, p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static cvae_status validate_save(const cvae__st_tensor *tensors, size_t ntensors,
                                 const char *const *meta_keys, const char *const *meta_values,
                                 size_t nmeta)
{
    if (ntensors > 0 && tensors == NULL)
        return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_save: tensors is NULL");
    if (nmeta > 0 && (meta_keys == NULL || meta_values == NULL))
        return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_save: metadata arrays are NULL");
    for (size_t i = 0; i < ntensors; i++) {
        const cvae__st_tensor *t = &tensors[i];
        if (t->name == NULL || t->name[0] == '\0')
            return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_save: tensor %zu has no name", i);
        if (strcmp(t->name, "__metadata__") == 0 || !cvae__utf8_valid(t->name))
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "cvae__st_save: tensor %zu name is reserved or not UTF-8", i);
        if (t->ndim < 0 || t->ndim > CVAE__ST_MAX_DIMS)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "cvae__st_save: tensor \"%.64s\" rank %d is not in 0..%d", t->name,
                              t->ndim, CVAE__ST_MAX_DIMS);
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] < 0)
                return cvae__fail(CVAE_E_INVALID_ARG,
                                  "cvae__st_save: tensor \"%.64s\" dimension %d is negative",
                                  t->name, d);
        int ok;
        uint64_t bytes = cvae__st_shape_bytes(t->ndim, t->shape, &ok);
        if (!ok || bytes > SIZE_MAX)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "cvae__st_save: tensor \"%.64s\" shape overflows", t->name);
        if (bytes > 0 && t->data == NULL)
            return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_save: tensor \"%.64s\" data is NULL",
                              t->name);
    }
    for (size_t i = 0; i < nmeta; i++) {
        if (meta_keys[i] == NULL || meta_values[i] == NULL)
            return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_save: metadata entry %zu is NULL", i);
        if (strcmp(meta_keys[i], CVAE__ST_CRC_KEY) == 0)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "cvae__st_save: metadata key \"" CVAE__ST_CRC_KEY
                              "\" is the writer's own");
        if (!cvae__utf8_valid(meta_keys[i]) || !cvae__utf8_valid(meta_values[i]))
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "cvae__st_save: metadata entry %zu is not valid UTF-8", i);
    }

    size_t n = ntensors > nmeta ? ntensors : nmeta;
    const char **names = malloc(n ? n * sizeof *names : 1);
    if (!names)
        return cvae__fail(CVAE_E_NOMEM, "cvae__st_save: cannot allocate");
    const char *dup;
    for (size_t i = 0; i < ntensors; i++)
        names[i] = tensors[i].name;
    dup = cvae__st_first_duplicate(names, ntensors);
    if (dup) {
        cvae_status st = cvae__fail(CVAE_E_INVALID_ARG,
                                    "cvae__st_save: duplicate tensor name \"%.64s\"", dup);
        free(names);
        return st;
    }
    for (size_t i = 0; i < nmeta; i++)
        names[i] = meta_keys[i];
    dup = cvae__st_first_duplicate(names, nmeta);
    if (dup) {
        cvae_status st = cvae__fail(CVAE_E_INVALID_ARG,
                                    "cvae__st_save: duplicate metadata key \"%.64s\"", dup);
        free(names);
        return st;
    }
    free(names);
    return CVAE_OK;
}

/* Header JSON including the 8-byte length prefix and the space padding that
 * makes the data start 8-byte aligned. */
static cvae_status build_header(sbuf *b, const cvae__st_tensor *tensors, size_t ntensors,
                                const char *const *meta_keys, const char *const *meta_values,
                                size_t nmeta)
{
    sb_put(b, "\0\0\0\0\0\0\0\0", 8);
    sb_put(b, "{", 1);
    if (nmeta > 0) {
        sb_str(b, "\"__metadata__\":{");
        for (size_t i = 0; i < nmeta; i++) {
            if (i)
                sb_put(b, ",", 1);
            sb_json_string(b, meta_keys[i]);
            sb_put(b, ":", 1);
            sb_json_string(b, meta_values[i]);
        }
        sb_put(b, "}", 1);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < ntensors; i++) {
        const cvae__st_tensor *t = &tensors[i];
        int ok;
        uint64_t bytes = cvae__st_shape_bytes(t->ndim, t->shape, &ok);
        if (offset > UINT64_MAX - bytes)
            return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_save: total data size overflows");
        if (nmeta > 0 || i > 0)
            sb_put(b, ",", 1);
        sb_json_string(b, t->name);
        sb_str(b, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d)
                sb_put(b, ",", 1);
            sb_u64(b, (uint64_t)t->shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, offset);
        sb_put(b, ",", 1);
        offset += bytes;
        sb_u64(b, offset);
        sb_str(b, "]}");
    }
    sb_put(b, "}", 1);
    while (!b->oom && b->len % 8 != 0)
        sb_put(b, " ", 1);
    if (b->oom)
        return cvae__fail(CVAE_E_NOMEM, "cvae__st_save: cannot allocate the header");
    uint64_t hlen = b->len - 8;
    if (hlen > CVAE__ST_MAX_HEADER)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "cvae__st_save: header of %" PRIu64
                          " bytes exceeds the limit of %" PRIu64,
                          hlen, CVAE__ST_MAX_HEADER);
    for (int i = 0; i < 8; i++)
        b->p[i] = (char)(hlen >> (8 * i) & 0xFF);
    return CVAE_OK;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n > 0) {
        size_t want = n > ((size_t)1 << 30) ? (size_t)1 << 30 : n;
        ssize_t w = write(fd, p, want);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Little-endian bytes of tensor t, 16 KB at a time, to emit(chunk, n, ctx);
 * a non-zero return from emit stops and is returned. Saving never holds a
 * second copy of the weights. */
static int each_chunk(const cvae__st_tensor *t, int (*emit)(const unsigned char *, size_t, void *),
                      void *ctx)
{
    unsigned char chunk[16384];
    size_t used = 0;
    int ok;
    size_t count = (size_t)(cvae__st_shape_bytes(t->ndim, t->shape, &ok) / 4);
    for (size_t k = 0; k < count; k++) {
        uint32_t u;
        memcpy(&u, &t->data[k], sizeof u);
        chunk[used++] = (unsigned char)(u & 0xFF);
        chunk[used++] = (unsigned char)(u >> 8 & 0xFF);
        chunk[used++] = (unsigned char)(u >> 16 & 0xFF);
        chunk[used++] = (unsigned char)(u >> 24);
        if (used == sizeof chunk) {
            int r = emit(chunk, used, ctx);
            if (r)
                return r;
            used = 0;
        }
    }
    return used ? emit(chunk, used, ctx) : 0;
}

static int emit_crc(const unsigned char *p, size_t n, void *ctx)
{
    uLong *crc = ctx;
    *crc = crc32(*crc, p, (uInt)n);
    return 0;
}

static int emit_write(const unsigned char *p, size_t n, void *ctx)
{
    return write_all(*(const int *)ctx, p, n);
}

/* The CRC-32 of every tensor's bytes as "xxxxxxxx xxxxxxxx ...", in data
 * order (= the order of tensors); malloc'ed. */
static char *tensor_crcs(const cvae__st_tensor *tensors, size_t ntensors)
{
    char *s = malloc(ntensors ? ntensors * 9 : 1);
    if (!s)
        return NULL;
    s[0] = '\0';
    size_t at = 0;
    for (size_t i = 0; i < ntensors; i++) {
        uLong crc = crc32(0L, Z_NULL, 0);
        each_chunk(&tensors[i], emit_crc, &crc);
        at += (size_t)snprintf(s + at, 10, "%s%08lx", i ? " " : "", (unsigned long)crc);
    }
    return s;
}

cvae_status cvae__st_save(const char *path, const cvae__st_tensor *tensors, size_t ntensors,
                          const char *const *meta_keys, const char *const *meta_values,
                          size_t nmeta)
{
    CVAE__CHECK_PTR(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (*base == '\0')
        return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_save: path \"%s\" names no file", path);
    cvae_status st = validate_save(tensors, ntensors, meta_keys, meta_values, nmeta);
    if (st)
        return st;

    /* The caller's metadata plus the tensors' checksums. */
    const char **keys = malloc((nmeta + 1) * sizeof *keys);
    const char **vals = malloc((nmeta + 1) * sizeof *vals);
    char *crcs = ntensors ? tensor_crcs(tensors, ntensors) : NULL;
    sbuf hdr = {NULL, 0, 0, 0};
    if (!keys || !vals || (ntensors && !crcs)) {
        st = cvae__fail(CVAE_E_NOMEM, "cvae__st_save: cannot allocate");
        goto done;
    }
    for (size_t i = 0; i < nmeta; i++) {
        keys[i] = meta_keys[i];
        vals[i] = meta_values[i];
    }
    size_t nkeys = nmeta;
    if (ntensors) {
        keys[nkeys] = CVAE__ST_CRC_KEY;
        vals[nkeys++] = crcs;
    }
    if ((st = build_header(&hdr, tensors, ntensors, keys, vals, nkeys)) != CVAE_OK)
        goto done;

    cvae__atomic_file af;
    if ((st = cvae__atomic_open(&af, path)) != CVAE_OK)
        goto done;
    int failed = write_all(af.fd, hdr.p, hdr.len) != 0;
    for (size_t i = 0; i < ntensors && !failed; i++)
        failed = each_chunk(&tensors[i], emit_write, &af.fd) != 0;
    if (failed) {
        char why[128];
        cvae__errno_text(errno, why, sizeof why);
        cvae__atomic_abort(&af);
        st = cvae__fail(CVAE_E_IO, "cannot write %s: %s", path, why);
        goto done;
    }
    st = cvae__atomic_commit(&af, path);
done:
    free(keys);
    free(vals);
    free(crcs);
    free(hdr.p);
    return st;
}
