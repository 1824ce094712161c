/* Whole-file read/write helpers shared by the tests (CMocka assertions on
 * every step). Include after <cmocka.h>. */
#ifndef CVAE_TEST_TESTFILE_H
#define CVAE_TEST_TESTFILE_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__GNUC__)
#define TF_UNUSED __attribute__((unused))
#else
#define TF_UNUSED
#endif

static TF_UNUSED int tf_remove_entry(const char *path, const struct stat *sb, int flag,
                                     struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Delete dir and everything under it, also what a failed test left behind.
 * Needs nftw: define _XOPEN_SOURCE 700 (or _GNU_SOURCE) before any include. */
static TF_UNUSED int remove_tree(const char *dir)
{
    return nftw(dir, tf_remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static TF_UNUSED void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* The file's bytes (malloc'd, one spare byte) and their count in *len. */
static TF_UNUSED unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    unsigned char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

#endif
