/* Atomic replacement of regular files (see atomic_file.h for the rules). */
#define _DEFAULT_SOURCE /* flock; includes the POSIX 2008 interfaces */

#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/error.h"

static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

static cvae_status io_fail(const char *what, const char *path, int e)
{
    char why[128];
    cvae__errno_text(e, why, sizeof why);
    return cvae__fail(CVAE_E_IO, "cannot %s %s: %s", what, path, why);
}

/* The file writing `path` replaces, malloc'ed into *target. */
static cvae_status resolve(const char *path, char **target)
{
    struct stat sb;
    *target = NULL;
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
        char *real = realpath(path, NULL);
        if (!real) {
            if (errno == ENOENT)
                return cvae__fail(CVAE_E_IO,
                                  "cannot save %s: it is a symbolic link to a file that does "
                                  "not exist; refusing to write through it",
                                  path);
            return io_fail("resolve the symbolic link", path, errno);
        }
        *target = real;
    } else {
        size_t n = strlen(path) + 1;
        if (!(*target = malloc(n)))
            return cvae__fail(CVAE_E_NOMEM, "cannot allocate a path");
        memcpy(*target, path, n);
    }
    if (stat(*target, &sb) == 0) {
        if (!S_ISREG(sb.st_mode)) {
            free(*target);
            *target = NULL;
            return cvae__fail(CVAE_E_IO,
                              "cannot save %s: it is %s, not a regular file; refusing to "
                              "replace it",
                              path, kind_of(sb.st_mode));
        }
    } else if (errno != ENOENT) {
        int e = errno;
        free(*target);
        *target = NULL;
        return io_fail("save", path, e);
    }
    return CVAE_OK;
}

/* Open ".NAME.tmp" locked and empty. The name may be renamed away by a save
 * that held the lock just before this one, so the locked file must still be
 * the one the name refers to; otherwise start over. */
static cvae_status open_locked(cvae__atomic_file *af, const char *path)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        int fd = open(af->tmp, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
        if (fd < 0) {
            if (errno == ELOOP)
                return cvae__fail(CVAE_E_IO,
                                  "cannot save %s: its temporary file %s is a symbolic link",
                                  path, af->tmp);
            return io_fail("create the temporary file for", path, errno);
        }
        struct stat a, b;
        const char *bad = NULL;
        if (fstat(fd, &a) != 0) {
            int e = errno;
            close(fd);
            return io_fail("stat the temporary file for", path, e);
        }
        /* Only a file that can be nothing but an earlier save's leftover is
         * taken over: never one with other names (truncating it would
         * truncate them) or another user's. */
        if (!S_ISREG(a.st_mode))
            bad = kind_of(a.st_mode);
        else if (a.st_nlink > 1)
            bad = "a file with other hard links";
        else if (a.st_uid != geteuid())
            bad = "another user's file";
        if (bad) {
            close(fd);
            return cvae__fail(CVAE_E_IO, "cannot save %s: its temporary file %s is %s", path,
                              af->tmp, bad);
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(fd);
            if (e == EWOULDBLOCK)
                return cvae__fail(CVAE_E_IO,
                                  "cannot save %s: another save to it is in progress (it holds "
                                  "%s)",
                                  path, af->tmp);
            return io_fail("lock the temporary file for", path, e);
        }
        if (stat(af->tmp, &b) != 0 || b.st_dev != a.st_dev || b.st_ino != a.st_ino) {
            close(fd);
            continue;
        }
        if (ftruncate(fd, 0) != 0) {
            int e = errno;
            close(fd);
            return io_fail("truncate the temporary file for", path, e);
        }
        af->fd = fd;
        return CVAE_OK;
    }
    return cvae__fail(CVAE_E_IO, "cannot save %s: its temporary file %s keeps being replaced",
                      path, af->tmp);
}

static void release(cvae__atomic_file *af)
{
    if (af->fd >= 0)
        close(af->fd);
    af->fd = -1;
    free(af->tmp);
    free(af->target);
    af->tmp = af->target = NULL;
}

cvae_status cvae__atomic_open(cvae__atomic_file *af, const char *path)
{
    CVAE__CHECK_PTR(af);
    af->fd = -1;
    af->tmp = af->target = NULL;
    CVAE__CHECK_PTR(path);
    cvae_status st = resolve(path, &af->target);
    if (st)
        return st;
    const char *slash = strrchr(af->target, '/');
    size_t dirlen = slash ? (size_t)(slash - af->target) + 1 : 0;
    size_t n = strlen(af->target) + sizeof "..tmp";
    if (!(af->tmp = malloc(n))) {
        release(af);
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate a path");
    }
    snprintf(af->tmp, n, "%.*s.%s.tmp", (int)dirlen, af->target, af->target + dirlen);
    if ((st = open_locked(af, path))) {
        release(af); /* not ours: never unlinked */
        return st;
    }
    /* Keep the mode of the file being replaced, or the usual 0644. */
    struct stat sb;
    mode_t mode = 0644;
    if (stat(af->target, &sb) == 0 && S_ISREG(sb.st_mode))
        mode = sb.st_mode & 07777;
    if (fchmod(af->fd, mode) != 0) {
        int e = errno;
        cvae__atomic_abort(af);
        return io_fail("set permissions on the temporary file for", path, e);
    }
    return CVAE_OK;
}

void cvae__atomic_abort(cvae__atomic_file *af)
{
    if (!af)
        return;
    /* Unlinked while the lock is held: the name is ours until close. */
    if (af->fd >= 0 && af->tmp)
        unlink(af->tmp);
    release(af);
}

cvae_status cvae__atomic_commit(cvae__atomic_file *af, const char *path)
{
    CVAE__CHECK_PTR(af);
    if (af->fd < 0)
        return cvae__fail(CVAE_E_INVALID_ARG, "cvae__atomic_commit: file not open");
    if (fsync(af->fd) != 0) {
        int e = errno;
        cvae__atomic_abort(af);
        return io_fail("sync", path, e);
    }
    if (rename(af->tmp, af->target) != 0) {
        int e = errno;
        cvae__atomic_abort(af);
        return io_fail("rename over", path, e);
    }
    /* The data is synced and the rename done: a close error cannot lose it. */
    close(af->fd);
    af->fd = -1;

    /* The rename is durable once the directory entry is on disk. Some file
     * systems cannot fsync a directory (EINVAL); nothing more can be done
     * there. */
    cvae_status st = CVAE_OK;
    const char *slash = strrchr(af->target, '/');
    if (slash)
        af->tmp[slash == af->target ? 1 : slash - af->target] = '\0'; /* tmp holds the dir now */
    const char *dir = slash ? af->tmp : ".";
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP)) {
        char why[128];
        cvae__errno_text(errno, why, sizeof why);
        st = cvae__fail(CVAE_E_IO, "wrote %s but cannot sync its directory %s: %s", path, dir,
                        why);
    }
    if (dfd >= 0)
        close(dfd);
    release(af);
    return st;
}
