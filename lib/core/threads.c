/* Thread count and thread pool (see threads.h). */
#define _POSIX_C_SOURCE 200809L

#include "core/threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() atomic_signal_fence(memory_order_seq_cst)
#endif

#include "core/error.h"

/* The library's thread count (cvae_set_num_threads). BLIS itself always runs
 * single-threaded (see gemm.c): products worth splitting are split into
 * independent single-threaded BLIS calls on the pool below. BLIS's own
 * threads meet at spinning barriers many times per product; wherever there
 * are more runnable threads than cores (a machine shared with other jobs,
 * an oversubscribed container) a descheduled thread stalls its partner for
 * a whole time slice, and a training step of a few hundred small products
 * can run many times slower with 2 threads than with 1. Atomic: read by
 * every GEMM, written by cvae_set_num_threads from any thread. */
static _Atomic int num_threads = 1;

/* ---- thread pool --------------------------------------------------------
 * cvae__parallel hands the parts of a job to persistent workers (created on
 * first use, never more than the thread count - 1) and works on them itself
 * too, claiming parts until none is left, so a worker that is slow to wake
 * costs nothing but its own part. One job at a time: a second caller, or a
 * nested call, runs its parts itself, in order.
 *
 * Waiting spins for a short while, then blocks (condition variables). A
 * training step is a couple of dozen jobs of 0.05-2 ms with short serial
 * stretches between them. Waking a blocked thread takes tens of
 * microseconds on a virtual machine, and a job paid it twice (the worker's
 * start, the caller's wake-up at the end): with blocking alone, a 2-thread
 * step of the default model slept and woke about 25 times, and ran 10-17%
 * slower than with the spin.
 * A worker that has just finished a job therefore watches for the next one
 * for SPIN_NS before it sleeps, and a caller waiting for the last part
 * watches for it as long. The spin is bounded, so an idle pool costs no CPU,
 * and it is skipped when the thread count exceeds the online CPUs: there a
 * spinning thread would take the core its partner needs (the failure of
 * BLIS's unbounded spinning barriers described above). */
#define SPIN_NS 500000L
#define MAX_WORKERS 63

static struct pool {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    pthread_t th[MAX_WORKERS];
    int nworkers;
    pid_t pid; /* a forked child has no workers: start again */
    void (*fn)(void *ctx, int part, int parts);
    void *ctx;
    int parts, next, quit;
    /* Written under mu; read without it by the spinning waits below. */
    atomic_int pending;
    atomic_ulong job;
    long cpus; /* online CPUs, read when the workers start */
    int spin;  /* 1 when waits may spin: threads <= cpus */
    /* The current job's parts 0 and 1: how long each ran, and whether a
     * worker (not the caller) ran it. Written under mu. */
    long long part_ns[2];
    int part_by_worker[2];
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
          .go = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};
static pthread_mutex_t pool_busy = PTHREAD_MUTEX_INITIALIZER;
/* Set while a thread runs a part: GEMMs and nested jobs inside run on it
 * alone. */
static _Thread_local int in_part;

/* Claims and runs parts of the current job; called and returns with mu
 * held. */
static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static _Thread_local int is_worker;

static void run_parts(void)
{
    while (pool.next < pool.parts) {
        const int p = pool.next++;
        pthread_mutex_unlock(&pool.mu);
        in_part = 1;
        const long long t0 = pool.parts == 2 ? now_ns() : 0;
        pool.fn(pool.ctx, p, pool.parts);
        const long long t1 = pool.parts == 2 ? now_ns() : 0;
        in_part = 0;
        pthread_mutex_lock(&pool.mu);
        if (pool.parts == 2) {
            pool.part_ns[p] = t1 - t0;
            pool.part_by_worker[p] = is_worker;
        }
        if (--pool.pending == 0)
            pthread_cond_signal(&pool.done);
    }
}

/* Spins until the awaited change (a new job for a worker, the last part
 * done for the caller) or SPIN_NS pass; the waiter then checks again under
 * mu and blocks if still needed. The clock is read every 64 pauses (a few
 * microseconds), not on every round. */
static int awaited(int for_worker, unsigned long seen)
{
    if (for_worker)
        return atomic_load_explicit(&pool.job, memory_order_relaxed) != seen;
    return atomic_load_explicit(&pool.pending, memory_order_relaxed) == 0;
}

static void spin_wait(int for_worker, unsigned long seen)
{
    const long long end = now_ns() + SPIN_NS;
    do {
        for (int i = 0; i < 64; i++) {
            if (awaited(for_worker, seen))
                return;
            CPU_RELAX();
        }
    } while (now_ns() < end);
}

static void *worker(void *arg)
{
    (void)arg;
    is_worker = 1;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        if (pool.spin && !pool.quit && pool.job == seen) {
            pthread_mutex_unlock(&pool.mu);
            spin_wait(1, seen);
            pthread_mutex_lock(&pool.mu);
        }
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
        pool.cpus = sysconf(_SC_NPROCESSORS_ONLN); /* a file read in glibc: once */
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

/* ---- sharing a job's work between two threads ---------------------------
 * The two vCPUs of a virtual machine do not run at the same speed: either
 * can be 10-25% slower than the other for seconds at a time (a neighbour
 * on its core), and a job cut in halves then waits for the slower half
 * every time. A job whose parts can be cut anywhere without changing its
 * result (a product's rows or columns, an element-wise pass) asks
 * cvae__parallel_share(site) where to cut, and runs with
 * cvae__parallel_shared(site, ...), which times both parts: when the
 * caller ran part 0 and a worker part 1, side by side, their speeds per
 * unit of work move the site's share a fifth of the way towards the cut at
 * which both would have ended together. Each kind of job (site) keeps its
 * own share: with one for all, the pool's worker idled 5-10% of a 2-thread
 * optimizer update (whose best cut sat near 0.48 while the products' sat
 * near 0.51). Only parts of at least SHARE_MIN_NS each count: the
 * shorter ones are mostly the clock and the hand-off. The share is kept
 * in [SHARE_LO, SHARE_HI] of 1024, so one stalled part cannot starve the
 * other thread of work. With other than 2 threads it stays 1/2. */
#define SHARE_ONE 1024
#define SHARE_LO 256
#define SHARE_HI 768
#define SHARE_MIN_NS 20000LL

static atomic_int share_q[CVAE__SHARE_SITES]; /* part 0's share, in 1/1024; 0 = 1/2 */
static atomic_int share_fixed;                  /* tests: 1 while a share is set */

static int share_now(cvae__share_site site)
{
    const int q = atomic_load_explicit(&share_q[site], memory_order_relaxed);
    return q ? q : SHARE_ONE / 2;
}

double cvae__parallel_share(cvae__share_site site)
{
    if (cvae__parallel_threads() != 2)
        return 0.5;
    return (double)share_now(site) / SHARE_ONE;
}

void cvae__parallel_fix_share(double share)
{
    const int fixed = share > 0.0 && share < 1.0;
    for (int i = 0; i < CVAE__SHARE_SITES; i++)
        atomic_store(&share_q[i], fixed ? (int)(share * SHARE_ONE + 0.5) : 0);
    atomic_store(&share_fixed, fixed);
}

int cvae__share_next(int now, double share, long long ns0, long long ns1)
{
    if (ns0 < SHARE_MIN_NS || ns1 < SHARE_MIN_NS || !(share > 0.0 && share < 1.0))
        return now;
    const double v0 = share / (double)ns0, v1 = (1.0 - share) / (double)ns1;
    const double even = v0 / (v0 + v1); /* the cut at which both end together */
    const int next = now + (int)((even * SHARE_ONE - now) / 5.0);
    return next < SHARE_LO ? SHARE_LO : next > SHARE_HI ? SHARE_HI : next;
}

/* Called by the caller with mu held, after a 2-part job of `site` cut at
 * `share`: learns only from a job whose parts ran side by side, part 0 on
 * the caller and part 1 on a worker. */
static void update_share(cvae__share_site site, double share)
{
    if (atomic_load_explicit(&share_fixed, memory_order_relaxed) || pool.part_by_worker[0] ||
        !pool.part_by_worker[1])
        return;
    atomic_store_explicit(&share_q[site],
                          cvae__share_next(share_now(site), share, pool.part_ns[0], pool.part_ns[1]),
                          memory_order_relaxed);
}

size_t cvae__parallel_part_start(size_t total, int part, int parts, double share)
{
    if (part <= 0)
        return 0;
    if (part >= parts)
        return total;
    const size_t p = (size_t)part, n = (size_t)parts;
    if (parts != 2)
        return total / n * p + total % n * p / n;
    size_t cut = (size_t)((double)total * share + 0.5);
    if (total >= 2)
        cut = cut < 1 ? 1 : cut > total - 1 ? total - 1 : cut;
    return cut;
}

size_t cvae__parallel_part_start_on(size_t total, int part, int parts, double share,
                                    size_t unit)
{
    if (part >= parts)
        return total;
    return cvae__parallel_part_start(total, part, parts, share) / unit * unit;
}

/* share < 0: the job's parts are not cut by a learned share */
static void run_job(int parts, void (*fn)(void *ctx, int part, int parts), void *ctx,
                    cvae__share_site site, double share);

void cvae__parallel_cut(cvae__share_site site, int parts, double share,
                        void (*fn)(void *ctx, int part, int parts), void *ctx)
{
    if (parts == 2)
        run_job(2, fn, ctx, site, share);
    else
        run_job(parts, fn, ctx, site, -1.0);
}

void cvae__parallel(int parts, void (*fn)(void *ctx, int part, int parts), void *ctx)
{
    run_job(parts, fn, ctx, CVAE__SHARE_PRODUCT, -1.0);
}

void cvae__parallel_shared(cvae__share_site site, double share,
                           void (*fn)(void *ctx, int part, int parts), void *ctx)
{
    run_job(2, fn, ctx, site, share);
}

static void run_job(int parts, void (*fn)(void *ctx, int part, int parts), void *ctx,
                    cvae__share_site site, double share)
{
    if (parts < 1)
        return;
    const int threads = num_threads;
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
    pool.spin = pool.cpus < 1 || threads <= pool.cpus;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.parts = parts;
    pool.next = 0;
    pool.part_by_worker[0] = pool.part_by_worker[1] = 0;
    pool.part_ns[0] = pool.part_ns[1] = 0;
    pool.pending = parts;
    pool.job++;
    pthread_cond_broadcast(&pool.go);
    run_parts();
    if (pool.spin && pool.pending > 0) {
        pthread_mutex_unlock(&pool.mu);
        spin_wait(0, 0);
        pthread_mutex_lock(&pool.mu);
    }
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.mu);
    if (parts == 2 && share > 0.0)
        update_share(site, share);
    pool.parts = 0;
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool_busy);
}

int cvae__parallel_threads(void) { return in_part ? 1 : num_threads; }

void cvae__threads_set(int n) { num_threads = n < 1 ? 1 : n; }

int cvae__threads_get(void) { return num_threads; }

cvae_status cvae_set_num_threads(int n)
{
    if (n < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "thread count %d must be >= 1", n);
    cvae__threads_set(n);
    return CVAE_OK;
}

int cvae_get_num_threads(void) { return num_threads; }
