/* JSON reader (see json.h). Strict RFC 8259 tokens; every byte of input is
 * bounds-checked, because checkpoint headers and config metadata come from
 * files the library did not write. */
#include "core/json.h"

#include <string.h>

#include "core/error.h"

void cvae__json_init(cvae__json *j, const void *text, size_t len, char *pool, size_t pool_cap,
                     const char *context)
{
    j->start = j->p = text;
    j->end = j->start + len;
    j->pool = pool;
    j->pool_used = 0;
    j->pool_cap = pool_cap;
    j->context = context;
}

cvae_status cvae__json_fail(const cvae__json *j, const char *what)
{
    return cvae__fail(CVAE_E_FORMAT, "%s: %s at byte %zu", j->context, what,
                      (size_t)(j->p - j->start));
}

void cvae__json_skip_ws(cvae__json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

int cvae__json_at(cvae__json *j, char c)
{
    cvae__json_skip_ws(j);
    return j->p < j->end && *j->p == (uint8_t)c;
}

cvae_status cvae__json_expect(cvae__json *j, char c, const char *what)
{
    cvae__json_skip_ws(j);
    if (j->p >= j->end || *j->p != (uint8_t)c)
        return cvae__json_fail(j, j->p >= j->end ? "unexpected end of text" : what);
    j->p++;
    return CVAE_OK;
}

size_t cvae__utf8_seq_len(const uint8_t *p, size_t avail)
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

int cvae__utf8_valid(const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t left = strlen(s);
    while (left) {
        size_t k = cvae__utf8_seq_len(p, left);
        if (!k)
            return 0;
        p += k;
        left -= k;
    }
    return 1;
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
static long read_hex4(cvae__json *j)
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

/* Each output byte is paid for by at least one input byte and the
 * terminating NUL by the closing quote, so a pool of CVAE__JSON_POOL_FOR(len)
 * cannot overflow; the check below is only a guard. U+0000 is refused because
 * strings are handed out as C strings. */
cvae_status cvae__json_string(cvae__json *j, const char **out)
{
    cvae__json_skip_ws(j);
    if (j->p >= j->end || *j->p != '"')
        return cvae__json_fail(j, j->p >= j->end ? "unexpected end of text" : "expected a string");
    j->p++;
    char *dst = j->pool + j->pool_used;
    size_t n = 0;
    for (;;) {
        if (j->pool_used + n + 5 > j->pool_cap)
            return cvae__fail(CVAE_E_INTERNAL, "%s: JSON string pool overflow", j->context);
        if (j->p >= j->end)
            return cvae__json_fail(j, "unterminated string");
        uint8_t c = *j->p;
        if (c == '"') {
            j->p++;
            break;
        }
        if (c < 0x20)
            return cvae__json_fail(j, "unescaped control character in string");
        if (c != '\\') {
            size_t k = cvae__utf8_seq_len(j->p, (size_t)(j->end - j->p));
            if (!k)
                return cvae__json_fail(j, "invalid UTF-8 in string");
            memcpy(dst + n, j->p, k);
            n += k;
            j->p += k;
            continue;
        }
        j->p++;
        if (j->p >= j->end)
            return cvae__json_fail(j, "unterminated string");
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
                return cvae__json_fail(j, "invalid \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
                    return cvae__json_fail(j, "unpaired UTF-16 surrogate in \\u escape");
                j->p += 2;
                long lo = read_hex4(j);
                if (lo < 0)
                    return cvae__json_fail(j, "invalid \\u escape");
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return cvae__json_fail(j, "unpaired UTF-16 surrogate in \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return cvae__json_fail(j, "unpaired UTF-16 surrogate in \\u escape");
            } else if (cp == 0) {
                return cvae__json_fail(j, "NUL character (\\u0000) in string");
            }
            n += utf8_encode((uint32_t)cp, dst + n);
            break;
        }
        default:
            j->p--;
            return cvae__json_fail(j, "invalid escape sequence in string");
        }
    }
    dst[n] = '\0';
    j->pool_used += n + 1;
    *out = dst;
    return CVAE_OK;
}

static int is_digit(const cvae__json *j) { return j->p < j->end && *j->p >= '0' && *j->p <= '9'; }

cvae_status cvae__json_u64(cvae__json *j, uint64_t *out)
{
    cvae__json_skip_ws(j);
    if (j->p >= j->end)
        return cvae__json_fail(j, "unexpected end of text");
    if (!is_digit(j))
        return cvae__json_fail(j, "expected a non-negative integer");
    uint64_t v = 0;
    if (*j->p == '0') {
        j->p++;
    } else {
        while (is_digit(j)) {
            unsigned d = (unsigned)(*j->p - '0');
            if (v > (UINT64_MAX - d) / 10)
                return cvae__json_fail(j, "integer too large");
            v = v * 10 + d;
            j->p++;
        }
    }
    if (is_digit(j) || (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')))
        return cvae__json_fail(j, "expected an integer without leading zeros, fraction or exponent");
    *out = v;
    return CVAE_OK;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
cvae_status cvae__json_number(cvae__json *j, const char **text)
{
    cvae__json_skip_ws(j);
    const uint8_t *begin = j->p;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (!is_digit(j))
        return cvae__json_fail(j, "expected a number");
    if (*j->p == '0')
        j->p++;
    else
        while (is_digit(j))
            j->p++;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!is_digit(j))
            return cvae__json_fail(j, "expected a digit after '.'");
        while (is_digit(j))
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!is_digit(j))
            return cvae__json_fail(j, "expected a digit in the exponent");
        while (is_digit(j))
            j->p++;
    }
    size_t n = (size_t)(j->p - begin);
    if (j->pool_used + n + 1 > j->pool_cap)
        return cvae__fail(CVAE_E_INTERNAL, "%s: JSON string pool overflow", j->context);
    char *dst = j->pool + j->pool_used;
    memcpy(dst, begin, n);
    dst[n] = '\0';
    j->pool_used += n + 1;
    *text = dst;
    return CVAE_OK;
}

cvae_status cvae__json_next(cvae__json *j, char close, int *more)
{
    cvae__json_skip_ws(j);
    if (j->p >= j->end)
        return cvae__json_fail(j, "unexpected end of text");
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
    return cvae__json_fail(j, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
}

cvae_status cvae__json_finish(cvae__json *j)
{
    cvae__json_skip_ws(j);
    if (j->p != j->end)
        return cvae__json_fail(j, "trailing characters after the JSON value");
    return CVAE_OK;
}
