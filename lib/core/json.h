/* The library's one JSON reader: a cursor over untrusted text that callers
 * drive token by token (objects and arrays are walked by the caller, which
 * knows the shape it expects, so no tree is built and nothing recurses).
 *
 * Strings are unescaped into a caller-supplied pool; unescaping never grows a
 * string, so a pool of the text's length plus a few bytes always suffices.
 * Every failure is CVAE_E_FORMAT with a message "<context>: <what> at byte N". */
#ifndef CVAE_JSON_H
#define CVAE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "convvae.h"

typedef struct cvae__json {
    const uint8_t *start, *p, *end;
    char *pool;
    size_t pool_used, pool_cap;
    const char *context; /* names the document in error messages */
} cvae__json;

/* Pool bytes that always suffice for text of len bytes. */
#define CVAE__JSON_POOL_FOR(len) ((len) + 8)

void cvae__json_init(cvae__json *j, const void *text, size_t len, char *pool, size_t pool_cap,
                     const char *context);

/* Fail with CVAE_E_FORMAT, naming the context and the current byte offset. */
cvae_status cvae__json_fail(const cvae__json *j, const char *what);

void cvae__json_skip_ws(cvae__json *j);

/* 1 if the next non-blank character is c (not consumed). */
int cvae__json_at(cvae__json *j, char c);

/* Consume the next non-blank character, which must be c (else fail with what). */
cvae_status cvae__json_expect(cvae__json *j, char c, const char *what);

/* A string, unescaped into the pool as NUL-terminated UTF-8. U+0000 and
 * malformed UTF-8 or escapes are refused. The pool space of strings that are
 * not kept is returned with cvae__json_pool_reset. */
cvae_status cvae__json_string(cvae__json *j, const char **out);

/* A non-negative integer without sign, fraction, exponent or leading zero
 * that fits in 64 bits. */
cvae_status cvae__json_u64(cvae__json *j, uint64_t *out);

/* Any JSON number (strict grammar), copied as text into the pool so the
 * caller converts it with the range rules of its own field. */
cvae_status cvae__json_number(cvae__json *j, const char **text);

/* After a member or element: *more = 1 on ',', 0 on the closing bracket. */
cvae_status cvae__json_next(cvae__json *j, char close, int *more);

/* Only whitespace may follow. */
cvae_status cvae__json_finish(cvae__json *j);

static inline size_t cvae__json_pool_mark(const cvae__json *j) { return j->pool_used; }
static inline void cvae__json_pool_reset(cvae__json *j, size_t mark) { j->pool_used = mark; }

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 if it is malformed. */
size_t cvae__utf8_seq_len(const uint8_t *p, size_t avail);

/* 1 if the NUL-terminated s is well-formed UTF-8. */
int cvae__utf8_valid(const char *s);

#endif
