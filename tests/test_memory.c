/* Tensor core: overflow-checked shapes, aligned storage, views, wrapping
 * and the bump arena. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

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

static void test_shape_size(void **state)
{
    (void)state;
    int64_t elems = 0;
    size_t bytes = 0;
    const int64_t d3[3] = {3, 4, 5};
    assert_int_equal(cvae__shape_size(3, d3, &elems, &bytes), CVAE_OK);
    assert_int_equal(elems, 60);
    assert_int_equal(bytes, 240);
    /* Either output may be NULL. */
    assert_int_equal(cvae__shape_size(3, d3, NULL, NULL), CVAE_OK);
    const int64_t d4[4] = {100, 16, 28, 28};
    assert_int_equal(cvae__shape_size(4, d4, &elems, NULL), CVAE_OK);
    assert_int_equal(elems, 100 * 16 * 28 * 28);

    clear_error();
    /* Element count overflows. */
    const int64_t big[2] = {INT64_MAX / 2, 4};
    expect_invalid(cvae__shape_size(2, big, &elems, &bytes));
    const int64_t big2[4] = {1 << 20, 1 << 20, 1 << 20, 1 << 20};
    expect_invalid(cvae__shape_size(4, big2, &elems, &bytes));
    /* Element count fits int64_t but bytes do not fit size_t. */
    const int64_t big3[1] = {(int64_t)1 << 62};
    expect_invalid(cvae__shape_size(1, big3, &elems, &bytes));
    const int64_t maxd[1] = {INT64_MAX};
    expect_invalid(cvae__shape_size(1, maxd, &elems, &bytes));
    /* Zero / negative dims. */
    const int64_t z[3] = {3, 0, 5};
    expect_invalid(cvae__shape_size(3, z, &elems, &bytes));
    const int64_t neg[2] = {-1, 5};
    expect_invalid(cvae__shape_size(2, neg, &elems, &bytes));
    const int64_t negbig[2] = {INT64_MIN, 1};
    expect_invalid(cvae__shape_size(2, negbig, &elems, &bytes));
    /* Rank out of range / NULL dims. */
    expect_invalid(cvae__shape_size(0, d3, &elems, &bytes));
    expect_invalid(cvae__shape_size(5, d4, &elems, &bytes));
    expect_invalid(cvae__shape_size(-1, d4, &elems, &bytes));
    assert_int_equal(cvae__shape_size(2, NULL, &elems, &bytes), CVAE_E_INVALID_ARG);
    assert_non_null(strstr(cvae_last_error(), "NULL"));
    clear_error();
}

static void test_aligned_alloc(void **state)
{
    (void)state;
    assert_null(cvae__aligned_alloc(0));
    assert_null(cvae__aligned_alloc(SIZE_MAX));
    const size_t sizes[] = {1, 3, 63, 64, 65, 1000, 4096, 100000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = cvae__aligned_alloc(sizes[i]);
        assert_non_null(p);
        assert_true(aligned64(p));
        memset(p, 0xab, sizes[i]); /* the whole request is usable */
        cvae__aligned_free(p);
    }
    cvae__aligned_free(NULL);
}

static void test_tensor_alloc(void **state)
{
    (void)state;
    cvae__tensor t;
    const int64_t dims[3] = {2, 3, 5};
    assert_int_equal(cvae__tensor_alloc(&t, 3, dims), CVAE_OK);
    assert_non_null(t.data);
    assert_true(aligned64(t.data));
    assert_int_equal(t.ndim, 3);
    assert_int_equal(t.size, 30);
    assert_int_equal(t.owns, 1);
    assert_int_equal(t.dim[0], 2);
    assert_int_equal(t.dim[1], 3);
    assert_int_equal(t.dim[2], 5);
    assert_int_equal(t.dim[3], 1); /* trailing dims are 1 */
    for (int64_t i = 0; i < t.size; i++)
        assert_true(t.data[i] == 0.0f); /* zeroed */
    cvae__tensor_free(&t);
    assert_null(t.data);
    assert_int_equal(t.size, 0);
    cvae__tensor_free(&t); /* freeing twice is harmless */
    cvae__tensor_free(NULL);

    /* Several odd sizes: every one aligned. */
    for (int64_t n = 1; n < 200; n += 37) {
        const int64_t d[1] = {n};
        assert_int_equal(cvae__tensor_alloc(&t, 1, d), CVAE_OK);
        assert_true(aligned64(t.data));
        cvae__tensor_free(&t);
    }

    /* Failures leave the tensor empty. */
    clear_error();
    const int64_t bad[2] = {INT64_MAX / 2, 4};
    t.data = (float *)(void *)&t;
    expect_invalid(cvae__tensor_alloc(&t, 2, bad));
    assert_null(t.data);
    const int64_t zero[2] = {4, 0};
    expect_invalid(cvae__tensor_alloc(&t, 2, zero));
    assert_null(t.data);
    expect_invalid(cvae__tensor_alloc(NULL, 2, dims));
#if !CVAE_TEST_ASAN
    /* Representable but impossible: 2^52 bytes. (AddressSanitizer aborts on
     * such a request instead of returning NULL, so it is skipped there.) */
    const int64_t huge[2] = {(int64_t)1 << 40, 1 << 10};
    assert_int_equal(cvae__tensor_alloc(&t, 2, huge), CVAE_E_NOMEM);
    assert_true(strlen(cvae_last_error()) > 0);
    assert_null(t.data);
#endif
}

static void test_tensor_view_and_wrap(void **state)
{
    (void)state;
    cvae__tensor t, v, w;
    const int64_t dims[2] = {4, 6};
    assert_int_equal(cvae__tensor_alloc(&t, 2, dims), CVAE_OK);
    for (int i = 0; i < 24; i++)
        t.data[i] = (float)i;

    /* Row 2 as a 1-D view shares storage both ways. */
    const int64_t row[1] = {6};
    assert_int_equal(cvae__tensor_view(&t, 12, 1, row, &v), CVAE_OK);
    assert_ptr_equal(v.data, t.data + 12);
    assert_int_equal(v.owns, 0);
    assert_int_equal(v.size, 6);
    assert_true(v.data[0] == 12.0f);
    v.data[5] = -1.0f;
    assert_true(t.data[17] == -1.0f);

    /* A view ending exactly at the end is fine; one element more is not. */
    const int64_t tail[3] = {2, 2, 3};
    assert_int_equal(cvae__tensor_view(&t, 12, 3, tail, &v), CVAE_OK);
    assert_int_equal(v.dim[3], 1);
    clear_error();
    expect_invalid(cvae__tensor_view(&t, 13, 3, tail, &v));
    expect_invalid(cvae__tensor_view(&t, -1, 1, row, &v));
    expect_invalid(cvae__tensor_view(&t, 25, 1, row, &v));
    expect_invalid(cvae__tensor_view(&t, INT64_MAX, 1, row, &v));
    const int64_t whole_plus[1] = {25};
    expect_invalid(cvae__tensor_view(&t, 0, 1, whole_plus, &v));
    const int64_t bad[1] = {0};
    expect_invalid(cvae__tensor_view(&t, 0, 1, bad, &v));
    expect_invalid(cvae__tensor_view(NULL, 0, 1, row, &v));
    expect_invalid(cvae__tensor_view(&t, 0, 1, row, NULL));

    /* A view of a view stays within the original. */
    const int64_t half[1] = {12};
    assert_int_equal(cvae__tensor_view(&t, 12, 1, half, &v), CVAE_OK);
    cvae__tensor v2;
    assert_int_equal(cvae__tensor_view(&v, 6, 1, row, &v2), CVAE_OK);
    assert_ptr_equal(v2.data, t.data + 18);
    expect_invalid(cvae__tensor_view(&v, 7, 1, row, &v2));

    /* Freeing a view does not free the storage (valgrind would see a
     * double free at the tensor_free below otherwise). */
    cvae__tensor_free(&v);

    /* Wrap caller storage. */
    float buf[10] = {0};
    const int64_t wd[2] = {2, 5};
    assert_int_equal(cvae__tensor_wrap(buf, 2, wd, &w), CVAE_OK);
    assert_ptr_equal(w.data, buf);
    assert_int_equal(w.size, 10);
    assert_int_equal(w.owns, 0);
    cvae__tensor_free(&w);
    expect_invalid(cvae__tensor_wrap(NULL, 2, wd, &w));
    expect_invalid(cvae__tensor_wrap(buf, 2, wd, NULL));
    expect_invalid(cvae__tensor_wrap(buf, 2, bad, &w));

    cvae__tensor_free(&t);
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
        cmocka_unit_test(test_shape_size),
        cmocka_unit_test(test_aligned_alloc),
        cmocka_unit_test(test_tensor_alloc),
        cmocka_unit_test(test_tensor_view_and_wrap),
        cmocka_unit_test(test_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
