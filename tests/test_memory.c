/* lib/core/memory.c: overflow-checked products, aligned storage and the
 * bump arena. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/memory.h"

#if defined(__SANITIZE_ADDRESS__)
#define CVAE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CVAE_TEST_ASAN 1
#endif
#endif
#ifndef CVAE_TEST_ASAN
#define CVAE_TEST_ASAN 0
#endif

static void clear_error(void) { (void)cvae__fail(CVAE_OK, "%s", ""); }

static void expect_invalid(cvae_status st)
{
    assert_int_equal(st, CVAE_E_INVALID_ARG);
    assert_true(strlen(cvae_last_error()) > 0);
    clear_error();
}

static int aligned64(const void *p) { return ((uintptr_t)p % 64) == 0; }

static void test_mul_overflows(void **state)
{
    (void)state;
    size_t out = 7;
    assert_int_equal(cvae__mul_overflows(SIZE_MAX, 2, &out), 1);
    assert_int_equal(out, 7); /* untouched on overflow */
    assert_int_equal(cvae__mul_overflows((size_t)1 << 32, (size_t)1 << 32, &out), 1);
    assert_int_equal(cvae__mul_overflows(0, SIZE_MAX, &out), 0);
    assert_int_equal(out, 0);
    assert_int_equal(cvae__mul_overflows(SIZE_MAX, 1, &out), 0);
    assert_true(out == SIZE_MAX);
    assert_int_equal(cvae__mul_overflows(12345, 678, &out), 0);
    assert_int_equal(out, 12345 * 678);
}

/* A pattern no fill of zeros or of one byte value reproduces. */
static unsigned char pattern(size_t i) { return (unsigned char)(i * 131u + (i >> 12) * 7u + 1u); }

static void fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pattern(i);
}

static int intact(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern(i))
            return 0;
    return 1;
}

static void test_aligned_alloc(void **state)
{
    (void)state;
    const size_t mib = (size_t)1 << 20;
    assert_null(cvae__aligned_alloc(0));
    assert_null(cvae__aligned_alloc(SIZE_MAX));
    /* below 8 MiB, above (on 2 MiB pages), and not a whole number of 2 MiB
     * pages */
    const size_t sizes[] = {1,    3,      63,          64,      65,
                            1000, 100000, 8 * mib - 1, 8 * mib, 9 * mib + 12345};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = cvae__aligned_alloc(sizes[i]);
        assert_non_null(p);
        assert_true(aligned64(p));
        if (sizes[i] >= 8 * mib)
            assert_true((uintptr_t)p % (2 * mib) == 0);
        fill(p, sizes[i]); /* the whole request is usable, and keeps what it was given */
        assert_true(intact(p, sizes[i]));
        cvae__aligned_free(p);
    }
    cvae__aligned_free(NULL);
}

static void test_advise(void **state)
{
    (void)state;
    const size_t mib = (size_t)1 << 20;
    /* Advice on a buffer already written (from any allocator, at any
     * offset) leaves every byte as it was: the pages may be replaced, the
     * data may not. */
    const size_t n = 11 * mib + 777;
    unsigned char *q = malloc(n);
    assert_non_null(q);
    fill(q, n);
    cvae__advise_random_access(q, n);
    assert_true(intact(q, n));
    cvae__advise_random_access(q + 3, n - 3);
    assert_true(intact(q, n));
    cvae__advise_random_access(q, 100); /* too small for a whole page: nothing */
    assert_true(intact(q, n));
    cvae__advise_random_access(NULL, n);
    free(q);
}

static void test_arena(void **state)
{
    (void)state;
    assert_int_equal(cvae__arena_bytes_for(0), 0);
    assert_int_equal(cvae__arena_bytes_for(1), 64);
    assert_int_equal(cvae__arena_bytes_for(16), 64);
    assert_int_equal(cvae__arena_bytes_for(17), 128);
    assert_true(cvae__arena_bytes_for(SIZE_MAX / 2) == SIZE_MAX);

    cvae__arena a;
    assert_int_equal(cvae__arena_init(&a, 1000), CVAE_OK);
    assert_non_null(a.base);
    assert_true(aligned64(a.base));
    float *p1 = cvae__arena_floats(&a, 3);
    float *p2 = cvae__arena_floats(&a, 17);
    assert_non_null(p1);
    assert_non_null(p2);
    assert_true(aligned64(p1));
    assert_true(aligned64(p2));
    assert_ptr_equal((unsigned char *)p2, (unsigned char *)p1 + 64);
    assert_int_equal(a.used, 192);
    p2[16] = 1.0f; /* the whole request is inside the block */

    /* mark / reset hands the same memory out again. */
    size_t mark = cvae__arena_mark(&a);
    float *p3 = cvae__arena_floats(&a, 100);
    assert_non_null(p3);
    assert_true(aligned64(p3));
    assert_int_equal(a.used, 192 + 448);
    assert_int_equal(a.peak, 640);
    cvae__arena_reset(&a, mark);
    assert_int_equal(a.used, 192);
    assert_int_equal(a.peak, 640); /* the peak remembers the high-water mark */
    float *p4 = cvae__arena_floats(&a, 1);
    assert_ptr_equal(p4, p3);

    /* Exhaustion: 1000 bytes hold 15 blocks of 64 in total; the failing
     * request leaves the arena unchanged. */
    cvae__arena_reset(&a, 0);
    for (int i = 0; i < 15; i++)
        assert_non_null(cvae__arena_floats(&a, 16));
    size_t used = a.used;
    assert_null(cvae__arena_floats(&a, 1));
    assert_int_equal(a.used, used);
    assert_null(cvae__arena_floats(&a, SIZE_MAX));
    assert_int_equal(a.used, used);
    cvae__arena_reset(&a, 0);
    assert_null(cvae__arena_floats(&a, 251)); /* 1004 bytes > 1000 */
    assert_non_null(cvae__arena_floats(&a, 240));
    cvae__arena_free(&a);
    assert_null(a.base);
    cvae__arena_free(&a);
    cvae__arena_free(NULL);

    /* An empty arena is valid and hands out nothing. */
    assert_int_equal(cvae__arena_init(&a, 0), CVAE_OK);
    assert_null(cvae__arena_floats(&a, 1));
    cvae__arena_free(&a);
    clear_error();
    expect_invalid(cvae__arena_init(NULL, 64));
    assert_int_equal(cvae__arena_init(&a, SIZE_MAX), CVAE_E_NOMEM);
    assert_null(a.base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mul_overflows),
        cmocka_unit_test(test_aligned_alloc),
        cmocka_unit_test(test_advise),
        cmocka_unit_test(test_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
