/* Growable string list: one character block and one offset array, both
 * doubling as they fill. */
#include "core/strlist.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void cvae__strlist_init(cvae__strlist *l) { memset(l, 0, sizeof *l); }

cvae_status cvae__strlist_add(cvae__strlist *l, const char *s, size_t n)
{
    if (n >= SIZE_MAX / 4 || l->len > SIZE_MAX / 4 - n - 1)
        return cvae__fail(CVAE_E_NOMEM, "a list of strings outgrew the address space");
    if (l->count == l->off_cap) {
        int64_t ncap = l->off_cap ? l->off_cap * 2 : 64;
        if ((uint64_t)ncap > SIZE_MAX / sizeof *l->off)
            return cvae__fail(CVAE_E_NOMEM, "a list of strings outgrew the address space");
        size_t *no = realloc(l->off, (size_t)ncap * sizeof *no);
        if (!no)
            return cvae__fail(CVAE_E_NOMEM, "cannot grow a list of %lld strings",
                              (long long)l->count);
        l->off = no;
        l->off_cap = ncap;
    }
    if (l->len + n + 1 > l->cap) {
        size_t ncap = l->cap ? l->cap : 4096;
        while (ncap < l->len + n + 1)
            ncap *= 2;
        char *nc = realloc(l->chars, ncap);
        if (!nc)
            return cvae__fail(CVAE_E_NOMEM, "cannot grow a list of strings to %zu bytes", ncap);
        l->chars = nc;
        l->cap = ncap;
    }
    memcpy(l->chars + l->len, s, n);
    l->chars[l->len + n] = '\0';
    l->off[l->count++] = l->len;
    l->len += n + 1;
    return CVAE_OK;
}

const char *cvae__strlist_get(const cvae__strlist *l, int64_t i) { return l->chars + l->off[i]; }

void cvae__strlist_clear(cvae__strlist *l)
{
    l->len = 0;
    l->count = 0;
}

void cvae__strlist_free(cvae__strlist *l)
{
    free(l->chars);
    free(l->off);
    cvae__strlist_init(l);
}
