/* Clustering metrics and the Hungarian assignment, checked against
 * hand-computed values, scikit-learn documentation values, and independent
 * brute-force references written here from the definitions (permutation
 * search, subset DP, O(n^2) pair counting, direct probability sums). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convvae.h"
#include "cluster/metrics.h"

#define assert_close(a, b, tol)                                                        \
    do {                                                                               \
        double a_ = (a), b_ = (b);                                                     \
        if (!(fabs(a_ - b_) <= (tol))) {                                               \
            print_error("%s = %.17g, expected %.17g (tol %g)\n", #a, a_, b_, (double)(tol)); \
            fail();                                                                    \
        }                                                                              \
    } while (0)

/* Test-local generator, independent of the library's RNG. */
static uint64_t rng_state;
static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static int rand_below(int n) { return (int)(next_u64() % (uint64_t)n); }

static void metrics(const int32_t *l, const int32_t *c, int64_t n, double *acc, double *pur,
                    double *nmi, double *ari)
{
    assert_int_equal(cvae_cluster_metrics(l, c, n, acc, pur, nmi, ari), CVAE_OK);
}

/* ------------------------------------------------------------------------ */
/* Independent references (small k: ids < REF_K)                            */
/* ------------------------------------------------------------------------ */

#define REF_K 8

static void ref_counts(const int32_t *l, const int32_t *c, int n, int64_t cnt[REF_K][REF_K])
{
    memset(cnt, 0, sizeof(int64_t) * REF_K * REF_K);
    for (int i = 0; i < n; i++) {
        assert_true(l[i] >= 0 && l[i] < REF_K && c[i] >= 0 && c[i] < REF_K);
        cnt[c[i]][l[i]]++;
    }
}

/* Best over all permutations of K = REF_K slots: cluster c -> label perm[c];
 * slots beyond the real labels never match, which is "maps to nothing". */
static int64_t perm_best(int64_t cnt[REF_K][REF_K], int *perm, int *used, int depth)
{
    if (depth == REF_K)
        return 0;
    int64_t best = -1;
    for (int s = 0; s < REF_K; s++) {
        if (used[s])
            continue;
        used[s] = 1;
        perm[depth] = s;
        int64_t v = cnt[depth][s] + perm_best(cnt, perm, used, depth + 1);
        if (v > best)
            best = v;
        used[s] = 0;
    }
    return best;
}

static double ref_acc(const int32_t *l, const int32_t *c, int n)
{
    int64_t cnt[REF_K][REF_K];
    int perm[REF_K], used[REF_K] = {0};
    ref_counts(l, c, n, cnt);
    return (double)perm_best(cnt, perm, used, 0) / n;
}

static double ref_purity(const int32_t *l, const int32_t *c, int n)
{
    int64_t hits = 0;
    for (int k = 0; k < REF_K; k++) {
        int64_t best = 0;
        for (int lab = 0; lab < REF_K; lab++) {
            int64_t m = 0;
            for (int i = 0; i < n; i++)
                m += c[i] == k && l[i] == lab;
            if (m > best)
                best = m;
        }
        hits += best;
    }
    return (double)hits / n;
}

/* I = sum p(u,v) log(p(u,v) / (p(u) p(v))) summed directly. */
static double ref_nmi(const int32_t *l, const int32_t *c, int n)
{
    double pu[REF_K] = {0}, pv[REF_K] = {0}, puv[REF_K][REF_K] = {{0}};
    for (int i = 0; i < n; i++) {
        pu[l[i]] += 1.0 / n;
        pv[c[i]] += 1.0 / n;
        puv[l[i]][c[i]] += 1.0 / n;
    }
    int nu = 0, nv = 0;
    double hu = 0, hv = 0, mi = 0;
    for (int k = 0; k < REF_K; k++) {
        if (pu[k] > 0) {
            nu++;
            hu -= pu[k] * log(pu[k]);
        }
        if (pv[k] > 0) {
            nv++;
            hv -= pv[k] * log(pv[k]);
        }
    }
    for (int a = 0; a < REF_K; a++)
        for (int b = 0; b < REF_K; b++)
            if (puv[a][b] > 0)
                mi += puv[a][b] * log(puv[a][b] / (pu[a] * pv[b]));
    if (nu == 1 && nv == 1)
        return 1.0;
    if (nu == 1 || nv == 1)
        return 0.0;
    return mi / ((hu + hv) / 2);
}

/* Pair-confusion form of the ARI from an O(n^2) walk over all pairs. */
static double ref_ari(const int32_t *l, const int32_t *c, int n)
{
    double both = 0, lab_only = 0, clu_only = 0, neither = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            int sl = l[i] == l[j], sc = c[i] == c[j];
            if (sl && sc)
                both++;
            else if (sl)
                lab_only++;
            else if (sc)
                clu_only++;
            else
                neither++;
        }
    if (lab_only == 0 && clu_only == 0)
        return 1.0;
    return 2.0 * (both * neither - lab_only * clu_only) /
           ((both + lab_only) * (lab_only + neither) + (both + clu_only) * (clu_only + neither));
}

/* ------------------------------------------------------------------------ */
/* Metrics: hand-computed and documented values                             */
/* ------------------------------------------------------------------------ */

static void test_perfect_permuted(void **state)
{
    (void)state;
    enum { N = 500 };
    /* Sparse cluster ids, including the largest allowed, also exercise the
     * id compaction. */
    const int32_t map[10] = {7, 65535, 3, 0, 1000, 42, 9, 12345, 5, 2};
    int32_t l[N], c[N];
    rng_state = 1;
    for (int i = 0; i < N; i++) {
        l[i] = i < 10 ? i : rand_below(10);
        c[i] = map[l[i]];
    }
    double acc, pur, nmi, ari;
    metrics(l, c, N, &acc, &pur, &nmi, &ari);
    assert_close(acc, 1.0, 0);
    assert_close(pur, 1.0, 0);
    assert_close(nmi, 1.0, 1e-12);
    assert_close(ari, 1.0, 1e-12);
}

static void test_sklearn_doc_values(void **state)
{
    (void)state;
    double acc, pur, nmi, ari;

    /* adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 4/7 = 0.5714285714285715;
     * NMI: H(U) = ln 2, H(V) = 1.5 ln 2, I = ln 2 (V determines U) -> 0.8. */
    const int32_t l1[] = {0, 0, 1, 1}, c1[] = {0, 0, 1, 2};
    metrics(l1, c1, 4, &acc, &pur, &nmi, &ari);
    assert_close(ari, 0.5714285714285715, 1e-15);
    assert_close(nmi, 0.8, 1e-15);
    assert_close(acc, 0.75, 0);
    assert_close(pur, 1.0, 0);
    /* ARI and NMI are symmetric. */
    metrics(c1, l1, 4, NULL, NULL, &nmi, &ari);
    assert_close(ari, 4.0 / 7.0, 1e-15);
    assert_close(nmi, 0.8, 1e-15);

    /* User-guide example: ARI = (2 - 1.2) / (4.5 - 1.2) = 8/33 =
     * 0.24242424242424246; I = (2/3) ln 2, H = ln 2 and ln 3, so
     * NMI = (4/3) ln 2 / ln 6; best mapping c0->0, c2->1: ACC 4/6;
     * majority per cluster 2 + 1 + 2: purity 5/6. */
    const int32_t l2[] = {0, 0, 0, 1, 1, 1}, c2[] = {0, 0, 1, 1, 2, 2};
    metrics(l2, c2, 6, &acc, &pur, &nmi, &ari);
    assert_close(ari, 0.24242424242424246, 1e-15);
    assert_close(nmi, (4.0 / 3.0) * log(2.0) / log(6.0), 1e-15);
    assert_close(acc, 4.0 / 6.0, 1e-15);
    assert_close(pur, 5.0 / 6.0, 1e-15);

    /* adjusted_rand_score([0,0,1,1],[0,1,0,1]) = -0.5; independent -> NMI 0. */
    const int32_t l3[] = {0, 0, 1, 1}, c3[] = {0, 1, 0, 1};
    metrics(l3, c3, 4, &acc, &pur, &nmi, &ari);
    assert_close(ari, -0.5, 1e-15);
    assert_close(nmi, 0.0, 1e-15);
    assert_close(acc, 0.5, 0);
    assert_close(pur, 0.5, 0);

    /* adjusted_rand_score([0,0,0,0],[0,1,2,3]) = 0; one constant -> NMI 0. */
    const int32_t l4[] = {0, 0, 0, 0}, c4[] = {0, 1, 2, 3};
    metrics(l4, c4, 4, &acc, &pur, &nmi, &ari);
    assert_close(ari, 0.0, 1e-15);
    assert_close(nmi, 0.0, 0);
    assert_close(acc, 0.25, 0);
    assert_close(pur, 1.0, 0);
}

static void test_degenerate_cases(void **state)
{
    (void)state;
    double acc, pur, nmi, ari;
    /* Both constant (different ids): perfect agreement. */
    const int32_t l1[] = {3, 3, 3, 3, 3}, c1[] = {9, 9, 9, 9, 9};
    metrics(l1, c1, 5, &acc, &pur, &nmi, &ari);
    assert_close(acc, 1.0, 0);
    assert_close(pur, 1.0, 0);
    assert_close(nmi, 1.0, 0);
    assert_close(ari, 1.0, 0);
    /* Both all-singletons. */
    const int32_t l2[] = {0, 1, 2, 3, 4}, c2[] = {4, 2, 3, 0, 1};
    metrics(l2, c2, 5, &acc, &pur, &nmi, &ari);
    assert_close(acc, 1.0, 0);
    assert_close(nmi, 1.0, 1e-15);
    assert_close(ari, 1.0, 0);
    /* A single item. */
    const int32_t l3[] = {65535}, c3[] = {0};
    metrics(l3, c3, 1, &acc, &pur, &nmi, &ari);
    assert_close(acc, 1.0, 0);
    assert_close(pur, 1.0, 0);
    assert_close(nmi, 1.0, 0);
    assert_close(ari, 1.0, 0);
    /* Constant labels, varied clusters (not singletons): NMI 0, ARI 0. */
    const int32_t l4[] = {1, 1, 1, 1, 1, 1}, c4[] = {0, 0, 1, 1, 2, 2};
    metrics(l4, c4, 6, &acc, &pur, &nmi, &ari);
    assert_close(nmi, 0.0, 0);
    assert_close(ari, 0.0, 1e-15);
    assert_close(acc, 2.0 / 6.0, 0);
    assert_close(pur, 1.0, 0);
    /* Extreme ids far apart: the table must not be 65536 x 65536. */
    const int32_t l5[] = {0, 65535, 65535}, c5[] = {65535, 0, 0};
    metrics(l5, c5, 3, &acc, &pur, &nmi, &ari);
    assert_close(acc, 1.0, 0);
    assert_close(ari, 1.0, 1e-15);
}

/* Every item its own cluster, balanced labels: ACC = k/n (one item per label
 * maps, the rest of the clusters have no label left), purity 1, ARI 0,
 * NMI = 2 ln k / (ln k + ln n). Also a wide 20000 x 10 assignment. */
static void test_singleton_clusters(void **state)
{
    (void)state;
    enum { N = 20000, K = 10 };
    int32_t *l = malloc(N * sizeof *l), *c = malloc(N * sizeof *c);
    assert_non_null(l);
    assert_non_null(c);
    for (int i = 0; i < N; i++) {
        l[i] = i % K;
        c[i] = i;
    }
    double acc, pur, nmi, ari;
    metrics(l, c, N, &acc, &pur, &nmi, &ari);
    assert_close(acc, (double)K / N, 1e-15);
    assert_close(pur, 1.0, 0);
    assert_close(ari, 0.0, 1e-12);
    assert_close(nmi, 2 * log((double)K) / (log((double)K) + log((double)N)), 1e-12);
    free(l);
    free(c);
}

/* ------------------------------------------------------------------------ */
/* Metrics: random instances against the references                         */
/* ------------------------------------------------------------------------ */

static void random_instance(int32_t *l, int32_t *c, int n, int kl, int kc)
{
    for (int i = 0; i < n; i++) {
        l[i] = rand_below(kl);
        /* Correlated half the time, so high scores are covered too. */
        c[i] = (rand_below(2) == 0) ? (l[i] * 3 + 1) % kc : rand_below(kc);
    }
}

static void test_acc_bruteforce(void **state)
{
    (void)state;
    enum { MAXN = 80 };
    int32_t l[MAXN], c[MAXN];
    rng_state = 12345;
    int more_clusters = 0;
    for (int trial = 0; trial < 600; trial++) {
        int kl = 1 + rand_below(7), kc = 1 + rand_below(7);
        int n = 1 + rand_below(MAXN);
        if (trial % 3 == 0 && kc <= kl)
            kc = kl + 1 + rand_below(REF_K - kl); /* more clusters than labels */
        more_clusters += kc > kl;
        random_instance(l, c, n, kl, kc);
        double acc, pur;
        metrics(l, c, n, &acc, &pur, NULL, NULL);
        double want = ref_acc(l, c, n);
        if (fabs(acc - want) > 1e-15)
            print_error("trial %d n=%d kl=%d kc=%d\n", trial, n, kl, kc);
        assert_close(acc, want, 1e-15);
        assert_close(pur, ref_purity(l, c, n), 1e-15);
        assert_true(pur >= acc - 1e-15);
    }
    assert_true(more_clusters >= 200);
}

static void test_nmi_ari_reference(void **state)
{
    (void)state;
    enum { MAXN = 150 };
    int32_t l[MAXN], c[MAXN];
    rng_state = 777;
    for (int trial = 0; trial < 400; trial++) {
        int kl = 1 + rand_below(REF_K), kc = 1 + rand_below(REF_K);
        int n = 1 + rand_below(trial < 100 ? 10 : MAXN);
        random_instance(l, c, n, kl, kc);
        double nmi, ari;
        metrics(l, c, n, NULL, NULL, &nmi, &ari);
        double want_nmi = ref_nmi(l, c, n), want_ari = ref_ari(l, c, n);
        if (fabs(nmi - want_nmi) > 1e-12 || fabs(ari - want_ari) > 1e-12)
            print_error("trial %d n=%d kl=%d kc=%d\n", trial, n, kl, kc);
        assert_close(nmi, want_nmi, 1e-12);
        assert_close(ari, want_ari, 1e-12);
        assert_true(nmi >= 0.0 && nmi <= 1.0);
    }
}

/* Independent uniform labellings: E[ARI] = 0 with a spread of ~1e-4 at this
 * size; the MI bias is about (k-1)^2 / (2n) = 0.004 nats against entropies
 * of ln 10 = 2.3, so NMI is ~0.002. ACC >= 1/k always (average of the k
 * cyclic mappings); random data gives about 0.12. */
static void test_independent_random(void **state)
{
    (void)state;
    enum { N = 10000, K = 10 };
    static int32_t l[N], c[N];
    rng_state = 99;
    for (int rep = 0; rep < 5; rep++) {
        for (int i = 0; i < N; i++) {
            l[i] = rand_below(K);
            c[i] = rand_below(K);
        }
        double acc, pur, nmi, ari;
        metrics(l, c, N, &acc, &pur, &nmi, &ari);
        assert_true(fabs(ari) < 0.01);
        assert_true(nmi >= 0.0 && nmi < 0.01);
        assert_true(acc >= 1.0 / K - 1e-15 && acc < 0.15);
        assert_true(pur >= acc && pur < 0.15);
    }
}

/* ------------------------------------------------------------------------ */
/* Contingency table                                                        */
/* ------------------------------------------------------------------------ */

static void test_contingency_layout(void **state)
{
    (void)state;
    const int32_t l[] = {5, 5, 2, 9, 2, 5}, c[] = {4, 0, 4, 4, 30000, 0};
    cvae__contingency t;
    assert_int_equal(cvae__contingency_build(l, c, 6, &t), CVAE_OK);
    assert_int_equal(t.n, 6);
    assert_int_equal(t.rows, 3); /* clusters 0, 4, 30000 */
    assert_int_equal(t.cols, 3); /* labels 2, 5, 9 */
    const int32_t rid[] = {0, 4, 30000}, cid[] = {2, 5, 9};
    const int64_t want[3][3] = {{0, 2, 0}, {1, 1, 1}, {1, 0, 0}};
    for (int r = 0; r < 3; r++) {
        assert_int_equal(t.row_id[r], rid[r]);
        assert_int_equal(t.col_id[r], cid[r]);
        int64_t rs = 0;
        for (int k = 0; k < 3; k++) {
            assert_int_equal(t.counts[r * 3 + k], want[r][k]);
            rs += want[r][k];
        }
        assert_int_equal(t.row_sum[r], rs);
        assert_int_equal(t.col_sum[r], want[0][r] + want[1][r] + want[2][r]);
    }
    cvae__contingency_free(&t);
    assert_null(t.block);
    cvae__contingency_free(&t); /* idempotent */
    cvae__contingency_free(NULL);

    /* Failure leaves the table empty and freeable. */
    const int32_t bad[] = {1, -2};
    assert_int_equal(cvae__contingency_build(bad, c, 2, &t), CVAE_E_INVALID_ARG);
    assert_null(t.block);
    cvae__contingency_free(&t);
    assert_int_equal(cvae__contingency_build(l, c, 6, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__metrics_from_contingency(NULL, NULL, NULL, NULL, NULL),
                     CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__metrics_from_contingency(&t, NULL, NULL, NULL, NULL),
                     CVAE_E_INVALID_ARG);
}

/* ------------------------------------------------------------------------ */
/* Hungarian                                                                */
/* ------------------------------------------------------------------------ */

/* Checks the assignment is valid (distinct columns, exactly min(rows, cols)
 * rows assigned) and returns its weight. */
static int64_t assignment_value(const int64_t *w, int rows, int cols, const int *a)
{
    char *taken = calloc((size_t)cols, 1);
    assert_non_null(taken);
    int assigned = 0;
    int64_t sum = 0;
    for (int r = 0; r < rows; r++) {
        if (a[r] < 0) {
            assert_int_equal(a[r], -1);
            continue;
        }
        assert_true(a[r] < cols);
        assert_false(taken[a[r]]);
        taken[a[r]] = 1;
        assigned++;
        sum += w[(size_t)r * cols + a[r]];
    }
    assert_int_equal(assigned, rows < cols ? rows : cols);
    free(taken);
    return sum;
}

/* Exact optimum by DP over subsets of the larger side: the i-th item of the
 * smaller side goes to some unused item of the larger side. */
static int64_t dp_best(const int64_t *w, int rows, int cols)
{
    int tr = rows > cols;
    int small = tr ? cols : rows, big = tr ? rows : cols;
    size_t nm = (size_t)1 << big;
    int64_t *dp = malloc(nm * sizeof *dp);
    char *ok = calloc(nm, 1);
    assert_non_null(dp);
    assert_non_null(ok);
    dp[0] = 0;
    ok[0] = 1;
    int64_t best = INT64_MIN;
    for (size_t mask = 0; mask < nm; mask++) {
        if (!ok[mask])
            continue;
        int i = 0;
        for (size_t bits = mask; bits; bits &= bits - 1)
            i++;
        if (i == small) {
            if (dp[mask] > best)
                best = dp[mask];
            continue;
        }
        for (int j = 0; j < big; j++) {
            if (mask & ((size_t)1 << j))
                continue;
            int64_t x = tr ? w[(size_t)j * cols + i] : w[(size_t)i * cols + j];
            size_t to = mask | ((size_t)1 << j);
            if (!ok[to] || dp[mask] + x > dp[to]) {
                dp[to] = dp[mask] + x;
                ok[to] = 1;
            }
        }
    }
    free(dp);
    free(ok);
    return best;
}

static void test_hungarian_small_exact(void **state)
{
    (void)state;
    enum { MAXD = 11 };
    int64_t w[MAXD * MAXD];
    int a[MAXD];
    rng_state = 4242;
    for (int trial = 0; trial < 400; trial++) {
        int kind = trial % 4;
        /* Near-limit weights: keep at most 7 terms so sums of +-2^60 fit. */
        int maxd = kind == 3 ? 7 : MAXD;
        int rows = 1 + rand_below(maxd), cols = 1 + rand_below(maxd);
        for (int k = 0; k < rows * cols; k++) {
            switch (kind) {
            case 0: w[k] = rand_below(4); break;              /* many ties */
            case 1: w[k] = rand_below(1000000); break;
            case 2: w[k] = rand_below(2001) - 1000; break;    /* negative weights */
            default:                                          /* near the limit */
                w[k] = CVAE__HUNGARIAN_MAX_WEIGHT - rand_below(1000) * (int64_t)1000000007;
                if (rand_below(2))
                    w[k] = -w[k];
                break;
            }
        }
        assert_int_equal(cvae__hungarian_max(w, rows, cols, a), CVAE_OK);
        int64_t got = assignment_value(w, rows, cols, a), want = dp_best(w, rows, cols);
        if (got != want)
            print_error("trial %d: %d x %d kind %d: %lld vs %lld\n", trial, rows, cols, kind,
                        (long long)got, (long long)want);
        assert_true(got == want);
    }
}

static double now_seconds(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int64_t greedy_value(const int64_t *w, int rows, int cols)
{
    char *taken = calloc((size_t)cols, 1);
    assert_non_null(taken);
    int64_t sum = 0;
    for (int r = 0; r < rows; r++) {
        int best = -1;
        for (int k = 0; k < cols; k++)
            if (!taken[k] && (best < 0 || w[(size_t)r * cols + k] > w[(size_t)r * cols + best]))
                best = k;
        if (best >= 0) {
            taken[best] = 1;
            sum += w[(size_t)r * cols + best];
        }
    }
    free(taken);
    return sum;
}

/* Local optimality: no exchange of two rows' columns, and no move of a
 * row to a free column (or of a column to a free row), improves. */
static void assert_no_improving_swap(const int64_t *w, int rows, int cols, const int *a)
{
    char *col_taken = calloc((size_t)cols, 1);
    assert_non_null(col_taken);
    for (int r = 0; r < rows; r++)
        if (a[r] >= 0)
            col_taken[a[r]] = 1;
    for (int r1 = 0; r1 < rows; r1++) {
        const int64_t *w1 = w + (size_t)r1 * cols;
        for (int r2 = r1 + 1; r2 < rows; r2++) {
            const int64_t *w2 = w + (size_t)r2 * cols;
            if (a[r1] >= 0 && a[r2] >= 0)
                assert_true(w1[a[r2]] + w2[a[r1]] <= w1[a[r1]] + w2[a[r2]]);
            else if (a[r1] >= 0)
                assert_true(w2[a[r1]] <= w1[a[r1]]);
            else if (a[r2] >= 0)
                assert_true(w1[a[r2]] <= w2[a[r2]]);
        }
        if (a[r1] >= 0)
            for (int k = 0; k < cols; k++)
                if (!col_taken[k])
                    assert_true(w1[k] <= w1[a[r1]]);
    }
    free(col_taken);
}

static void test_hungarian_256(void **state)
{
    (void)state;
    enum { D = 256 };
    int64_t *w = malloc((size_t)D * D * sizeof *w);
    int a[D], perm[D];
    assert_non_null(w);
    rng_state = 2024;
    for (int k = 0; k < D * D; k++)
        w[k] = rand_below(1000000);

    double best_time = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_seconds();
        assert_int_equal(cvae__hungarian_max(w, D, D, a), CVAE_OK);
        double dt = now_seconds() - t0;
        if (dt < best_time)
            best_time = dt;
    }
    print_message("hungarian 256x256: %.2f ms (best of 3)\n", best_time * 1e3);
    /* The target is < 50 ms; the bound here leaves room for a loaded machine
     * and sanitizer builds. Set CVAE_TEST_NO_TIMING under valgrind. */
    if (getenv("CVAE_TEST_NO_TIMING") == NULL)
        assert_true(best_time < 0.5);

    int64_t opt = assignment_value(w, D, D, a);
    assert_true(opt >= greedy_value(w, D, D));
    assert_no_improving_swap(w, D, D, a);
    for (int i = 0; i < D; i++)
        perm[i] = i;
    for (int trial = 0; trial < 1000; trial++) {
        for (int i = D - 1; i > 0; i--) {
            int j = rand_below(i + 1), tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        assert_true(assignment_value(w, D, D, perm) <= opt);
    }

    /* Planted optimum: one huge entry per row and column, so any other
     * assignment loses at least 10^6 - 1000. */
    for (int i = 0; i < D; i++)
        perm[i] = i;
    for (int i = D - 1; i > 0; i--) {
        int j = rand_below(i + 1), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (int k = 0; k < D * D; k++)
        w[k] = rand_below(1000);
    for (int i = 0; i < D; i++)
        w[(size_t)i * D + perm[i]] = 1000000;
    assert_int_equal(cvae__hungarian_max(w, D, D, a), CVAE_OK);
    for (int i = 0; i < D; i++)
        assert_int_equal(a[i], perm[i]);
    free(w);
}

static void test_hungarian_rectangular(void **state)
{
    (void)state;
    enum { R = 300, C = 40 };
    int64_t *w = malloc((size_t)R * C * sizeof *w), *wt = malloc((size_t)R * C * sizeof *wt);
    int a[R], at[C];
    assert_non_null(w);
    assert_non_null(wt);
    rng_state = 31337;
    for (int r = 0; r < R; r++)
        for (int k = 0; k < C; k++)
            wt[(size_t)k * R + r] = w[(size_t)r * C + k] = rand_below(100000);

    /* Tall (more clusters than labels) and its transpose. */
    assert_int_equal(cvae__hungarian_max(w, R, C, a), CVAE_OK);
    assert_int_equal(cvae__hungarian_max(wt, C, R, at), CVAE_OK);
    int64_t v = assignment_value(w, R, C, a), vt = assignment_value(wt, C, R, at);
    assert_true(v == vt);
    assert_true(v >= greedy_value(w, R, C));
    assert_true(vt >= greedy_value(wt, C, R));
    assert_no_improving_swap(w, R, C, a);
    assert_no_improving_swap(wt, C, R, at);

    /* Planted: label k's best cluster is plant[k]; the other rows stay -1. */
    int plant[C];
    char chosen[R] = {0};
    for (int k = 0; k < C; k++) {
        do
            plant[k] = rand_below(R);
        while (chosen[plant[k]]);
        chosen[plant[k]] = 1;
    }
    for (int i = 0; i < R * C; i++)
        w[i] = rand_below(100);
    for (int k = 0; k < C; k++)
        w[(size_t)plant[k] * C + k] = 1000000;
    assert_int_equal(cvae__hungarian_max(w, R, C, a), CVAE_OK);
    for (int r = 0; r < R; r++)
        if (!chosen[r])
            assert_int_equal(a[r], -1);
    for (int k = 0; k < C; k++)
        assert_int_equal(a[plant[k]], k);
    free(w);
    free(wt);
}

static void test_hungarian_errors(void **state)
{
    (void)state;
    int64_t w[4] = {1, 2, 3, 4};
    int a[2];
    assert_int_equal(cvae__hungarian_max(NULL, 2, 2, a), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__hungarian_max(w, 2, 2, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__hungarian_max(w, 0, 2, a), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__hungarian_max(w, 2, -1, a), CVAE_E_INVALID_ARG);
    w[3] = CVAE__HUNGARIAN_MAX_WEIGHT + 1;
    assert_int_equal(cvae__hungarian_max(w, 2, 2, a), CVAE_E_INVALID_ARG);
    assert_non_null(strstr(cvae_last_error(), "[1][1]"));
    /* The limit itself is accepted; 1 - 2^60 < 2 + 3, so the anti-diagonal. */
    w[3] = -CVAE__HUNGARIAN_MAX_WEIGHT;
    assert_int_equal(cvae__hungarian_max(w, 2, 2, a), CVAE_OK);
    assert_int_equal(a[0], 1);
    assert_int_equal(a[1], 0);
    w[3] = 4;
    w[0] = INT64_MIN;
    assert_int_equal(cvae__hungarian_max(w, 1, 1, a), CVAE_E_INVALID_ARG);
}

/* ------------------------------------------------------------------------ */
/* Errors of the public function                                            */
/* ------------------------------------------------------------------------ */

static void expect_invalid(const int32_t *l, const int32_t *c, int64_t n, const char *needle)
{
    double acc = -7, pur = -7, nmi = -7, ari = -7;
    assert_int_equal(cvae_cluster_metrics(l, c, n, &acc, &pur, &nmi, &ari), CVAE_E_INVALID_ARG);
    const char *msg = cvae_last_error();
    assert_non_null(msg);
    assert_true(msg[0] != '\0');
    if (strstr(msg, needle) == NULL)
        print_error("message \"%s\" lacks \"%s\"\n", msg, needle);
    assert_non_null(strstr(msg, needle));
    /* Outputs untouched on failure. */
    assert_true(acc == -7 && pur == -7 && nmi == -7 && ari == -7);
}

static void test_errors(void **state)
{
    (void)state;
    int32_t l[8] = {0, 1, 2, 0, 1, 2, 0, 1}, c[8] = {0, 0, 1, 1, 2, 2, 3, 3};
    /* Each case has a distinct expected message, so a stale one fails. */
    expect_invalid(NULL, c, 8, "labels is NULL");
    expect_invalid(l, NULL, 8, "clusters is NULL");
    expect_invalid(l, c, 0, "got 0");
    expect_invalid(l, c, -5, "got -5");
    l[5] = -1;
    expect_invalid(l, c, 8, "labels[5] = -1");
    l[5] = 70000;
    expect_invalid(l, c, 8, "labels[5] = 70000");
    l[5] = 65536;
    expect_invalid(l, c, 8, "labels[5] = 65536");
    l[5] = 2;
    c[7] = 65536;
    expect_invalid(l, c, 8, "clusters[7] = 65536");
    c[2] = INT32_MIN;
    expect_invalid(l, c, 8, "clusters[2]");
    c[2] = 1;
    c[7] = 65535; /* the largest id is valid */

    /* NULL outputs are allowed, alone or all together. */
    assert_int_equal(cvae_cluster_metrics(l, c, 8, NULL, NULL, NULL, NULL), CVAE_OK);
    double acc, pur, nmi, ari;
    assert_int_equal(cvae_cluster_metrics(l, c, 8, &acc, NULL, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_cluster_metrics(l, c, 8, NULL, &pur, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_cluster_metrics(l, c, 8, NULL, NULL, &nmi, NULL), CVAE_OK);
    assert_int_equal(cvae_cluster_metrics(l, c, 8, NULL, NULL, NULL, &ari), CVAE_OK);
    double acc2, pur2, nmi2, ari2;
    metrics(l, c, 8, &acc2, &pur2, &nmi2, &ari2);
    assert_true(acc == acc2 && pur == pur2 && nmi == nmi2 && ari == ari2);
    /* Validation happens even when nothing is requested. */
    l[0] = -3;
    assert_int_equal(cvae_cluster_metrics(l, c, 8, NULL, NULL, NULL, NULL), CVAE_E_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_perfect_permuted),
        cmocka_unit_test(test_sklearn_doc_values),
        cmocka_unit_test(test_degenerate_cases),
        cmocka_unit_test(test_singleton_clusters),
        cmocka_unit_test(test_acc_bruteforce),
        cmocka_unit_test(test_nmi_ari_reference),
        cmocka_unit_test(test_independent_random),
        cmocka_unit_test(test_contingency_layout),
        cmocka_unit_test(test_hungarian_small_exact),
        cmocka_unit_test(test_hungarian_256),
        cmocka_unit_test(test_hungarian_rectangular),
        cmocka_unit_test(test_hungarian_errors),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
