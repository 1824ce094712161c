/* Tests for lib/io/atomic_file.c: only regular files are replaced (a FIFO,
 * a device node, a directory, a socket-less special file are refused and
 * stay what they were), symbolic links are written through and stay links,
 * a temporary file left by a killed writer is taken over and gone after the
 * next save, a temporary file whose lock is held makes a second writer fail
 * without touching it, and nothing is left behind on any path.
 * Device nodes are made with mknod inside the test's own directory (never
 * the system's /dev entries); without the privilege for that, that case is
 * skipped with a message. */
#define _XOPEN_SOURCE 700 /* nftw, mknod */
#define _DEFAULT_SOURCE   /* flock, makedev */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core/error.h"
#include "io/atomic_file.h"
#include "testfile.h"

static char dir[64];

static void path_in(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

/* Names in d starting with '.', other than "." and "..": temporary files. */
static int hidden_in(const char *d)
{
    DIR *dp = opendir(d);
    assert_non_null(dp);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL)
        if (de->d_name[0] == '.' && strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(dp);
    return n;
}

/* Replace path with text through the module; the status. */
static cvae_status save_text(const char *path, const char *text)
{
    cvae__atomic_file af;
    cvae_status st = cvae__atomic_open(&af, path);
    if (st)
        return st;
    size_t n = strlen(text);
    if (write(af.fd, text, n) != (ssize_t)n) {
        cvae__atomic_abort(&af);
        return CVAE_E_IO;
    }
    return cvae__atomic_commit(&af, path);
}

static void assert_text(const char *path, const char *text)
{
    size_t len;
    unsigned char *b = read_file(path, &len);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(b, text, len);
    free(b);
}

static void expect_refused(const char *path, const char *why)
{
    cvae__fail(CVAE_OK, "%s", "");
    cvae_status st = save_text(path, "new");
    if (st != CVAE_E_IO || !strstr(cvae_last_error(), why) || !strstr(cvae_last_error(), path))
        fail_msg("save to %s: status %d, message '%s', wanted '%s'", path, st, cvae_last_error(),
                 why);
    assert_int_equal(hidden_in(dir), 0);
}

static void test_new_and_replaced_regular_file(void **state)
{
    (void)state;
    char p[128];
    path_in(p, sizeof p, "plain");
    assert_int_equal(save_text(p, "one"), CVAE_OK);
    assert_text(p, "one");
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0644);
    assert_int_equal(chmod(p, 0600), 0);
    assert_int_equal(save_text(p, "two!"), CVAE_OK);
    assert_text(p, "two!");
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600); /* the replaced file's mode */
    assert_int_equal(hidden_in(dir), 0);
    /* an aborted write leaves the old file and no temporary file */
    cvae__atomic_file af;
    assert_int_equal(cvae__atomic_open(&af, p), CVAE_OK);
    assert_int_equal(write(af.fd, "xx", 2), 2);
    cvae__atomic_abort(&af);
    assert_text(p, "two!");
    assert_int_equal(hidden_in(dir), 0);
    unlink(p);
}

static void test_special_files_refused(void **state)
{
    (void)state;
    char p[128];
    struct stat sb;

    path_in(p, sizeof p, "fifo");
    assert_int_equal(mkfifo(p, 0644), 0);
    expect_refused(p, "a FIFO");
    assert_int_equal(lstat(p, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    unlink(p);

    path_in(p, sizeof p, "subdir");
    assert_int_equal(mkdir(p, 0755), 0);
    expect_refused(p, "a directory");
    assert_int_equal(lstat(p, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    rmdir(p);

    /* a character device like /dev/null (1, 3), made here, not there */
    path_in(p, sizeof p, "null-device");
    if (mknod(p, S_IFCHR | 0666, makedev(1, 3)) == 0) {
        expect_refused(p, "a character device");
        assert_int_equal(lstat(p, &sb), 0);
        assert_true(S_ISCHR(sb.st_mode));
        unlink(p);
    } else {
        print_message("mknod: %s: character device case skipped\n", strerror(errno));
    }
}

static void test_symlinks(void **state)
{
    (void)state;
    char target[128], link[128], sub[128], buf[256];
    struct stat sb;
    /* a link into another directory: the target is replaced in its own
     * directory and the link still points to it */
    path_in(sub, sizeof sub, "elsewhere");
    assert_int_equal(mkdir(sub, 0755), 0);
    path_in(target, sizeof target, "elsewhere/real");
    write_file(target, "old", 3);
    path_in(link, sizeof link, "link");
    assert_int_equal(symlink("elsewhere/real", link), 0);
    assert_int_equal(save_text(link, "through"), CVAE_OK);
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    ssize_t n = readlink(link, buf, sizeof buf - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "elsewhere/real");
    assert_text(target, "through");
    assert_int_equal(hidden_in(dir), 0);
    assert_int_equal(hidden_in(sub), 0);
    unlink(link);

    /* a link to a link to the file */
    char link2[128];
    path_in(link2, sizeof link2, "link2");
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(symlink("link", link2), 0);
    assert_int_equal(save_text(link2, "twice"), CVAE_OK);
    assert_text(target, "twice");
    assert_int_equal(lstat(link2, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    unlink(link2);
    unlink(link);

    /* a link to nothing, and a link to a FIFO, are refused */
    assert_int_equal(symlink("elsewhere/missing", link), 0);
    expect_refused(link, "does not exist");
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    unlink(link);
    char fifo[128];
    path_in(fifo, sizeof fifo, "elsewhere/fifo");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    assert_int_equal(symlink("elsewhere/fifo", link), 0);
    expect_refused(link, "a FIFO");
    assert_int_equal(lstat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    unlink(link);
    unlink(fifo);
    unlink(target);
    rmdir(sub);
}

static void test_stale_and_busy_temporary_file(void **state)
{
    (void)state;
    char p[128], tmp[128];
    path_in(p, sizeof p, "ckpt");
    path_in(tmp, sizeof tmp, ".ckpt.tmp");
    write_file(p, "previous", 8);

    /* what a writer killed with SIGKILL leaves: a partial, unlocked file */
    write_file(tmp, "partial data of a killed save, longer than the new one", 54);
    assert_int_equal(save_text(p, "fresh"), CVAE_OK);
    assert_text(p, "fresh");
    assert_int_equal(hidden_in(dir), 0);

    /* a save in progress (another open file description holds the lock):
     * the second save fails, the first one's file and the target stay */
    int fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "busy", 4), 4);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    cvae__fail(CVAE_OK, "%s", "");
    assert_int_equal(save_text(p, "second"), CVAE_E_IO);
    assert_non_null(strstr(cvae_last_error(), "in progress"));
    assert_text(p, "fresh");
    assert_text(tmp, "busy");
    close(fd);
    unlink(tmp);

    /* a temporary name that is a symbolic link is never followed */
    char victim[128];
    path_in(victim, sizeof victim, "victim");
    write_file(victim, "keep", 4);
    assert_int_equal(symlink("victim", tmp), 0);
    assert_int_equal(save_text(p, "third"), CVAE_E_IO);
    assert_text(victim, "keep");
    assert_text(p, "fresh");
    unlink(tmp);
    /* nor is one with a second hard link truncated */
    assert_int_equal(link(victim, tmp), 0);
    assert_int_equal(save_text(p, "fourth"), CVAE_E_IO);
    assert_non_null(strstr(cvae_last_error(), "hard links"));
    assert_text(victim, "keep");
    unlink(tmp);
    unlink(victim);
    unlink(p);
    assert_int_equal(hidden_in(dir), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cvae_atomic_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_and_replaced_regular_file),
        cmocka_unit_test(test_special_files_refused),
        cmocka_unit_test(test_symlinks),
        cmocka_unit_test(test_stale_and_busy_temporary_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
