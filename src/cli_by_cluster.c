/* convvae cluster --by-cluster: one folder per cluster of links to (or
 * copies of) its image files, so that a person can browse the clusters
 * with a file manager. */
#define _XOPEN_SOURCE 700

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_images.h"

/* 1 if dir is missing or an empty directory (created then), else 0. */
static int fresh_dir(const char *dir)
{
    if (mkdir(dir, 0777) == 0)
        return 1;
    if (errno != EEXIST)
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    return empty;
}

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (out < 0) {
        close(in);
        return -1;
    }
    char buf[1 << 16];
    ssize_t got;
    int rc = 0;
    while (rc == 0 && (got = read(in, buf, sizeof buf)) != 0) {
        if (got < 0) {
            if (errno != EINTR)
                rc = -1;
            continue;
        }
        for (ssize_t done = 0; done < got;) {
            ssize_t w = write(out, buf + done, (size_t)(got - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = -1;
                break;
            }
            done += w;
        }
    }
    close(in);
    if (close(out) != 0)
        rc = -1;
    return rc;
}

int cli_link_by_cluster(const char *dir, const cvae_dataset *data, const int32_t *clusters,
                        int64_t n, int k)
{
    if (!fresh_dir(dir))
        return cli_error(CVAE_E_IO, "--by-cluster: '%s' %s", dir,
                         errno == EEXIST || errno == 0 ? "exists and is not empty"
                                                       : strerror(errno));
    size_t cap = strlen(dir) + 64 + PATH_MAX;
    char *link = malloc(cap);
    if (!link)
        return cli_error(CVAE_E_NOMEM, "cannot allocate a path");
    int rc = CLI_EXIT_OK, copies = 0;
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
        if (symlink(target, link) != 0) {
            if (copy_file(target, link) != 0)
                rc = cli_error(CVAE_E_IO, "cannot link or copy %s to %s: %s", path, link,
                               strerror(errno));
            else
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
