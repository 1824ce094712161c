/* safetensors reader (see safetensors.h for the layout).
 *
 * The reader is fed untrusted bytes (and fuzzed), so it walks exactly the
 * safetensors header shape with the strict JSON reader of json.h: a top-level
 * object whose values are tensor-entry objects or the "__metadata__" object
 * of strings. That shape has a fixed nesting depth of three, so the walk is
 * straight-line code without recursion. Every allocation is bounded by a
 * small multiple of the input length: strings are unescaped into one pool of
 * the header's size (unescaping never grows a string), entries are appended
 * only after their JSON has been consumed, and tensor storage never exceeds
 * the data buffer plus alignment padding. */
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
#include "core/memory.h"

typedef struct st_entry {
    const char *name; /* in the pool */
    int ndim;
    int64_t shape[CVAE__ST_MAX_DIMS];
    uint64_t begin, end; /* byte offsets into the data buffer */
    float *data;         /* in the aligned block */
} st_entry;

typedef struct st_meta {
    const char *key;
    const char *value;
} st_meta;

struct cvae__st_file {
    st_entry *tensors;
    size_t ntensors;
    st_meta *meta;
    size_t nmeta;
    char *pool;   /* all unescaped strings, NUL-terminated */
    float *block; /* 64-byte aligned; each tensor starts on a 64-byte boundary */
};

uint64_t cvae__st_shape_bytes(int ndim, const int64_t *shape, int *ok)
{
    uint64_t n = 1;
    int empty = 0;
    *ok = 0;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (shape[i] < 0)
            return 0;
        if (d == 0) {
            empty = 1;
            continue;
        }
        if (n > (uint64_t)INT64_MAX / d)
            return 0;
        n *= d;
    }
    if (n > (uint64_t)INT64_MAX / sizeof(float))
        return 0;
    *ok = 1;
    return empty ? 0 : n * sizeof(float);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorting keeps this O(n log n) on hostile headers with millions of entries. */
const char *cvae__st_first_duplicate(const char **names, size_t n)
{
    qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return names[i];
    return NULL;
}

static cvae_status parse_shape(cvae__json *j, st_entry *e)
{
    cvae_status st = cvae__json_expect(j, '[', "expected '[' for shape");
    if (st)
        return st;
    e->ndim = 0;
    if (cvae__json_at(j, ']')) {
        j->p++;
        return CVAE_OK;
    }
    for (int more = 1; more;) {
        if (e->ndim == CVAE__ST_MAX_DIMS)
            return cvae__fail(CVAE_E_FORMAT,
                              "safetensors: tensor \"%.64s\" has more than %d dimensions",
                              e->name, CVAE__ST_MAX_DIMS);
        uint64_t d;
        if ((st = cvae__json_u64(j, &d)) != CVAE_OK)
            return st;
        if (d > (uint64_t)INT64_MAX)
            return cvae__json_fail(j, "dimension too large");
        e->shape[e->ndim++] = (int64_t)d;
        if ((st = cvae__json_next(j, ']', &more)) != CVAE_OK)
            return st;
    }
    return CVAE_OK;
}

static cvae_status parse_offsets(cvae__json *j, st_entry *e)
{
    cvae_status st;
    if ((st = cvae__json_expect(j, '[', "expected '[' for data_offsets")) != CVAE_OK ||
        (st = cvae__json_u64(j, &e->begin)) != CVAE_OK ||
        (st = cvae__json_expect(j, ',', "data_offsets must have exactly two integers")) != CVAE_OK ||
        (st = cvae__json_u64(j, &e->end)) != CVAE_OK ||
        (st = cvae__json_expect(j, ']', "data_offsets must have exactly two integers")) != CVAE_OK)
        return st;
    return CVAE_OK;
}

/* One tensor entry object; e->name is already set. */
static cvae_status parse_entry(cvae__json *j, st_entry *e, uint64_t data_len)
{
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    cvae_status st = cvae__json_expect(j, '{', "expected '{' for a tensor entry");
    if (st)
        return st;
    if (cvae__json_at(j, '}'))
        return cvae__json_fail(j, "empty tensor entry");
    for (int more = 1; more;) {
        const char *key;
        size_t mark = cvae__json_pool_mark(j); /* keys and dtypes are not kept */
        if ((st = cvae__json_string(j, &key)) != CVAE_OK ||
            (st = cvae__json_expect(j, ':', "expected ':'")) != CVAE_OK)
            return st;
        if (strcmp(key, "dtype") == 0) {
            const char *dtype;
            if (have_dtype)
                return cvae__json_fail(j, "duplicate key \"dtype\"");
            if ((st = cvae__json_string(j, &dtype)) != CVAE_OK)
                return st;
            if (strcmp(dtype, "F32") != 0)
                return cvae__fail(CVAE_E_FORMAT,
                                  "safetensors: tensor \"%.64s\" has unsupported dtype \"%.16s\""
                                  " (only F32 is supported)",
                                  e->name, dtype);
            have_dtype = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (have_shape)
                return cvae__json_fail(j, "duplicate key \"shape\"");
            if ((st = parse_shape(j, e)) != CVAE_OK)
                return st;
            have_shape = 1;
        } else if (strcmp(key, "data_offsets") == 0) {
            if (have_offsets)
                return cvae__json_fail(j, "duplicate key \"data_offsets\"");
            if ((st = parse_offsets(j, e)) != CVAE_OK)
                return st;
            have_offsets = 1;
        } else {
            return cvae__fail(CVAE_E_FORMAT,
                              "safetensors: tensor \"%.64s\" has unknown key \"%.64s\"", e->name,
                              key);
        }
        cvae__json_pool_reset(j, mark);
        if ((st = cvae__json_next(j, '}', &more)) != CVAE_OK)
            return st;
    }
    if (!have_dtype || !have_shape || !have_offsets)
        return cvae__fail(CVAE_E_FORMAT, "safetensors: tensor \"%.64s\" lacks \"%s\"", e->name,
                          !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");

    int ok;
    uint64_t bytes = cvae__st_shape_bytes(e->ndim, e->shape, &ok);
    if (!ok)
        return cvae__fail(CVAE_E_FORMAT, "safetensors: tensor \"%.64s\" has a shape that overflows",
                          e->name);
    if (e->begin > e->end)
        return cvae__fail(CVAE_E_FORMAT,
                          "safetensors: tensor \"%.64s\" has data_offsets [%" PRIu64 ", %" PRIu64
                          "] that end before they begin",
                          e->name, e->begin, e->end);
    if (e->end > data_len)
        return cvae__fail(CVAE_E_FORMAT,
                          "safetensors: tensor \"%.64s\" data_offsets [%" PRIu64 ", %" PRIu64
                          "] are out of bounds of the %" PRIu64 "-byte data buffer",
                          e->name, e->begin, e->end, data_len);
    if (e->end - e->begin != bytes)
        return cvae__fail(CVAE_E_FORMAT,
                          "safetensors: tensor \"%.64s\" shape needs %" PRIu64
                          " bytes but data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64,
                          e->name, bytes, e->begin, e->end, e->end - e->begin);
    return CVAE_OK;
}

/* Grow *arr (of *cap elements) so that index `need` fits; 0 on success. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    size_t bytes;
    if (ncap <= need || cvae__mul_overflows(ncap, elem, &bytes))
        return 1;
    void *p = realloc(*arr, bytes);
    if (!p)
        return 1;
    *arr = p;
    *cap = ncap;
    return 0;
}

static cvae_status parse_metadata(cvae__json *j, cvae__st_file *f, size_t *cap)
{
    cvae_status st = cvae__json_expect(j, '{', "__metadata__ must be an object");
    if (st)
        return st;
    if (cvae__json_at(j, '}')) {
        j->p++;
        return CVAE_OK;
    }
    for (int more = 1; more;) {
        st_meta m;
        if ((st = cvae__json_string(j, &m.key)) != CVAE_OK ||
            (st = cvae__json_expect(j, ':', "expected ':'")) != CVAE_OK)
            return st;
        if (!cvae__json_at(j, '"'))
            return cvae__json_fail(j, "__metadata__ values must be strings");
        if ((st = cvae__json_string(j, &m.value)) != CVAE_OK)
            return st;
        if (grow((void **)&f->meta, cap, f->nmeta, sizeof *f->meta))
            return cvae__fail(CVAE_E_NOMEM, "safetensors: cannot allocate metadata");
        f->meta[f->nmeta++] = m;
        if ((st = cvae__json_next(j, '}', &more)) != CVAE_OK)
            return st;
    }
    return CVAE_OK;
}

static cvae_status parse_header(cvae__json *j, cvae__st_file *f, uint64_t data_len)
{
    size_t tcap = 0, mcap = 0;
    int seen_meta = 0;
    cvae_status st = cvae__json_expect(j, '{', "header must be a JSON object");
    if (st)
        return st;
    if (cvae__json_at(j, '}')) {
        j->p++;
    } else {
        for (int more = 1; more;) {
            const char *name;
            if ((st = cvae__json_string(j, &name)) != CVAE_OK ||
                (st = cvae__json_expect(j, ':', "expected ':'")) != CVAE_OK)
                return st;
            if (strcmp(name, "__metadata__") == 0) {
                if (seen_meta)
                    return cvae__json_fail(j, "duplicate \"__metadata__\"");
                seen_meta = 1;
                if ((st = parse_metadata(j, f, &mcap)) != CVAE_OK)
                    return st;
            } else {
                if (name[0] == '\0')
                    return cvae__json_fail(j, "empty tensor name");
                st_entry e;
                memset(&e, 0, sizeof e);
                e.name = name;
                if ((st = parse_entry(j, &e, data_len)) != CVAE_OK)
                    return st;
                if (grow((void **)&f->tensors, &tcap, f->ntensors, sizeof *f->tensors))
                    return cvae__fail(CVAE_E_NOMEM, "safetensors: cannot allocate tensor table");
                f->tensors[f->ntensors++] = e;
            }
            if ((st = cvae__json_next(j, '}', &more)) != CVAE_OK)
                return st;
        }
    }
    /* Writers pad the header with spaces so the data is aligned. */
    return cvae__json_finish(j);
}

static int cmp_offsets(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* Names unique, metadata keys unique, tensors tiling the data buffer. */
static cvae_status check_layout(cvae__st_file *f, uint64_t data_len)
{
    size_t n = f->ntensors > f->nmeta ? f->ntensors : f->nmeta;
    size_t elem = sizeof(const char *) > sizeof(st_entry *) ? sizeof(const char *)
                                                             : sizeof(st_entry *);
    void *scratch = malloc(n ? n * elem : 1);
    if (!scratch)
        return cvae__fail(CVAE_E_NOMEM, "safetensors: cannot allocate index");
    cvae_status st = CVAE_OK;
    const char **names = scratch;
    const char *dup;

    for (size_t i = 0; i < f->ntensors; i++)
        names[i] = f->tensors[i].name;
    if ((dup = cvae__st_first_duplicate(names, f->ntensors)) != NULL) {
        st = cvae__fail(CVAE_E_FORMAT, "safetensors: duplicate tensor name \"%.64s\"", dup);
        goto out;
    }
    for (size_t i = 0; i < f->nmeta; i++)
        names[i] = f->meta[i].key;
    if ((dup = cvae__st_first_duplicate(names, f->nmeta)) != NULL) {
        st = cvae__fail(CVAE_E_FORMAT, "safetensors: duplicate __metadata__ key \"%.64s\"", dup);
        goto out;
    }

    st_entry **order = scratch;
    for (size_t i = 0; i < f->ntensors; i++)
        order[i] = &f->tensors[i];
    qsort(order, f->ntensors, sizeof *order, cmp_offsets);
    uint64_t cursor = 0;
    for (size_t i = 0; i < f->ntensors; i++) {
        if (order[i]->begin != cursor) {
            st = cvae__fail(CVAE_E_FORMAT,
                            order[i]->begin < cursor
                                ? "safetensors: tensor \"%.64s\" overlaps another tensor at byte "
                                  "%" PRIu64
                                : "safetensors: gap in the data buffer before tensor \"%.64s\" "
                                  "at byte %" PRIu64,
                            order[i]->name, order[i]->begin);
            goto out;
        }
        cursor = order[i]->end;
    }
    if (cursor != data_len)
        st = cvae__fail(CVAE_E_FORMAT,
                        "safetensors: data buffer has %" PRIu64
                        " trailing bytes not covered by any tensor",
                        data_len - cursor);
out:
    free(scratch);
    return st;
}

/* The tensors' checksums, when the writer recorded them (safetensors.h):
 * one per tensor, in data order, each the CRC-32 of the tensor's bytes. */
static cvae_status verify_crcs(const cvae__st_file *f, const uint8_t *data)
{
    const char *txt = cvae__st_meta(f, CVAE__ST_CRC_KEY);
    if (!txt)
        return CVAE_OK;
    size_t n = f->ntensors;
    if (strlen(txt) != (n ? 9 * n - 1 : 0))
        return cvae__fail(CVAE_E_FORMAT,
                          "safetensors: __metadata__ \"" CVAE__ST_CRC_KEY
                          "\" does not hold %zu checksums",
                          n);
    st_entry **order = malloc(n ? n * sizeof *order : 1);
    if (!order)
        return cvae__fail(CVAE_E_NOMEM, "safetensors: cannot allocate index");
    for (size_t i = 0; i < n; i++)
        order[i] = &f->tensors[i];
    /* Ties in (begin, end) are empty tensors, whose CRC is 0 in any order. */
    qsort(order, n, sizeof *order, cmp_offsets);
    cvae_status st = CVAE_OK;
    for (size_t i = 0; i < n && !st; i++) {
        const char *h = txt + 9 * i;
        uint32_t want = 0;
        int ok = i + 1 == n || h[8] == ' ';
        for (int k = 0; k < 8 && ok; k++) {
            char c = h[k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            ok = d >= 0;
            want = want << 4 | (uint32_t)(ok ? d : 0);
        }
        if (!ok) {
            st = cvae__fail(CVAE_E_FORMAT,
                            "safetensors: __metadata__ \"" CVAE__ST_CRC_KEY
                            "\" is malformed at checksum %zu",
                            i + 1);
            break;
        }
        const st_entry *e = order[i];
        uLong crc = crc32(0L, Z_NULL, 0);
        for (uint64_t at = e->begin; at < e->end;) {
            uint64_t step = e->end - at > ((uint64_t)1 << 30) ? (uint64_t)1 << 30 : e->end - at;
            crc = crc32(crc, data + at, (uInt)step);
            at += step;
        }
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
        /* (A fuzzer cannot get past a checksum; fuzz builds read on.) */
        if ((uint32_t)crc != want)
            st = cvae__fail(CVAE_E_FORMAT,
                            "safetensors: tensor \"%.64s\" is damaged: the CRC-32 of its data is "
                            "%08lx, the file records %08lx",
                            e->name, (unsigned long)crc, (unsigned long)want);
#endif
    }
    free(order);
    return st;
}

static size_t round_up_align(size_t b) { return (b + CVAE__ALIGN - 1) / CVAE__ALIGN * CVAE__ALIGN; }

/* Copy every tensor into one aligned block, decoding little-endian floats. */
static cvae_status copy_data(cvae__st_file *f, const uint8_t *data, uint64_t data_len)
{
    /* data_len <= the input length, so no sum below can overflow; the extra
     * alignment unit keeps the block non-empty for zero-byte tensors. */
    size_t total = CVAE__ALIGN;
    if (data_len > SIZE_MAX / 2 || f->ntensors > SIZE_MAX / 2 / CVAE__ALIGN)
        return cvae__fail(CVAE_E_NOMEM, "safetensors: data too large");
    for (size_t i = 0; i < f->ntensors; i++)
        total += round_up_align((size_t)(f->tensors[i].end - f->tensors[i].begin));
    f->block = cvae__aligned_alloc(total);
    if (!f->block)
        return cvae__fail(CVAE_E_NOMEM, "safetensors: cannot allocate %zu bytes for tensors",
                          total);
    unsigned char *dst = (unsigned char *)f->block;
    for (size_t i = 0; i < f->ntensors; i++) {
        st_entry *e = &f->tensors[i];
        size_t count = (size_t)(e->end - e->begin) / sizeof(float);
        const uint8_t *src = data + e->begin;
        float *out = (float *)(void *)dst;
        for (size_t k = 0; k < count; k++, src += 4) {
            uint32_t u = (uint32_t)src[0] | (uint32_t)src[1] << 8 | (uint32_t)src[2] << 16 |
                         (uint32_t)src[3] << 24;
            memcpy(&out[k], &u, sizeof u);
        }
        e->data = out;
        dst += round_up_align(count * sizeof(float));
    }
    return CVAE_OK;
}

cvae_status cvae__st_parse(const uint8_t *buf, size_t len, cvae__st_file **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    if (buf == NULL && len > 0)
        return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_parse: buf is NULL");
    if (len < 8)
        return cvae__fail(CVAE_E_FORMAT,
                          "safetensors: %zu bytes is too short for the 8-byte header length", len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen > len - 8)
        return cvae__fail(CVAE_E_FORMAT,
                          "safetensors: header length %" PRIu64
                          " exceeds the %zu bytes that follow (truncated or not safetensors)",
                          hlen, len - 8);
    if (hlen > CVAE__ST_MAX_HEADER)
        return cvae__fail(CVAE_E_FORMAT,
                          "safetensors: header length %" PRIu64 " exceeds the limit of %" PRIu64,
                          hlen, CVAE__ST_MAX_HEADER);
    if (hlen < 2)
        return cvae__fail(CVAE_E_FORMAT, "safetensors: header length %" PRIu64 " is too short",
                          hlen);
    uint64_t data_len = (uint64_t)(len - 8 - (size_t)hlen);

    cvae__st_file *f = calloc(1, sizeof *f);
    if (!f)
        return cvae__fail(CVAE_E_NOMEM, "safetensors: cannot allocate file");
    size_t pool_cap = CVAE__JSON_POOL_FOR((size_t)hlen);
    f->pool = malloc(pool_cap);
    cvae__json j;
    cvae__json_init(&j, buf + 8, (size_t)hlen, f->pool, pool_cap, "safetensors header");
    cvae_status st;
    if (!f->pool)
        st = cvae__fail(CVAE_E_NOMEM, "safetensors: cannot allocate %zu bytes", pool_cap);
    else if ((st = parse_header(&j, f, data_len)) == CVAE_OK &&
             (st = check_layout(f, data_len)) == CVAE_OK &&
             (st = verify_crcs(f, buf + 8 + hlen)) == CVAE_OK)
        st = copy_data(f, buf + 8 + hlen, data_len);
    if (st) {
        cvae__st_free(f);
        return st;
    }
    *out = f;
    return CVAE_OK;
}

cvae_status cvae__st_load(const char *path, cvae__st_file **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(path);
    char why[128];
    int fd;
    do
        /* O_NONBLOCK: opening a FIFO would otherwise wait for a writer
         * before the check below could refuse it. */
        fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        cvae__errno_text(errno, why, sizeof why);
        return cvae__fail(CVAE_E_IO, "cannot open %s: %s", path, why);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        cvae__errno_text(errno, why, sizeof why);
        close(fd);
        return cvae__fail(CVAE_E_IO, "cannot stat %s: %s", path, why);
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return cvae__fail(CVAE_E_IO, "%s is not a regular file (%s)", path,
                          S_ISDIR(sb.st_mode)    ? "a directory"
                          : S_ISFIFO(sb.st_mode) ? "a FIFO"
                          : S_ISCHR(sb.st_mode)  ? "a character device"
                          : S_ISBLK(sb.st_mode)  ? "a block device"
                                                 : "a socket or other special file");
    }
    if (sb.st_size < 0 || (uint64_t)sb.st_size > SIZE_MAX - 1) {
        close(fd);
        return cvae__fail(CVAE_E_NOMEM, "%s is too large to load", path);
    }
    size_t size = (size_t)sb.st_size, got = 0;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate %zu bytes to read %s", size, path);
    }
    while (got < size) {
        size_t want = size - got > ((size_t)1 << 30) ? (size_t)1 << 30 : size - got;
        ssize_t r = read(fd, buf + got, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r < 0)
                cvae__errno_text(errno, why, sizeof why);
            else
                snprintf(why, sizeof why, "file shrank while reading");
            free(buf);
            close(fd);
            return cvae__fail(CVAE_E_IO, "cannot read %s: %s", path, why);
        }
        got += (size_t)r;
    }
    close(fd);
    cvae_status st = cvae__st_parse(buf, size, out);
    free(buf);
    if (st) {
        /* Name the file: the parser only knows about bytes. */
        char msg[400];
        snprintf(msg, sizeof msg, "%s", cvae_last_error());
        return cvae__fail(st, "%s: %s", path, msg);
    }
    return CVAE_OK;
}

void cvae__st_free(cvae__st_file *f)
{
    if (!f)
        return;
    free(f->tensors);
    free(f->meta);
    free(f->pool);
    cvae__aligned_free(f->block);
    free(f);
}

const float *cvae__st_find(const cvae__st_file *f, const char *name, int *ndim, int64_t *shape)
{
    if (!f || !name)
        return NULL;
    for (size_t i = 0; i < f->ntensors; i++) {
        const st_entry *e = &f->tensors[i];
        if (strcmp(e->name, name) != 0)
            continue;
        if (ndim)
            *ndim = e->ndim;
        if (shape)
            for (int d = 0; d < e->ndim; d++)
                shape[d] = e->shape[d];
        return e->data;
    }
    return NULL;
}

const char *cvae__st_meta(const cvae__st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (size_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}

size_t cvae__st_count(const cvae__st_file *f) { return f ? f->ntensors : 0; }

const char *cvae__st_name(const cvae__st_file *f, size_t i)
{
    return f && i < f->ntensors ? f->tensors[i].name : NULL;
}

