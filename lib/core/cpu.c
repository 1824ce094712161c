/* The vector instruction sets the kernels may use (see cpu.h). */
#include "core/cpu.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CPU_X86 1
#else
#define CPU_X86 0
#endif

static cvae__isa hardware_isa = CVAE__ISA_BASE;
static cvae__isa allowed_isa = CVAE__ISA_BASE;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_init(void)
{
#if CPU_X86
    __builtin_cpu_init();
    /* Each level requires the ones below it, as the kernels assume: an
     * AVX-512 kernel also uses AVX2 and FMA instructions. */
    if (__builtin_cpu_supports("avx")) {
        hardware_isa = CVAE__ISA_AVX;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            hardware_isa = CVAE__ISA_AVX2;
            if (__builtin_cpu_supports("avx512f"))
                hardware_isa = CVAE__ISA_AVX512;
        }
    }
#endif
    allowed_isa = cvae__cpu_isa_allowed(getenv("CVAE_ISA"), hardware_isa);
}

cvae__isa cvae__cpu_isa(void)
{
    pthread_once(&cpu_once, cpu_init);
    return allowed_isa;
}

cvae__isa cvae__cpu_isa_hardware(void)
{
    pthread_once(&cpu_once, cpu_init);
    return hardware_isa;
}

static const char *const isa_names[] = {"base", "avx", "avx2", "avx512"};

const char *cvae__cpu_isa_name(cvae__isa isa)
{
    return (unsigned)isa < sizeof isa_names / sizeof isa_names[0] ? isa_names[isa] : "unknown";
}

cvae__isa cvae__cpu_isa_allowed(const char *name, cvae__isa hardware)
{
    if (!name)
        return hardware;
    for (unsigned i = 0; i < sizeof isa_names / sizeof isa_names[0]; i++)
        if (strcmp(name, isa_names[i]) == 0)
            return (cvae__isa)i < hardware ? (cvae__isa)i : hardware;
    return hardware;
}
