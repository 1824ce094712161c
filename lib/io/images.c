/* Image decoding: PNG (libpng) and JPEG (libjpeg-turbo) from memory, pixel
 * conversion, and resizing to the data set's image size.
 *
 * Both codecs are driven row by row: every decoded row is converted to the
 * target channels in float and fed to the streaming resampler, so memory is
 * one source row plus the (small) output, whatever the file's size. Only
 * interlaced PNGs need the whole decoded image (their rows arrive in seven
 * passes), under a cap.
 *
 * Both libraries report errors by longjmp from a callback. Each decode keeps
 * everything it allocates in a job struct reached through a pointer, so
 * nothing that changes after setjmp lives in a local variable of the
 * function that called it, and the cleanup after a longjmp sees every
 * allocation. Warnings are swallowed (the library never prints), except a
 * JPEG that ends early, which is an error: libjpeg would fill the missing
 * rows with grey and call it a success.
 *
 * WebP and TIFF are recognised (to name them in messages) but not decoded:
 * each would be one more library for every embedder who enables image files
 * to link and keep patched, TIFF especially (tiles, planes, float samples,
 * several pages, a long security record), for formats a user converts to
 * PNG with one command. */
#include "io/images.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

cvae__image_format cvae__image_sniff(const uint8_t *d, size_t len)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && memcmp(d, png_sig, 8) == 0)
        return CVAE__IMAGE_PNG;
    if (len >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        return CVAE__IMAGE_JPEG;
    if (len >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
        return CVAE__IMAGE_WEBP;
    if (len >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0))
        return CVAE__IMAGE_TIFF;
    if (len >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
        return CVAE__IMAGE_GIF;
    if (len >= 2 && d[0] == 'B' && d[1] == 'M')
        return CVAE__IMAGE_BMP;
    return CVAE__IMAGE_UNKNOWN;
}

const char *cvae__image_format_name(cvae__image_format f)
{
    switch (f) {
    case CVAE__IMAGE_PNG: return "PNG";
    case CVAE__IMAGE_JPEG: return "JPEG";
    case CVAE__IMAGE_WEBP: return "WebP";
    case CVAE__IMAGE_TIFF: return "TIFF";
    case CVAE__IMAGE_GIF: return "GIF";
    case CVAE__IMAGE_BMP: return "BMP";
    case CVAE__IMAGE_UNKNOWN: break;
    }
    return "unknown";
}

#if defined(CVAE_WITH_IMAGES) && CVAE_WITH_IMAGES

#include <math.h>
#include <setjmp.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include "io/resample.h"

/* The checks every decode starts with: arguments, then the format. Returns
 * the format or CVAE__IMAGE_UNKNOWN with *st set. */
static cvae__image_format check_input(const uint8_t *data, size_t len, const char *name,
                                      int channels, int height, int width, const uint8_t *out,
                                      cvae_status *st)
{
    *st = CVAE_OK;
    if ((!data && len) || !name || !out) {
        *st = cvae__fail(CVAE_E_INVALID_ARG, "image decode: NULL argument");
        return CVAE__IMAGE_UNKNOWN;
    }
    if ((channels != 1 && channels != 3) || height < 1 || width < 1 ||
        height > CVAE__IMAGE_MAX_SIDE || width > CVAE__IMAGE_MAX_SIDE) {
        *st = cvae__fail(CVAE_E_INVALID_ARG, "image decode: bad target %dx%dx%d", channels,
                         height, width);
        return CVAE__IMAGE_UNKNOWN;
    }
    if (len == 0) {
        *st = cvae__fail(CVAE_E_FORMAT, "'%s' is empty", name);
        return CVAE__IMAGE_UNKNOWN;
    }
    cvae__image_format f = cvae__image_sniff(data, len);
    if (f == CVAE__IMAGE_UNKNOWN) {
        char hex[3 * 8 + 1] = "";
        for (size_t i = 0, at = 0; i < len && i < 8; i++, at = strlen(hex))
            snprintf(hex + at, sizeof hex - at, "%s%02x", i ? " " : "", data[i]);
        *st = cvae__fail(CVAE_E_FORMAT, "'%s' is not a PNG or JPEG image (it starts with %s)",
                         name, hex);
    } else if (f != CVAE__IMAGE_PNG && f != CVAE__IMAGE_JPEG) {
        *st = cvae__fail(CVAE_E_FORMAT,
                         "'%s' is a %s image; only PNG and JPEG are read (convert it to PNG)",
                         name, cvae__image_format_name(f));
        f = CVAE__IMAGE_UNKNOWN;
    }
    return f;
}

/* Most bytes an interlaced PNG may decode to (it is held whole). */
#define PNG_MAX_INTERLACED_BYTES ((size_t)1 << 28)
/* Most memory libjpeg may use for one image (progressive JPEGs keep every
 * coefficient), and most scans: a tiny progressive file can otherwise ask
 * for thousands of passes over a large image. */
#define JPEG_MAX_MEMORY (256L << 20)
#define JPEG_MAX_SCANS 1000

/* ------------------------------------------------------------------------ */
/* Decoded rows -> target channels -> resampler -> output                   */
/* ------------------------------------------------------------------------ */

/* How the samples of a decoded row are laid out. */
typedef enum layout { L_G, L_GA, L_RGB, L_RGBA, L_CMYK, L_CMYK_INVERTED } layout;

typedef struct sink {
    layout lay;
    int bits;        /* 8 or 16 (big-endian, as libpng gives them) */
    int src_w;
    int channels;    /* target: 1 or 3 */
    int dst_h, dst_w;
    float *frow;     /* src_w * channels */
    float *acc;      /* dst_h * dst_w * channels */
    int ready;       /* rs is initialised */
    cvae__resampler rs;
} sink;

static cvae_status sink_init(sink *s, layout lay, int bits, int src_h, int src_w, int channels,
                             int dst_h, int dst_w)
{
    s->lay = lay;
    s->bits = bits;
    s->src_w = src_w;
    s->channels = channels;
    s->dst_h = dst_h;
    s->dst_w = dst_w;
    s->frow = malloc((size_t)src_w * (size_t)channels * sizeof *s->frow);
    s->acc = malloc((size_t)dst_h * (size_t)dst_w * (size_t)channels * sizeof *s->acc);
    if (!s->frow || !s->acc)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate image rows");
    cvae_status st = cvae__resample_init(&s->rs, channels, src_h, src_w, dst_h, dst_w, s->acc);
    s->ready = st == CVAE_OK;
    return st;
}

static void sink_free(sink *s)
{
    if (s->ready)
        cvae__resample_free(&s->rs);
    free(s->frow);
    free(s->acc);
    memset(s, 0, sizeof *s);
}

static float sample(const uint8_t *p, int k, int bits)
{
    if (bits == 16)
        return (float)((unsigned)p[2 * k] << 8 | p[2 * k + 1]) * (1.0f / 65535.0f);
    return (float)p[k] * (1.0f / 255.0f);
}

static void sink_row(sink *s, const uint8_t *row)
{
    static const int nsamples[] = {1, 2, 3, 4, 4, 4};
    const int n = nsamples[s->lay];
    const size_t stride = (size_t)n * (s->bits == 16 ? 2 : 1);
    for (int x = 0; x < s->src_w; x++) {
        const uint8_t *p = row + (size_t)x * stride;
        float r, g, b, a = 1.0f;
        int grey = 0;
        switch (s->lay) {
        case L_G:
        case L_GA:
            r = g = b = sample(p, 0, s->bits);
            grey = 1;
            if (s->lay == L_GA)
                a = sample(p, 1, s->bits);
            break;
        case L_RGB:
        case L_RGBA:
            r = sample(p, 0, s->bits);
            g = sample(p, 1, s->bits);
            b = sample(p, 2, s->bits);
            if (s->lay == L_RGBA)
                a = sample(p, 3, s->bits);
            break;
        default: {
            /* Adobe writes CMYK inverted (0 = full ink); the plain form
             * stores ink amounts. */
            float c = sample(p, 0, 8), m = sample(p, 1, 8), y = sample(p, 2, 8),
                  k = sample(p, 3, 8);
            if (s->lay == L_CMYK_INVERTED) {
                r = c * k;
                g = m * k;
                b = y * k;
            } else {
                r = (1.0f - c) * (1.0f - k);
                g = (1.0f - m) * (1.0f - k);
                b = (1.0f - y) * (1.0f - k);
            }
        }
        }
        if (a < 1.0f) { /* over a white background */
            r = a * r + (1.0f - a);
            g = a * g + (1.0f - a);
            b = a * b + (1.0f - a);
        }
        float *d = s->frow + (size_t)x * (size_t)s->channels;
        if (s->channels == 1) {
            d[0] = grey ? r : 0.299f * r + 0.587f * g + 0.114f * b;
        } else {
            d[0] = r;
            d[1] = g;
            d[2] = b;
        }
    }
    cvae__resample_row(&s->rs, s->frow);
}

/* Resampled floats (HWC) to uint8 CHW. */
static void sink_output(const sink *s, uint8_t *out)
{
    const size_t plane = (size_t)s->dst_h * (size_t)s->dst_w;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < s->channels; c++) {
            float v = s->acc[i * (size_t)s->channels + (size_t)c];
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            out[(size_t)c * plane + i] = (uint8_t)lrintf(v * 255.0f);
        }
}

static int too_many_pixels(uint64_t w, uint64_t h)
{
    return w * h > (uint64_t)CVAE__IMAGE_MAX_PIXELS;
}

/* ------------------------------------------------------------------------ */
/* PNG                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct png_job {
    const uint8_t *data;
    size_t len, pos;
    const char *name;
    int channels, height, width;
    png_structp png;
    png_infop info;
    uint8_t *pixels;   /* one row, or the whole image if interlaced */
    png_bytep *rows;   /* row pointers into pixels (interlaced) */
    sink sk;
    cvae_status st;    /* set by checks of ours (not libpng errors) */
    char msg[256];     /* libpng's error message */
} png_job;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_read_mem(png_structp png, png_bytep out, size_t n)
{
    png_job *j = png_get_io_ptr(png);
    if (n > j->len - j->pos)
        png_error(png, "the file ends early (truncated)");
    memcpy(out, j->data + j->pos, n);
    j->pos += n;
}

/* Everything after the setjmp. Returns normally, or by longjmp on a libpng
 * error; state is only written through j. */
static void png_run(png_job *j)
{
    png_structp png = j->png;
    png_infop info = j->info;
    png_set_user_limits(png, CVAE__IMAGE_MAX_SIDE, CVAE__IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(png, (png_alloc_size_t)16 << 20);
    png_set_read_fn(png, j, png_read_mem);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (too_many_pixels(w, h)) {
        j->st = cvae__fail(CVAE_E_UNSUPPORTED, "'%s' is %lux%lu pixels, more than the %lld "
                           "this reader decodes", j->name, (unsigned long)w, (unsigned long)h,
                           (long long)CVAE__IMAGE_MAX_PIXELS);
        return;
    }
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int n = png_get_channels(png, info), bits = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    static const layout by_channels[] = {L_G, L_G, L_GA, L_RGB, L_RGBA};
    if (n < 1 || n > 4 || (bits != 8 && bits != 16) ||
        rowbytes != (size_t)w * (size_t)n * (size_t)(bits / 8))
        png_error(png, "unexpected sample layout after expansion");
    if ((j->st = sink_init(&j->sk, by_channels[n], bits, (int)h, (int)w, j->channels, j->height,
                           j->width)))
        return;
    if (passes > 1) {
        if (rowbytes > PNG_MAX_INTERLACED_BYTES / h) {
            j->st = cvae__fail(CVAE_E_UNSUPPORTED, "'%s' is an interlaced %lux%lu PNG, too "
                               "large to decode (save it without interlacing)", j->name,
                               (unsigned long)w, (unsigned long)h);
            return;
        }
        j->pixels = malloc(rowbytes * h);
        j->rows = malloc(h * sizeof *j->rows);
        if (!j->pixels || !j->rows) {
            j->st = cvae__fail(CVAE_E_NOMEM, "cannot allocate %zu bytes for '%s'",
                               rowbytes * h, j->name);
            return;
        }
        for (png_uint_32 y = 0; y < h; y++)
            j->rows[y] = j->pixels + (size_t)y * rowbytes;
        png_read_image(png, j->rows);
        for (png_uint_32 y = 0; y < h; y++)
            sink_row(&j->sk, j->rows[y]);
    } else {
        if (!(j->pixels = malloc(rowbytes))) {
            j->st = cvae__fail(CVAE_E_NOMEM, "cannot allocate a row of '%s'", j->name);
            return;
        }
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(png, j->pixels, NULL);
            sink_row(&j->sk, j->pixels);
        }
    }
}

static cvae_status png_decode(png_job *j, uint8_t *out)
{
    j->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, j, png_on_error, png_on_warning);
    if (j->png)
        j->info = png_create_info_struct(j->png);
    if (!j->png || !j->info) {
        png_destroy_read_struct(&j->png, NULL, NULL);
        return cvae__fail(CVAE_E_NOMEM, "cannot create a PNG decoder for '%s'", j->name);
    }
    cvae_status st;
    if (setjmp(png_jmpbuf(j->png))) {
        st = cvae__fail(CVAE_E_FORMAT, "'%s' is not a valid PNG: %s", j->name, j->msg);
    } else {
        png_run(j);
        st = j->st;
        if (!st)
            sink_output(&j->sk, out);
    }
    png_destroy_read_struct(&j->png, &j->info, NULL);
    free(j->pixels);
    free(j->rows);
    sink_free(&j->sk);
    return st;
}

/* ------------------------------------------------------------------------ */
/* JPEG                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct jpeg_job {
    const uint8_t *data;
    size_t len;
    const char *name;
    int channels, height, width;
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    struct jpeg_progress_mgr progress;
    jmp_buf jb;
    int created;
    int ended_early;   /* libjpeg warned that the data ran out */
    uint8_t *row;
    sink sk;
    cvae_status st;
    char msg[JMSG_LENGTH_MAX + 64];
} jpeg_job;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_job *j = cinfo->client_data;
    (*cinfo->err->format_message)(cinfo, j->msg);
    longjmp(j->jb, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level < 0) { /* a warning; higher levels are trace output */
        jpeg_job *j = cinfo->client_data;
        cinfo->err->num_warnings++;
        if (cinfo->err->msg_code == JWRN_JPEG_EOF)
            j->ended_early = 1;
    }
}

static void jpeg_on_output(j_common_ptr cinfo) { (void)cinfo; }

static void jpeg_on_progress(j_common_ptr cinfo)
{
    if (!cinfo->is_decompressor)
        return;
    if (((j_decompress_ptr)cinfo)->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_job *j = cinfo->client_data;
        snprintf(j->msg, sizeof j->msg, "more than %d progressive scans", JPEG_MAX_SCANS);
        longjmp(j->jb, 1);
    }
}

static int ceil_div(unsigned a, unsigned b) { return (int)((a + b - 1) / b); }

static void jpeg_run(jpeg_job *j)
{
    j_decompress_ptr ci = &j->cinfo;
    jpeg_create_decompress(ci);
    j->created = 1;
    ci->client_data = j;
    ci->mem->max_memory_to_use = JPEG_MAX_MEMORY;
    j->progress.progress_monitor = jpeg_on_progress;
    ci->progress = &j->progress;
    jpeg_mem_src(ci, j->data, (unsigned long)j->len);
    jpeg_read_header(ci, TRUE);
    if (ci->image_width > CVAE__IMAGE_MAX_SIDE || ci->image_height > CVAE__IMAGE_MAX_SIDE ||
        too_many_pixels(ci->image_width, ci->image_height)) {
        j->st = cvae__fail(CVAE_E_UNSUPPORTED, "'%s' is %ux%u pixels, more than the %lld this "
                           "reader decodes", j->name, ci->image_width, ci->image_height,
                           (long long)CVAE__IMAGE_MAX_PIXELS);
        return;
    }
    layout lay;
    if (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK) {
        ci->out_color_space = JCS_CMYK;
        lay = ci->saw_Adobe_marker ? L_CMYK_INVERTED : L_CMYK;
    } else if (j->channels == 1) {
        /* From YCbCr this is the Y plane: the same luma weights. */
        ci->out_color_space = JCS_GRAYSCALE;
        lay = L_G;
    } else {
        ci->out_color_space = JCS_RGB;
        lay = L_RGB;
    }
    /* libjpeg can decode at 1/2, 1/4 or 1/8 scale from the DCT directly,
     * which is far faster for a photo shrunk to a few dozen pixels; take
     * the smallest scale that still leaves the box filter shrinking. */
    for (unsigned d = 8; d >= 2; d /= 2)
        if (ceil_div(ci->image_width, d) >= j->width && ceil_div(ci->image_height, d) >= j->height) {
            ci->scale_num = 1;
            ci->scale_denom = d;
            break;
        }
    jpeg_start_decompress(ci);
    int n = ci->output_components;
    if ((lay == L_G && n != 1) || (lay == L_RGB && n != 3) || (lay >= L_CMYK && n != 4)) {
        snprintf(j->msg, sizeof j->msg, "unexpected component count %d", n);
        longjmp(j->jb, 1);
    }
    if ((j->st = sink_init(&j->sk, lay, 8, (int)ci->output_height, (int)ci->output_width,
                           j->channels, j->height, j->width)))
        return;
    if (!(j->row = malloc((size_t)ci->output_width * (size_t)n))) {
        j->st = cvae__fail(CVAE_E_NOMEM, "cannot allocate a row of '%s'", j->name);
        return;
    }
    while (ci->output_scanline < ci->output_height && !j->ended_early) {
        JSAMPROW rp = j->row;
        if (jpeg_read_scanlines(ci, &rp, 1) != 1)
            break;
        sink_row(&j->sk, j->row);
    }
    if (j->ended_early || ci->output_scanline < ci->output_height)
        j->st = cvae__fail(CVAE_E_FORMAT, "'%s' is a truncated JPEG (its data ends early)",
                           j->name);
}

static cvae_status jpeg_decode(jpeg_job *j, uint8_t *out)
{
    j->cinfo.err = jpeg_std_error(&j->jerr);
    j->jerr.error_exit = jpeg_on_error;
    j->jerr.emit_message = jpeg_on_message;
    j->jerr.output_message = jpeg_on_output;
    j->cinfo.client_data = j;
    cvae_status st;
    if (setjmp(j->jb)) {
        st = cvae__fail(CVAE_E_FORMAT, "'%s' is not a valid JPEG: %s", j->name, j->msg);
    } else {
        jpeg_run(j);
        st = j->st;
        if (!st)
            sink_output(&j->sk, out);
    }
    if (j->created)
        jpeg_destroy_decompress(&j->cinfo);
    free(j->row);
    sink_free(&j->sk);
    return st;
}

cvae_status cvae__image_decode(const uint8_t *data, size_t len, const char *name, int channels,
                               int height, int width, uint8_t *out)
{
    cvae_status st;
    cvae__image_format f = check_input(data, len, name, channels, height, width, out, &st);
    if (f == CVAE__IMAGE_PNG) {
        png_job *j = calloc(1, sizeof *j);
        if (!j)
            return cvae__fail(CVAE_E_NOMEM, "cannot allocate a PNG decoder");
        j->data = data;
        j->len = len;
        j->name = name;
        j->channels = channels;
        j->height = height;
        j->width = width;
        st = png_decode(j, out);
        free(j);
    } else if (f == CVAE__IMAGE_JPEG) {
        jpeg_job *j = calloc(1, sizeof *j);
        if (!j)
            return cvae__fail(CVAE_E_NOMEM, "cannot allocate a JPEG decoder");
        j->data = data;
        j->len = len;
        j->name = name;
        j->channels = channels;
        j->height = height;
        j->width = width;
        st = jpeg_decode(j, out);
        free(j);
    }
    return st;
}

#else /* image files not compiled in */

cvae_status cvae__image_decode(const uint8_t *data, size_t len, const char *name, int channels,
                               int height, int width, uint8_t *out)
{
    (void)data, (void)len, (void)name, (void)channels, (void)height, (void)width, (void)out;
    return cvae__fail(CVAE_E_UNSUPPORTED,
                      "this libconvvae was built without image files (CVAE_WITH_IMAGES=OFF)");
}

#endif
