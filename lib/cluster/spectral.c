#include "cluster/spectral.h"

#include <arpack.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* ARPACK keeps its iteration state in Fortran SAVE variables, so two
 * solves at once (two handles on two threads) would corrupt each other. */
static pthread_mutex_t arpack_lock = PTHREAD_MUTEX_INITIALIZER;

/* y = D^-1/2 W D^-1/2 x, with s = D^-1/2. */
static void matvec(int64_t n, const int64_t *rowptr, const int32_t *col, const float *w,
                   const double *s, const double *x, double *y)
{
    for (int64_t i = 0; i < n; i++) {
        double acc = 0;
        for (int64_t e = rowptr[i]; e < rowptr[i + 1]; e++)
            acc += (double)w[e] * s[col[e]] * x[col[e]];
        y[i] = s[i] * acc;
    }
}

cvae_status cvae__spectral(int64_t n, const int64_t *rowptr, const int32_t *col, const float *w,
                           int nev, double tol, double *eigval, float *vec, int *iterations)
{
    CVAE__CHECK_PTR(rowptr);
    CVAE__CHECK_PTR(col);
    CVAE__CHECK_PTR(w);
    CVAE__CHECK_PTR(eigval);
    CVAE__CHECK_PTR(vec);
    if (n < 3 || n > INT32_MAX / 4 || nev < 1 || nev >= n - 1 || !(tol >= 0))
        return cvae__fail(CVAE_E_INVALID_ARG, "spectral: need 1 <= nev < n - 1 (n %lld, nev %d)",
                          (long long)n, nev);
    int ncv = 2 * nev + 1;
    const int root = (int)sqrt((double)n) < 64 ? (int)sqrt((double)n) : 64;
    if (ncv < root)
        ncv = root;
    if (ncv > n)
        ncv = (int)n;
    const int lworkl = ncv * (ncv + 8);
    double *s = malloc((size_t)n * sizeof *s);
    double *resid = malloc((size_t)n * sizeof *resid);
    double *v = malloc((size_t)n * ncv * sizeof *v);
    double *workd = malloc(3 * (size_t)n * sizeof *workd);
    double *workl = malloc((size_t)lworkl * sizeof *workl);
    double *d = malloc((size_t)nev * sizeof *d);
    double *z = malloc((size_t)n * nev * sizeof *z);
    int *select = calloc((size_t)ncv, sizeof *select);
    int *order = malloc((size_t)nev * sizeof *order);
    cvae_status st = CVAE_OK;
    if (!s || !resid || !v || !workd || !workl || !d || !z || !select || !order) {
        st = cvae__fail(CVAE_E_NOMEM, "spectral: out of memory for %d Lanczos vectors of %lld",
                        ncv, (long long)n);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        double deg = 0;
        for (int64_t e = rowptr[i]; e < rowptr[i + 1]; e++)
            deg += w[e];
        if (!(deg > 0) || !isfinite(deg)) {
            st = cvae__fail(CVAE_E_INVALID_ARG, "spectral: row %lld has weight %g",
                            (long long)i, deg);
            goto done;
        }
        s[i] = 1.0 / sqrt(deg);
        resid[i] = 1.0;
    }

    pthread_mutex_lock(&arpack_lock);
    int ido = 0, info = 1; /* info 1: resid holds the start vector */
    int iparam[11] = {0}, ipntr[14] = {0};
    iparam[0] = 1;                                         /* exact shifts */
    iparam[2] = n > INT32_MAX / 5 ? INT32_MAX : (int)(5 * n); /* restarts, as UMAP */
    iparam[6] = 1;                                         /* mode 1: A x = lambda x */
    for (;;) {
        dsaupd_c(&ido, "I", (int)n, "LA", nev, tol, resid, ncv, v, (int)n, iparam, ipntr, workd,
                 workl, lworkl, &info);
        if (ido != 1 && ido != -1)
            break;
        matvec(n, rowptr, col, w, s, workd + ipntr[0] - 1, workd + ipntr[1] - 1);
    }
    if (info == 0 && iparam[4] >= nev) {
        dseupd_c(1, "A", select, d, z, (int)n, 0.0, "I", (int)n, "LA", nev, tol, resid, ncv, v,
                 (int)n, iparam, ipntr, workd, workl, lworkl, &info);
        if (info != 0)
            st = cvae__fail(CVAE_E_NUMERIC, "spectral: ARPACK dseupd failed (info %d)", info);
    } else {
        st = cvae__fail(CVAE_E_NUMERIC,
                        "spectral: ARPACK dsaupd did not converge (info %d, %d of %d values "
                        "after %d restarts)",
                        info, iparam[4], nev, iparam[2]);
    }
    pthread_mutex_unlock(&arpack_lock);
    if (iterations)
        *iterations = iparam[2];
    if (st != CVAE_OK)
        goto done;
    /* descending eigenvalues (dseupd returns them ascending; sort to be sure) */
    for (int j = 0; j < nev; j++)
        order[j] = j;
    for (int a = 1; a < nev; a++)
        for (int b = a; b > 0 && d[order[b]] > d[order[b - 1]]; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    for (int j = 0; j < nev; j++) {
        eigval[j] = d[order[j]];
        const double *zj = z + (size_t)order[j] * (size_t)n;
        for (int64_t i = 0; i < n; i++)
            vec[(size_t)i * nev + j] = (float)zj[i];
    }
done:
    free(s), free(resid), free(v), free(workd), free(workl), free(d), free(z), free(select),
        free(order);
    return st;
}
