/* The instruction-set levels the kernels may use: what the CPU runs,
 * checked against the flags Linux reports for it, and how CVAE_ISA lowers
 * it (never raises it). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(cvae__cpu_isa_name(CVAE__ISA_BASE), "base");
    assert_string_equal(cvae__cpu_isa_name(CVAE__ISA_AVX), "avx");
    assert_string_equal(cvae__cpu_isa_name(CVAE__ISA_AVX2), "avx2");
    assert_string_equal(cvae__cpu_isa_name(CVAE__ISA_AVX512), "avx512");
    assert_string_equal(cvae__cpu_isa_name((cvae__isa)7), "unknown");
}

/* A name lowers the level to itself, never above the hardware's; anything
 * else leaves the hardware's. */
static void test_allowed(void **state)
{
    (void)state;
    const char *names[] = {"base", "avx", "avx2", "avx512"};
    for (int hw = CVAE__ISA_BASE; hw <= CVAE__ISA_AVX512; hw++) {
        for (int n = 0; n < 4; n++) {
            cvae__isa got = cvae__cpu_isa_allowed(names[n], (cvae__isa)hw);
            assert_int_equal(got, n < hw ? n : hw);
        }
        assert_int_equal(cvae__cpu_isa_allowed(NULL, (cvae__isa)hw), hw);
        assert_int_equal(cvae__cpu_isa_allowed("", (cvae__isa)hw), hw);
        assert_int_equal(cvae__cpu_isa_allowed("AVX2", (cvae__isa)hw), hw);
        assert_int_equal(cvae__cpu_isa_allowed("avx2 ", (cvae__isa)hw), hw);
        assert_int_equal(cvae__cpu_isa_allowed("sse9", (cvae__isa)hw), hw);
    }
}

/* The level this process runs: the hardware's, lowered by CVAE_ISA (ctest
 * runs this test with and without it). */
static void test_this_process(void **state)
{
    (void)state;
    cvae__isa hw = cvae__cpu_isa_hardware();
    assert_int_equal(cvae__cpu_isa(), cvae__cpu_isa_allowed(getenv("CVAE_ISA"), hw));
    assert_true(cvae__cpu_isa() <= hw);
    print_message("cpu: hardware %s, kernels %s\n", cvae__cpu_isa_name(hw),
                  cvae__cpu_isa_name(cvae__cpu_isa()));
}

static int has_flag(const char *flags, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = flags; (p = strstr(p, name)) != NULL; p += n)
        if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
            return 1;
    return 0;
}

/* The CPU probe against Linux's own list of the CPU's flags. The probe may
 * report less (valgrind hides AVX-512 from the programs it runs), never
 * more. */
static void test_hardware_against_cpuinfo(void **state)
{
    (void)state;
#if defined(__linux__) && defined(__x86_64__)
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) {
        print_message("cpu: no /proc/cpuinfo, not checked\n");
        return;
    }
    static char line[8192];
    int found = 0;
    cvae__isa listed = CVAE__ISA_BASE;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        found = 1;
        if (has_flag(line, "avx")) {
            listed = CVAE__ISA_AVX;
            if (has_flag(line, "avx2") && has_flag(line, "fma")) {
                listed = CVAE__ISA_AVX2;
                if (has_flag(line, "avx512f"))
                    listed = CVAE__ISA_AVX512;
            }
        }
        break;
    }
    fclose(f);
    if (!found) {
        print_message("cpu: no flags line in /proc/cpuinfo, not checked\n");
        return;
    }
    assert_true(cvae__cpu_isa_hardware() <= listed);
    /* The flag matcher itself: whole words only. */
    assert_true(has_flag("fpu avx avx2", "avx"));
    assert_false(has_flag("fpu avx2 avx512f", "avx"));
    assert_false(has_flag("fpu avx512fx", "avx512f"));
#else
    print_message("cpu: not Linux on x86-64, not checked\n");
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_allowed),
        cmocka_unit_test(test_this_process),
        cmocka_unit_test(test_hardware_against_cpuinfo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
