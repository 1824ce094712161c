/* The image reader behind the public cvae_image_reader_* calls: file
 * discovery (directory walk, list files) and threaded decoding into a data
 * set. Only the file reading helper is shared, with the fuzzer's tests. */
#ifndef CVAE_IMAGE_READER_H
#define CVAE_IMAGE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "convvae.h"

/* Largest image file the reader opens (1 GiB). */
#define CVAE__IMAGE_MAX_FILE_BYTES ((size_t)1 << 30)

/* Read a whole regular file into *buf (grown with realloc as needed; *cap
 * is its size), *len bytes. Error messages name the path. */
cvae_status cvae__read_file(const char *path, uint8_t **buf, size_t *cap, size_t *len);

/* 1 if name ends in one of the image extensions add_dir collects. */
int cvae__image_name(const char *name);

#endif
