/* safetensors reader (safetensors_read.c) and writer (safetensors_write.c)
 * for float32 tensors plus string metadata.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 *   {"__metadata__": {"key": "value", ...},
 *    "name": {"dtype": "F32", "shape": [d0, ...], "data_offsets": [begin, end]}, ...}
 * then the little-endian tensor bytes. Writes are atomic: a temporary file in
 * the target directory, fsync, rename, fsync of the directory (atomic_file.h:
 * only regular files are replaced, symbolic links are written through).
 *
 * The writer adds __metadata__ "tensors_crc32": the CRC-32 (zlib's) of each
 * tensor's bytes as 8 lowercase hex digits, separated by single spaces, in
 * the order of the tensors' data_offsets. The reader verifies it when it is
 * there and names the tensor whose bytes do not match; files without it
 * (other writers, older files) load unchecked. CRC-32 finds every burst of
 * up to 32 flipped bits and all but 2^-32 of random damage; it guards
 * against storage and copy errors, not against deliberate edits. */
#ifndef CVAE_SAFETENSORS_H
#define CVAE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "convvae.h"

#define CVAE__ST_MAX_DIMS 4

/* The __metadata__ key of the tensors' checksums (see above). */
#define CVAE__ST_CRC_KEY "tensors_crc32"

/* The reference implementation refuses headers above 100 MB; matching it
 * keeps files we write readable there and bounds our own allocations. */
#define CVAE__ST_MAX_HEADER ((uint64_t)100000000)

typedef struct cvae__st_tensor {
    const char *name;
    int ndim; /* 0..CVAE__ST_MAX_DIMS (0 = scalar) */
    int64_t shape[CVAE__ST_MAX_DIMS];
    const float *data;
} cvae__st_tensor;

/* Write tensors and metadata pairs (keys/values are NUL-terminated UTF-8,
 * escaped as needed). The previous file at path, if any, is untouched unless
 * the whole new file was written and synced. */
cvae_status cvae__st_save(const char *path, const cvae__st_tensor *tensors, size_t ntensors,
                          const char *const *meta_keys, const char *const *meta_values,
                          size_t nmeta);

typedef struct cvae__st_file cvae__st_file;

/* Parse a complete safetensors image from memory (copied; buf may be freed
 * afterwards). Everything is validated first: header length within the
 * buffer, JSON well-formed, dtype F32 only, shapes consistent with offsets,
 * offsets in bounds, non-overlapping and covering the data exactly, no
 * duplicate names. Returns CVAE_E_FORMAT with a message otherwise. */
cvae_status cvae__st_parse(const uint8_t *buf, size_t len, cvae__st_file **out);

/* Read and parse a file (CVAE_E_IO if it cannot be read). */
cvae_status cvae__st_load(const char *path, cvae__st_file **out);

void cvae__st_free(cvae__st_file *f);

/* Look up a tensor by name: pointer to its (aligned, host-endian) floats, or
 * NULL if absent. ndim/shape may be NULL. */
const float *cvae__st_find(const cvae__st_file *f, const char *name, int *ndim, int64_t *shape);

/* Metadata value for key, or NULL. */
const char *cvae__st_meta(const cvae__st_file *f, const char *key);

/* Number of tensors, and the name of tensor i (for iteration). */
size_t cvae__st_count(const cvae__st_file *f);
const char *cvae__st_name(const cvae__st_file *f, size_t i);

/* Shared by reader and writer. */

/* Bytes of a tensor with this shape, or 0 with *ok = 0 on overflow. The
 * product of the non-zero dims must fit in int64 even when a zero dim makes
 * the tensor empty, so that consumers multiplying dims can never overflow. */
uint64_t cvae__st_shape_bytes(int ndim, const int64_t *shape, int *ok);

/* First name that occurs twice, or NULL; sorts names in place. */
const char *cvae__st_first_duplicate(const char **names, size_t n);

#endif
