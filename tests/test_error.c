/* Status strings, the thread-local last-error message and the version. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convvae.h"
#include "core/error.h"

static void test_strerror(void **state)
{
    (void)state;
    const char *s[CVAE_E_INTERNAL + 1];
    for (int i = CVAE_OK; i <= CVAE_E_INTERNAL; i++) {
        s[i] = cvae_strerror((cvae_status)i);
        assert_non_null(s[i]);
        assert_true(strlen(s[i]) > 0);
        assert_string_not_equal(s[i], "unknown status");
        for (int j = 0; j < i; j++)
            assert_string_not_equal(s[i], s[j]);
    }
    assert_string_equal(cvae_strerror((cvae_status)(CVAE_E_INTERNAL + 1)), "unknown status");
    assert_string_equal(cvae_strerror((cvae_status)1000), "unknown status");
    assert_string_equal(cvae_strerror((cvae_status)-1), "unknown status");
}

static void test_last_error_basics(void **state)
{
    (void)state;
    assert_non_null(cvae_last_error());
    assert_int_equal(cvae_set_num_threads(0), CVAE_E_INVALID_ARG);
    char saved[512];
    snprintf(saved, sizeof saved, "%s", cvae_last_error());
    assert_true(strlen(saved) > 0);
    assert_non_null(strstr(saved, "0")); /* names the bad value */
    /* A successful call does not clear it. */
    assert_int_equal(cvae_set_num_threads(1), CVAE_OK);
    assert_string_equal(cvae_last_error(), saved);
    /* cvae__fail returns its status and formats the message. */
    assert_int_equal(cvae__fail(CVAE_E_IO, "cannot open %s (%d)", "x.idx", 2), CVAE_E_IO);
    assert_string_equal(cvae_last_error(), "cannot open x.idx (2)");
    /* Overlong messages are cut, still NUL-terminated. */
    char *big = malloc(4000);
    assert_non_null(big);
    memset(big, 'a', 3999);
    big[3999] = '\0';
    (void)cvae__fail(CVAE_E_FORMAT, "%s", big);
    size_t len = strlen(cvae_last_error());
    assert_true(len > 100 && len < 4000);
    free(big);
}

typedef struct thread_result {
    char before[512]; /* what the new thread saw before failing itself */
    char after[512];
    int status;
} thread_result;

static void *thread_main(void *arg)
{
    thread_result *res = arg;
    snprintf(res->before, sizeof res->before, "%s", cvae_last_error());
    res->status = (int)cvae_set_num_threads(-7);
    snprintf(res->after, sizeof res->after, "%s", cvae_last_error());
    return NULL;
}

/* The message is per thread: a new thread starts with "" although the main
 * thread has one, its own failure does not overwrite the main thread's,
 * and (cmocka asserts run on the main thread only) results come back
 * through a struct. */
static void test_last_error_thread_local(void **state)
{
    (void)state;
    assert_int_equal(cvae_set_num_threads(0), CVAE_E_INVALID_ARG);
    char mine[512];
    snprintf(mine, sizeof mine, "%s", cvae_last_error());
    assert_true(strlen(mine) > 0);

    thread_result res[2];
    memset(res, 0, sizeof res);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &res[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(res[i].before, "");
        assert_int_equal(res[i].status, CVAE_E_INVALID_ARG);
        assert_non_null(strstr(res[i].after, "-7"));
    }
    assert_string_equal(cvae_last_error(), mine);
    assert_null(strstr(cvae_last_error(), "-7"));
}

static void test_version(void **state)
{
    (void)state;
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", CVAE_VERSION_MAJOR, CVAE_VERSION_MINOR,
             CVAE_VERSION_PATCH);
    assert_string_equal(cvae_version_string(), want);
    assert_int_equal(cvae_version_number(), CVAE_VERSION_NUMBER);
    assert_int_equal(cvae_version_number(), ((uint32_t)CVAE_VERSION_MAJOR << 16) |
                                                ((uint32_t)CVAE_VERSION_MINOR << 8) |
                                                (uint32_t)CVAE_VERSION_PATCH);

#ifdef CVAE_SOURCE_DIR
    /* The header macros agree with the CMake project version (which sets
     * the SONAME and the package version). */
    FILE *f = fopen(CVAE_SOURCE_DIR "/CMakeLists.txt", "r");
    assert_non_null(f);
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "project(");
        const char *v = p ? strstr(p, "VERSION ") : NULL;
        if (v) {
            int maj, min, pat;
            assert_int_equal(sscanf(v, "VERSION %d.%d.%d", &maj, &min, &pat), 3);
            assert_int_equal(maj, CVAE_VERSION_MAJOR);
            assert_int_equal(min, CVAE_VERSION_MINOR);
            assert_int_equal(pat, CVAE_VERSION_PATCH);
            found = 1;
        }
    }
    fclose(f);
    assert_true(found);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_last_error_basics),
        cmocka_unit_test(test_last_error_thread_local),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
