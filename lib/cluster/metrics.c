#include "cluster/metrics.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/memory.h"

/* ------------------------------------------------------------------------ */
/* Contingency table                                                        */
/* ------------------------------------------------------------------------ */

static cvae_status check_ids(const int32_t *ids, int64_t n, const char *name, int32_t *max_id)
{
    int32_t mx = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t v = ids[i];
        if (v < 0 || v > CVAE__METRICS_MAX_ID)
            return cvae__fail(CVAE_E_INVALID_ARG, "%s[%lld] = %ld is outside [0, %d]", name,
                              (long long)i, (long)v, CVAE__METRICS_MAX_ID);
        if (v > mx)
            mx = v;
    }
    *max_id = mx;
    return CVAE_OK;
}

/* Replace the presence marks in map[0..len) by dense indices in increasing id
 * order (absent ids get -1) and return how many ids are present. */
static int densify(int32_t *map, int32_t len)
{
    int k = 0;
    for (int32_t v = 0; v < len; v++)
        map[v] = map[v] ? k++ : -1;
    return k;
}

void cvae__contingency_free(cvae__contingency *t)
{
    if (t == NULL)
        return;
    free(t->block);
    memset(t, 0, sizeof *t);
}

cvae_status cvae__contingency_build(const int32_t *labels, const int32_t *clusters, int64_t n,
                                    cvae__contingency *t)
{
    CVAE__CHECK_PTR(t);
    memset(t, 0, sizeof *t);
    CVAE__CHECK_PTR(labels);
    CVAE__CHECK_PTR(clusters);
    if (n < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "clustering metrics need n >= 1 items, got %lld",
                          (long long)n);
    /* An n whose arrays cannot exist is refused before they are read. */
    if ((uint64_t)n > SIZE_MAX / sizeof *labels)
        return cvae__fail(CVAE_E_INVALID_ARG, "clustering metrics: %lld items overflow the "
                          "address space", (long long)n);
    int32_t max_l = 0, max_c = 0;
    cvae_status st = check_ids(labels, n, "labels", &max_l);
    if (st != CVAE_OK)
        return st;
    st = check_ids(clusters, n, "clusters", &max_c);
    if (st != CVAE_OK)
        return st;

    /* Id -> row/column maps, sized by the largest id (at most 2 x 256 KiB). */
    int32_t *lmap = calloc((size_t)max_l + 1 + (size_t)max_c + 1, sizeof *lmap);
    if (lmap == NULL)
        return cvae__fail(CVAE_E_NOMEM, "contingency table: cannot allocate id maps");
    int32_t *cmap = lmap + max_l + 1;
    for (int64_t i = 0; i < n; i++) {
        lmap[labels[i]] = 1;
        cmap[clusters[i]] = 1;
    }
    int cols = densify(lmap, max_l + 1);
    int rows = densify(cmap, max_c + 1);

    /* One block: counts, row sums, column sums (int64), then the two id lists
     * (int32), so the int64 parts stay 8-byte aligned. */
    size_t cells, bytes64, bytes32;
    if (cvae__mul_overflows((size_t)rows, (size_t)cols, &cells) ||
        cells > SIZE_MAX / sizeof(int64_t) - (size_t)rows - (size_t)cols) {
        free(lmap);
        return cvae__fail(CVAE_E_INVALID_ARG, "contingency table %d x %d overflows", rows, cols);
    }
    bytes64 = (cells + (size_t)rows + (size_t)cols) * sizeof(int64_t);
    bytes32 = ((size_t)rows + (size_t)cols) * sizeof(int32_t);
    if (bytes64 > SIZE_MAX - bytes32) {
        free(lmap);
        return cvae__fail(CVAE_E_INVALID_ARG, "contingency table %d x %d overflows", rows, cols);
    }
    void *block = calloc(1, bytes64 + bytes32);
    if (block == NULL) {
        free(lmap);
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate a %d x %d contingency table", rows,
                          cols);
    }
    t->block = block;
    t->n = n;
    t->rows = rows;
    t->cols = cols;
    t->counts = block;
    t->row_sum = t->counts + cells;
    t->col_sum = t->row_sum + rows;
    t->row_id = (int32_t *)(t->col_sum + cols);
    t->col_id = t->row_id + rows;

    for (int32_t v = 0; v <= max_c; v++)
        if (cmap[v] >= 0)
            t->row_id[cmap[v]] = v;
    for (int32_t v = 0; v <= max_l; v++)
        if (lmap[v] >= 0)
            t->col_id[lmap[v]] = v;
    for (int64_t i = 0; i < n; i++) {
        size_t r = (size_t)cmap[clusters[i]], c = (size_t)lmap[labels[i]];
        t->counts[r * (size_t)cols + c]++;
        t->row_sum[r]++;
        t->col_sum[c]++;
    }
    free(lmap);
    return CVAE_OK;
}

/* ------------------------------------------------------------------------ */
/* Hungarian algorithm                                                      */
/* ------------------------------------------------------------------------ */

/* Shortest augmenting paths with row/column potentials (Kuhn-Munkres in the
 * Jonker-Volgenant formulation): one Dijkstra-like search per row of the
 * smaller side, O(n^2 m) for an n x m problem with n <= m. Costs are
 * wmax - w >= 0 so the problem is a minimisation with non-negative integer
 * costs; every matching has the same size min(rows, cols), so the shift does
 * not change the optimum. With costs in [0, R]: 0 <= u <= R (u only grows
 * and u[i] + v[j] <= c[i][j] against a still-free column, whose v is 0),
 * -R <= v <= 0 on matched columns, and every reduced cost is <= 2R, so
 * R <= 2^61 keeps all arithmetic exact in int64. */
cvae_status cvae__hungarian_max(const int64_t *weights, int rows, int cols,
                                int *assign_row_to_col)
{
    CVAE__CHECK_PTR(weights);
    CVAE__CHECK_PTR(assign_row_to_col);
    if (rows < 1 || cols < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "assignment matrix %d x %d is empty", rows, cols);
    size_t cells;
    if (cvae__mul_overflows((size_t)rows, (size_t)cols, &cells) ||
        cells > SIZE_MAX / sizeof(int64_t))
        return cvae__fail(CVAE_E_INVALID_ARG, "assignment matrix %d x %d overflows", rows, cols);

    int64_t wmax = weights[0];
    for (size_t k = 0; k < cells; k++) {
        int64_t x = weights[k];
        if (x > CVAE__HUNGARIAN_MAX_WEIGHT || x < -CVAE__HUNGARIAN_MAX_WEIGHT)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "assignment weight [%zu][%zu] = %lld is outside +-2^60",
                              k / (size_t)cols, k % (size_t)cols, (long long)x);
        if (x > wmax)
            wmax = x;
    }

    /* Work on the orientation with the smaller side as "rows" (i) without
     * copying: a(i, j) = weights[i * si + j * sj]. */
    const int transposed = rows > cols;
    const int n = transposed ? cols : rows;
    const int m = transposed ? rows : cols;
    const size_t si = transposed ? 1 : (size_t)cols;
    const size_t sj = transposed ? (size_t)cols : 1;

    /* 1-based as in the classic formulation: column 0 is the virtual source
     * column that holds the row being inserted. */
    size_t m1 = (size_t)m + 1, n1 = (size_t)n + 1;
    /* n <= m, so 64 bytes per column bounds the workspace (matters on 32-bit). */
    if (m1 > SIZE_MAX / 64)
        return cvae__fail(CVAE_E_INVALID_ARG, "assignment workspace for %d x %d overflows",
                          rows, cols);
    size_t bytes = (n1 + 2 * m1) * sizeof(int64_t) + 2 * m1 * sizeof(int) + m1;
    char *ws = malloc(bytes);
    if (ws == NULL)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate the assignment workspace (%d x %d)",
                          rows, cols);
    int64_t *u = (int64_t *)ws;        /* row potentials */
    int64_t *v = u + n1;               /* column potentials */
    int64_t *minv = v + m1;            /* best reduced cost reaching each column */
    int *p = (int *)(minv + m1);       /* p[j]: row matched to column j, 0 = free */
    int *way = p + m1;                 /* previous column on the shortest path */
    char *used = (char *)(way + m1);   /* column already in the search tree */
    memset(u, 0, n1 * sizeof *u);
    memset(v, 0, m1 * sizeof *v);
    memset(p, 0, m1 * sizeof *p);

    for (int i = 1; i <= n; i++) {
        p[0] = i;
        /* v[0] is never read; resetting it keeps it from drifting by up to R
         * per row and overflowing on large problems. */
        v[0] = 0;
        int j0 = 0;
        for (int j = 0; j <= m; j++) {
            minv[j] = INT64_MAX;
            used[j] = 0;
        }
        do {
            used[j0] = 1;
            const int i0 = p[j0];
            const int64_t ui0 = u[i0];
            const int64_t *a = weights + (size_t)(i0 - 1) * si;
            int64_t delta = INT64_MAX;
            int j1 = 0;
            for (int j = 1; j <= m; j++) {
                if (used[j])
                    continue;
                int64_t cur = (wmax - a[(size_t)(j - 1) * sj]) - ui0 - v[j];
                if (cur < minv[j]) {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if (minv[j] < delta) {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for (int j = 0; j <= m; j++) {
                if (used[j]) {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (p[j0] != 0);
        /* Flip the augmenting path back to the source column. */
        do {
            int j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0 != 0);
    }

    for (int r = 0; r < rows; r++)
        assign_row_to_col[r] = -1;
    for (int j = 1; j <= m; j++) {
        if (p[j] == 0)
            continue;
        if (transposed)
            assign_row_to_col[j - 1] = p[j] - 1;
        else
            assign_row_to_col[p[j] - 1] = j - 1;
    }
    free(ws);
    return CVAE_OK;
}

/* ------------------------------------------------------------------------ */
/* Scores                                                                   */
/* ------------------------------------------------------------------------ */

static double xlogx(int64_t x) { return x > 0 ? (double)x * log((double)x) : 0.0; }

/* Pairs among x items; exact in double while x < 2^26 or so, and only
 * rounded (never overflowed) beyond. */
static double comb2(int64_t x) { return (double)x * (double)(x - 1) * 0.5; }

/* NMI = I(U;V) / ((H(U) + H(V)) / 2), natural logarithms (the base cancels),
 * as scikit-learn's normalized_mutual_info_score with its default
 * average_method='arithmetic'. Degenerate cases, also as scikit-learn:
 *  - both labellings constant: H(U) = H(V) = I = 0; the two agree perfectly,
 *    so 1.0;
 *  - exactly one constant: I = 0 while the mean entropy is > 0, so 0.0 (an
 *    explicit I <= 0 test keeps rounding from giving a tiny non-zero value).
 * I is computed as H(U) + H(V) - H(U,V) from sums of x log x over the counts,
 * which needs no per-cell logarithm of products; rounding can push it
 * slightly outside [0, min(H(U), H(V))], so the result is clamped to [0, 1]. */
static double nmi_score(const cvae__contingency *t)
{
    if (t->rows == 1 && t->cols == 1)
        return 1.0;
    const double nd = (double)t->n, logn = log(nd);
    double s_rows = 0.0, s_cols = 0.0, s_cells = 0.0;
    for (int r = 0; r < t->rows; r++)
        s_rows += xlogx(t->row_sum[r]);
    for (int c = 0; c < t->cols; c++)
        s_cols += xlogx(t->col_sum[c]);
    const size_t cells = (size_t)t->rows * (size_t)t->cols;
    for (size_t k = 0; k < cells; k++)
        s_cells += xlogx(t->counts[k]);
    const double h_clusters = logn - s_rows / nd;
    const double h_labels = logn - s_cols / nd;
    const double h_joint = logn - s_cells / nd;
    const double mi = h_clusters + h_labels - h_joint;
    if (!(mi > 0.0))
        return 0.0;
    double norm = 0.5 * (h_clusters + h_labels);
    if (norm < DBL_EPSILON)
        norm = DBL_EPSILON;
    double nmi = mi / norm;
    return nmi > 1.0 ? 1.0 : nmi;
}

/* Hubert & Arabie's adjusted Rand index,
 *   (sum_ij C(n_ij,2) - E) / (mean(sum_i C(a_i,2), sum_j C(b_j,2)) - E),
 *   E = sum_i C(a_i,2) * sum_j C(b_j,2) / C(n,2),
 * with pair counts in double so that large n cannot overflow. The denominator
 * is zero exactly when both labellings are constant or both put every item
 * in its own group (n = 1 is both); the two then agree perfectly, so 1.0 as
 * in scikit-learn. Those cases are detected from the table's shape rather
 * than from a rounded denominator. */
static double ari_score(const cvae__contingency *t)
{
    if ((t->rows == 1 && t->cols == 1) || (t->rows == t->n && t->cols == t->n))
        return 1.0;
    double s_rows = 0.0, s_cols = 0.0, s_cells = 0.0;
    for (int r = 0; r < t->rows; r++)
        s_rows += comb2(t->row_sum[r]);
    for (int c = 0; c < t->cols; c++)
        s_cols += comb2(t->col_sum[c]);
    const size_t cells = (size_t)t->rows * (size_t)t->cols;
    for (size_t k = 0; k < cells; k++)
        s_cells += comb2(t->counts[k]);
    const double expected = s_rows * s_cols / comb2(t->n);
    const double denom = 0.5 * (s_rows + s_cols) - expected;
    if (!(denom > 0.0))
        return 1.0; /* unreachable outside the cases above; never divide by 0 */
    return (s_cells - expected) / denom;
}

static double purity_score(const cvae__contingency *t)
{
    int64_t hits = 0;
    for (int r = 0; r < t->rows; r++) {
        const int64_t *row = t->counts + (size_t)r * (size_t)t->cols;
        int64_t best = 0;
        for (int c = 0; c < t->cols; c++)
            if (row[c] > best)
                best = row[c];
        hits += best;
    }
    return (double)hits / (double)t->n;
}

/* One-to-one mapping of clusters to labels maximising the items on the
 * diagonal; clusters left without a label (more clusters than labels) only
 * contribute errors. */
static cvae_status acc_score(const cvae__contingency *t, double *acc)
{
    int *assign = malloc((size_t)t->rows * sizeof *assign);
    if (assign == NULL)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate the cluster-to-label mapping (%d)",
                          t->rows);
    cvae_status st = cvae__hungarian_max(t->counts, t->rows, t->cols, assign);
    if (st == CVAE_OK) {
        int64_t hits = 0;
        for (int r = 0; r < t->rows; r++)
            if (assign[r] >= 0)
                hits += t->counts[(size_t)r * (size_t)t->cols + (size_t)assign[r]];
        *acc = (double)hits / (double)t->n;
    }
    free(assign);
    return st;
}

cvae_status cvae__metrics_from_contingency(const cvae__contingency *t, double *acc,
                                           double *purity, double *nmi, double *ari)
{
    CVAE__CHECK_PTR(t);
    if (t->counts == NULL || t->n < 1 || t->rows < 1 || t->cols < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "contingency table is empty or not built");
    if (acc) {
        cvae_status st = acc_score(t, acc);
        if (st != CVAE_OK)
            return st;
    }
    if (purity)
        *purity = purity_score(t);
    if (nmi)
        *nmi = nmi_score(t);
    if (ari)
        *ari = ari_score(t);
    return CVAE_OK;
}

cvae_status cvae_cluster_metrics(const int32_t *labels, const int32_t *clusters, int64_t n,
                                 double *acc, double *purity, double *nmi, double *ari)
{
    cvae__contingency t;
    cvae_status st = cvae__contingency_build(labels, clusters, n, &t);
    if (st != CVAE_OK)
        return st;
    /* Write the outputs only once everything succeeded. */
    double a = 0.0, p = 0.0, mi = 0.0, r = 0.0;
    st = cvae__metrics_from_contingency(&t, acc ? &a : NULL, &p, &mi, &r);
    cvae__contingency_free(&t);
    if (st != CVAE_OK)
        return st;
    if (acc)
        *acc = a;
    if (purity)
        *purity = p;
    if (nmi)
        *nmi = mi;
    if (ari)
        *ari = r;
    return CVAE_OK;
}
