/* The library's threads: the process-wide thread count behind
 * cvae_set_num_threads, and the pool that runs the independent parts of a
 * job (GEMM splits, conv images, optimizer ranges) on that many threads. */
#ifndef CVAE_THREADS_H
#define CVAE_THREADS_H

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

#endif
