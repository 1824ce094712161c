/* The string list: contents and order survive growth, clear and free. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/strlist.h"

static void test_add_get(void **state)
{
    (void)state;
    cvae__strlist l;
    cvae__strlist_init(&l);
    char buf[64];
    for (int i = 0; i < 5000; i++) { /* grows both blocks several times */
        int n = snprintf(buf, sizeof buf, "dir/%d/file-%d.png", i % 7, i);
        assert_int_equal(cvae__strlist_add(&l, buf, (size_t)n), CVAE_OK);
    }
    assert_int_equal(l.count, 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(buf, sizeof buf, "dir/%d/file-%d.png", i % 7, i);
        assert_string_equal(cvae__strlist_get(&l, i), buf);
    }
    /* Not NUL-terminated input: only n bytes are taken. */
    assert_int_equal(cvae__strlist_add(&l, "abcdef", 3), CVAE_OK);
    assert_string_equal(cvae__strlist_get(&l, 5000), "abc");
    assert_int_equal(cvae__strlist_add(&l, "", 0), CVAE_OK);
    assert_string_equal(cvae__strlist_get(&l, 5001), "");
    cvae__strlist_clear(&l);
    assert_int_equal(l.count, 0);
    assert_int_equal(cvae__strlist_add(&l, "again", 5), CVAE_OK);
    assert_string_equal(cvae__strlist_get(&l, 0), "again");
    cvae__strlist_free(&l);
    assert_int_equal(l.count, 0);
    assert_null(l.chars);
    cvae__strlist_free(&l); /* twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_add_get)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
