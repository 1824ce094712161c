/* Convolution geometry: output sizes and padding against the textbook
 * formulas, and every invalid or overflowing size refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <string.h>

#include "core/error.h"
#include "layers/conv_geom.h"

static void clear_error(void) { (void)cvae__fail(CVAE_OK, "%s", ""); }

static void expect_invalid(cvae_status st)
{
    assert_int_equal(st, CVAE_E_INVALID_ARG);
    assert_true(cvae_last_error()[0] != '\0');
    clear_error();
}

static void test_geometry_same_and_explicit(void **state)
{
    (void)state;
    cvae__conv_geom g;
    /* MNIST branch 1: 3x3 same keeps 28x28, pad 1. */
    assert_int_equal(cvae__conv_geom_init(&g, 1, 28, 28, 16, 3, 3, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_int_equal(g.h_out, 28);
    assert_int_equal(g.w_out, 28);
    assert_int_equal(g.pad_top, 1);
    assert_int_equal(g.pad_left, 1);
    /* Even kernel: total pad 3 split 1 before, 2 after. */
    assert_int_equal(cvae__conv_geom_init(&g, 2, 7, 6, 3, 4, 2, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_int_equal(g.h_out, 7);
    assert_int_equal(g.w_out, 6);
    assert_int_equal(g.pad_top, 1);
    assert_int_equal(g.pad_left, 0);
    /* Stride 2 same on odd input: ceil(7/2) = 4, total pad (3*2+3-7)=2. */
    assert_int_equal(cvae__conv_geom_init(&g, 1, 7, 8, 1, 3, 3, 2, CVAE__PAD_SAME), CVAE_OK);
    assert_int_equal(g.h_out, 4);
    assert_int_equal(g.w_out, 4);
    assert_int_equal(g.pad_top, 1);
    assert_int_equal(g.pad_left, 0);
    /* Explicit: (9 + 2 - 5)/2 + 1 = 4. */
    assert_int_equal(cvae__conv_geom_init(&g, 1, 9, 9, 1, 5, 5, 2, 1), CVAE_OK);
    assert_int_equal(g.h_out, 4);
    assert_int_equal(g.pad_top, 1);
    assert_int_equal(cvae__conv_col_floats(&g), (size_t)25 * 16);
}

static void test_geometry_errors(void **state)
{
    (void)state;
    cvae__conv_geom g;
    clear_error();
    expect_invalid(cvae__conv_geom_init(NULL, 1, 4, 4, 1, 3, 3, 1, 0));
    expect_invalid(cvae__conv_geom_init(&g, 0, 4, 4, 1, 3, 3, 1, 0));
    expect_invalid(cvae__conv_geom_init(&g, 1, -4, 4, 1, 3, 3, 1, 0));
    expect_invalid(cvae__conv_geom_init(&g, 1, 4, 0, 1, 3, 3, 1, 0));
    expect_invalid(cvae__conv_geom_init(&g, 1, 4, 4, 0, 3, 3, 1, 0));
    expect_invalid(cvae__conv_geom_init(&g, 1, 4, 4, 1, 0, 3, 1, 0));
    expect_invalid(cvae__conv_geom_init(&g, 1, 4, 4, 1, 3, -1, 1, 0));
    expect_invalid(cvae__conv_geom_init(&g, 1, 4, 4, 1, 3, 3, 0, 0));
    expect_invalid(cvae__conv_geom_init(&g, 1, 4, 4, 1, 3, 3, 1, -2));
    /* Kernel larger than the padded input: 4 + 2*1 < 7; the message says
     * which. */
    assert_int_equal(cvae__conv_geom_init(&g, 1, 4, 4, 1, 7, 3, 1, 1), CVAE_E_INVALID_ARG);
    assert_non_null(strstr(cvae_last_error(), "kernel"));
    clear_error();
    expect_invalid(cvae__conv_geom_init(&g, 1, 8, 4, 1, 3, 5, 1, 0));
    /* Padded size overflows int. */
    expect_invalid(cvae__conv_geom_init(&g, 1, INT_MAX, 4, 1, 3, 3, 1, 1));
    /* c_in*kh*kw overflows int. */
    assert_int_equal(cvae__conv_geom_init(&g, 1 << 20, 64, 64, 1, 64, 64, 1, CVAE__PAD_SAME),
                     CVAE_E_INVALID_ARG);
    assert_non_null(strstr(cvae_last_error(), "overflow"));
    clear_error();
    /* c_in*h*w overflows int. */
    expect_invalid(cvae__conv_geom_init(&g, 4, 40000, 40000, 1, 1, 1, 40000, 0));
    /* im2col matrix overflows int: 9*c_in * h*w. */
    expect_invalid(cvae__conv_geom_init(&g, 64, 8192, 8192, 1, 3, 3, 1, CVAE__PAD_SAME));
    /* c_out*c_in*kh*kw overflows int. */
    expect_invalid(cvae__conv_geom_init(&g, 1 << 16, 1, 1, 1 << 16, 1, 1, 1, 0));
}

/* Conv semantics on numbers worked out by hand: PyTorch-style
 * cross-correlation (no kernel flip). x = 1..9 in 3x3, w = [[1,0],[0,-1]]
 * gives x[i][j] - x[i+1][j+1] = -4 everywhere (a flipped kernel gives +4). */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geometry_same_and_explicit),
        cmocka_unit_test(test_geometry_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
