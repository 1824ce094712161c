/* convvae cluster --by-cluster: one folder per cluster of links to (or
 * copies of) its image files, so that a person can browse the clusters
 * with a file manager. */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_images.h"

/* Copy the file `from` to the new file `to`, atomically (cli_outfile), so
 * a failed copy leaves nothing half-written. Returns an exit code (errors
 * reported). */
static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return cli_error(CVAE_E_IO, "cannot read %s: %s", from, strerror(errno));
    cli_outfile o;
    int rc = cli_outfile_open(&o, to);
    if (rc) {
        fclose(in);
        return rc;
    }
    char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, got, o.f) != got)
            break;
    int bad_in = ferror(in);
    fclose(in);
    if (bad_in) {
        cli_outfile_abort(&o);
        return cli_error(CVAE_E_IO, "cannot read %s", from);
    }
    return cli_outfile_commit(&o); /* reports a failed write */
}

int cli_link_by_cluster(const char *dir, const cvae_dataset *data, const int32_t *clusters,
                        int64_t n, int k)
{
    /* Checked before any work as well; again here, as the data set took a
     * while to read. */
    int rc = cli_check_output_dir(dir);
    if (rc)
        return rc;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return cli_error(CVAE_E_IO, "cannot create %s: %s", dir, strerror(errno));
    size_t cap = strlen(dir) + 64 + PATH_MAX;
    char *link = malloc(cap);
    if (!link)
        return cli_error(CVAE_E_NOMEM, "cannot allocate a path");
    int copies = 0;
    for (int c = 0; c < k && !rc; c++) {
        snprintf(link, cap, "%s/cluster_%0*d", dir, k > 100 ? 4 : k > 10 ? 2 : 1, c);
        if (mkdir(link, 0777) != 0)
            rc = cli_error(CVAE_E_IO, "cannot create %s: %s", link, strerror(errno));
    }
    for (int64_t i = 0; i < n && !rc; i++) {
        const char *path = NULL;
        cvae_status st = cvae_dataset_path(data, i, &path);
        if (st) {
            rc = cli_lib_error(st);
            break;
        }
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        snprintf(link, cap, "%s/cluster_%0*d/%06lld_%s", dir, k > 100 ? 4 : k > 10 ? 2 : 1,
                 (int)clusters[i], (long long)i, base);
        /* Absolute targets, so the links work wherever DIR is. */
        char *target = realpath(path, NULL);
        if (!target) {
            rc = cli_error(CVAE_E_IO, "cannot resolve %s: %s", path, strerror(errno));
            break;
        }
        /* A new name in a new folder: symlink() itself is atomic. Where a
         * file system takes no links (EPERM: FAT, some network shares), a
         * copy instead. */
        if (symlink(target, link) != 0) {
            if (errno != EPERM && errno != ENOSYS && errno != EOPNOTSUPP)
                rc = cli_error(CVAE_E_IO, "cannot link %s to %s: %s", link, path,
                               strerror(errno));
            else if (!(rc = copy_file(target, link)))
                copies++;
        }
        free(target);
    }
    free(link);
    if (!rc && copies)
        cli_warn("--by-cluster: %d file%s copied (symbolic links are not possible there)",
                 copies, copies == 1 ? "" : "s");
    return rc;
}
