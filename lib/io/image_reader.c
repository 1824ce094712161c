/* Image reader: which files (added one by one, from a list file, or by a
 * sorted recursive directory walk), then decoding them on several threads
 * straight into the pixel block of the data set.
 *
 * Threads take the next file index from a shared counter, so the work
 * balances itself whatever the file sizes, and each writes only its own
 * image's slot. The calling thread decodes too and is the only one that
 * calls the progress callback. Failures are recorded with their index:
 * without skip the one with the lowest index is reported (every lower index
 * was taken before it and has finished, so this is the first bad file in
 * the order added, whatever the thread count), with skip they are all
 * listed in order and the good images are moved together. */
#define _POSIX_C_SOURCE 200809L

#include "io/image_reader.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/dataset.h"
#include "core/error.h"
#include "io/images.h"
#include "core/strlist.h"

/* Deepest directory nesting add_dir follows. */
#define MAX_DEPTH 256
/* Largest target image side (as for a model's input). */
#define MAX_SIDE 4096
/* Seconds between progress calls. */
#define PROGRESS_INTERVAL 0.05

struct cvae_image_reader {
    int channels, height, width;
    int threads;
    int skip;
    cvae_load_progress_fn progress;
    void *user;
    cvae__strlist files;
    /* What add_dir left out (with skip) and what the last load left out. */
    cvae__strlist walk_skipped, walk_reasons, load_skipped, load_reasons;
};

int cvae_images_supported(void)
{
#if defined(CVAE_WITH_IMAGES) && CVAE_WITH_IMAGES
    return 1;
#else
    return 0;
#endif
}

cvae_status cvae_image_reader_create(int channels, int height, int width,
                                     cvae_image_reader **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    if (!cvae_images_supported())
        return cvae__fail(CVAE_E_UNSUPPORTED,
                          "this libconvvae was built without image files (CVAE_WITH_IMAGES=OFF)");
    if (channels != 1 && channels != 3)
        return cvae__fail(CVAE_E_INVALID_ARG, "image channels %d: must be 1 (grey) or 3 (RGB)",
                          channels);
    if (height < 1 || height > MAX_SIDE || width < 1 || width > MAX_SIDE)
        return cvae__fail(CVAE_E_INVALID_ARG, "image size %dx%d: each side must be in [1, %d]",
                          height, width, MAX_SIDE);
    cvae_image_reader *r = calloc(1, sizeof *r);
    if (!r)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate an image reader");
    r->channels = channels;
    r->height = height;
    r->width = width;
    r->threads = cvae_get_num_threads();
    *out = r;
    return CVAE_OK;
}

void cvae_image_reader_destroy(cvae_image_reader *r)
{
    if (!r)
        return;
    cvae__strlist_free(&r->files);
    cvae__strlist_free(&r->walk_skipped);
    cvae__strlist_free(&r->walk_reasons);
    cvae__strlist_free(&r->load_skipped);
    cvae__strlist_free(&r->load_reasons);
    free(r);
}

cvae_status cvae_image_reader_set_threads(cvae_image_reader *r, int threads)
{
    CVAE__CHECK_PTR(r);
    if (threads < 1 || threads > 1024)
        return cvae__fail(CVAE_E_INVALID_ARG, "threads %d: must be in [1, 1024]", threads);
    r->threads = threads;
    return CVAE_OK;
}

cvae_status cvae_image_reader_set_skip_bad(cvae_image_reader *r, int skip)
{
    CVAE__CHECK_PTR(r);
    r->skip = skip != 0;
    return CVAE_OK;
}

cvae_status cvae_image_reader_set_progress(cvae_image_reader *r, cvae_load_progress_fn fn,
                                           void *user)
{
    CVAE__CHECK_PTR(r);
    r->progress = fn;
    r->user = user;
    return CVAE_OK;
}

cvae_status cvae_image_reader_count(const cvae_image_reader *r, int64_t *count)
{
    CVAE__CHECK_PTR(r);
    CVAE__CHECK_PTR(count);
    *count = r->files.count;
    return CVAE_OK;
}

cvae_status cvae_image_reader_num_skipped(const cvae_image_reader *r, int64_t *count)
{
    CVAE__CHECK_PTR(r);
    CVAE__CHECK_PTR(count);
    *count = r->walk_skipped.count + r->load_skipped.count;
    return CVAE_OK;
}

cvae_status cvae_image_reader_skipped(const cvae_image_reader *r, int64_t index,
                                      const char **path, const char **reason)
{
    CVAE__CHECK_PTR(r);
    int64_t nw = r->walk_skipped.count, n = nw + r->load_skipped.count;
    if (index < 0 || index >= n)
        return cvae__fail(CVAE_E_INVALID_ARG, "skipped file %lld is not in [0, %lld)",
                          (long long)index, (long long)n);
    const cvae__strlist *p = index < nw ? &r->walk_skipped : &r->load_skipped;
    const cvae__strlist *why = index < nw ? &r->walk_reasons : &r->load_reasons;
    int64_t i = index < nw ? index : index - nw;
    if (path)
        *path = cvae__strlist_get(p, i);
    if (reason)
        *reason = cvae__strlist_get(why, i);
    return CVAE_OK;
}

/* ------------------------------------------------------------------------ */
/* Which files                                                              */
/* ------------------------------------------------------------------------ */

cvae_status cvae_image_reader_add_file(cvae_image_reader *r, const char *path)
{
    CVAE__CHECK_PTR(r);
    CVAE__CHECK_PTR(path);
    if (!*path)
        return cvae__fail(CVAE_E_INVALID_ARG, "an image path is empty");
    return cvae__strlist_add(&r->files, path, strlen(path));
}

cvae_status cvae_image_reader_add_list(cvae_image_reader *r, const char *list_path)
{
    CVAE__CHECK_PTR(r);
    CVAE__CHECK_PTR(list_path);
    FILE *f = fopen(list_path, "r");
    if (!f)
        return cvae__fail(errno == ENOMEM ? CVAE_E_NOMEM : CVAE_E_IO,
                          "cannot open the list of images '%s': %s", list_path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int64_t before = r->files.count;
    cvae_status st = CVAE_OK;
    errno = 0;
    while (!st && (got = getline(&line, &cap, f)) >= 0) {
        size_t n = (size_t)got;
        if (n && line[n - 1] == '\n')
            n--;
        if (n && line[n - 1] == '\r')
            n--;
        if (n == 0)
            continue;
        if (memchr(line, '\0', n))
            st = cvae__fail(CVAE_E_FORMAT, "the list of images '%s' holds a NUL byte (line %lld)",
                            list_path, (long long)(r->files.count - before + 1));
        else
            st = cvae__strlist_add(&r->files, line, n);
    }
    if (!st && ferror(f))
        st = cvae__fail(CVAE_E_IO, "cannot read the list of images '%s': %s", list_path,
                        strerror(errno ? errno : EIO));
    free(line);
    fclose(f);
    if (st) { /* all or nothing */
        r->files.count = before;
        r->files.len = before ? r->files.off[before - 1] +
                                    strlen(cvae__strlist_get(&r->files, before - 1)) + 1
                              : 0;
    }
    return st;
}

int cvae__image_name(const char *name)
{
    static const char *const ext[] = {"png", "jpg", "jpeg", "jpe", "jfif", "webp",
                                      "tif", "tiff", "gif", "bmp", NULL};
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name)
        return 0;
    for (int i = 0; ext[i]; i++)
        if (strcasecmp(dot + 1, ext[i]) == 0)
            return 1;
    return 0;
}

/* Directories already walked, by device and inode: a set with open
 * addressing, so that link loops and repeated links cost one visit. */
typedef struct dir_key {
    dev_t dev;
    ino_t ino;
    int used;
} dir_key;

typedef struct dir_set {
    dir_key *slot;
    size_t cap, n;
} dir_set;

static size_t dir_hash(dev_t dev, ino_t ino, size_t cap)
{
    uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15u ^ (uint64_t)dev * 0xc2b2ae3d27d4eb4fu;
    return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

/* 1 if newly added, 0 if present, -1 out of memory. */
static int dir_set_add(dir_set *s, dev_t dev, ino_t ino)
{
    if (2 * (s->n + 1) > s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 64;
        dir_key *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return -1;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i].used) {
                size_t j = dir_hash(s->slot[i].dev, s->slot[i].ino, ncap);
                while (ns[j].used)
                    j = (j + 1) & (ncap - 1);
                ns[j] = s->slot[i];
            }
        free(s->slot);
        s->slot = ns;
        s->cap = ncap;
    }
    size_t j = dir_hash(dev, ino, s->cap);
    while (s->slot[j].used) {
        if (s->slot[j].dev == dev && s->slot[j].ino == ino)
            return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->slot[j].dev = dev;
    s->slot[j].ino = ino;
    s->slot[j].used = 1;
    s->n++;
    return 1;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static cvae_status walk_skip(cvae_image_reader *r, const char *path, const char *why)
{
    cvae_status st = cvae__strlist_add(&r->walk_skipped, path, strlen(path));
    if (!st && (st = cvae__strlist_add(&r->walk_reasons, why, strlen(why))) != CVAE_OK)
        r->walk_skipped.count--;
    return st;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = malloc(a + (size_t)slash + b + 1);
    if (p) {
        memcpy(p, dir, a);
        if (slash)
            p[a] = '/';
        memcpy(p + a + (size_t)slash, name, b + 1);
    }
    return p;
}

static cvae_status walk(cvae_image_reader *r, const char *dir, int depth, dir_set *seen)
{
    DIR *d = opendir(dir);
    if (!d) {
        char why[256];
        snprintf(why, sizeof why, "cannot read directory: %s", strerror(errno));
        if (depth > 0 && r->skip)
            return walk_skip(r, dir, why);
        return cvae__fail(CVAE_E_IO, "cannot read directory '%s': %s", dir, strerror(errno));
    }
    cvae__strlist names;
    cvae__strlist_init(&names);
    cvae_status st = CVAE_OK;
    struct dirent *e;
    errno = 0;
    while (!st && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            st = cvae__strlist_add(&names, e->d_name, strlen(e->d_name));
        errno = 0;
    }
    if (!st && errno)
        st = cvae__fail(CVAE_E_IO, "cannot read directory '%s': %s", dir, strerror(errno));
    closedir(d);
    const char **sorted = NULL;
    if (!st && names.count) {
        sorted = malloc((size_t)names.count * sizeof *sorted);
        if (!sorted)
            st = cvae__fail(CVAE_E_NOMEM, "cannot sort directory '%s'", dir);
    }
    if (sorted) {
        for (int64_t i = 0; i < names.count; i++)
            sorted[i] = cvae__strlist_get(&names, i);
        qsort(sorted, (size_t)names.count, sizeof *sorted, cmp_names);
    }
    for (int64_t i = 0; !st && i < names.count; i++) {
        char *path = join(dir, sorted[i]);
        if (!path) {
            st = cvae__fail(CVAE_E_NOMEM, "cannot allocate a path");
            break;
        }
        struct stat sb;
        if (stat(path, &sb) != 0) {
            /* A dangling link with an image name: the load says why. */
            if (cvae__image_name(sorted[i]))
                st = cvae__strlist_add(&r->files, path, strlen(path));
        } else if (S_ISDIR(sb.st_mode)) {
            int added = dir_set_add(seen, sb.st_dev, sb.st_ino);
            if (added < 0)
                st = cvae__fail(CVAE_E_NOMEM, "cannot remember walked directories");
            else if (added && depth + 1 > MAX_DEPTH)
                st = cvae__fail(CVAE_E_UNSUPPORTED, "'%s' is nested deeper than %d directories",
                                path, MAX_DEPTH);
            else if (added)
                st = walk(r, path, depth + 1, seen);
        } else if (S_ISREG(sb.st_mode) && cvae__image_name(sorted[i])) {
            st = cvae__strlist_add(&r->files, path, strlen(path));
        }
        free(path);
    }
    free(sorted);
    cvae__strlist_free(&names);
    return st;
}

cvae_status cvae_image_reader_add_dir(cvae_image_reader *r, const char *dir)
{
    CVAE__CHECK_PTR(r);
    CVAE__CHECK_PTR(dir);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return cvae__fail(CVAE_E_IO, "cannot read directory '%s': %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return cvae__fail(CVAE_E_IO, "'%s' is not a directory", dir);
    dir_set seen = {NULL, 0, 0};
    cvae_status st = dir_set_add(&seen, sb.st_dev, sb.st_ino) < 0
                         ? cvae__fail(CVAE_E_NOMEM, "cannot remember walked directories")
                         : walk(r, dir, 0, &seen);
    free(seen.slot);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */
/* ------------------------------------------------------------------------ */

cvae_status cvae__read_file(const char *path, uint8_t **buf, size_t *cap, size_t *len)
{
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cvae__fail(errno == ENOMEM ? CVAE_E_NOMEM : CVAE_E_IO, "cannot open '%s': %s",
                          path, strerror(errno));
    struct stat sb;
    cvae_status st = CVAE_OK;
    if (fstat(fd, &sb) != 0)
        st = cvae__fail(CVAE_E_IO, "cannot read '%s': %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = cvae__fail(CVAE_E_IO, "'%s' is not a regular file", path);
    else if ((uint64_t)sb.st_size > CVAE__IMAGE_MAX_FILE_BYTES)
        st = cvae__fail(CVAE_E_UNSUPPORTED, "'%s' is %lld bytes, more than the %zu an image "
                        "file may have", path, (long long)sb.st_size, CVAE__IMAGE_MAX_FILE_BYTES);
    size_t want = st ? 0 : (size_t)sb.st_size;
    if (!st && want > *cap) {
        uint8_t *nb = realloc(*buf, want);
        if (!nb)
            st = cvae__fail(CVAE_E_NOMEM, "cannot allocate %zu bytes to read '%s'", want, path);
        else {
            *buf = nb;
            *cap = want;
        }
    }
    while (!st && *len < want) {
        ssize_t got = read(fd, *buf + *len, want - *len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            st = cvae__fail(CVAE_E_IO, "cannot read '%s': %s", path, strerror(errno));
        else if (got == 0)
            break; /* shrank while being read: decode what is there */
        else
            *len += (size_t)got;
    }
    close(fd);
    return st;
}

typedef struct failure {
    int64_t index;
    cvae_status status;
    char *message;
} failure;

typedef struct load_job {
    cvae_image_reader *r;
    uint8_t *pixels;
    size_t per; /* bytes per image */
    int64_t n;
    pthread_mutex_t mu;
    int64_t next, done;
    int stop, cancelled, nomem;
    failure *fails;
    int64_t nfails, fails_cap;
} load_job;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Record a failure of image i (called with the lock held). */
static void record_failure(load_job *j, int64_t i, cvae_status st, const char *msg)
{
    if (!j->r->skip) {
        /* Only the lowest index is reported: keep one. */
        if (j->nfails && j->fails[0].index < i)
            return;
        char *m = strdup(msg);
        if (!m) {
            j->nomem = 1;
            return;
        }
        if (j->nfails)
            free(j->fails[0].message);
        else if (!j->fails_cap) {
            if (!(j->fails = malloc(sizeof *j->fails))) {
                free(m);
                j->nomem = 1;
                return;
            }
            j->fails_cap = 1;
        }
        j->fails[0] = (failure){i, st, m};
        j->nfails = 1;
        return;
    }
    if (j->nfails == j->fails_cap) {
        int64_t ncap = j->fails_cap ? 2 * j->fails_cap : 16;
        failure *nf = realloc(j->fails, (size_t)ncap * sizeof *nf);
        if (!nf) {
            j->nomem = 1;
            return;
        }
        j->fails = nf;
        j->fails_cap = ncap;
    }
    char *m = strdup(msg);
    if (!m) {
        j->nomem = 1;
        return;
    }
    j->fails[j->nfails++] = (failure){i, st, m};
}

/* Decode files until none is left; the caller's thread (report = 1) also
 * reports progress. */
static void load_loop(load_job *j, int report)
{
    cvae_image_reader *r = j->r;
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    double last = report ? now() : 0.0;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int64_t i = j->stop || j->next >= j->n ? -1 : j->next++;
        pthread_mutex_unlock(&j->mu);
        if (i < 0)
            break;
        const char *path = cvae__strlist_get(&r->files, i);
        cvae_status st = cvae__read_file(path, &buf, &cap, &len);
        if (!st)
            st = cvae__image_decode(buf, len, path, r->channels, r->height, r->width,
                                    j->pixels + (size_t)i * j->per);
        pthread_mutex_lock(&j->mu);
        j->done++;
        if (st) {
            record_failure(j, i, st, cvae_last_error());
            if (!r->skip || j->nomem)
                j->stop = 1;
        }
        int64_t done = j->done;
        pthread_mutex_unlock(&j->mu);
        if (report && r->progress && now() - last >= PROGRESS_INTERVAL) {
            last = now();
            if (r->progress(r->user, done, j->n)) {
                pthread_mutex_lock(&j->mu);
                j->stop = j->cancelled = 1;
                pthread_mutex_unlock(&j->mu);
            }
        }
    }
    free(buf);
}

static void *load_thread(void *arg)
{
    load_loop(arg, 0);
    return NULL;
}

static int cmp_failures(const void *a, const void *b)
{
    int64_t x = ((const failure *)a)->index, y = ((const failure *)b)->index;
    return (x > y) - (x < y);
}

/* The skipped files in order, the good images moved together, and the
 * paths of the good ones. Returns the number of good images. */
static cvae_status compact(load_job *j, cvae__strlist *paths, int64_t *kept)
{
    cvae_image_reader *r = j->r;
    cvae_status st = CVAE_OK;
    int64_t f = 0, k = 0;
    for (int64_t i = 0; !st && i < j->n; i++) {
        const char *path = cvae__strlist_get(&r->files, i);
        if (f < j->nfails && j->fails[f].index == i) {
            const char *why = j->fails[f++].message;
            st = cvae__strlist_add(&r->load_skipped, path, strlen(path));
            if (!st)
                st = cvae__strlist_add(&r->load_reasons, why, strlen(why));
            continue;
        }
        if (k != i)
            memmove(j->pixels + (size_t)k * j->per, j->pixels + (size_t)i * j->per, j->per);
        k++;
        st = cvae__strlist_add(paths, path, strlen(path));
    }
    *kept = k;
    return st;
}

cvae_status cvae_image_reader_load(cvae_image_reader *r, cvae_dataset **out)
{
    CVAE__CHECK_PTR(out);
    *out = NULL;
    CVAE__CHECK_PTR(r);
    cvae__strlist_clear(&r->load_skipped);
    cvae__strlist_clear(&r->load_reasons);
    const int64_t n = r->files.count;
    if (n == 0)
        return cvae__fail(CVAE_E_INVALID_ARG, "no image files to load (none was added or "
                          "found)");
    const size_t per = (size_t)r->channels * (size_t)r->height * (size_t)r->width;
    if ((uint64_t)n > SIZE_MAX / sizeof(float) / per)
        return cvae__fail(CVAE_E_NOMEM, "%lld images of %zu pixels overflow the address space",
                          (long long)n, per);
    load_job j;
    memset(&j, 0, sizeof j);
    j.r = r;
    j.per = per;
    j.n = n;
    if (!(j.pixels = malloc((size_t)n * per)))
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate %lld images of %zu pixels",
                          (long long)n, per);
    pthread_mutex_init(&j.mu, NULL);
    int want = r->threads < n ? r->threads : (int)n, started = 0;
    pthread_t *th = want > 1 ? malloc((size_t)(want - 1) * sizeof *th) : NULL;
    if (th)
        for (; started < want - 1; started++)
            if (pthread_create(&th[started], NULL, load_thread, &j) != 0)
                break; /* fewer threads; the rest of the work still gets done */
    if (r->progress && r->progress(r->user, 0, n))
        j.stop = j.cancelled = 1;
    load_loop(&j, 1);
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    free(th);
    pthread_mutex_destroy(&j.mu);

    cvae_status st = CVAE_OK;
    cvae__strlist *paths = NULL;
    int64_t kept = 0;
    if (j.nfails > 1)
        qsort(j.fails, (size_t)j.nfails, sizeof *j.fails, cmp_failures);
    if (j.nomem)
        st = cvae__fail(CVAE_E_NOMEM, "out of memory recording unreadable images");
    else if (j.cancelled)
        st = cvae__fail(CVAE_E_CANCELLED, "loading images was cancelled after %lld of %lld",
                        (long long)j.done, (long long)n);
    else if (!r->skip && j.nfails)
        st = cvae__fail(j.fails[0].status, "%s", j.fails[0].message);
    else if (j.nfails == n)
        st = cvae__fail(CVAE_E_FORMAT, "none of the %lld image files could be read; the first: "
                        "%s", (long long)n, j.fails[0].message);
    else if (!(paths = calloc(1, sizeof *paths)))
        st = cvae__fail(CVAE_E_NOMEM, "cannot allocate the image paths");
    else
        st = compact(&j, paths, &kept);
    if (!st && r->progress)
        r->progress(r->user, n, n);
    if (!st && kept < n) {
        uint8_t *shrunk = realloc(j.pixels, (size_t)kept * per);
        if (shrunk)
            j.pixels = shrunk;
    }
    if (!st && (st = cvae__dataset_adopt_u8(j.pixels, kept, r->channels, r->height, r->width,
                                            out)) == CVAE_OK) {
        j.pixels = NULL;
        cvae__dataset_set_paths(*out, paths);
        paths = NULL;
    }
    if (st) {
        cvae__strlist_clear(&r->load_skipped);
        cvae__strlist_clear(&r->load_reasons);
    }
    if (paths)
        cvae__strlist_free(paths);
    free(paths);
    free(j.pixels);
    for (int64_t i = 0; i < j.nfails; i++)
        free(j.fails[i].message);
    free(j.fails);
    return st;
}
