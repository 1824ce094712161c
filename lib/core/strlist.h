/* A growable list of strings kept in one block of characters plus an offset
 * per string: millions of file paths cost their bytes and eight more each,
 * not a separate allocation per path. */
#ifndef CVAE_STRLIST_H
#define CVAE_STRLIST_H

#include <stddef.h>
#include <stdint.h>

#include "convvae.h"

typedef struct cvae__strlist {
    char *chars;     /* the strings, each NUL-terminated, back to back */
    size_t len, cap; /* bytes used / allocated in chars */
    size_t *off;     /* start of string i in chars */
    int64_t count, off_cap;
} cvae__strlist;

/* An empty list (all zero, so a zeroed struct is one too). */
void cvae__strlist_init(cvae__strlist *l);
/* Append the n bytes at s (which need not be NUL-terminated and must not
 * contain NUL) as a new string. CVAE_E_NOMEM leaves the list unchanged. */
cvae_status cvae__strlist_add(cvae__strlist *l, const char *s, size_t n);
/* String i, 0 <= i < count (not checked). Valid until the next add. */
const char *cvae__strlist_get(const cvae__strlist *l, int64_t i);
/* Forget every string, keeping the memory. */
void cvae__strlist_clear(cvae__strlist *l);
/* Free the memory; the list is empty again. */
void cvae__strlist_free(cvae__strlist *l);

#endif
