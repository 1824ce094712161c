/* safetensors reader and writer (see safetensors.h for the layout).
 *
 * The reader is fed untrusted bytes (and fuzzed), so it is a strict,
 * hand-written parser for exactly the safetensors header shape: a top-level
 * object whose values are tensor-entry objects or the "__metadata__" object
 * of strings. That shape has a fixed nesting depth of three, so the parser is
 * straight-line code without recursion. Every allocation is bounded by a
 * small multiple of the input length: strings are unescaped into one pool of
 * the header's size (unescaping never grows a string), entries are appended
 * only after their JSON has been consumed, and tensor storage never exceeds
 * the data buffer plus alignment padding. */
#define _POSIX_C_SOURCE 200809L

#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "error.h"
#include "tensor.h"

/* The reference implementation refuses headers above 100 MB; matching it
 * keeps files we write readable there and bounds our own allocations. */
#define ST_MAX_HEADER ((uint64_t)100000000)

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

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                           */

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 if it is malformed. */
static size_t utf8_seq_len(const uint8_t *p, size_t avail)
{
    uint8_t c = p[0];
    uint8_t lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

static int valid_utf8(const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t left = strlen(s);
    while (left) {
        size_t k = utf8_seq_len(p, left);
        if (!k)
            return 0;
        p += k;
        left -= k;
    }
    return 1;
}

/* Bytes of a tensor with this shape, or 0 with *ok = 0 on overflow. The
 * product of the non-zero dims must fit in int64 even when a zero dim makes
 * the tensor empty, so that consumers multiplying dims can never overflow. */
static uint64_t shape_bytes(int ndim, const int64_t *shape, int *ok)
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

/* First name that occurs twice, or NULL. Sorting keeps this O(n log n) on
 * hostile headers with millions of entries. */
static const char *find_duplicate(const char **names, size_t n)
{
    qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return names[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Reader                                                                   */

typedef struct jp {
    const uint8_t *start, *p, *end;
    char *pool;
    size_t pool_used, pool_cap;
} jp;

static cvae_status jfail(const jp *j, const char *what)
{
    return cvae__fail(CVAE_E_FORMAT, "safetensors header: %s at byte %zu", what,
                      (size_t)(j->p - j->start));
}

static void skip_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static cvae_status expect_char(jp *j, char c, const char *what)
{
    skip_ws(j);
    if (j->p >= j->end || *j->p != (uint8_t)c)
        return jfail(j, j->p >= j->end ? "unexpected end of header" : what);
    j->p++;
    return CVAE_OK;
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits after "\u"; -1 if malformed or truncated. */
static long read_hex4(jp *j)
{
    if (j->end - j->p < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(j->p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    j->p += 4;
    return v;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parse a JSON string into the pool. Each output byte is paid for by at least
 * one input byte and the terminating NUL by the closing quote, so the pool
 * (sized to the header) cannot overflow; the check below is only a guard.
 * U+0000 is refused because names and values are handed out as C strings. */
static cvae_status parse_string(jp *j, const char **out)
{
    skip_ws(j);
    if (j->p >= j->end || *j->p != '"')
        return jfail(j, j->p >= j->end ? "unexpected end of header" : "expected a string");
    j->p++;
    char *dst = j->pool + j->pool_used;
    size_t n = 0;
    for (;;) {
        if (j->pool_used + n + 5 > j->pool_cap)
            return cvae__fail(CVAE_E_INTERNAL, "safetensors: string pool overflow");
        if (j->p >= j->end)
            return jfail(j, "unterminated string");
        uint8_t c = *j->p;
        if (c == '"') {
            j->p++;
            break;
        }
        if (c < 0x20)
            return jfail(j, "unescaped control character in string");
        if (c != '\\') {
            size_t k = utf8_seq_len(j->p, (size_t)(j->end - j->p));
            if (!k)
                return jfail(j, "invalid UTF-8 in string");
            memcpy(dst + n, j->p, k);
            n += k;
            j->p += k;
            continue;
        }
        j->p++;
        if (j->p >= j->end)
            return jfail(j, "unterminated string");
        c = *j->p++;
        switch (c) {
        case '"': dst[n++] = '"'; break;
        case '\\': dst[n++] = '\\'; break;
        case '/': dst[n++] = '/'; break;
        case 'b': dst[n++] = '\b'; break;
        case 'f': dst[n++] = '\f'; break;
        case 'n': dst[n++] = '\n'; break;
        case 'r': dst[n++] = '\r'; break;
        case 't': dst[n++] = '\t'; break;
        case 'u': {
            long cp = read_hex4(j);
            if (cp < 0)
                return jfail(j, "invalid \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
                    return jfail(j, "unpaired UTF-16 surrogate in \\u escape");
                j->p += 2;
                long lo = read_hex4(j);
                if (lo < 0)
                    return jfail(j, "invalid \\u escape");
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return jfail(j, "unpaired UTF-16 surrogate in \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return jfail(j, "unpaired UTF-16 surrogate in \\u escape");
            } else if (cp == 0) {
                return jfail(j, "NUL character (\\u0000) in string");
            }
            n += utf8_encode((uint32_t)cp, dst + n);
            break;
        }
        default:
            j->p--;
            return jfail(j, "invalid escape sequence in string");
        }
    }
    dst[n] = '\0';
    j->pool_used += n + 1;
    *out = dst;
    return CVAE_OK;
}

/* A JSON integer without sign, fraction or exponent (strict: no leading
 * zeros), fitting in 64 bits. */
static cvae_status parse_u64(jp *j, uint64_t *out)
{
    skip_ws(j);
    if (j->p >= j->end)
        return jfail(j, "unexpected end of header");
    if (*j->p < '0' || *j->p > '9')
        return jfail(j, "expected a non-negative integer");
    uint64_t v = 0;
    if (*j->p == '0') {
        j->p++;
    } else {
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
            unsigned d = (unsigned)(*j->p - '0');
            if (v > (UINT64_MAX - d) / 10)
                return jfail(j, "integer too large");
            v = v * 10 + d;
            j->p++;
        }
    }
    if (j->p < j->end && ((*j->p >= '0' && *j->p <= '9') || *j->p == '.' || *j->p == 'e' ||
                          *j->p == 'E'))
        return jfail(j, "expected an integer without leading zeros, fraction or exponent");
    *out = v;
    return CVAE_OK;
}

/* After an element: 1 if the container continues (','), 0 if it closed. */
static cvae_status next_or_close(jp *j, char close, int *more)
{
    skip_ws(j);
    if (j->p >= j->end)
        return jfail(j, "unexpected end of header");
    if (*j->p == ',') {
        j->p++;
        *more = 1;
        return CVAE_OK;
    }
    if (*j->p == (uint8_t)close) {
        j->p++;
        *more = 0;
        return CVAE_OK;
    }
    return jfail(j, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
}

static int at_char(jp *j, char c)
{
    skip_ws(j);
    return j->p < j->end && *j->p == (uint8_t)c;
}

static cvae_status parse_shape(jp *j, st_entry *e)
{
    cvae_status st = expect_char(j, '[', "expected '[' for shape");
    if (st)
        return st;
    e->ndim = 0;
    if (at_char(j, ']')) {
        j->p++;
        return CVAE_OK;
    }
    for (int more = 1; more;) {
        if (e->ndim == CVAE__ST_MAX_DIMS)
            return cvae__fail(CVAE_E_FORMAT,
                              "safetensors: tensor \"%.64s\" has more than %d dimensions",
                              e->name, CVAE__ST_MAX_DIMS);
        uint64_t d;
        if ((st = parse_u64(j, &d)) != CVAE_OK)
            return st;
        if (d > (uint64_t)INT64_MAX)
            return jfail(j, "dimension too large");
        e->shape[e->ndim++] = (int64_t)d;
        if ((st = next_or_close(j, ']', &more)) != CVAE_OK)
            return st;
    }
    return CVAE_OK;
}

static cvae_status parse_offsets(jp *j, st_entry *e)
{
    cvae_status st;
    if ((st = expect_char(j, '[', "expected '[' for data_offsets")) != CVAE_OK ||
        (st = parse_u64(j, &e->begin)) != CVAE_OK ||
        (st = expect_char(j, ',', "data_offsets must have exactly two integers")) != CVAE_OK ||
        (st = parse_u64(j, &e->end)) != CVAE_OK ||
        (st = expect_char(j, ']', "data_offsets must have exactly two integers")) != CVAE_OK)
        return st;
    return CVAE_OK;
}

/* One tensor entry object; e->name is already set. */
static cvae_status parse_entry(jp *j, st_entry *e, uint64_t data_len)
{
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    cvae_status st = expect_char(j, '{', "expected '{' for a tensor entry");
    if (st)
        return st;
    if (at_char(j, '}'))
        return jfail(j, "empty tensor entry");
    for (int more = 1; more;) {
        const char *key;
        size_t mark = j->pool_used; /* keys and dtypes are not kept */
        if ((st = parse_string(j, &key)) != CVAE_OK ||
            (st = expect_char(j, ':', "expected ':'")) != CVAE_OK)
            return st;
        if (strcmp(key, "dtype") == 0) {
            const char *dtype;
            if (have_dtype)
                return jfail(j, "duplicate key \"dtype\"");
            if ((st = parse_string(j, &dtype)) != CVAE_OK)
                return st;
            if (strcmp(dtype, "F32") != 0)
                return cvae__fail(CVAE_E_FORMAT,
                                  "safetensors: tensor \"%.64s\" has unsupported dtype \"%.16s\""
                                  " (only F32 is supported)",
                                  e->name, dtype);
            have_dtype = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (have_shape)
                return jfail(j, "duplicate key \"shape\"");
            if ((st = parse_shape(j, e)) != CVAE_OK)
                return st;
            have_shape = 1;
        } else if (strcmp(key, "data_offsets") == 0) {
            if (have_offsets)
                return jfail(j, "duplicate key \"data_offsets\"");
            if ((st = parse_offsets(j, e)) != CVAE_OK)
                return st;
            have_offsets = 1;
        } else {
            return cvae__fail(CVAE_E_FORMAT,
                              "safetensors: tensor \"%.64s\" has unknown key \"%.64s\"", e->name,
                              key);
        }
        j->pool_used = mark;
        if ((st = next_or_close(j, '}', &more)) != CVAE_OK)
            return st;
    }
    if (!have_dtype || !have_shape || !have_offsets)
        return cvae__fail(CVAE_E_FORMAT, "safetensors: tensor \"%.64s\" lacks \"%s\"", e->name,
                          !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");

    int ok;
    uint64_t bytes = shape_bytes(e->ndim, e->shape, &ok);
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

static cvae_status parse_metadata(jp *j, cvae__st_file *f, size_t *cap)
{
    cvae_status st = expect_char(j, '{', "__metadata__ must be an object");
    if (st)
        return st;
    if (at_char(j, '}')) {
        j->p++;
        return CVAE_OK;
    }
    for (int more = 1; more;) {
        st_meta m;
        if ((st = parse_string(j, &m.key)) != CVAE_OK ||
            (st = expect_char(j, ':', "expected ':'")) != CVAE_OK)
            return st;
        if (!at_char(j, '"'))
            return jfail(j, "__metadata__ values must be strings");
        if ((st = parse_string(j, &m.value)) != CVAE_OK)
            return st;
        if (grow((void **)&f->meta, cap, f->nmeta, sizeof *f->meta))
            return cvae__fail(CVAE_E_NOMEM, "safetensors: cannot allocate metadata");
        f->meta[f->nmeta++] = m;
        if ((st = next_or_close(j, '}', &more)) != CVAE_OK)
            return st;
    }
    return CVAE_OK;
}

static cvae_status parse_header(jp *j, cvae__st_file *f, uint64_t data_len)
{
    size_t tcap = 0, mcap = 0;
    int seen_meta = 0;
    cvae_status st = expect_char(j, '{', "header must be a JSON object");
    if (st)
        return st;
    if (at_char(j, '}')) {
        j->p++;
    } else {
        for (int more = 1; more;) {
            const char *name;
            if ((st = parse_string(j, &name)) != CVAE_OK ||
                (st = expect_char(j, ':', "expected ':'")) != CVAE_OK)
                return st;
            if (strcmp(name, "__metadata__") == 0) {
                if (seen_meta)
                    return jfail(j, "duplicate \"__metadata__\"");
                seen_meta = 1;
                if ((st = parse_metadata(j, f, &mcap)) != CVAE_OK)
                    return st;
            } else {
                if (name[0] == '\0')
                    return jfail(j, "empty tensor name");
                st_entry e;
                memset(&e, 0, sizeof e);
                e.name = name;
                if ((st = parse_entry(j, &e, data_len)) != CVAE_OK)
                    return st;
                if (grow((void **)&f->tensors, &tcap, f->ntensors, sizeof *f->tensors))
                    return cvae__fail(CVAE_E_NOMEM, "safetensors: cannot allocate tensor table");
                f->tensors[f->ntensors++] = e;
            }
            if ((st = next_or_close(j, '}', &more)) != CVAE_OK)
                return st;
        }
    }
    /* Writers pad the header with spaces so the data is aligned. */
    skip_ws(j);
    if (j->p != j->end)
        return jfail(j, "trailing characters after the header object");
    return CVAE_OK;
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
    if ((dup = find_duplicate(names, f->ntensors)) != NULL) {
        st = cvae__fail(CVAE_E_FORMAT, "safetensors: duplicate tensor name \"%.64s\"", dup);
        goto out;
    }
    for (size_t i = 0; i < f->nmeta; i++)
        names[i] = f->meta[i].key;
    if ((dup = find_duplicate(names, f->nmeta)) != NULL) {
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
    if (hlen > ST_MAX_HEADER)
        return cvae__fail(CVAE_E_FORMAT,
                          "safetensors: header length %" PRIu64 " exceeds the limit of %" PRIu64,
                          hlen, ST_MAX_HEADER);
    if (hlen < 2)
        return cvae__fail(CVAE_E_FORMAT, "safetensors: header length %" PRIu64 " is too short",
                          hlen);
    uint64_t data_len = (uint64_t)(len - 8 - (size_t)hlen);

    cvae__st_file *f = calloc(1, sizeof *f);
    if (!f)
        return cvae__fail(CVAE_E_NOMEM, "safetensors: cannot allocate file");
    jp j;
    j.start = j.p = buf + 8;
    j.end = j.start + hlen;
    j.pool_cap = (size_t)hlen + 8;
    j.pool_used = 0;
    j.pool = f->pool = malloc(j.pool_cap);
    cvae_status st;
    if (!f->pool)
        st = cvae__fail(CVAE_E_NOMEM, "safetensors: cannot allocate %zu bytes", j.pool_cap);
    else if ((st = parse_header(&j, f, data_len)) == CVAE_OK &&
             (st = check_layout(f, data_len)) == CVAE_OK)
        st = copy_data(f, j.end, data_len);
    if (st) {
        cvae__st_free(f);
        return st;
    }
    *out = f;
    return CVAE_OK;
}

static void errtext(int e, char *buf, size_t n)
{
    if (strerror_r(e, buf, n) != 0)
        snprintf(buf, n, "errno %d", e);
}

cvae_status cvae__st_load(const char *path, cvae__st_file **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(path);
    char why[128];
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        errtext(errno, why, sizeof why);
        return cvae__fail(CVAE_E_IO, "cannot open %s: %s", path, why);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        errtext(errno, why, sizeof why);
        close(fd);
        return cvae__fail(CVAE_E_IO, "cannot stat %s: %s", path, why);
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return cvae__fail(CVAE_E_IO, "%s is not a regular file", path);
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
                errtext(errno, why, sizeof why);
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

/* ------------------------------------------------------------------------ */
/* Writer                                                                   */

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
        if (strcmp(t->name, "__metadata__") == 0 || !valid_utf8(t->name))
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
        uint64_t bytes = shape_bytes(t->ndim, t->shape, &ok);
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
        if (!valid_utf8(meta_keys[i]) || !valid_utf8(meta_values[i]))
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
    dup = find_duplicate(names, ntensors);
    if (dup) {
        cvae_status st = cvae__fail(CVAE_E_INVALID_ARG,
                                    "cvae__st_save: duplicate tensor name \"%.64s\"", dup);
        free(names);
        return st;
    }
    for (size_t i = 0; i < nmeta; i++)
        names[i] = meta_keys[i];
    dup = find_duplicate(names, nmeta);
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
        uint64_t bytes = shape_bytes(t->ndim, t->shape, &ok);
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
    if (hlen > ST_MAX_HEADER)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "cvae__st_save: header of %" PRIu64
                          " bytes exceeds the limit of %" PRIu64,
                          hlen, ST_MAX_HEADER);
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

/* Stream the floats as little-endian bytes through a small buffer, so saving
 * never holds a second copy of the weights. */
static int write_tensors(int fd, const cvae__st_tensor *tensors, size_t ntensors)
{
    unsigned char chunk[16384];
    size_t used = 0;
    for (size_t i = 0; i < ntensors; i++) {
        int ok;
        size_t count = (size_t)(shape_bytes(tensors[i].ndim, tensors[i].shape, &ok) / 4);
        const float *src = tensors[i].data;
        for (size_t k = 0; k < count; k++) {
            uint32_t u;
            memcpy(&u, &src[k], sizeof u);
            chunk[used++] = (unsigned char)(u & 0xFF);
            chunk[used++] = (unsigned char)(u >> 8 & 0xFF);
            chunk[used++] = (unsigned char)(u >> 16 & 0xFF);
            chunk[used++] = (unsigned char)(u >> 24);
            if (used == sizeof chunk) {
                if (write_all(fd, chunk, used))
                    return -1;
                used = 0;
            }
        }
    }
    return used ? write_all(fd, chunk, used) : 0;
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

    sbuf hdr = {NULL, 0, 0, 0};
    if ((st = build_header(&hdr, tensors, ntensors, meta_keys, meta_values, nmeta)) != CVAE_OK) {
        free(hdr.p);
        return st;
    }

    /* Temporary ".<base>.tmpXXXXXX" beside the target, so that rename() stays
     * within one file system and is atomic; "dir" is what gets fsynced after. */
    static const char suffix[] = ".tmpXXXXXX";
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    size_t baselen = strlen(base);
    char *tmp = malloc(dirlen + baselen + sizeof suffix + 3);
    char *dir = malloc(dirlen + 2);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        free(hdr.p);
        return cvae__fail(CVAE_E_NOMEM, "cvae__st_save: cannot allocate path");
    }
    size_t k = 0;
    if (slash) {
        memcpy(tmp, path, dirlen);
        k = dirlen;
        tmp[k++] = '/';
        if (dirlen == 0)
            strcpy(dir, "/");
        else {
            memcpy(dir, path, dirlen);
            dir[dirlen] = '\0';
        }
    } else {
        strcpy(dir, ".");
    }
    tmp[k++] = '.';
    memcpy(tmp + k, base, baselen);
    memcpy(tmp + k + baselen, suffix, sizeof suffix);

    char why[128];
    const char *step = NULL;
    int err = 0;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        err = errno;
        errtext(err, why, sizeof why);
        st = cvae__fail(CVAE_E_IO, "cannot create a temporary file for %s: %s", path, why);
        goto done;
    }
    /* mkstemp makes 0600 files: keep the mode of the file being replaced, or
     * use the usual 0644 for a new one. */
    struct stat sb;
    mode_t mode = 0644;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
        mode = sb.st_mode & 07777;
    if (fchmod(fd, mode) != 0)
        step = "set permissions on";
    else if (write_all(fd, hdr.p, hdr.len) != 0 || write_tensors(fd, tensors, ntensors) != 0)
        step = "write";
    else if (fsync(fd) != 0)
        step = "sync";
    if (step) {
        err = errno;
        close(fd);
    } else if (close(fd) != 0) {
        err = errno;
        step = "close";
    } else if (rename(tmp, path) != 0) {
        err = errno;
        step = "rename over";
    }
    if (step) {
        unlink(tmp);
        errtext(err, why, sizeof why);
        st = cvae__fail(CVAE_E_IO, "cannot %s %s: %s", step, path, why);
        goto done;
    }

    /* The rename is only durable once the directory entry is on disk. Some
     * file systems cannot fsync a directory (EINVAL); nothing more can be done
     * there. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP)) {
        err = errno;
        errtext(err, why, sizeof why);
        st = cvae__fail(CVAE_E_IO, "wrote %s but cannot sync its directory %s: %s", path, dir,
                        why);
    }
    if (dfd >= 0)
        close(dfd);
done:
    free(tmp);
    free(dir);
    free(hdr.p);
    return st;
}
