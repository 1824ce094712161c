/* Which x86 vector instruction sets the library's own kernels may use:
 * the CPU's, lowered by the environment variable CVAE_ISA when it names a
 * narrower set. Every kernel that has a wider and a narrower version asks
 * here, so one setting moves all of them together: that is how the AVX2
 * code is tested and timed on a CPU that also has AVX-512. */
#ifndef CVAE_CPU_H
#define CVAE_CPU_H

typedef enum cvae__isa {
    CVAE__ISA_BASE = 0,  /* plain C (and the SSE2 every x86-64 has) */
    CVAE__ISA_AVX = 1,   /* AVX */
    CVAE__ISA_AVX2 = 2,  /* AVX, AVX2 and FMA */
    CVAE__ISA_AVX512 = 3 /* all of the above and AVX-512F */
} cvae__isa;

/* The widest set the kernels may use; read once. Not x86-64: BASE. */
cvae__isa cvae__cpu_isa(void);

/* What the CPU itself runs, ignoring CVAE_ISA. */
cvae__isa cvae__cpu_isa_hardware(void);

/* The set a CVAE_ISA value allows on a CPU that runs `hardware`: the
 * named set if the CPU runs it, else `hardware`. NULL, empty and unknown
 * names allow `hardware`. Names: "avx512", "avx2", "avx", "base". */
cvae__isa cvae__cpu_isa_allowed(const char *name, cvae__isa hardware);

/* "avx512", "avx2", "avx" or "base". */
const char *cvae__cpu_isa_name(cvae__isa isa);

#endif
