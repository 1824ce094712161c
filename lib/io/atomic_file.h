/* Replacing a file atomically, and only a regular file.
 *
 *  - Only a regular file (or a new name) is ever replaced. A directory,
 *    FIFO, device or socket at the path is refused: renaming over /dev/null
 *    would turn the device into a plain file.
 *  - A symbolic link keeps pointing where it did: the file it resolves to is
 *    replaced, atomically, in that file's own directory. A link that points
 *    to nothing is refused (where its target should be created is a guess).
 *  - The data goes to ".NAME.tmp" beside the file being replaced, under an
 *    exclusive flock while it is written; it is fsynced, renamed over NAME
 *    and the directory fsynced. The previous file is intact until the
 *    rename. A ".NAME.tmp" left by a killed process holds no lock: the next
 *    save to NAME takes it over (and renames it away). One whose lock is
 *    held belongs to a save in progress, and the second save fails instead
 *    of corrupting it.
 * The checks and the rename are separate steps: a path that changes between
 * them (another process putting a symbolic link there) is not defended
 * against; the rename itself never writes through a link. */
#ifndef CVAE_ATOMIC_FILE_H
#define CVAE_ATOMIC_FILE_H

#include "convvae.h"

typedef struct cvae__atomic_file {
    int fd;       /* the locked temporary file, -1 when closed */
    char *target; /* the file to replace (the symbolic link resolved) */
    char *tmp;    /* ".NAME.tmp" beside target */
} cvae__atomic_file;

/* Check path against the rules above and open its temporary file, empty
 * and locked, with the mode of the file it replaces (0644 for a new one).
 * CVAE_E_IO with a message naming path on refusal or failure; on error
 * nothing needs to be released. */
cvae_status cvae__atomic_open(cvae__atomic_file *af, const char *path);

/* fsync, rename over the target, fsync the directory, close. On error the
 * temporary file is removed and the old file is untouched. path names the
 * file in messages. Releases af either way. */
cvae_status cvae__atomic_commit(cvae__atomic_file *af, const char *path);

/* Remove the temporary file and release af (after a failed write). */
void cvae__atomic_abort(cvae__atomic_file *af);

#endif
