/*
 * Helper for the convvae CLI tests (no MNIST needed, no Python):
 *   cli_test_helper idx IMAGES LABELS COUNT SEED [HEIGHT WIDTH]
 *       writes an IDX u8 image file and label file of COUNT synthetic
 *       images in 3 classes (horizontal bar, vertical bar, box), each
 *       shifted and noised from SEED;
 *   cli_test_helper sigint|sigterm FILE COMMAND [ARGS...]
 *       runs COMMAND with the signal at its default disposition (a plain sh
 *       ignores SIGINT in background jobs), sends it the signal as soon as FILE
 *       exists (so the signal lands at a known stage, not after a guessed
 *       delay), waits, and exits with its exit status, 200 + signal if a
 *       signal killed it, or 100 if FILE did not appear within 30 s;
 *   cli_test_helper sigint2 OUT TMP COMMAND [ARGS...]
 *       a second Ctrl-C during a save: runs COMMAND like sigint, sends
 *       SIGINT once OUT (the command's redirected stdout) holds an
 *       "epoch " line, then a second SIGINT the moment a file whose name
 *       starts with TMP's base name appears in TMP's directory (the save's
 *       temporary file); exits like sigint, or 101 if the command ended
 *       before any such file appeared;
 *   cli_test_helper kill9 TMP MAX_US SEED COMMAND [ARGS...]
 *       the save/kill soak (scripts/check-savekill.sh): runs COMMAND, waits
 *       until it has the file TMP open (its save has begun: a TMP left by an
 *       earlier kill does not count), waits a random 0..MAX_US microseconds
 *       (from SEED) and sends SIGKILL; exits like sigint (209 if the kill
 *       landed), or 101 if the command ended without opening TMP. Linux
 *       only (/proc/PID/fd).
 */
#define _XOPEN_SOURCE 700 /* realpath */

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint32_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*s >> 33);
}

static int put_u32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    return fwrite(b, 1, 4, f) == 4 ? 0 : -1;
}

static int make_idx(const char *img_path, const char *lbl_path, long count, uint64_t seed, int h,
                    int w)
{
    FILE *fi = fopen(img_path, "wb"), *fl = fopen(lbl_path, "wb");
    unsigned char *img = malloc((size_t)h * (size_t)w);
    int rc = 1;
    if (!fi || !fl || !img) {
        perror("cli_test_helper");
        goto out;
    }
    if (put_u32(fi, 0x00000803) || put_u32(fi, (uint32_t)count) || put_u32(fi, (uint32_t)h) ||
        put_u32(fi, (uint32_t)w) || put_u32(fl, 0x00000801) || put_u32(fl, (uint32_t)count))
        goto out;
    for (long i = 0; i < count; i++) {
        int label = (int)(i % 3);
        int dy = (int)(lcg(&seed) % 5) - 2, dx = (int)(lcg(&seed) % 5) - 2;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int yy = y - h / 2 - dy, xx = x - w / 2 - dx, on;
                if (label == 0)
                    on = yy >= -2 && yy <= 2 && xx >= -w / 3 && xx <= w / 3;
                else if (label == 1)
                    on = xx >= -2 && xx <= 2 && yy >= -h / 3 && yy <= h / 3;
                else
                    on = (abs(yy) == h / 4 || abs(xx) == w / 4) && abs(yy) <= h / 4 &&
                         abs(xx) <= w / 4;
                int v = on ? 200 + (int)(lcg(&seed) % 56) : (int)(lcg(&seed) % 30);
                img[y * w + x] = (unsigned char)v;
            }
        unsigned char l = (unsigned char)label;
        if (fwrite(img, 1, (size_t)h * (size_t)w, fi) != (size_t)h * (size_t)w ||
            fwrite(&l, 1, 1, fl) != 1)
            goto out;
    }
    rc = 0;
out:
    if (fi && fclose(fi) != 0)
        rc = 1;
    if (fl && fclose(fl) != 0)
        rc = 1;
    free(img);
    return rc;
}

static int run_signal(int sig, const char *file, char **argv)
{
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        signal(sig, SIG_DFL);
        execv(argv[0], argv);
        perror("execv");
        _exit(127);
    }
    int status, appeared = 0;
    for (int i = 0; i < 3000 && !appeared; i++) {
        if (access(file, F_OK) == 0) {
            appeared = 1;
            break;
        }
        if (waitpid(pid, &status, WNOHANG) == pid) /* ended before FILE appeared */
            return WIFSIGNALED(status) ? 200 + WTERMSIG(status) : WEXITSTATUS(status);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, sig);
    while (waitpid(pid, &status, 0) < 0)
        ;
    if (!appeared)
        return 100;
    if (WIFSIGNALED(status))
        return 200 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static int contains(const char *path, const char *needle)
{
    char buf[4096];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/* Is there an entry in dir whose name starts with prefix? */
static int has_prefixed(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    int found = 0;
    while (!found && (de = readdir(d)) != NULL)
        found = strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return found;
}

static int run_sigint2(const char *out, const char *tmp, char **argv)
{
    char dir[4096];
    const char *slash = strrchr(tmp, '/');
    const char *prefix = slash ? slash + 1 : tmp;
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - tmp) : 1, slash ? tmp : ".");
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        execv(argv[0], argv);
        perror("execv");
        _exit(127);
    }
    int status, stage = 0;
    for (long i = 0; stage == 0 && i < 3000; i++) {
        if (contains(out, "epoch ")) {
            kill(pid, SIGINT);
            stage = 1;
            break;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* No sleeping from here: the save may take only milliseconds. */
    while (stage == 1) {
        if (has_prefixed(dir, prefix)) {
            kill(pid, SIGINT);
            stage = 2;
        } else if (waitpid(pid, &status, WNOHANG) == pid) {
            return 101;
        }
    }
    if (stage == 0)
        kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0)
        ;
    if (stage == 0)
        return 100;
    if (WIFSIGNALED(status))
        return 200 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* Does process pid have the file `path` (canonical) open? */
static int holds_open(pid_t pid, const char *path)
{
    char fddir[64], link[512], target[4096];
    snprintf(fddir, sizeof fddir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(fddir);
    if (!d)
        return 0;
    struct dirent *de;
    int found = 0;
    while (!found && (de = readdir(d)) != NULL) {
        snprintf(link, sizeof link, "%s/%s", fddir, de->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            found = strcmp(target, path) == 0;
        }
    }
    closedir(d);
    return found;
}

static int run_kill9(const char *tmp, long max_us, uint64_t seed, char **argv)
{
    /* /proc/PID/fd shows canonical paths: resolve TMP's directory. */
    char dir[4096], real[4096], path[8192];
    const char *slash = strrchr(tmp, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - tmp) : 1, slash ? tmp : ".");
    if (!realpath(dir, real)) {
        perror(dir);
        return 1;
    }
    snprintf(path, sizeof path, "%s/%s", real, slash ? slash + 1 : tmp);
    uint64_t s = seed;
    long delay = max_us > 0 ? (long)(lcg(&s) % (uint32_t)max_us) : 0;
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        execv(argv[0], argv);
        perror("execv");
        _exit(127);
    }
    int status;
    for (;;) {
        if (holds_open(pid, path))
            break;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return 101;
    }
    struct timespec ts = {delay / 1000000, delay % 1000000 * 1000};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0)
        ;
    if (WIFSIGNALED(status))
        return 200 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "idx") == 0) {
        int h = argc >= 8 ? atoi(argv[6]) : 28, w = argc >= 8 ? atoi(argv[7]) : 28;
        return make_idx(argv[2], argv[3], atol(argv[4]), strtoull(argv[5], NULL, 10), h, w);
    }
    if (argc >= 4 && strcmp(argv[1], "sigint") == 0)
        return run_signal(SIGINT, argv[2], argv + 3);
    if (argc >= 4 && strcmp(argv[1], "sigterm") == 0)
        return run_signal(SIGTERM, argv[2], argv + 3);
    if (argc >= 5 && strcmp(argv[1], "sigint2") == 0)
        return run_sigint2(argv[2], argv[3], argv + 4);
    if (argc >= 6 && strcmp(argv[1], "kill9") == 0)
        return run_kill9(argv[2], atol(argv[3]), strtoull(argv[4], NULL, 10), argv + 5);
    fprintf(stderr, "usage: cli_test_helper idx IMAGES LABELS COUNT SEED [H W]\n"
                    "       cli_test_helper sigint|sigterm FILE COMMAND [ARGS...]\n"
                    "       cli_test_helper sigint2 OUT TMP COMMAND [ARGS...]\n"
                    "       cli_test_helper kill9 TMP MAX_US SEED COMMAND [ARGS...]\n");
    return 2;
}
