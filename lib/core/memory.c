#include "core/memory.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int cvae__mul_overflows(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 1;
    *out = a * b;
    return 0;
}

cvae_status cvae__shape_size(int ndim, const int64_t *dims, int64_t *elems, size_t *bytes)
{
    if (dims == NULL)
        return cvae__fail(CVAE_E_INVALID_ARG, "tensor shape: dims is NULL");
    if (ndim < 1 || ndim > CVAE__MAX_DIMS)
        return cvae__fail(CVAE_E_INVALID_ARG, "tensor rank %d is not in 1..%d", ndim,
                          CVAE__MAX_DIMS);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 1)
            return cvae__fail(CVAE_E_INVALID_ARG, "tensor dimension %d is %lld, must be >= 1",
                              i, (long long)dims[i]);
        if ((uint64_t)dims[i] > SIZE_MAX || cvae__mul_overflows(n, (size_t)dims[i], &n))
            return cvae__fail(CVAE_E_INVALID_ARG, "tensor shape overflows the address space");
    }
    size_t b;
    /* Keep element counts representable as int64_t and bytes as size_t. */
    if (n > (size_t)INT64_MAX || cvae__mul_overflows(n, sizeof(float), &b) ||
        b > SIZE_MAX - CVAE__ALIGN)
        return cvae__fail(CVAE_E_INVALID_ARG, "tensor byte size overflows");
    if (elems)
        *elems = (int64_t)n;
    if (bytes)
        *bytes = b;
    return CVAE_OK;
}

void *cvae__aligned_alloc(size_t bytes)
{
    if (bytes == 0 || bytes > SIZE_MAX - CVAE__ALIGN)
        return NULL;
    size_t rounded = (bytes + CVAE__ALIGN - 1) / CVAE__ALIGN * CVAE__ALIGN;
    return aligned_alloc(CVAE__ALIGN, rounded);
}

void cvae__aligned_free(void *p) { free(p); }

static void set_shape(cvae__tensor *t, int ndim, const int64_t *dims, int64_t size)
{
    t->ndim = ndim;
    for (int i = 0; i < CVAE__MAX_DIMS; i++)
        t->dim[i] = i < ndim ? dims[i] : 1;
    t->size = size;
}

cvae_status cvae__tensor_alloc(cvae__tensor *t, int ndim, const int64_t *dims)
{
    CVAE__CHECK_PTR(t);
    memset(t, 0, sizeof *t);
    int64_t n;
    size_t bytes;
    cvae_status st = cvae__shape_size(ndim, dims, &n, &bytes);
    if (st)
        return st;
    float *p = cvae__aligned_alloc(bytes);
    if (!p)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate %zu bytes for a tensor", bytes);
    memset(p, 0, bytes);
    t->data = p;
    t->owns = 1;
    set_shape(t, ndim, dims, n);
    return CVAE_OK;
}

void cvae__tensor_free(cvae__tensor *t)
{
    if (!t)
        return;
    if (t->owns)
        cvae__aligned_free(t->data);
    memset(t, 0, sizeof *t);
}

cvae_status cvae__tensor_view(const cvae__tensor *src, int64_t offset, int ndim,
                              const int64_t *dims, cvae__tensor *out)
{
    CVAE__CHECK_PTR(src);
    CVAE__CHECK_PTR(out);
    int64_t n;
    cvae_status st = cvae__shape_size(ndim, dims, &n, NULL);
    if (st)
        return st;
    if (offset < 0 || offset > src->size || n > src->size - offset)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "view of %lld elements at offset %lld exceeds a tensor of %lld",
                          (long long)n, (long long)offset, (long long)src->size);
    out->data = src->data + offset;
    out->owns = 0;
    set_shape(out, ndim, dims, n);
    return CVAE_OK;
}

cvae_status cvae__tensor_wrap(float *data, int ndim, const int64_t *dims, cvae__tensor *out)
{
    CVAE__CHECK_PTR(data);
    CVAE__CHECK_PTR(out);
    int64_t n;
    cvae_status st = cvae__shape_size(ndim, dims, &n, NULL);
    if (st)
        return st;
    out->data = data;
    out->owns = 0;
    set_shape(out, ndim, dims, n);
    return CVAE_OK;
}

size_t cvae__arena_bytes_for(size_t nfloats)
{
    size_t b;
    if (cvae__mul_overflows(nfloats, sizeof(float), &b) || b > SIZE_MAX - CVAE__ALIGN)
        return SIZE_MAX;
    return (b + CVAE__ALIGN - 1) / CVAE__ALIGN * CVAE__ALIGN;
}

cvae_status cvae__arena_init(cvae__arena *a, size_t cap_bytes)
{
    CVAE__CHECK_PTR(a);
    memset(a, 0, sizeof *a);
    if (cap_bytes == 0)
        return CVAE_OK;
    a->base = cvae__aligned_alloc(cap_bytes);
    if (!a->base)
        return cvae__fail(CVAE_E_NOMEM, "cannot allocate a %zu-byte workspace", cap_bytes);
    a->cap = cap_bytes;
    return CVAE_OK;
}

void cvae__arena_free(cvae__arena *a)
{
    if (!a)
        return;
    cvae__aligned_free(a->base);
    memset(a, 0, sizeof *a);
}

float *cvae__arena_floats(cvae__arena *a, size_t n)
{
    size_t need = cvae__arena_bytes_for(n);
    if (need == SIZE_MAX || need > a->cap - a->used)
        return NULL;
    float *p = (float *)(void *)(a->base + a->used);
    a->used += need;
    if (a->used > a->peak)
        a->peak = a->used;
    return p;
}
