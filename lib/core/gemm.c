/* SGEMM over BLIS 0.9 with micro-kernels of our own.
 *
 * Debian 12's BLIS 0.9.0 only knows the CPUs that predate it: on anything
 * newer (Zen 5 here) bli_arch_query_id() answers "generic" and every product
 * runs the portable C reference micro-kernel (~25 GFLOP/s a core). Its
 * optimised kernels are not exported and BLIS_ARCH_TYPE cannot pick them.
 * What is exported is the framework (blocking, packing, threading) and the
 * context it reads its kernels and block sizes from, so we copy BLIS's
 * context once, register a micro-kernel and a packing kernel of our own in
 * the copy, and pass it to the expert API bli_sgemm_ex(). The CPU is probed
 * at run time; the kernels are compiled with per-function target
 * attributes, so the library needs no -mavx flags and runs on any x86-64
 * (or any other architecture, where BLIS's own context is all there is). */

/* blis.h needs POSIX (pthread_barrier_t) and sets it only if no system
 * header came first. */
#define _POSIX_C_SOURCE 200809L

#include "core/gemm.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <blis.h>

#include "core/error.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CVAE__GEMM_X86 1
#include <immintrin.h>
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define CVAE__GEMM_X86 0
#endif

/* The library's thread count (cvae_set_num_threads). BLIS itself always runs
 * single-threaded (see sgemm_run): products worth splitting are split here,
 * into independent single-threaded BLIS calls on the pool below. BLIS's own
 * threads meet at spinning barriers many times per product; on a machine
 * with more runnable threads than cores (this one shares two cores with
 * other jobs) a descheduled thread stalls its partner for a whole time
 * slice, and a training step of a few hundred small products ran ~15x
 * slower with 2 threads than with 1. Atomic: read by every GEMM, written
 * by cvae_set_num_threads from any thread. */
static _Atomic int gemm_threads = 1;

/* ---- thread pool --------------------------------------------------------
 * cvae__parallel hands the parts of a job to persistent workers (created on
 * first use, never more than the thread count - 1) and works on them itself
 * too, claiming parts until none is left, so a worker that is slow to wake
 * costs nothing but its own part. Waiting is blocking (condition variables),
 * never spinning. One job at a time: a second caller, or a nested call,
 * runs its parts itself, in order. */
#define MAX_WORKERS 63

static struct pool {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    pthread_t th[MAX_WORKERS];
    int nworkers;
    pid_t pid; /* a forked child has no workers: start again */
    void (*fn)(void *ctx, int part, int parts);
    void *ctx;
    int parts, next, pending, quit;
    unsigned long job;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
          .go = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};
static pthread_mutex_t pool_busy = PTHREAD_MUTEX_INITIALIZER;
/* Set while a thread runs a part: GEMMs and nested jobs inside run on it
 * alone. */
static _Thread_local int in_part;

/* Claims and runs parts of the current job; called and returns with mu
 * held. */
static void run_parts(void)
{
    while (pool.next < pool.parts) {
        const int p = pool.next++;
        pthread_mutex_unlock(&pool.mu);
        in_part = 1;
        pool.fn(pool.ctx, p, pool.parts);
        in_part = 0;
        pthread_mutex_lock(&pool.mu);
        if (--pool.pending == 0)
            pthread_cond_signal(&pool.done);
    }
}

static void *worker(void *arg)
{
    (void)arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (!pool.quit && (pool.job == seen || pool.next >= pool.parts))
            pthread_cond_wait(&pool.go, &pool.mu);
        if (pool.quit)
            break;
        seen = pool.job;
        run_parts();
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

/* Up to `want` workers; fewer if threads cannot be created (the caller then
 * does more of the work). Called with pool_busy held. */
static void ensure_workers(int want)
{
    if (want > MAX_WORKERS)
        want = MAX_WORKERS;
    if (pool.pid != getpid()) {
        pool.nworkers = 0; /* after fork(): the parent's workers are not ours */
        pool.pid = getpid();
    }
    while (pool.nworkers < want) {
        if (pthread_create(&pool.th[pool.nworkers], NULL, worker, NULL) != 0)
            break;
        pool.nworkers++;
    }
}

/* Joins the workers at exit, so leak checkers see no live threads. */
#if defined(__GNUC__)
__attribute__((destructor))
#endif
static void pool_shutdown(void)
{
    if (pthread_mutex_trylock(&pool_busy) != 0)
        return; /* exiting while a job runs: leave it alone */
    if (pool.pid == getpid() && pool.nworkers > 0) {
        pthread_mutex_lock(&pool.mu);
        pool.quit = 1;
        pthread_cond_broadcast(&pool.go);
        pthread_mutex_unlock(&pool.mu);
        for (int i = 0; i < pool.nworkers; i++)
            pthread_join(pool.th[i], NULL);
        pool.nworkers = 0;
        pool.quit = 0;
    }
    pthread_mutex_unlock(&pool_busy);
}

void cvae__parallel(int parts, void (*fn)(void *ctx, int part, int parts), void *ctx)
{
    if (parts < 1)
        return;
    const int threads = gemm_threads;
    if (parts == 1 || threads == 1 || in_part || pthread_mutex_trylock(&pool_busy) != 0) {
        const int outer = in_part;
        in_part = 1;
        for (int p = 0; p < parts; p++)
            fn(ctx, p, parts);
        in_part = outer;
        return;
    }
    ensure_workers((parts < threads ? parts : threads) - 1);
    pthread_mutex_lock(&pool.mu);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.parts = parts;
    pool.next = 0;
    pool.pending = parts;
    pool.job++;
    pthread_cond_broadcast(&pool.go);
    run_parts();
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.mu);
    pool.parts = 0;
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool_busy);
}

int cvae__parallel_threads(void) { return in_part ? 1 : gemm_threads; }

#if CVAE__GEMM_X86

/* Register blocking. AVX-512: 16 rows of C in 16 zmm accumulators, one
 * load of B and 16 broadcast-FMAs per k. Both panel widths stay below 32
 * because BLIS 0.9 looks packing kernels up by panel width in a table of 32
 * (bli_cntx_get_packm_ker_dt): a 32-wide panel (a 8x32 kernel measured a
 * little faster on its own) silently falls back to a generic strided copy,
 * which costs more than it gains on the transposed operands of the conv and
 * dense layers. MC x KC of A (192 KiB) sits in the 1 MiB L2, a KC x 16
 * micro-panel of B (24 KiB) in the 48 KiB L1. AVX2: BLIS's own Haswell
 * shape and block sizes. */
enum { Z_MR = 16, Z_NR = 16, Z_MC = 128, Z_KC = 384, Z_NC = 4080 };
enum { Y_MR = 6, Y_NR = 16, Y_MC = 168, Y_KC = 256, Y_NC = 4080 };

/* Writes the m x n corner of an alpha-scaled tile into C: edge tiles, and
 * C with a column stride. */
static void store_tile(dim_t m, dim_t n, const float *t, int ldt, float beta, float *c,
                       inc_t rs_c, inc_t cs_c)
{
    for (dim_t i = 0; i < m; i++)
        for (dim_t j = 0; j < n; j++) {
            float *cij = c + i * rs_c + j * cs_c;
            /* beta == 0 must not read C: callers pass uninitialised
             * buffers (possibly NaN) to be overwritten. */
            *cij = beta == 0.0f ? t[i * ldt + j] : t[i * ldt + j] + beta * *cij;
        }
}

/* BLIS 0.9 gemm micro-kernel contract (GEMM_UKR_PROT2 in blis.h): a is a
 * packed MR x k micro-panel (column p at a + p*MR), b a packed k x NR one
 * (row p at b + p*NR), both zero-padded to full size; C is m x n with
 * m <= MR, n <= NR, and the kernel handles those edges itself. */
TARGET_AVX512 static void ukr_avx512_16x16(dim_t m, dim_t n, dim_t k, float *restrict alpha,
                                           float *restrict a, float *restrict b,
                                           float *restrict beta, float *restrict c, inc_t rs_c,
                                           inc_t cs_c, auxinfo_t *restrict data,
                                           cntx_t *restrict cntx)
{
    (void)data;
    (void)cntx;
    __m512 acc[Z_MR];
#pragma GCC unroll 16
    for (int i = 0; i < Z_MR; i++)
        acc[i] = _mm512_setzero_ps();
    for (dim_t p = 0; p < k; p++) {
        const __m512 bp = _mm512_loadu_ps(b);
#pragma GCC unroll 16
        for (int i = 0; i < Z_MR; i++)
            acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), bp, acc[i]);
        a += Z_MR;
        b += Z_NR;
    }
    const __m512 va = _mm512_set1_ps(*alpha);
    if (m == Z_MR && n == Z_NR && cs_c == 1) {
        if (*beta == 0.0f) {
#pragma GCC unroll 16
            for (int i = 0; i < Z_MR; i++)
                _mm512_storeu_ps(c + i * rs_c, _mm512_mul_ps(va, acc[i]));
        } else {
            const __m512 vb = _mm512_set1_ps(*beta);
#pragma GCC unroll 16
            for (int i = 0; i < Z_MR; i++) {
                float *ci = c + i * rs_c;
                _mm512_storeu_ps(ci, _mm512_fmadd_ps(va, acc[i], _mm512_mul_ps(vb, _mm512_loadu_ps(ci))));
            }
        }
        return;
    }
    float t[Z_MR * Z_NR];
#pragma GCC unroll 16
    for (int i = 0; i < Z_MR; i++)
        _mm512_storeu_ps(t + i * Z_NR, _mm512_mul_ps(va, acc[i]));
    store_tile(m, n, t, Z_NR, *beta, c, rs_c, cs_c);
}

TARGET_AVX2 static void ukr_avx2_6x16(dim_t m, dim_t n, dim_t k, float *restrict alpha,
                                      float *restrict a, float *restrict b, float *restrict beta,
                                      float *restrict c, inc_t rs_c, inc_t cs_c,
                                      auxinfo_t *restrict data, cntx_t *restrict cntx)
{
    (void)data;
    (void)cntx;
    __m256 acc[Y_MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < Y_MR; i++)
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (dim_t p = 0; p < k; p++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < Y_MR; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += Y_MR;
        b += Y_NR;
    }
    const __m256 va = _mm256_set1_ps(*alpha);
    if (m == Y_MR && n == Y_NR && cs_c == 1) {
        if (*beta == 0.0f) {
#pragma GCC unroll 6
            for (int i = 0; i < Y_MR; i++) {
                _mm256_storeu_ps(c + i * rs_c, _mm256_mul_ps(va, acc[i][0]));
                _mm256_storeu_ps(c + i * rs_c + 8, _mm256_mul_ps(va, acc[i][1]));
            }
        } else {
            const __m256 vb = _mm256_set1_ps(*beta);
#pragma GCC unroll 6
            for (int i = 0; i < Y_MR; i++) {
                float *ci = c + i * rs_c;
                _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, acc[i][0], _mm256_mul_ps(vb, _mm256_loadu_ps(ci))));
                _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(va, acc[i][1],
                                                         _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8))));
            }
        }
        return;
    }
    float t[Y_MR * Y_NR];
#pragma GCC unroll 6
    for (int i = 0; i < Y_MR; i++) {
        _mm256_storeu_ps(t + i * Y_NR, _mm256_mul_ps(va, acc[i][0]));
        _mm256_storeu_ps(t + i * Y_NR + 8, _mm256_mul_ps(va, acc[i][1]));
    }
    store_tile(m, n, t, Y_NR, *beta, c, rs_c, cs_c);
}

TARGET_AVX2 static inline void transpose8x8(__m256 r[8])
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* BLIS 0.9 packing kernel for 16-wide micro-panels (PACKM_KER_PROT):
 * p[i + j*ldp] = kappa * a[i*inca + j*lda] for i < cdim, j < n, zero up to
 * 16 x n_max. BLIS's reference one gathers element by element, which is
 * slow exactly where our layers need it: a row-major A or a transposed B
 * (lda == 1), packed here as 8x8 register transposes. Real data, so conja
 * is a no-op. */
TARGET_AVX2 static void packm_16xk(conj_t conja, pack_t schema, dim_t cdim, dim_t n,
                                   dim_t n_max, float *restrict kappa, float *restrict a,
                                   inc_t inca, inc_t lda, float *restrict p, inc_t ldp,
                                   cntx_t *restrict cntx)
{
    (void)conja;
    (void)schema;
    (void)cntx;
    const float kap = *kappa;
    const __m256 vk = _mm256_set1_ps(kap);
    dim_t j = 0;
    if (cdim == 16 && inca == 1) {
        for (; j < n; j++) {
            const float *aj = a + j * lda;
            float *pj = p + j * ldp;
            _mm256_storeu_ps(pj, _mm256_mul_ps(vk, _mm256_loadu_ps(aj)));
            _mm256_storeu_ps(pj + 8, _mm256_mul_ps(vk, _mm256_loadu_ps(aj + 8)));
        }
    } else if (lda == 1) {
        /* Also for edge panels (cdim < 16, e.g. the 9 taps of a 3x3
         * single-channel conv, whose weight gradient packs a 9-wide B): the
         * missing rows transpose in as zeros, which is the padding the
         * panel needs anyway. */
        const __m256 zero = _mm256_setzero_ps();
        for (; j + 8 <= n; j += 8)
            for (dim_t i = 0; i < 16; i += 8) {
                __m256 r[8];
                for (int q = 0; q < 8; q++)
                    r[q] = i + q < cdim ? _mm256_loadu_ps(a + (i + q) * inca + j) : zero;
                transpose8x8(r);
                for (int q = 0; q < 8; q++)
                    _mm256_storeu_ps(p + (j + q) * ldp + i, _mm256_mul_ps(vk, r[q]));
            }
    } else if (inca == 1) {
        for (; j < n; j++) {
            const float *aj = a + j * lda;
            float *pj = p + j * ldp;
            dim_t i = 0;
            for (; i < cdim; i++)
                pj[i] = kap * aj[i];
            for (; i < 16; i++)
                pj[i] = 0.0f;
        }
    }
    for (; j < n; j++) {
        for (dim_t i = 0; i < cdim; i++)
            p[j * ldp + i] = kap * a[i * inca + j * lda];
        for (dim_t i = cdim; i < 16; i++)
            p[j * ldp + i] = 0.0f;
    }
    for (; j < n_max; j++)
        for (dim_t i = 0; i < 16; i++)
            p[j * ldp + i] = 0.0f;
}

/* BLIS 0.9 keeps kernel addresses as void * (void_fp). ISO C has no
 * conversion from a function pointer to void *, but on every platform BLIS
 * runs on the two have the same size and representation. */
_Static_assert(sizeof(sgemm_ukr_ft) == sizeof(void_fp), "function pointers must fit void_fp");

static void_fp ukr_addr(sgemm_ukr_ft f)
{
    void_fp p;
    memcpy(&p, &f, sizeof p);
    return p;
}

static void_fp packm_addr(spackm_cxk_ker_ft f)
{
    void_fp p;
    memcpy(&p, &f, sizeof p);
    return p;
}

static void set_float_blksz(cntx_t *ctx, bszid_t id, dim_t v)
{
    /* Default and maximum equal: no extended last block, and for MR/NR the
     * packed panel stride (PACKMR/PACKNR) equals the register block. */
    bli_blksz_set_def(v, BLIS_FLOAT, bli_cntx_get_blksz(id, ctx));
    bli_blksz_set_max(v, BLIS_FLOAT, bli_cntx_get_blksz(id, ctx));
}

/* A private copy of BLIS's context with our single-precision kernel; the
 * other data types and level-1/2 kernels stay BLIS's. */
static void make_context(cntx_t *ctx, const cntx_t *blis, sgemm_ukr_ft ukr, dim_t mr, dim_t nr,
                         dim_t mc, dim_t kc, dim_t nc)
{
    *ctx = *blis;
    set_float_blksz(ctx, BLIS_MR, mr);
    set_float_blksz(ctx, BLIS_NR, nr);
    set_float_blksz(ctx, BLIS_MC, mc);
    set_float_blksz(ctx, BLIS_KC, kc);
    /* ...except KC: a remainder of up to kc/4 joins the last full block
     * instead of making a short one of its own (k = 800, the 32-filter 5x5
     * conv's inner dimension, runs as 384 + 416 rather than 384 + 384 + 32,
     * whose last pass would reload and store C for 32 multiply-adds). */
    bli_blksz_set_max(kc + kc / 4, BLIS_FLOAT, bli_cntx_get_blksz(BLIS_KC, ctx));
    set_float_blksz(ctx, BLIS_NC, nc);
    /* TRUE: the kernel prefers row-stored C, which is what we always pass,
     * so BLIS never transposes the problem around it. This also sets the
     * "virtual" kernel slot the macro-kernel actually calls. */
    bli_cntx_set_l3_nat_ukrs(1, BLIS_GEMM_UKR, BLIS_FLOAT, ukr_addr(ukr), TRUE, ctx);
    /* Panels of other widths (the AVX2 kernel's 6-row A panels) keep BLIS's
     * packing kernel. */
    bli_cntx_set_packm_ker_dt(packm_addr(packm_16xk), BLIS_FLOAT, BLIS_PACKM_16XK_KER, ctx);
    /* No "sup" (small, unpacked) path. The generic context has none (its
     * thresholds are 0; raising them divides by its zero sup block sizes,
     * SIGFPE), and the Haswell sup kernels BLIS picks on CPUs it knows (and
     * under valgrind, which hides AVX-512) read past the ends of the
     * operands. The rntm passed to bli_sgemm_ex disables it as well. */
    blksz_t zero;
    bli_blksz_init_easy(&zero, 0, 0, 0, 0);
    bli_cntx_set_l3_sup_thresh(3, BLIS_MT, &zero, BLIS_NT, &zero, BLIS_KT, &zero, ctx);
}

#endif /* CVAE__GEMM_X86 */

/* Written once, under pthread_once, then only read. */
static struct {
#if CVAE__GEMM_X86
    cntx_t ctx_avx2, ctx_avx512;
#endif
    int have_avx2, have_avx512;
    cvae__gemm_kernel dflt;
} gemm;
static pthread_once_t gemm_once = PTHREAD_ONCE_INIT;

/* Before and after initialisation: gemm_init() itself asks. */
static int runs_here(cvae__gemm_kernel kernel)
{
    switch (kernel) {
    case CVAE__GEMM_KERNEL_AUTO:
    case CVAE__GEMM_KERNEL_BLIS:
        return 1;
    case CVAE__GEMM_KERNEL_AVX2:
        return gemm.have_avx2;
    case CVAE__GEMM_KERNEL_AVX512:
        return gemm.have_avx512;
    }
    return 0;
}

static void gemm_init(void)
{
    /* Initialises BLIS and returns the context it chose for this CPU. */
    cntx_t *blis = bli_gks_query_cntx();
#if CVAE__GEMM_X86
    __builtin_cpu_init();
    gemm.have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    gemm.have_avx512 = gemm.have_avx2 && __builtin_cpu_supports("avx512f");
    if (gemm.have_avx2)
        make_context(&gemm.ctx_avx2, blis, ukr_avx2_6x16, Y_MR, Y_NR, Y_MC, Y_KC, Y_NC);
    if (gemm.have_avx512)
        make_context(&gemm.ctx_avx512, blis, ukr_avx512_16x16, Z_MR, Z_NR, Z_MC, Z_KC, Z_NC);
#else
    (void)blis;
#endif
    gemm.dflt = gemm.have_avx512 ? CVAE__GEMM_KERNEL_AVX512
                : gemm.have_avx2 ? CVAE__GEMM_KERNEL_AVX2
                                 : CVAE__GEMM_KERNEL_BLIS;
    /* For comparisons: run BLIS's own kernel, or a narrower one of ours.
     * Unknown or unavailable names keep the default. */
    const char *env = getenv("CVAE_GEMM_KERNEL");
    if (env) {
        static const cvae__gemm_kernel named[] = {CVAE__GEMM_KERNEL_BLIS, CVAE__GEMM_KERNEL_AVX2,
                                                  CVAE__GEMM_KERNEL_AVX512};
        for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
            if (strcmp(env, cvae__gemm_kernel_name(named[i])) == 0 && runs_here(named[i]))
                gemm.dflt = named[i];
    }
}

static void gemm_init_once(void) { pthread_once(&gemm_once, gemm_init); }

int cvae__gemm_kernel_available(cvae__gemm_kernel kernel)
{
    gemm_init_once();
    return runs_here(kernel);
}

cvae__gemm_kernel cvae__gemm_default_kernel(void)
{
    gemm_init_once();
    return gemm.dflt;
}

const char *cvae__gemm_kernel_name(cvae__gemm_kernel kernel)
{
    switch (kernel) {
    case CVAE__GEMM_KERNEL_AUTO:
        return "auto";
    case CVAE__GEMM_KERNEL_BLIS:
        return "blis";
    case CVAE__GEMM_KERNEL_AVX2:
        return "avx2";
    case CVAE__GEMM_KERNEL_AVX512:
        return "avx512";
    }
    return "unknown";
}

/* NULL selects BLIS's own context. */
static cntx_t *kernel_context(cvae__gemm_kernel kernel)
{
    if (kernel == CVAE__GEMM_KERNEL_AUTO)
        kernel = gemm.dflt;
#if CVAE__GEMM_X86
    if (kernel == CVAE__GEMM_KERNEL_AVX512 && gemm.have_avx512)
        return &gemm.ctx_avx512;
    if (kernel == CVAE__GEMM_KERNEL_AVX2 && gemm.have_avx2)
        return &gemm.ctx_avx2;
#endif
    return NULL;
}

/* Vector-shaped products (m == 1 or n == 1) in plain C. BLIS 0.9.0 handles
 * them on a path that reads a few floats past the end of A or B (valgrind:
 * "Invalid read" for e.g. m = 1, k = 9, n >= 16, trans_b; results are
 * right, but an operand ending at a page boundary would fault). They are
 * memory-bound dot products, so BLIS has nothing to gain on them. */
static void sgemm_vector_naive(int m, int n, int k, float alpha, const float *a, inc_t rsa,
                               inc_t csa, const float *b, inc_t rsb, inc_t csb, float beta,
                               float *c, int ldc)
{
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            const float *ai = a + (ptrdiff_t)i * rsa;
            const float *bj = b + (ptrdiff_t)j * csb;
            double acc = 0.0;
            for (int p = 0; p < k; p++)
                acc += (double)ai[(ptrdiff_t)p * csa] * (double)bj[(ptrdiff_t)p * rsb];
            float *cij = c + (ptrdiff_t)i * ldc + j;
            /* beta == 0 overwrites without reading C, as BLIS does, so
             * callers may pass uninitialised output buffers. */
            *cij = (float)(alpha * acc) + (beta == 0.0f ? 0.0f : beta * *cij);
        }
    }
}

/* The two memory-bound forms a vector-shaped product takes when one operand
 * is contiguous along k (dots) or along the output (axpys). They carry the
 * batch-1 inference path (the encoder is a 4704 x 512 matrix times a
 * vector), so they are vectorised: float partial sums in independent lanes
 * (the compiler turns the fixed-width lane loops into SIMD), compiled once
 * per instruction set below and picked at run time. Float lanes instead of
 * the naive loop's double sum: the error stays within k * FLT_EPSILON of
 * the magnitude, as for BLIS's own products. */
#define VEC_LANES 32
#define VEC_COLS 64

/* out[r * os] = alpha * <rows + r * rs, x> + beta * out[r * os], r < nr;
 * rows and x contiguous along k. */
static inline __attribute__((always_inline)) void vec_dots_body(int nr, int k, float alpha,
                                                                const float *rows, ptrdiff_t rs,
                                                                const float *x, float beta,
                                                                float *out, ptrdiff_t os)
{
    for (int r = 0; r < nr; r++) {
        const float *row = rows + (ptrdiff_t)r * rs;
        float acc[VEC_LANES] = {0};
        int p = 0;
        for (; p + VEC_LANES <= k; p += VEC_LANES)
            for (int q = 0; q < VEC_LANES; q++)
                acc[q] += row[p + q] * x[p + q];
        float tail = 0.0f;
        for (; p < k; p++)
            tail += row[p] * x[p];
        for (int w = VEC_LANES / 2; w > 0; w /= 2)
            for (int q = 0; q < w; q++)
                acc[q] += acc[q + w];
        const float v = alpha * (acc[0] + tail);
        float *o = out + (ptrdiff_t)r * os;
        *o = beta == 0.0f ? v : v + beta * *o;
    }
}

/* out[j * os] = alpha * sum_p x[p * xs] * mat[p * ms + j] + beta * out[j * os],
 * j < nc; mat contiguous along j. */
static inline __attribute__((always_inline)) void vec_axpys_body(int nc, int k, float alpha,
                                                                 const float *mat, ptrdiff_t ms,
                                                                 const float *x, ptrdiff_t xs,
                                                                 float beta, float *out,
                                                                 ptrdiff_t os)
{
    for (int j0 = 0; j0 < nc; j0 += VEC_COLS) {
        const int w = nc - j0 < VEC_COLS ? nc - j0 : VEC_COLS;
        float acc[VEC_COLS] = {0};
        for (int p = 0; p < k; p++) {
            const float xp = x[(ptrdiff_t)p * xs];
            const float *mp = mat + (ptrdiff_t)p * ms + j0;
            if (w == VEC_COLS)
                for (int q = 0; q < VEC_COLS; q++)
                    acc[q] += xp * mp[q];
            else
                for (int q = 0; q < w; q++)
                    acc[q] += xp * mp[q];
        }
        for (int q = 0; q < w; q++) {
            float *o = out + (ptrdiff_t)(j0 + q) * os;
            const float v = alpha * acc[q];
            *o = beta == 0.0f ? v : v + beta * *o;
        }
    }
}

#define VEC_VARIANT(SUFFIX, ATTR)                                                              \
    ATTR static void vec_dots_##SUFFIX(int nr, int k, float alpha, const float *rows,          \
                                       ptrdiff_t rs, const float *x, float beta, float *out,   \
                                       ptrdiff_t os)                                           \
    {                                                                                          \
        vec_dots_body(nr, k, alpha, rows, rs, x, beta, out, os);                               \
    }                                                                                          \
    ATTR static void vec_axpys_##SUFFIX(int nc, int k, float alpha, const float *mat,          \
                                        ptrdiff_t ms, const float *x, ptrdiff_t xs,            \
                                        float beta, float *out, ptrdiff_t os)                  \
    {                                                                                          \
        vec_axpys_body(nc, k, alpha, mat, ms, x, xs, beta, out, os);                           \
    }

VEC_VARIANT(base, )
#if CVAE__GEMM_X86
VEC_VARIANT(avx2, TARGET_AVX2)
VEC_VARIANT(avx512, TARGET_AVX512)
#endif

static void vec_dots(int nr, int k, float alpha, const float *rows, ptrdiff_t rs, const float *x,
                     float beta, float *out, ptrdiff_t os)
{
#if CVAE__GEMM_X86
    if (gemm.have_avx512)
        vec_dots_avx512(nr, k, alpha, rows, rs, x, beta, out, os);
    else if (gemm.have_avx2)
        vec_dots_avx2(nr, k, alpha, rows, rs, x, beta, out, os);
    else
#endif
        vec_dots_base(nr, k, alpha, rows, rs, x, beta, out, os);
}

static void vec_axpys(int nc, int k, float alpha, const float *mat, ptrdiff_t ms, const float *x,
                      ptrdiff_t xs, float beta, float *out, ptrdiff_t os)
{
#if CVAE__GEMM_X86
    if (gemm.have_avx512)
        vec_axpys_avx512(nc, k, alpha, mat, ms, x, xs, beta, out, os);
    else if (gemm.have_avx2)
        vec_axpys_avx2(nc, k, alpha, mat, ms, x, xs, beta, out, os);
    else
#endif
        vec_axpys_base(nc, k, alpha, mat, ms, x, xs, beta, out, os);
}

static void sgemm_vector(int m, int n, int k, float alpha, const float *a, inc_t rsa, inc_t csa,
                         const float *b, inc_t rsb, inc_t csb, float beta, float *c, int ldc)
{
    gemm_init_once();
    if (m == 1 && rsb == 1 && csa == 1) /* c = a B, B's columns contiguous along k */
        vec_dots(n, k, alpha, b, csb, a, beta, c, 1);
    else if (m == 1 && csb == 1) /* B's rows contiguous along n */
        vec_axpys(n, k, alpha, b, rsb, a, csa, beta, c, 1);
    else if (n == 1 && csa == 1 && rsb == 1) /* c = A b, A's rows contiguous along k */
        vec_dots(m, k, alpha, a, rsa, b, beta, c, ldc);
    else if (n == 1 && rsa == 1) /* A's columns contiguous along m */
        vec_axpys(m, k, alpha, a, csa, b, rsb, beta, c, ldc);
    else
        sgemm_vector_naive(m, n, k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
}

/* Products too thin for BLIS's packing to pay off, done as rows of the
 * vector forms above:
 *  - a short inner dimension (k <= 16: the 9 taps of a 3x3 single-channel
 *    conv, 16 x 784 x 9 per image) with B contiguous along n: each row of C
 *    is k axpys of B's rows, which sit in L1;
 *  - a tiny C (at most 256 values: that conv's 16 x 9 weight gradient, k =
 *    784) with both operands contiguous along k: each value is a dot
 *    product.
 * BLIS would pack k x n (or all of both operands) to run a handful of
 * micro-tiles, each a few multiply-adds deep. Returns 0 if the product is
 * not thin. */
static int sgemm_thin(int m, int n, int k, float alpha, const float *a, inc_t rsa, inc_t csa,
                      const float *b, inc_t rsb, inc_t csb, float beta, float *c, int ldc)
{
    if (k >= 1 && k <= 16 && csb == 1 && n >= 16) {
        gemm_init_once();
        for (int i = 0; i < m; i++)
            vec_axpys(n, k, alpha, b, rsb, a + (ptrdiff_t)i * rsa, csa, beta,
                      c + (ptrdiff_t)i * ldc, 1);
        return 1;
    }
    if ((long long)m * n <= 256 && k >= 64 && csa == 1 && rsb == 1) {
        gemm_init_once();
        for (int i = 0; i < m; i++)
            vec_dots(n, k, alpha, b, csb, a + (ptrdiff_t)i * rsa, beta, c + (ptrdiff_t)i * ldc,
                     1);
        return 1;
    }
    return 0;
}

static cvae__gemm_trace_fn trace_fn;
static void *trace_user;

void cvae__gemm_set_trace(cvae__gemm_trace_fn fn, void *user)
{
    trace_fn = fn;
    trace_user = user;
}

int cvae__gemm_tracing(void) { return trace_fn != NULL; }

void cvae__gemm_trace_report(const cvae__gemm_call *call, int end)
{
    if (trace_fn)
        trace_fn(trace_user, call, end);
}

static void sgemm_run(cvae__gemm_kernel kernel, int trans_a, int trans_b, int m, int n, int k,
                      float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                      float *c, int ldc);

/* A product is split across threads when it has at least this many
 * multiply-adds: below it, handing a part to a worker (~10-20 us here)
 * costs more than the part. */
#define SPLIT_MIN_MACS (4.0 * 1024 * 1024)

typedef struct split_job {
    cvae__gemm_kernel kernel;
    int trans_a, trans_b, m, n, k, lda, ldb, ldc, by_rows;
    float alpha, beta;
    const float *a, *b;
    float *c;
} split_job;

/* Blocks of 16 rows or columns (the micro-tile) go to the parts as evenly
 * as possible. Every element of C is computed by the same code whichever
 * part it falls in, so the result does not depend on the split. */
static void split_part(void *ctx, int part, int parts)
{
    const split_job *j = ctx;
    const int len = j->by_rows ? j->m : j->n;
    const int blocks = (len + 15) / 16;
    const int b0 = (int)((long long)blocks * part / parts);
    const int b1 = (int)((long long)blocks * (part + 1) / parts);
    const int lo = 16 * b0, hi = 16 * b1 < len ? 16 * b1 : len;
    if (lo >= hi)
        return;
    if (j->by_rows) {
        /* rows lo..hi of op(A): row i of A, or column i of a transposed A */
        const float *a = j->a + (size_t)lo * (size_t)(j->trans_a ? 1 : j->lda);
        sgemm_run(j->kernel, j->trans_a, j->trans_b, hi - lo, j->n, j->k, j->alpha, a, j->lda,
                  j->b, j->ldb, j->beta, j->c + (size_t)lo * (size_t)j->ldc, j->ldc);
    } else {
        const float *b = j->b + (size_t)lo * (size_t)(j->trans_b ? j->ldb : 1);
        sgemm_run(j->kernel, j->trans_a, j->trans_b, j->m, hi - lo, j->k, j->alpha, j->a, j->lda,
                  b, j->ldb, j->beta, j->c + lo, j->ldc);
    }
}

static void sgemm_split(cvae__gemm_kernel kernel, int trans_a, int trans_b, int m, int n, int k,
                        float alpha, const float *a, int lda, const float *b, int ldb,
                        float beta, float *c, int ldc)
{
    int parts = cvae__parallel_threads();
    const int by_rows = m > n;
    const int blocks = ((by_rows ? m : n) + 15) / 16;
    if (parts > blocks)
        parts = blocks;
    if (parts < 2 || (double)m * (double)n * (double)k < SPLIT_MIN_MACS) {
        sgemm_run(kernel, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    split_job j = {kernel, trans_a, trans_b, m, n, k, lda, ldb, ldc, by_rows, alpha, beta, a, b, c};
    cvae__parallel(parts, split_part, &j);
}

void cvae__sgemm_with(cvae__gemm_kernel kernel, int trans_a, int trans_b, int m, int n, int k,
                      float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                      float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (!trace_fn) {
        sgemm_split(kernel, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    const cvae__gemm_call call = {trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta};
    trace_fn(trace_user, &call, 0);
    sgemm_split(kernel, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    trace_fn(trace_user, &call, 1);
}

static void sgemm_run(cvae__gemm_kernel kernel, int trans_a, int trans_b, int m, int n, int k,
                      float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                      float *c, int ldc)
{
    /* op(A)(i,p): row-major untransposed A has strides (lda, 1); a stored
     * k x m matrix read as its transpose has strides (1, lda). */
    inc_t rsa = trans_a ? 1 : lda, csa = trans_a ? lda : 1;
    inc_t rsb = trans_b ? 1 : ldb, csb = trans_b ? ldb : 1;
    if (m == 1 || n == 1) {
        sgemm_vector(m, n, k < 0 ? 0 : k, alpha, a, rsa, csa, b, rsb, csb, beta, c, ldc);
        return;
    }
    if (kernel != CVAE__GEMM_KERNEL_BLIS && sgemm_thin(m, n, k, alpha, a, rsa, csa, b, rsb, csb,
                                                       beta, c, ldc))
        return;
    gemm_init_once();
    if (k <= 0) {
        /* BLIS handles k == 0 as C = beta*C, which is what we want. */
        k = 0;
    }
    /* One BLIS thread (the splitting is ours, above) and no "sup". */
    rntm_t rntm;
    bli_rntm_init_from_global(&rntm);
    bli_rntm_set_num_threads(1, &rntm);
    bli_rntm_disable_l3_sup(&rntm);
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, (dim_t)m, (dim_t)n, (dim_t)k, &alpha,
                 (float *)a, rsa, csa, (float *)b, rsb, csb, &beta, c, (inc_t)ldc, 1,
                 kernel_context(kernel), &rntm);
}

void cvae__sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    cvae__sgemm_with(CVAE__GEMM_KERNEL_AUTO, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                     beta, c, ldc);
}

int cvae__gemm_tile_mr(void)
{
    gemm_init_once();
#if CVAE__GEMM_X86
    if (gemm.dflt == CVAE__GEMM_KERNEL_AVX512)
        return Z_MR;
    if (gemm.dflt == CVAE__GEMM_KERNEL_AVX2)
        return Y_MR;
#endif
    return 0;
}

void cvae__gemm_tile(int m, int n, int k, const float *ap, const float *bp, float beta, float *c,
                     int ldc)
{
#if CVAE__GEMM_X86
    float one = 1.0f;
    if (gemm.dflt == CVAE__GEMM_KERNEL_AVX512)
        ukr_avx512_16x16((dim_t)m, (dim_t)n, (dim_t)k, &one, (float *)(uintptr_t)ap,
                         (float *)(uintptr_t)bp, &beta, c, (inc_t)ldc, 1, NULL, NULL);
    else if (gemm.dflt == CVAE__GEMM_KERNEL_AVX2)
        ukr_avx2_6x16((dim_t)m, (dim_t)n, (dim_t)k, &one, (float *)(uintptr_t)ap,
                      (float *)(uintptr_t)bp, &beta, c, (inc_t)ldc, 1, NULL, NULL);
#else
    (void)m, (void)n, (void)k, (void)ap, (void)bp, (void)beta, (void)c, (void)ldc;
#endif
}

void cvae__gemm_set_threads(int n) { gemm_threads = n < 1 ? 1 : n; }

int cvae__gemm_get_threads(void) { return gemm_threads; }

cvae_status cvae_set_num_threads(int n)
{
    if (n < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "thread count %d must be >= 1", n);
    cvae__gemm_set_threads(n);
    return CVAE_OK;
}

int cvae_get_num_threads(void) { return cvae__gemm_get_threads(); }
