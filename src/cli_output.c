/* Output paths and atomic output files of the convvae tool.
 *
 * The tool writes three kinds of files (checkpoints through the library,
 * PNG grids and CSV files itself) and follows one policy for all of them,
 * the same as the library's checkpoint writer:
 *  - only a regular file is ever replaced; a directory, FIFO, device or
 *    socket at the path is refused (renaming over /dev/null would replace the
 *    device with a plain file);
 *  - a symbolic link keeps pointing where it did: the file it points to is
 *    written, atomically, in that file's own directory; a link to nothing is
 *    refused, because where its target should live is a guess;
 *  - the data goes to a hidden ".NAME.tmp" beside the file that is being
 *    replaced, held under an exclusive lock while it is written, then
 *    renamed over the file. A ".NAME.tmp" left by a killed process holds no
 *    lock, so the next write to NAME takes it over; one whose lock is held
 *    belongs to a write in progress and makes this one fail instead.
 * Commands check every output path before any work (cli_check_output, and
 * cli_check_output_dir for a folder the tool fills), so a bad path costs
 * nothing. PNG files are encoded here too, so that every PNG the tool
 * writes goes through the one libpng writer and the one atomic file. */
#define _DEFAULT_SOURCE /* flock */
#define _POSIX_C_SOURCE 200809L

#include "cli_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *file_kind(mode_t m)
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

/* A copy of the directory part of path ("." for a bare name). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

/* The file that writing `path` must replace (path itself, or the file a
 * symbolic link resolves to), checked against the policy above; *target is
 * malloc'ed. Returns an exit code (errors reported). */
static int resolve_output(const char *path, char **target)
{
    struct stat sb;
    *target = NULL;
    if (*path == '\0' || path[strlen(path) - 1] == '/')
        return cli_error(CVAE_E_IO, "output path '%s' names no file", path);
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
        *target = realpath(path, NULL);
        if (!*target) {
            int e = errno;
            if (e == ENOENT)
                return cli_error(CVAE_E_IO, "%s is a symbolic link to a file that does not "
                                 "exist; refusing to write through it", path);
            return cli_error(CVAE_E_IO, "cannot resolve the symbolic link %s: %s", path,
                             strerror(e));
        }
    } else {
        *target = strdup(path);
        if (!*target)
            return cli_error(CVAE_E_NOMEM, "cannot allocate a path");
    }
    int rc = CLI_EXIT_OK;
    if (stat(*target, &sb) == 0) {
        if (!S_ISREG(sb.st_mode))
            rc = cli_error(CVAE_E_IO, "%s is %s, not a regular file; refusing to replace it",
                           path, file_kind(sb.st_mode));
    } else if (errno != ENOENT) {
        rc = cli_error(CVAE_E_IO, "cannot write %s: %s", path, strerror(errno));
    }
    if (!rc) {
        char *dir = dir_of(*target);
        if (!dir)
            rc = cli_error(CVAE_E_NOMEM, "cannot allocate a path");
        else if (access(dir, W_OK | X_OK) != 0)
            rc = cli_error(CVAE_E_IO, "cannot write %s: directory %s: %s", path, dir,
                           strerror(errno));
        free(dir);
    }
    if (rc) {
        free(*target);
        *target = NULL;
    }
    return rc;
}

int cli_check_output(const char *path)
{
    char *target;
    int rc = resolve_output(path, &target);
    free(target);
    return rc;
}

int cli_outfile_open(cli_outfile *o, const char *path)
{
    memset(o, 0, sizeof *o);
    o->path = path;
    o->fd = -1;
    int rc = resolve_output(path, &o->target);
    if (rc)
        return rc;
    const char *slash = strrchr(o->target, '/');
    size_t dirlen = slash ? (size_t)(slash - o->target) + 1 : 0;
    size_t n = strlen(o->target) + sizeof "..tmp";
    if (!(o->tmp = malloc(n))) {
        cli_outfile_abort(o);
        return cli_error(CVAE_E_NOMEM, "cannot allocate a path");
    }
    snprintf(o->tmp, n, "%.*s.%s.tmp", (int)dirlen, o->target, o->target + dirlen);

    /* Open-lock-verify: the name may be renamed away by a writer that held
     * the lock just before us, so the locked file must still be the one the
     * name refers to; otherwise start over. */
    const char *why = NULL;
    int e = 0;
    for (int attempt = 0; attempt < 16 && o->fd < 0 && !why; attempt++) {
        int fd = open(o->tmp, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
        struct stat a, b;
        if (fd < 0) {
            e = errno;
            why = e == ELOOP ? "it is a symbolic link" : "cannot open it";
        } else if (fstat(fd, &a) != 0) {
            e = errno;
            why = "cannot stat it";
        } else if (!S_ISREG(a.st_mode) || a.st_nlink > 1 || a.st_uid != geteuid()) {
            why = !S_ISREG(a.st_mode) ? "it is not a regular file"
                  : a.st_nlink > 1    ? "it has other hard links"
                                      : "it belongs to another user";
        } else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            e = errno;
            why = e == EWOULDBLOCK ? "another process is writing it" : "cannot lock it";
            if (e == EWOULDBLOCK)
                e = 0;
        } else if (stat(o->tmp, &b) == 0 && b.st_dev == a.st_dev && b.st_ino == a.st_ino) {
            if (ftruncate(fd, 0) != 0) {
                e = errno;
                why = "cannot truncate it";
            } else {
                o->fd = fd;
                fd = -1;
            }
        }
        if (fd >= 0)
            close(fd);
    }
    if (o->fd < 0) {
        rc = cli_error(CVAE_E_IO, "cannot write %s: temporary file %s: %s%s%s", path, o->tmp,
                       why ? why : "it keeps being replaced", e ? ": " : "", e ? strerror(e) : "");
        free(o->tmp); /* not ours: never unlink it */
        o->tmp = NULL;
        cli_outfile_abort(o);
        return rc;
    }
    /* The mode of the file being replaced, or what a plain fopen would give. */
    struct stat sb;
    mode_t mask = umask(0);
    umask(mask);
    mode_t mode = stat(o->target, &sb) == 0 ? sb.st_mode & 07777 : 0666 & ~mask;
    (void)fchmod(o->fd, mode);
    o->f = fdopen(o->fd, "wb");
    if (!o->f) {
        e = errno;
        cli_outfile_abort(o);
        return cli_error(CVAE_E_IO, "cannot open %s: %s", path, strerror(e));
    }
    return CLI_EXIT_OK;
}

int cli_outfile_commit(cli_outfile *o)
{
    int failed = ferror(o->f) || fflush(o->f) != 0 || fsync(o->fd) != 0;
    int e = errno;
    if (failed) {
        cli_outfile_abort(o);
        return cli_error(CVAE_E_IO, "cannot write %s: %s", o->path, strerror(e));
    }
    /* Rename while the lock is still held (closing releases it). */
    if (rename(o->tmp, o->target) != 0) {
        e = errno;
        cli_outfile_abort(o);
        return cli_error(CVAE_E_IO, "cannot rename the temporary file to %s: %s", o->path,
                         strerror(e));
    }
    free(o->tmp);
    o->tmp = NULL;
    int closed = fclose(o->f);
    e = errno;
    o->f = NULL;
    o->fd = -1;
    int rc = CLI_EXIT_OK;
    if (closed != 0)
        rc = cli_error(CVAE_E_IO, "cannot write %s: %s", o->path, strerror(e));
    /* The rename is durable once the directory is synced. */
    char *dir = dir_of(o->target);
    int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(dir);
    free(o->target);
    o->target = NULL;
    return rc;
}

void cli_outfile_abort(cli_outfile *o)
{
    /* Unlink before closing: the lock makes the name ours until then. */
    if (o->tmp && o->fd >= 0)
        unlink(o->tmp);
    if (o->f)
        fclose(o->f);
    else if (o->fd >= 0)
        close(o->fd);
    o->f = NULL;
    o->fd = -1;
    free(o->tmp);
    o->tmp = NULL;
    free(o->target);
    o->target = NULL;
}

int cli_check_output_dir(const char *dir)
{
    struct stat sb;
    if (*dir == '\0')
        return cli_error(CVAE_E_IO, "output folder '' names no folder");
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT)
            return cli_error(CVAE_E_IO, "cannot use %s: %s", dir, strerror(errno));
        if (lstat(dir, &sb) == 0) /* a symbolic link to nothing */
            return cli_error(CVAE_E_IO, "%s is a symbolic link to a folder that does not "
                             "exist; refusing to create it through the link", dir);
        /* Missing: it is created later, so its parent must take it. */
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/')
            n--;
        char *trimmed = strndup(dir, n);
        char *parent = trimmed ? dir_of(trimmed) : NULL;
        free(trimmed);
        if (!parent)
            return cli_error(CVAE_E_NOMEM, "cannot allocate a path");
        int rc = CLI_EXIT_OK;
        if (stat(parent, &sb) != 0 || !S_ISDIR(sb.st_mode))
            rc = cli_error(CVAE_E_IO, "cannot create %s: %s is not a folder", dir, parent);
        else if (access(parent, W_OK | X_OK) != 0)
            rc = cli_error(CVAE_E_IO, "cannot create %s: folder %s: %s", dir, parent,
                           strerror(errno));
        free(parent);
        return rc;
    }
    if (!S_ISDIR(sb.st_mode))
        return cli_error(CVAE_E_IO, "%s is %s, not a folder", dir,
                         S_ISREG(sb.st_mode) ? "a file" : file_kind(sb.st_mode));
    DIR *d = opendir(dir);
    if (!d)
        return cli_error(CVAE_E_IO, "cannot read the folder %s: %s", dir, strerror(errno));
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = 0;
    closedir(d);
    if (!empty)
        return cli_error(CVAE_E_IO, "%s exists and is not empty; refusing to add to it", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return cli_error(CVAE_E_IO, "cannot write in %s: %s", dir, strerror(errno));
    return CLI_EXIT_OK;
}

/* ---- PNG ------------------------------------------------------------------ */

/* libpng reports errors through this callback, which must not return: the
 * message is kept for the caller and control goes back to the setjmp. */
static void png_on_error(png_structp png, png_const_charp msg)
{
    char *buf = png_get_error_ptr(png);
    if (buf)
        snprintf(buf, 256, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* libpng warnings about our own output are not the user's concern */
}

/* Encode rows of width*channels bytes to f. err holds at least 256 bytes.
 * Returns 0 or -1 (err set). Nothing assigned after setjmp is read after
 * longjmp, so no local needs to be volatile. */
static int png_rows(FILE *f, const uint8_t *pixels, uint32_t width, uint32_t height,
                    int channels, char *err)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, err, png_on_error,
                                              png_on_warning);
    if (!png) {
        snprintf(err, 256, "cannot create the libpng writer");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(err, 256, "cannot create the libpng info structure");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, width, height, 8,
                 channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    const size_t stride = (size_t)width * (size_t)channels;
    for (uint32_t y = 0; y < height; y++)
        png_write_row(png, pixels + (size_t)y * stride);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int cli_write_png(const char *path, const uint8_t *pixels, uint32_t width, uint32_t height,
                  int channels)
{
    cli_outfile f;
    int rc = cli_outfile_open(&f, path);
    if (rc)
        return rc;
    char err[256] = "";
    if (png_rows(f.f, pixels, width, height, channels, err) != 0) {
        cli_outfile_abort(&f);
        return cli_error(CVAE_E_IO, "cannot write %s: %s", path, err);
    }
    return cli_outfile_commit(&f);
}

int cli_finish_output(int rc)
{
    /* Flushing reports a full disk, a closed pipe's EPIPE or /dev/full here
     * instead of losing the output silently at exit. */
    int failed = fflush(stdout) != 0 || ferror(stdout);
    int e = errno;
    if (fclose(stdout) != 0 && !failed) {
        failed = 1;
        e = errno;
    }
    /* A command that failed has said why already (cluster reports its own
     * write errors on standard output). */
    if (failed && !rc) {
        fprintf(stderr, "convvae: %s: cannot write to standard output: %s\n",
                cvae_strerror(CVAE_E_IO), e ? strerror(e) : "write error");
        rc = CLI_EXIT_RUNTIME;
    }
    /* A failing stderr cannot be reported anywhere, but it must not pass
     * for success either. */
    if ((fflush(stderr) != 0 || ferror(stderr)) && !rc)
        rc = CLI_EXIT_RUNTIME;
    return rc;
}
