/* The image reader: the directory walk (order, extensions, hidden files,
 * nesting, a symlink loop), list files, loading with and without skipping
 * bad files, thread-count independence, progress and cancelling, and the
 * paths a data set keeps. The tree is made by tests/image_files.c. */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convvae.h"

#if defined(CVAE_WITH_IMAGES) && CVAE_WITH_IMAGES
#include "image_files.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/cvae_test_reader_XXXXXX");
    return mkdtemp(dir) && ti_make_tree(dir) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *in_dir(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static cvae_image_reader *reader(int c, int h, int w)
{
    cvae_image_reader *r = NULL;
    assert_int_equal(cvae_image_reader_create(c, h, w, &r), CVAE_OK);
    return r;
}

static void test_create(void **state)
{
    (void)state;
    cvae_image_reader *r = (cvae_image_reader *)1;
    assert_int_equal(cvae_images_supported(), 1);
    assert_int_equal(cvae_image_reader_create(2, 8, 8, &r), CVAE_E_INVALID_ARG);
    assert_null(r);
    assert_int_equal(cvae_image_reader_create(1, 0, 8, &r), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_image_reader_create(1, 8, 4097, &r), CVAE_E_INVALID_ARG);
    r = reader(1, 8, 8);
    assert_int_equal(cvae_image_reader_set_threads(r, 0), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_image_reader_set_threads(r, 3), CVAE_OK);
    cvae_dataset *ds = (cvae_dataset *)1;
    assert_int_equal(cvae_image_reader_load(r, &ds), CVAE_E_INVALID_ARG); /* no files */
    assert_null(ds);
    cvae_image_reader_destroy(r);
    cvae_image_reader_destroy(NULL);
}

/* Sorted, recursive, by extension (any case), hidden and other files left
 * out, the loop walked once. */
static void test_walk(void **state)
{
    (void)state;
    cvae_image_reader *r = reader(1, 8, 8);
    assert_int_equal(cvae_image_reader_add_dir(r, dir), CVAE_OK);
    int64_t n = 0;
    assert_int_equal(cvae_image_reader_count(r, &n), CVAE_OK);
    assert_int_equal(n, TI_TREE_GOOD + TI_TREE_BAD);
    /* Load with skip to read the order back from the data set. */
    assert_int_equal(cvae_image_reader_set_skip_bad(r, 1), CVAE_OK);
    cvae_dataset *ds = NULL;
    assert_int_equal(cvae_image_reader_load(r, &ds), CVAE_OK);
    int64_t count = 0, k = 0;
    assert_int_equal(cvae_dataset_shape(ds, &count, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(count, TI_TREE_GOOD);
    for (int i = 0; i < TI_TREE_GOOD + TI_TREE_BAD; i++) {
        if (strncmp(ti_tree_files[i], "bad/", 4) == 0)
            continue;
        const char *p = NULL;
        assert_int_equal(cvae_dataset_path(ds, k++, &p), CVAE_OK);
        assert_string_equal(p, in_dir(ti_tree_files[i]));
    }
    cvae_dataset_destroy(ds);
    cvae_image_reader_destroy(r);

    assert_int_equal(cvae_image_reader_add_dir(r = reader(1, 8, 8), in_dir("notes.txt")),
                     CVAE_E_IO);
    assert_int_equal(cvae_image_reader_add_dir(r, in_dir("nowhere")), CVAE_E_IO);
    assert_non_null(strstr(cvae_last_error(), "nowhere"));
    cvae_image_reader_destroy(r);
}

/* Without skip the first bad file in order fails the load, by name, at
 * every thread count; with skip the bad ones are listed with reasons. */
static void test_errors_and_skip(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 4; threads += 3) {
        cvae_image_reader *r = reader(3, 16, 16);
        assert_int_equal(cvae_image_reader_set_threads(r, threads), CVAE_OK);
        assert_int_equal(cvae_image_reader_add_dir(r, dir), CVAE_OK);
        cvae_dataset *ds = (cvae_dataset *)1;
        assert_int_equal(cvae_image_reader_load(r, &ds), CVAE_E_FORMAT);
        assert_null(ds);
        assert_non_null(strstr(cvae_last_error(), in_dir("bad/corrupt.png")));

        assert_int_equal(cvae_image_reader_set_skip_bad(r, 1), CVAE_OK);
        assert_int_equal(cvae_image_reader_load(r, &ds), CVAE_OK);
        int64_t n = 0;
        assert_int_equal(cvae_image_reader_num_skipped(r, &n), CVAE_OK);
        assert_int_equal(n, TI_TREE_BAD);
        static const char *const bad[] = {"bad/corrupt.png", "bad/empty.jpg", "bad/text.png"};
        static const char *const why[] = {"not a valid PNG", "is empty", "not a PNG or JPEG"};
        for (int i = 0; i < 3; i++) {
            const char *p = NULL, *reason = NULL;
            assert_int_equal(cvae_image_reader_skipped(r, i, &p, &reason), CVAE_OK);
            assert_string_equal(p, in_dir(bad[i]));
            assert_non_null(strstr(reason, why[i]));
        }
        assert_int_equal(cvae_image_reader_skipped(r, 3, NULL, NULL), CVAE_E_INVALID_ARG);
        cvae_dataset_destroy(ds);
        cvae_image_reader_destroy(r);
    }
}

/* The pixels do not depend on the thread count; RGB and grey agree where
 * they must (a grey PNG gives equal planes). */
static void test_threads_same_result(void **state)
{
    (void)state;
    float *img[2] = {NULL, NULL};
    enum { C = 3, H = 12, W = 10, N = TI_TREE_GOOD };
    for (int k = 0; k < 2; k++) {
        cvae_image_reader *r = reader(C, H, W);
        assert_int_equal(cvae_image_reader_set_threads(r, k ? 3 : 1), CVAE_OK);
        assert_int_equal(cvae_image_reader_set_skip_bad(r, 1), CVAE_OK);
        assert_int_equal(cvae_image_reader_add_dir(r, dir), CVAE_OK);
        cvae_dataset *ds = NULL;
        assert_int_equal(cvae_image_reader_load(r, &ds), CVAE_OK);
        img[k] = malloc(sizeof(float) * N * C * H * W);
        assert_non_null(img[k]);
        assert_int_equal(cvae_dataset_images_f32(ds, 0, N, img[k]), CVAE_OK);
        cvae_dataset_destroy(ds);
        cvae_image_reader_destroy(r);
    }
    assert_memory_equal(img[0], img[1], sizeof(float) * N * C * H * W);
    /* a_grey.png is image 0: its three planes are equal. */
    assert_memory_equal(img[0], img[0] + H * W, sizeof(float) * H * W);
    assert_memory_equal(img[0], img[0] + 2 * H * W, sizeof(float) * H * W);
    /* e_alpha.png (image 4) is transparent on its left half: white there. */
    const float *e = img[0] + 4 * C * H * W;
    for (int y = 0; y < H; y++)
        for (int c = 0; c < C; c++)
            assert_float_equal(e[c * H * W + y * W + 0], 1.0f, 1e-6);
    free(img[0]);
    free(img[1]);
}

static void test_list_file(void **state)
{
    (void)state;
    const char *list = in_dir("list.txt");
    FILE *f = fopen(list, "w");
    assert_non_null(f);
    fprintf(f, "%s\r\n\n%s\n%s", in_dir("f_photo.jpg"), in_dir("a_grey.png"),
            in_dir("nested/i.jpg")); /* CRLF, an empty line, no final newline */
    fclose(f);
    cvae_image_reader *r = reader(1, 28, 28);
    assert_int_equal(cvae_image_reader_add_list(r, list), CVAE_OK);
    assert_int_equal(cvae_image_reader_add_file(r, in_dir("b_rgb.png")), CVAE_OK);
    cvae_dataset *ds = NULL;
    assert_int_equal(cvae_image_reader_load(r, &ds), CVAE_OK);
    const char *want[] = {"f_photo.jpg", "a_grey.png", "nested/i.jpg", "b_rgb.png"};
    int64_t n = 0;
    int c = 0, h = 0, w = 0;
    assert_int_equal(cvae_dataset_shape(ds, &n, &c, &h, &w), CVAE_OK);
    assert_int_equal(n, 4);
    assert_int_equal(c * 100 + h * 10 + w, 100 + 280 + 28);
    for (int i = 0; i < 4; i++) {
        const char *p = NULL;
        assert_int_equal(cvae_dataset_path(ds, i, &p), CVAE_OK);
        assert_string_equal(p, in_dir(want[i]));
    }
    assert_int_equal(cvae_dataset_path(ds, 4, &(const char *){NULL}), CVAE_E_INVALID_ARG);
    /* Subsets keep their images' paths. */
    cvae_dataset *sub = NULL;
    const int64_t idx[2] = {3, 0};
    assert_int_equal(cvae_dataset_subset_indices(ds, idx, 2, &sub), CVAE_OK);
    const char *p = NULL;
    assert_int_equal(cvae_dataset_path(sub, 0, &p), CVAE_OK);
    assert_string_equal(p, in_dir("b_rgb.png"));
    cvae_dataset_destroy(sub);
    assert_int_equal(cvae_dataset_subset_first(ds, 2, &sub), CVAE_OK);
    assert_int_equal(cvae_dataset_path(sub, 1, &p), CVAE_OK);
    assert_string_equal(p, in_dir("a_grey.png"));
    cvae_dataset_destroy(sub);
    cvae_dataset_destroy(ds);

    /* A data set from pixels has no paths. */
    const uint8_t px[4] = {0};
    assert_int_equal(cvae_dataset_from_u8(px, 1, 1, 2, 2, NULL, &ds), CVAE_OK);
    assert_int_equal(cvae_dataset_path(ds, 0, &p), CVAE_E_STATE);
    cvae_dataset_destroy(ds);

    assert_int_equal(cvae_image_reader_add_list(r, in_dir("no-list.txt")), CVAE_E_IO);
    int64_t count = 0;
    assert_int_equal(cvae_image_reader_count(r, &count), CVAE_OK);
    assert_int_equal(count, 4);
    cvae_image_reader_destroy(r);
}

typedef struct progress_log {
    int calls, stop_at;
    int64_t last_done, total;
} progress_log;

static int on_progress(void *user, int64_t done, int64_t total)
{
    progress_log *l = user;
    assert_true(done >= l->last_done && done <= total);
    l->last_done = done;
    l->total = total;
    return ++l->calls >= l->stop_at;
}

static void test_progress_and_cancel(void **state)
{
    (void)state;
    cvae_image_reader *r = reader(1, 8, 8);
    assert_int_equal(cvae_image_reader_set_skip_bad(r, 1), CVAE_OK);
    assert_int_equal(cvae_image_reader_add_dir(r, dir), CVAE_OK);
    progress_log log = {0, 1000, 0, 0};
    assert_int_equal(cvae_image_reader_set_progress(r, on_progress, &log), CVAE_OK);
    cvae_dataset *ds = NULL;
    assert_int_equal(cvae_image_reader_load(r, &ds), CVAE_OK);
    assert_true(log.calls >= 2); /* the start and the end */
    assert_int_equal(log.last_done, TI_TREE_GOOD + TI_TREE_BAD);
    assert_int_equal(log.total, TI_TREE_GOOD + TI_TREE_BAD);
    cvae_dataset_destroy(ds);
    log = (progress_log){0, 1, 0, 0}; /* stop at the first call */
    ds = (cvae_dataset *)1;
    assert_int_equal(cvae_image_reader_load(r, &ds), CVAE_E_CANCELLED);
    assert_null(ds);
    cvae_image_reader_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_walk),
        cmocka_unit_test(test_errors_and_skip),
        cmocka_unit_test(test_threads_same_result),
        cmocka_unit_test(test_list_file),
        cmocka_unit_test(test_progress_and_cancel),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

#else /* built without image files */

static void test_unsupported(void **state)
{
    (void)state;
    cvae_image_reader *r = (cvae_image_reader *)1;
    assert_int_equal(cvae_images_supported(), 0);
    assert_int_equal(cvae_image_reader_create(1, 8, 8, &r), CVAE_E_UNSUPPORTED);
    assert_null(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_unsupported)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
