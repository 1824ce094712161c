/* safetensors writer (see safetensors.h for the layout): validates the
 * tensors and metadata, builds the JSON header, streams the little-endian
 * floats and replaces the target atomically. */
#define _POSIX_C_SOURCE 200809L

#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/error.h"
#include "core/json.h"

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const void *s, size_t n)
{
    if (b->oom)
        return;
    if (n > b->cap - b->len) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap - b->len < n) {
            if (ncap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            ncap *= 2;
        }
        char *p = realloc(b->p, ncap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%" PRIu64, v);
    sb_put(b, t, (size_t)n);
}

/* Quote and backslash escaped; every control character as \u00xx so that
 * any JSON reader (serde_json, Python's json) round-trips it. */
static void sb_json_string(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            sb_put(b, esc, 2);
        } else if (*p < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            sb_put(b, esc, 6);
        } else {
            sb_put(b, p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static cvae_status validate_save(const cvae__st_tensor *tensors, size_t ntensors,
                                 const char *const *meta_keys, const char *const *meta_values,
                                 size_t nmeta)
{
    if (ntensors > 0 && tensors == NULL)
        return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_save: tensors is NULL");
    if (nmeta > 0 && (meta_keys == NULL || meta_values == NULL))
        return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_save: metadata arrays are NULL");
    for (size_t i = 0; i < ntensors; i++) {
        const cvae__st_tensor *t = &tensors[i];
        if (t->name == NULL || t->name[0] == '\0')
            return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_save: tensor %zu has no name", i);
        if (strcmp(t->name, "__metadata__") == 0 || !cvae__utf8_valid(t->name))
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "cvae__st_save: tensor %zu name is reserved or not UTF-8", i);
        if (t->ndim < 0 || t->ndim > CVAE__ST_MAX_DIMS)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "cvae__st_save: tensor \"%.64s\" rank %d is not in 0..%d", t->name,
                              t->ndim, CVAE__ST_MAX_DIMS);
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] < 0)
                return cvae__fail(CVAE_E_INVALID_ARG,
                                  "cvae__st_save: tensor \"%.64s\" dimension %d is negative",
                                  t->name, d);
        int ok;
        uint64_t bytes = cvae__st_shape_bytes(t->ndim, t->shape, &ok);
        if (!ok || bytes > SIZE_MAX)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "cvae__st_save: tensor \"%.64s\" shape overflows", t->name);
        if (bytes > 0 && t->data == NULL)
            return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_save: tensor \"%.64s\" data is NULL",
                              t->name);
    }
    for (size_t i = 0; i < nmeta; i++) {
        if (meta_keys[i] == NULL || meta_values[i] == NULL)
            return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_save: metadata entry %zu is NULL", i);
        if (!cvae__utf8_valid(meta_keys[i]) || !cvae__utf8_valid(meta_values[i]))
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "cvae__st_save: metadata entry %zu is not valid UTF-8", i);
    }

    size_t n = ntensors > nmeta ? ntensors : nmeta;
    const char **names = malloc(n ? n * sizeof *names : 1);
    if (!names)
        return cvae__fail(CVAE_E_NOMEM, "cvae__st_save: cannot allocate");
    const char *dup;
    for (size_t i = 0; i < ntensors; i++)
        names[i] = tensors[i].name;
    dup = cvae__st_first_duplicate(names, ntensors);
    if (dup) {
        cvae_status st = cvae__fail(CVAE_E_INVALID_ARG,
                                    "cvae__st_save: duplicate tensor name \"%.64s\"", dup);
        free(names);
        return st;
    }
    for (size_t i = 0; i < nmeta; i++)
        names[i] = meta_keys[i];
    dup = cvae__st_first_duplicate(names, nmeta);
    if (dup) {
        cvae_status st = cvae__fail(CVAE_E_INVALID_ARG,
                                    "cvae__st_save: duplicate metadata key \"%.64s\"", dup);
        free(names);
        return st;
    }
    free(names);
    return CVAE_OK;
}

/* Header JSON including the 8-byte length prefix and the space padding that
 * makes the data start 8-byte aligned. */
static cvae_status build_header(sbuf *b, const cvae__st_tensor *tensors, size_t ntensors,
                                const char *const *meta_keys, const char *const *meta_values,
                                size_t nmeta)
{
    sb_put(b, "\0\0\0\0\0\0\0\0", 8);
    sb_put(b, "{", 1);
    if (nmeta > 0) {
        sb_str(b, "\"__metadata__\":{");
        for (size_t i = 0; i < nmeta; i++) {
            if (i)
                sb_put(b, ",", 1);
            sb_json_string(b, meta_keys[i]);
            sb_put(b, ":", 1);
            sb_json_string(b, meta_values[i]);
        }
        sb_put(b, "}", 1);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < ntensors; i++) {
        const cvae__st_tensor *t = &tensors[i];
        int ok;
        uint64_t bytes = cvae__st_shape_bytes(t->ndim, t->shape, &ok);
        if (offset > UINT64_MAX - bytes)
            return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_save: total data size overflows");
        if (nmeta > 0 || i > 0)
            sb_put(b, ",", 1);
        sb_json_string(b, t->name);
        sb_str(b, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d)
                sb_put(b, ",", 1);
            sb_u64(b, (uint64_t)t->shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, offset);
        sb_put(b, ",", 1);
        offset += bytes;
        sb_u64(b, offset);
        sb_str(b, "]}");
    }
    sb_put(b, "}", 1);
    while (!b->oom && b->len % 8 != 0)
        sb_put(b, " ", 1);
    if (b->oom)
        return cvae__fail(CVAE_E_NOMEM, "cvae__st_save: cannot allocate the header");
    uint64_t hlen = b->len - 8;
    if (hlen > CVAE__ST_MAX_HEADER)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "cvae__st_save: header of %" PRIu64
                          " bytes exceeds the limit of %" PRIu64,
                          hlen, CVAE__ST_MAX_HEADER);
    for (int i = 0; i < 8; i++)
        b->p[i] = (char)(hlen >> (8 * i) & 0xFF);
    return CVAE_OK;
}

static int write_all(int fd, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n > 0) {
        size_t want = n > ((size_t)1 << 30) ? (size_t)1 << 30 : n;
        ssize_t w = write(fd, p, want);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Stream the floats as little-endian bytes through a small buffer, so saving
 * never holds a second copy of the weights. */
static int write_tensors(int fd, const cvae__st_tensor *tensors, size_t ntensors)
{
    unsigned char chunk[16384];
    size_t used = 0;
    for (size_t i = 0; i < ntensors; i++) {
        int ok;
        size_t count = (size_t)(cvae__st_shape_bytes(tensors[i].ndim, tensors[i].shape, &ok) / 4);
        const float *src = tensors[i].data;
        for (size_t k = 0; k < count; k++) {
            uint32_t u;
            memcpy(&u, &src[k], sizeof u);
            chunk[used++] = (unsigned char)(u & 0xFF);
            chunk[used++] = (unsigned char)(u >> 8 & 0xFF);
            chunk[used++] = (unsigned char)(u >> 16 & 0xFF);
            chunk[used++] = (unsigned char)(u >> 24);
            if (used == sizeof chunk) {
                if (write_all(fd, chunk, used))
                    return -1;
                used = 0;
            }
        }
    }
    return used ? write_all(fd, chunk, used) : 0;
}

cvae_status cvae__st_save(const char *path, const cvae__st_tensor *tensors, size_t ntensors,
                          const char *const *meta_keys, const char *const *meta_values,
                          size_t nmeta)
{
    CVAE__CHECK_PTR(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (*base == '\0')
        return cvae__fail(CVAE_E_INVALID_ARG, "cvae__st_save: path \"%s\" names no file", path);
    cvae_status st = validate_save(tensors, ntensors, meta_keys, meta_values, nmeta);
    if (st)
        return st;

    sbuf hdr = {NULL, 0, 0, 0};
    if ((st = build_header(&hdr, tensors, ntensors, meta_keys, meta_values, nmeta)) != CVAE_OK) {
        free(hdr.p);
        return st;
    }

    /* Temporary ".<base>.tmpXXXXXX" beside the target, so that rename() stays
     * within one file system and is atomic; "dir" is what gets fsynced after. */
    static const char suffix[] = ".tmpXXXXXX";
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    size_t baselen = strlen(base);
    char *tmp = malloc(dirlen + baselen + sizeof suffix + 3);
    char *dir = malloc(dirlen + 2);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        free(hdr.p);
        return cvae__fail(CVAE_E_NOMEM, "cvae__st_save: cannot allocate path");
    }
    size_t k = 0;
    if (slash) {
        memcpy(tmp, path, dirlen);
        k = dirlen;
        tmp[k++] = '/';
        if (dirlen == 0)
            strcpy(dir, "/");
        else {
            memcpy(dir, path, dirlen);
            dir[dirlen] = '\0';
        }
    } else {
        strcpy(dir, ".");
    }
    tmp[k++] = '.';
    memcpy(tmp + k, base, baselen);
    memcpy(tmp + k + baselen, suffix, sizeof suffix);

    char why[128];
    const char *step = NULL;
    int err = 0;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        err = errno;
        cvae__errno_text(err, why, sizeof why);
        st = cvae__fail(CVAE_E_IO, "cannot create a temporary file for %s: %s", path, why);
        goto done;
    }
    /* mkstemp makes 0600 files: keep the mode of the file being replaced, or
     * use the usual 0644 for a new one. */
    struct stat sb;
    mode_t mode = 0644;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
        mode = sb.st_mode & 07777;
    if (fchmod(fd, mode) != 0)
        step = "set permissions on";
    else if (write_all(fd, hdr.p, hdr.len) != 0 || write_tensors(fd, tensors, ntensors) != 0)
        step = "write";
    else if (fsync(fd) != 0)
        step = "sync";
    if (step) {
        err = errno;
        close(fd);
    } else if (close(fd) != 0) {
        err = errno;
        step = "close";
    } else if (rename(tmp, path) != 0) {
        err = errno;
        step = "rename over";
    }
    if (step) {
        unlink(tmp);
        cvae__errno_text(err, why, sizeof why);
        st = cvae__fail(CVAE_E_IO, "cannot %s %s: %s", step, path, why);
        goto done;
    }

    /* The rename is only durable once the directory entry is on disk. Some
     * file systems cannot fsync a directory (EINVAL); nothing more can be done
     * there. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP)) {
        err = errno;
        cvae__errno_text(err, why, sizeof why);
        st = cvae__fail(CVAE_E_IO, "wrote %s but cannot sync its directory %s: %s", path, dir,
                        why);
    }
    if (dfd >= 0)
        close(dfd);
done:
    free(tmp);
    free(dir);
    free(hdr.p);
    return st;
}
