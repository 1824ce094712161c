/* A 16 x 16 transpose in sixteen AVX-512 registers: a[q] becomes column q
 * of the block whose rows were a[0..15]. Four rounds of two-source
 * permutes (32-bit, 64-bit, 128-bit, 256-bit interleaves). For the
 * copies that turn channel planes into channels side by side and back
 * (the implicit-im2col packing, the Winograd convolution). Only in code
 * compiled for x86-64 with GCC or Clang, inside functions built for
 * avx512f. */
#ifndef CVAE_TRANSPOSE16_H
#define CVAE_TRANSPOSE16_H

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

__attribute__((target("avx512f"), always_inline)) static inline void tr16_avx512(__m512 a[16])
{
    __m512 b[16];
    for (int r = 0; r < 16; r += 2) { /* 32-bit interleave of row pairs */
        b[r] = _mm512_unpacklo_ps(a[r], a[r + 1]);
        b[r + 1] = _mm512_unpackhi_ps(a[r], a[r + 1]);
    }
    for (int r = 0; r < 16; r += 4) /* 64-bit interleave */
        for (int h = 0; h < 2; h++) {
            const __m512d x = _mm512_castps_pd(b[r + h]), y = _mm512_castps_pd(b[r + 2 + h]);
            a[r + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(x, y));
            a[r + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(x, y));
        }
    /* a[4g + c] now holds, in its 128-bit lane L, rows 4g..4g+3 of column
     * 4L + c; the 128- and 256-bit rounds gather the four lanes of a column
     * from the four row groups. */
    const __m512i lo128 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25,
                                            26, 27);
    const __m512i hi128 = _mm512_setr_epi32(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28,
                                            29, 30, 31);
    for (int r = 0; r < 8; r++) {
        const int i = (r / 4) * 8 + r % 4;
        b[i] = _mm512_permutex2var_ps(a[i], lo128, a[i + 4]);
        b[i + 4] = _mm512_permutex2var_ps(a[i], hi128, a[i + 4]);
    }
    const __m512i lo256 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21,
                                            22, 23);
    const __m512i hi256 = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28,
                                            29, 30, 31);
    for (int r = 0; r < 8; r++) {
        a[r] = _mm512_permutex2var_ps(b[r], lo256, b[r + 8]);
        a[r + 8] = _mm512_permutex2var_ps(b[r], hi256, b[r + 8]);
    }
}

#endif
#endif
