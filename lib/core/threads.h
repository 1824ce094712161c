/* The library's threads: the process-wide thread count behind
 * cvae_set_num_threads, and the pool that runs the independent parts of a
 * job (GEMM splits, conv images, optimizer ranges) on that many threads. */
#ifndef CVAE_THREADS_H
#define CVAE_THREADS_H

#include <stddef.h>

/* Process-wide thread count (>= 1; smaller values are taken as 1). Products
 * large enough are split into that many single-threaded BLIS calls run by
 * cvae__parallel; BLIS never starts threads of its own. */
void cvae__threads_set(int n);
int cvae__threads_get(void);

/* Runs fn(ctx, part, parts) for every part in [0, parts), concurrently on
 * up to the thread count's worth of threads (the caller's included), and
 * returns when all are done. Parts must be independent. Inside a part,
 * GEMMs run single-threaded and a nested cvae__parallel runs its parts in
 * order on the calling thread; so does a call made while another thread's
 * job is running. No allocation after the first use (which starts the
 * worker threads). */
void cvae__parallel(int parts, void (*fn)(void *ctx, int part, int parts), void *ctx);

/* How many threads a cvae__parallel call made here would use at most: the
 * thread count, or 1 inside a part. */
int cvae__parallel_threads(void);

/* The kinds of job that learn their own share (below): each kind's two
 * parts differ in their own way (what the caller has just left in its
 * cache, how much of the work is memory traffic), so one value for all
 * of them leaves every kind a little off. */
typedef enum cvae__share_site {
    CVAE__SHARE_PRODUCT = 0, /* a split matrix product */
    CVAE__SHARE_UPDATE,      /* the optimizer's update */
    CVAE__SHARE_FINITE,      /* the non-finite check */
    CVAE__SHARE_POOL,        /* max pooling */
    CVAE__SHARE_SIGMOID,     /* the sigmoid */
    CVAE__SHARE_LOSS,        /* the contrastive term's rows */
    CVAE__SHARE_SUM,         /* gradient buckets added up */
    CVAE__SHARE_CONV,        /* a convolution's forward pass, by images */
    CVAE__SHARE_CONV_GRADS,  /* a convolution's input and weight gradients */
    CVAE__SHARE_SITES
} cvae__share_site;

/* For a job of two parts whose work can be cut anywhere without changing
 * its result: the share of the work part 0 should take (the calling
 * thread runs part 0), learned from how long earlier jobs of the same kind
 * took on each thread, so that both end together when the threads run at
 * different speeds. 1/2 unless cvae__parallel_threads() is 2; always in
 * [1/4, 3/4]. Read it once per job and cut the work by that value. */
double cvae__parallel_share(cvae__share_site site);

/* cvae__parallel(2, fn, ctx) for a job cut at share (the value
 * cvae__parallel_share(site) returned): the two parts' times update the
 * site's share. */
void cvae__parallel_shared(cvae__share_site site, double share,
                           void (*fn)(void *ctx, int part, int parts), void *ctx);

/* Where part `part` of `parts` starts in `total` units of such work: an
 * even cut, or with two parts at total * share (rounded, and within
 * [1, total - 1] when total >= 2); part `parts` starts at total. */
size_t cvae__parallel_part_start(size_t total, int part, int parts, double share);

/* The same start rounded down to a multiple of `unit` (> 0), except that
 * part `parts` still starts at total: for element-wise work cut so that
 * no two parts write into one vector (or cache line) of `unit` floats. */
size_t cvae__parallel_part_start_on(size_t total, int part, int parts, double share,
                                    size_t unit);

/* Runs a job of `parts` parts cut by cvae__parallel_part_start: with two,
 * cvae__parallel_shared at share, else cvae__parallel. */
void cvae__parallel_cut(cvae__share_site site, int parts, double share,
                        void (*fn)(void *ctx, int part, int parts), void *ctx);

/* Tests: fix every site's share at a value in (0, 1) (no learning), or
 * with any other value return to learning from 1/2. */
void cvae__parallel_fix_share(double share);

/* The learning step, for tests: the next share (in 1/1024) after a job cut
 * at `share` whose part 0 ran ns0 and part 1 ns1 nanoseconds, from the
 * current one, `now`. Parts under 20 microseconds leave it unchanged. */
int cvae__share_next(int now, double share, long long ns0, long long ns1);

#endif
