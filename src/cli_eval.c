/* convvae eval / convvae cluster: run a saved model over a data set and
 * report its clustering metrics, or write every image's cluster as CSV. */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "cli_images.h"
#include "cli_mpi.h"

typedef struct infer_opts {
    const char *model;
    const char *out; /* cluster only */
    cli_data_opts data;
    cli_image_opts img;     /* cluster only: image files */
    const char *by_cluster; /* cluster only: folder of per-cluster links */
} infer_opts;

static void infer_help(const char *cmd)
{
    int cluster = strcmp(cmd, "cluster") == 0;
    printf("Usage: convvae %s --model PATH (--dataset NAME [--split train|test] |\n"
           "                       --images FILE [--labels FILE]%s)%s\n\n",
           cmd, cluster ? " |\n                       --images-dir DIR | --images-list FILE" : "",
           cluster ? " [--out FILE] [--by-cluster DIR]" : "");
    if (cluster)
        printf("Write the cluster of every image as CSV: a header 'index,cluster,probability',\n"
               "then one row per image with its 0-based index, the most probable cluster and\n"
               "that cluster's probability q(y|x). For image files the header is\n"
               "'path,cluster,probability' and each row starts with the file's path (quoted\n"
               "when it holds a comma, a quote or a line break), in the data set's order.\n\n");
    else
        printf("Print the clustering metrics of a model against the labels of a data set:\n"
               "acc (Hungarian one-to-one mapping), purity, nmi, ari, the image count n, and\n"
               "the mean loss terms (u = mu, no sampling noise): loss (lambda*recon + kl +\n"
               "category + balance), recon, kl, category, balance.\n\n");
    printf("  --model PATH          checkpoint written by 'convvae train'\n");
    if (cluster)
        printf("  --out FILE            write the CSV to FILE (default: standard output)\n");
    if (cluster)
        printf("  --by-cluster DIR      also make DIR/cluster_K/ for every cluster K, holding a\n"
               "                        symbolic link (a copy where links are not possible) to\n"
               "                        each of its image files; DIR must not exist or be empty\n");
    printf("  -h, --help            this text\n\n");
    cli_data_help(stdout, CLI_DATA_SPLIT);
    if (cluster) {
        printf("\n");
        cli_images_help(stdout, CLI_IMAGES_THREADS);
    }
}

/* Returns 0 to go on, -1 after --help, or an exit code. */
static int parse_infer(const char *cmd, int argc, char **argv, infer_opts *o)
{
    cli_args a;
    cli_args_init(&a, cmd, argc, argv);
    memset(o, 0, sizeof *o);
    cli_data_init(&o->data);
    cli_images_init(&o->img);
    const int cluster = strcmp(cmd, "cluster") == 0;
    int r;
    while ((r = cli_next(&a)) != 0) {
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (cli_is(&a, "help")) {
            infer_help(cmd);
            return -1;
        }
        int d = cluster ? cli_images_flag(&a, &o->img, CLI_IMAGES_THREADS) : 0;
        if (d == 0)
            d = cli_data_flag(&a, &o->data, CLI_DATA_SPLIT);
        if (d < 0)
            return CLI_EXIT_USAGE;
        if (d > 0)
            continue;
        if (cli_is(&a, "model")) {
            if (cli_value(&a, &o->model))
                return CLI_EXIT_USAGE;
        } else if (cluster && cli_is(&a, "out")) {
            if (cli_value(&a, &o->out))
                return CLI_EXIT_USAGE;
        } else if (cluster && cli_is(&a, "by-cluster")) {
            if (cli_value(&a, &o->by_cluster))
                return CLI_EXIT_USAGE;
        } else {
            return cli_unknown(&a);
        }
    }
    if (!o->model)
        return cli_usage_error(cmd, "--model PATH is required");
    int rc = cli_images_check(&o->img, &o->data, cmd);
    if (rc)
        return rc;
    if (o->by_cluster && !cli_images_given(&o->img))
        return cli_usage_error(cmd, "--by-cluster needs image files (--images-dir or "
                               "--images-list)");
    return cli_data_check(&o->data, cmd, !cli_images_given(&o->img));
}

/* The model and the selected data set; returns an exit code. */
static int load_inputs(const infer_opts *o, cvae_model **model, cvae_dataset **data)
{
    int rc = cli_load_model(o->model, model);
    if (rc)
        return rc;
    if (cli_images_given(&o->img))
        return cli_images_load_for_model(&o->img, *model, data);
    /* Explicit files are "the data"; the split only picks from --dataset,
     * and --limit applies to whichever split that is. */
    cli_data_opts d = o->data;
    cli_split split = d.images ? CLI_SPLIT_TRAIN : d.split;
    d.test_limit = d.limit;
    return cli_data_load(&d, split, 1, data);
}

int cli_eval(int argc, char **argv)
{
    infer_opts o;
    int rc = parse_infer("eval", argc, argv, &o);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    cvae_model *model = NULL;
    cvae_dataset *data = NULL;
    if (!(rc = load_inputs(&o, &model, &data))) {
        double acc, purity, nmi, ari, loss[CVAE_LOSS_COUNT];
        int64_t n = 0;
        rc = cli_mpi_attach(model); /* cvae_model_loss then splits each batch */
        cvae_status st = rc ? CVAE_OK : cli_mpi_evaluate(model, data, &acc, &purity, &nmi, &ari);
        if (!st)
            st = cvae_dataset_shape(data, &n, NULL, NULL, NULL);
        if (!st)
            st = cvae_model_loss(model, data, loss, CVAE_LOSS_COUNT);
        if (rc) {
        } else if (st) {
            rc = cli_lib_error(st);
        } else {
            printf("acc %.4f\npurity %.4f\nnmi %.4f\nari %.4f\nn %lld\n", acc, purity, nmi, ari,
                   (long long)n);
            printf("loss %.4f\nrecon %.4f\nkl %.4f\ncategory %.4f\nbalance %.4f\n",
                   loss[CVAE_LOSS_TOTAL], loss[CVAE_LOSS_RECON], loss[CVAE_LOSS_KL],
                   loss[CVAE_LOSS_CATEGORY], loss[CVAE_LOSS_BALANCE]);
        }
    }
    cvae_dataset_destroy(data);
    cvae_model_destroy(model);
    return rc;
}

static int write_csv(FILE *f, const cvae_dataset *data, const int32_t *clusters,
                     const float *proba, int64_t n, int k)
{
    const char *path = NULL;
    const int paths = cvae_dataset_path(data, 0, &path) == CVAE_OK;
    if (fputs(paths ? "path,cluster,probability\n" : "index,cluster,probability\n", f) == EOF)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        int32_t c = clusters[i];
        double p = c >= 0 && c < k ? proba[(size_t)i * (size_t)k + (size_t)c] : 0.0;
        if (paths) {
            if (cvae_dataset_path(data, i, &path) != CVAE_OK || cli_csv_field(f, path) != 0)
                return -1;
        } else if (fprintf(f, "%lld", (long long)i) < 0) {
            return -1;
        }
        if (fprintf(f, ",%d,%.6f\n", (int)c, p) < 0)
            return -1;
    }
    return 0;
}

int cli_cluster(int argc, char **argv)
{
    infer_opts o;
    int rc = parse_infer("cluster", argc, argv, &o);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    /* Every output before any work: a bad path must not cost a pass over
     * the data set. */
    if ((o.out && (rc = cli_check_output(o.out))) ||
        (o.by_cluster && (rc = cli_check_output_dir(o.by_cluster))))
        return rc;
    cvae_model *model = NULL;
    cvae_dataset *data = NULL;
    cvae_config *cfg = NULL;
    int32_t *clusters = NULL;
    float *proba = NULL;
    if ((rc = load_inputs(&o, &model, &data)))
        goto done;

    int64_t n = 0;
    int k = 0;
    cvae_status st;
    if ((st = cvae_dataset_shape(data, &n, NULL, NULL, NULL)) ||
        (st = cvae_model_get_config(model, &cfg)) || (st = cvae_config_get_clusters(cfg, &k))) {
        rc = cli_lib_error(st);
        goto done;
    }
    if ((uint64_t)n > SIZE_MAX / sizeof(float) / (size_t)k) {
        rc = cli_error(CVAE_E_INVALID_ARG, "%lld images x %d clusters overflow memory",
                       (long long)n, k);
        goto done;
    }
    clusters = malloc((size_t)n * sizeof *clusters);
    proba = malloc((size_t)n * (size_t)k * sizeof *proba);
    if (!clusters || !proba) {
        rc = cli_error(CVAE_E_NOMEM, "cannot allocate predictions for %lld images",
                       (long long)n);
        goto done;
    }
    if ((st = cli_mpi_predict_dataset(model, data, clusters, proba))) {
        rc = cli_lib_error(st);
        goto done;
    }

    if (cli_mpi_rank() != 0) {
        /* rank 0 writes the whole set's CSV */
    } else if (o.out) {
        cli_outfile f;
        if ((rc = cli_outfile_open(&f, o.out)))
            goto done;
        if (write_csv(f.f, data, clusters, proba, n, k) != 0) {
            cli_outfile_abort(&f);
            rc = cli_error(CVAE_E_IO, "cannot write %s", o.out);
            goto done;
        }
        rc = cli_outfile_commit(&f);
    } else if (write_csv(stdout, data, clusters, proba, n, k) != 0 || fflush(stdout) != 0) {
        rc = cli_error(CVAE_E_IO, "cannot write to standard output");
    }
    if (!rc && o.by_cluster)
        rc = cli_link_by_cluster(o.by_cluster, data, clusters, n, k);

done:
    free(clusters);
    free(proba);
    cvae_config_destroy(cfg);
    cvae_dataset_destroy(data);
    cvae_model_destroy(model);
    return rc;
}
