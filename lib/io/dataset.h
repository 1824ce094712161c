/* Data sets: in-memory images (uint8 or float32, NCHW) with optional int32
 * labels, and the IDX reader. The accessors below are what the training
 * loop uses per batch; none of them allocates. */
#ifndef CVAE_DATASET_H
#define CVAE_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "convvae.h"

/* Largest image (C*H*W pixels) a data set may hold: 2^30, the most a model
 * can be configured for (64 x 4096 x 4096); it keeps per-image sizes in int. */
#define CVAE__DATASET_MAX_PIXELS (INT64_C(1) << 30)
/* Largest single IDX image dimension (C, H or W). */
#define CVAE__IDX_MAX_DIM 65535

/* Number of images. */
int64_t cvae__dataset_count(const cvae_dataset *ds);

/* Image shape (any pointer may be NULL); returns C*H*W. */
int cvae__dataset_dims(const cvae_dataset *ds, int *c, int *h, int *w);

/* Copy the images at indices[0..n) into out (n*C*H*W floats) as float32 in
 * [0,1]; uint8 pixels v become v / 255.0f (correctly rounded, so 255 gives
 * exactly 1.0f). Indices are trusted: the caller validated them. */
void cvae__dataset_gather_f32(const cvae_dataset *ds, const int64_t *indices, int n, float *out);

/* The labels (count of them), or NULL if the data set has none. */
const int32_t *cvae__dataset_labels_ptr(const cvae_dataset *ds);

/* ---- image files (io/image_reader.c) ------------------------------------- */

struct cvae__strlist;

/* A uint8 data set that takes ownership of pixels (count*C*H*W bytes from
 * malloc) on success; on failure the caller still owns them. */
cvae_status cvae__dataset_adopt_u8(uint8_t *pixels, int64_t count, int c, int h, int w,
                                   cvae_dataset **out);
/* Attach the path of every image: paths (a malloc'ed list of count strings)
 * becomes the data set's. */
void cvae__dataset_set_paths(cvae_dataset *ds, struct cvae__strlist *paths);

/* ---- IDX parsing, shared by the file reader and the fuzzer -------------- */

enum { CVAE__IDX_IMAGES = 0, CVAE__IDX_LABELS = 1 };

typedef struct cvae__idx_info {
    int ndim;               /* 3 or 4 for images, 1 for labels */
    int64_t count;          /* first dimension */
    int channels, height, width; /* 1,1,1 for labels; C=1 for 3-D images */
    size_t header_bytes;    /* 4 + 4*ndim */
    size_t data_bytes;      /* count*C*H*W */
} cvae__idx_info;

/* Bytes of an IDX header of the given kind after seeing its first 4 bytes
 * (the magic), or 0 if they are not an acceptable magic for that kind. */
size_t cvae__idx_header_size(const uint8_t magic[4], int kind);

/* Validate the header at the start of buf[0..len) (len may cover only the
 * header) and fill *info. name is the file name used in messages ("images
 * file 'x'"). CVAE_E_FORMAT for a foreign, truncated or oversized header. */
cvae_status cvae__idx_parse_header(const uint8_t *buf, size_t len, int kind, const char *name,
                                   cvae__idx_info *info);

/* Validate a whole IDX file held in memory: header, then exactly
 * info->data_bytes of data (the data starts at buf + info->header_bytes).
 * CVAE_E_FORMAT if truncated or followed by trailing bytes. */
cvae_status cvae__idx_parse(const uint8_t *buf, size_t len, int kind, const char *name,
                            cvae__idx_info *info);

/* A data set from whole IDX files held in memory (labels may be NULL):
 * the same validation as cvae_dataset_load_idx, for the fuzzer. Copies. */
cvae_status cvae__dataset_from_idx_memory(const uint8_t *images, size_t images_len,
                                          const uint8_t *labels, size_t labels_len,
                                          cvae_dataset **out);

#endif
