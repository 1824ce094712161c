/* Tests for lib/core/json.c: the token reader under the safetensors header and the
 * config metadata. Expected values are written out by hand (the JSON text
 * and the bytes it must decode to), never produced by the reader itself. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/json.h"

typedef struct reader {
    cvae__json j;
    char pool[256];
} reader;

static void open_text(reader *r, const char *text)
{
    size_t len = strlen(text);
    assert_true(CVAE__JSON_POOL_FOR(len) <= sizeof r->pool);
    cvae__json_init(&r->j, text, len, r->pool, CVAE__JSON_POOL_FOR(len), "test doc");
}

static void test_strings_decode(void **state)
{
    (void)state;
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"\"\"", ""},
        {"  \"plain\"", "plain"},
        {"\"q\\\"b\\\\s\\/\"", "q\"b\\s/"},
        {"\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t"},
        {"\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac"},
        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80"}, /* surrogate pair -> U+1F600 */
        {"\"caf\xc3\xa9 \xe2\x82\xac\"", "caf\xc3\xa9 \xe2\x82\xac"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reader r;
        open_text(&r, cases[i].json);
        const char *s = NULL;
        assert_int_equal(cvae__json_string(&r.j, &s), CVAE_OK);
        assert_string_equal(s, cases[i].want);
        assert_int_equal(cvae__json_finish(&r.j), CVAE_OK);
    }
}

static void test_strings_reject(void **state)
{
    (void)state;
    static const struct {
        const char *json, *needle;
    } cases[] = {
        {"", "unexpected end"},
        {"abc", "expected a string"},
        {"\"abc", "unterminated"},
        {"\"a\\", "unterminated"},
        {"\"a\\x\"", "invalid escape"},
        {"\"\\u12\"", "invalid \\u escape"},
        {"\"\\ud800\"", "surrogate"},
        {"\"\\udc00\"", "surrogate"},
        {"\"\\ud800\\u0041\"", "surrogate"},
        {"\"\\u0000\"", "NUL"},
        {"\"a\nb\"", "control character"},
        {"\"\xff\"", "UTF-8"},
        {"\"\xc0\xaf\"", "UTF-8"},         /* overlong '/' */
        {"\"\xed\xa0\x80\"", "UTF-8"},     /* encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", "UTF-8"}, /* above U+10FFFF */
        {"\"\xe2\x82", "UTF-8"},           /* cut sequence */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reader r;
        open_text(&r, cases[i].json);
        const char *s = NULL;
        cvae_status st = cvae__json_string(&r.j, &s);
        if (st != CVAE_E_FORMAT || !strstr(cvae_last_error(), cases[i].needle))
            fail_msg("case %zu: status %d, message \"%s\", wanted \"%s\"", i, (int)st,
                     cvae_last_error(), cases[i].needle);
        assert_non_null(strstr(cvae_last_error(), "test doc: "));
    }
}

static void test_u64(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        uint64_t want;
    } ok[] = {{"0", 0}, {" 7", 7}, {"18446744073709551615", UINT64_MAX}, {"42]", 42}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        reader r;
        open_text(&r, ok[i].json);
        uint64_t v = 1;
        assert_int_equal(cvae__json_u64(&r.j, &v), CVAE_OK);
        assert_true(v == ok[i].want);
    }
    static const char *const bad[] = {"", "-1", "01", "1.0", "1e3", "\"1\"",
                                      "18446744073709551616"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reader r;
        open_text(&r, bad[i]);
        uint64_t v;
        assert_int_equal(cvae__json_u64(&r.j, &v), CVAE_E_FORMAT);
    }
}

static void test_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *json, *text;
    } ok[] = {{"0", "0"},       {"-0", "-0"},         {"12", "12"},
              {"-3.25", "-3.25"}, {"1e-08", "1e-08"}, {"6.5E+3,", "6.5E+3"},
              {" 2}", "2"}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        reader r;
        open_text(&r, ok[i].json);
        const char *t = NULL;
        assert_int_equal(cvae__json_number(&r.j, &t), CVAE_OK);
        assert_string_equal(t, ok[i].text);
    }
    static const char *const bad[] = {"", "-", "+1", ".5", "1.", "1e", "1e+", "nan", "\"1\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reader r;
        open_text(&r, bad[i]);
        const char *t;
        if (cvae__json_number(&r.j, &t) != CVAE_E_FORMAT)
            fail_msg("number \"%s\" was accepted", bad[i]);
    }
    /* A leading zero ends the number: what follows is left for the caller. */
    reader r;
    open_text(&r, "01");
    const char *t;
    assert_int_equal(cvae__json_number(&r.j, &t), CVAE_OK);
    assert_string_equal(t, "0");
    assert_int_equal(cvae__json_finish(&r.j), CVAE_E_FORMAT);
}

/* Walk {"a": [1, 2], "b": "x"} by hand, the way the callers do. */
static void test_walk_object(void **state)
{
    (void)state;
    reader r;
    open_text(&r, " { \"a\" : [1 , 2] , \"b\":\"x\" }\n");
    const char *key, *s;
    uint64_t v[2];
    int more;
    assert_int_equal(cvae__json_expect(&r.j, '{', "want {"), CVAE_OK);
    assert_int_equal(cvae__json_string(&r.j, &key), CVAE_OK);
    assert_string_equal(key, "a");
    assert_int_equal(cvae__json_expect(&r.j, ':', "want :"), CVAE_OK);
    assert_int_equal(cvae__json_expect(&r.j, '[', "want ["), CVAE_OK);
    assert_int_equal(cvae__json_u64(&r.j, &v[0]), CVAE_OK);
    assert_int_equal(cvae__json_next(&r.j, ']', &more), CVAE_OK);
    assert_int_equal(more, 1);
    assert_int_equal(cvae__json_u64(&r.j, &v[1]), CVAE_OK);
    assert_int_equal(cvae__json_next(&r.j, ']', &more), CVAE_OK);
    assert_int_equal(more, 0);
    assert_true(v[0] == 1 && v[1] == 2);
    assert_int_equal(cvae__json_next(&r.j, '}', &more), CVAE_OK);
    assert_int_equal(more, 1);
    size_t mark = cvae__json_pool_mark(&r.j);
    assert_int_equal(cvae__json_string(&r.j, &key), CVAE_OK);
    assert_int_equal(cvae__json_expect(&r.j, ':', "want :"), CVAE_OK);
    assert_true(cvae__json_at(&r.j, '"'));
    assert_int_equal(cvae__json_string(&r.j, &s), CVAE_OK);
    assert_string_equal(key, "b");
    assert_string_equal(s, "x");
    cvae__json_pool_reset(&r.j, mark);
    assert_true(cvae__json_pool_mark(&r.j) == mark);
    assert_int_equal(cvae__json_next(&r.j, '}', &more), CVAE_OK);
    assert_int_equal(more, 0);
    assert_int_equal(cvae__json_finish(&r.j), CVAE_OK);

    /* Separator errors name what was expected and where. */
    open_text(&r, "[1 2]");
    assert_int_equal(cvae__json_expect(&r.j, '[', "want ["), CVAE_OK);
    assert_int_equal(cvae__json_u64(&r.j, &v[0]), CVAE_OK);
    assert_int_equal(cvae__json_next(&r.j, ']', &more), CVAE_E_FORMAT);
    assert_non_null(strstr(cvae_last_error(), "expected ',' or ']' at byte 3"));
    open_text(&r, "{} x");
    assert_int_equal(cvae__json_expect(&r.j, '{', "want {"), CVAE_OK);
    assert_int_equal(cvae__json_expect(&r.j, '}', "want }"), CVAE_OK);
    assert_int_equal(cvae__json_finish(&r.j), CVAE_E_FORMAT);
    assert_non_null(strstr(cvae_last_error(), "trailing"));
}

/* The pool bound of json.h: a text made only of strings never needs more
 * than CVAE__JSON_POOL_FOR(len) bytes, whatever the escapes. */
static void test_pool_bound(void **state)
{
    (void)state;
    static const char *const worst[] = {"\"\"", "\"\\n\"", "\"\\u00e9\"", "\"\\ud83d\\ude00\"",
                                        "\"\xf0\x9f\x98\x80\""};
    for (size_t w = 0; w < sizeof worst / sizeof worst[0]; w++) {
        char text[200] = "";
        for (int k = 0; strlen(text) + strlen(worst[w]) < 150; k++)
            strcat(text, worst[w]);
        reader r;
        open_text(&r, text);
        while (r.j.p < r.j.end) {
            const char *s;
            assert_int_equal(cvae__json_string(&r.j, &s), CVAE_OK);
        }
        assert_true(r.j.pool_used <= r.j.pool_cap);
    }
}

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(cvae__utf8_valid(""));
    assert_true(cvae__utf8_valid("ascii"));
    assert_true(cvae__utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    assert_false(cvae__utf8_valid("\xc3"));
    assert_false(cvae__utf8_valid("\xc0\xaf"));
    assert_false(cvae__utf8_valid("\xed\xa0\x80"));
    assert_false(cvae__utf8_valid("\xf4\x90\x80\x80"));
    assert_false(cvae__utf8_valid("a\x80"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings_decode), cmocka_unit_test(test_strings_reject),
        cmocka_unit_test(test_u64),            cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_walk_object),    cmocka_unit_test(test_pool_bound),
        cmocka_unit_test(test_utf8_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
