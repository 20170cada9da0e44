/* Single-query attention partials over a K/V cache, streamed once (kronos_synth.model.native).
 *
 * R rows (a row is one (batch row, head)); row r's query q[r] (K floats, already scaled) attends to
 * positions j = 0..n-1 whose key and value start at k + s*rs + j*ps and v + s*rs + j*ps (float32 or bf16
 * elements), s = rows[r] (several rows may share one storage row: samples of one context over its shared
 * prefix, read from memory once per tile) or s = r when rows is NULL. For every row the kernel writes the partial softmax, unnormalised:
 *     m = max_j s_j,   l = sum_j exp(s_j - m),   o = sum_j exp(s_j - m) v_j,   s_j = q . k_j,
 * with float32 sums (bf16 caches on CPUs with AVX512-BF16: bf16 products of a bf16-rounded query and
 * bf16-rounded weights, as a bf16 matmul, summed in float32). The caches are laid out position-major (ps = R*K, rs = K), so one position of a tile
 * of rows is one contiguous run of memory; the kernel walks positions in the outer loop and streams the
 * cache at close to memory speed. Every row is computed by the same sequence of operations whatever its
 * tile, lane, batch or thread (vector lanes compute rows independently, sums run over j in order), so its
 * bytes never depend on the batch it is in.
 */
#include <math.h>
#include <pthread.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"

#define TILE 256 /* rows per tile: a position of a tile is TILE*K elements in one run */

typedef struct {
    const float *q;
    const void *k, *v;
    const int64_t *rows; /* storage row of each row (NULL: row r is storage row r) */
    int64_t rs, ps, n, K, r0, r1;
    float *m, *l, *o;
    int bf16;
} job_t;

/* exp for x <= 0 (Cephes' expf polynomial, about 1 ulp) */
static inline float exp_neg(float x) {
    x = x < -87.0f ? -87.0f : x;
    float n = nearbyintf(x * 1.44269504088896341f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    return ldexpf(p, (int)n);
}

#if defined(__AVX512F__)
#include <immintrin.h>
#define LANES 16

static inline __m512 exp_neg16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* the 16 horizontal sums of a[0..15] as one vector (lane i = sum of a[i]); the same adds for every lane */
static inline __m512 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
    __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    return _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t1))),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t1))));
}

static inline __m512 lanes2(__m512 u0, __m512 u1) {
    return _mm512_add_ps(_mm512_shuffle_f32x4(u0, u1, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(u0, u1, _MM_SHUFFLE(3, 1, 3, 1)));
}

static inline __m512 reduce16(const __m512 *a) {
    return lanes2(lanes2(reduce4(a[0], a[1], a[2], a[3]), reduce4(a[4], a[5], a[6], a[7])),
                  lanes2(reduce4(a[8], a[9], a[10], a[11]), reduce4(a[12], a[13], a[14], a[15])));
}

static inline __m512 load_f32(const float *p) { return _mm512_loadu_ps(p); }
static inline __m512 load_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

static inline void prefetch(const void *p, int64_t bytes) {
    for (int64_t b = 0; b < bytes; b += 64) _mm_prefetch((const char *)p + b, _MM_HINT_T0);
}

/* One tile of rows t0..t0+cnt-1 (cnt <= TILE). s: n * TILE scores (position-major), ov: TILE*K outputs. */
#define TILE_BODY(T, LOAD, C16)                                                                       \
    const int64_t nb = (cnt + 15) / 16;                                                               \
    __m512 mx[TILE / 16];                                                                             \
    for (int64_t b = 0; b < nb; b++) mx[b] = _mm512_set1_ps(-INFINITY);                               \
    for (int64_t j = 0; j < n; j++) {                                                                 \
        const T *kj = k + j * ps;                                                                     \
        if (j + 1 < n) for (int64_t i = 0; i < cnt; i++) prefetch(kj + ps + off[i], K * (int64_t)sizeof(T)); \
        for (int64_t b = 0; b < nb; b++) {                                                            \
            __m512 acc[16];                                                                           \
            for (int64_t i = 0; i < 16; i++) {                                                        \
                int64_t row = b * 16 + i;                                                             \
                if (row >= cnt) { acc[i] = _mm512_setzero_ps(); continue; }                           \
                const float *qr = q + (t0 + row) * K;                                                 \
                const T *kr = kj + off[row];                                                          \
                __m512 a = _mm512_mul_ps(_mm512_loadu_ps(qr), LOAD(kr));                              \
                for (int64_t c = 1; c < C16; c++) a = _mm512_fmadd_ps(_mm512_loadu_ps(qr + 16 * c), LOAD(kr + 16 * c), a); \
                acc[i] = a;                                                                           \
            }                                                                                         \
            __m512 sv = reduce16(acc);                                                                \
            _mm512_storeu_ps(s + j * TILE + b * 16, sv);                                              \
            mx[b] = _mm512_max_ps(mx[b], sv);                                                         \
        }                                                                                             \
    }                                                                                                 \
    TILE_VALUES(T, LOAD, C16)

#define TILE_VALUES(T, LOAD, C16)                                                                     \
    for (int64_t b = 0; b < nb; b++) {                                                                \
        __m512 sum = _mm512_setzero_ps();                                                             \
        for (int64_t j = 0; j < n; j++) {                                                             \
            __m512 e = exp_neg16(_mm512_sub_ps(_mm512_loadu_ps(s + j * TILE + b * 16), mx[b]));       \
            _mm512_storeu_ps(s + j * TILE + b * 16, e);                                               \
            sum = _mm512_add_ps(sum, e);                                                              \
        }                                                                                             \
        __mmask16 valid = (__mmask16)(cnt - b * 16 >= 16 ? 0xFFFFu : (1u << (cnt - b * 16)) - 1);   \
        _mm512_mask_storeu_ps(m + t0 + b * 16, valid, mx[b]);                                         \
        _mm512_mask_storeu_ps(l + t0 + b * 16, valid, sum);                                           \
    }                                                                                                 \
    float *ot = o + t0 * K;                                                                           \
    memset(ot, 0, sizeof(float) * (size_t)(cnt * K));                                                 \
    for (int64_t j = 0; j < n; j += 4) {                                                              \
        /* four positions per pass over the tile's outputs (in order, so sums match one at a time) */ \
        const int64_t jn = n - j < 4 ? n - j : 4;                                                     \
        const T *vj = v + j * ps;                                                                     \
        for (int64_t a = 0; a < jn; a++)                                                              \
            if (j + 4 + a < n) for (int64_t i = 0; i < cnt; i++) prefetch(vj + (4 + a) * ps + off[i], K * (int64_t)sizeof(T)); \
        const float *w = s + j * TILE;                                                                \
        for (int64_t i = 0; i < cnt; i++) {                                                           \
            const T *vr = vj + off[i];                                                                \
            float *orow = ot + i * K;                                                                 \
            for (int64_t c = 0; c < C16; c++) {                                                       \
                __m512 acc = _mm512_loadu_ps(orow + 16 * c);                                          \
                for (int64_t a = 0; a < jn; a++)                                                      \
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(w[a * TILE + i]), LOAD(vr + a * ps + 16 * c), acc); \
                _mm512_storeu_ps(orow + 16 * c, acc);                                                 \
            }                                                                                         \
        }                                                                                             \
    }

#define DEFINE_TILE(NAME, T, LOAD, C16)                                                               \
    static void NAME(const float *q, const T *k, const T *v, const int64_t *off, int64_t ps, int64_t n, \
                     int64_t K, int64_t t0, int64_t cnt, float *s, float *m, float *l, float *o) {   \
        TILE_BODY(T, LOAD, C16)                                                                       \
    }

DEFINE_TILE(tile_f32_64, float, load_f32, 4)
DEFINE_TILE(tile_f32_128, float, load_f32, 8)
DEFINE_TILE(tile_f32_any, float, load_f32, K / 16)
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
/* bf16 caches on CPUs with AVX512-BF16: products of bf16 pairs summed in float32 (vdpbf16ps), as a bf16
   matmul computes them. The query is rounded to bf16 once per tile and the attention weights once per
   position (the values' side), which halves the instructions per row and position; every sum stays
   float32. Values: two positions per instruction, their bf16 elements interleaved (unpack), so each
   float32 lane of the accumulators holds one output element, in a fixed permutation undone at the end. */
#define JB 8 /* positions per pass over the tile's outputs */
static void tile_bf16_dp(const float *q, const uint16_t *k, const uint16_t *v, const int64_t *off, int64_t ps,
                         int64_t n, int64_t K, int64_t t0, int64_t cnt, float *s, float *m, float *l, float *o) {
    const int64_t c32 = K / 32, nb = (cnt + 15) / 16;
    __m512bh qb[TILE * 4];
    __m512 mx[TILE / 16];
    for (int64_t i = 0; i < cnt; i++)
        for (int64_t c = 0; c < c32; c++)
            qb[i * c32 + c] = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(q + (t0 + i) * K + 32 * c + 16),
                                                  _mm512_loadu_ps(q + (t0 + i) * K + 32 * c));
    for (int64_t b = 0; b < nb; b++) mx[b] = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < n; j++) {
        const uint16_t *kj = k + j * ps;
        if (j + 1 < n) for (int64_t i = 0; i < cnt; i++) prefetch(kj + ps + off[i], K * 2);
        for (int64_t b = 0; b < nb; b++) {
            __m512 acc[16];
            for (int64_t i = 0; i < 16; i++) {
                int64_t row = b * 16 + i;
                if (row >= cnt) { acc[i] = _mm512_setzero_ps(); continue; }
                const uint16_t *kr = kj + off[row];
                __m512 a = _mm512_setzero_ps();
                for (int64_t c = 0; c < c32; c++)
                    a = _mm512_dpbf16_ps(a, qb[row * c32 + c], (__m512bh)_mm512_loadu_si512(kr + 32 * c));
                acc[i] = a;
            }
            __m512 sv = reduce16(acc);
            _mm512_storeu_ps(s + j * TILE + b * 16, sv);
            mx[b] = _mm512_max_ps(mx[b], sv);
        }
    }
    /* exp and sums in float32; then the weights as bf16 pairs (w_j, w_j+1) per row, j even */
    const __m512i pairs = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                           23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    uint32_t *wp = (uint32_t *)(s + n * TILE); /* (n + 1) / 2 * TILE pairs after the scores */
    for (int64_t b = 0; b < nb; b++) {
        __m512 sum = _mm512_setzero_ps();
        for (int64_t j = 0; j < n; j++) {
            __m512 e = exp_neg16(_mm512_sub_ps(_mm512_loadu_ps(s + j * TILE + b * 16), mx[b]));
            _mm512_storeu_ps(s + j * TILE + b * 16, e);
            sum = _mm512_add_ps(sum, e);
        }
        for (int64_t j = 0; j < n; j += 2) {
            __m512 w0 = _mm512_loadu_ps(s + j * TILE + b * 16);
            __m512 w1 = j + 1 < n ? _mm512_loadu_ps(s + (j + 1) * TILE + b * 16) : _mm512_setzero_ps();
            __m512i wb = _mm512_permutexvar_epi16(pairs, (__m512i)_mm512_cvtne2ps_pbh(w1, w0));
            _mm512_storeu_si512(wp + (j / 2) * TILE + b * 16, wb);
        }
        __mmask16 valid = (__mmask16)(cnt - b * 16 >= 16 ? 0xFFFFu : (1u << (cnt - b * 16)) - 1);
        _mm512_mask_storeu_ps(m + t0 + b * 16, valid, mx[b]);
        _mm512_mask_storeu_ps(l + t0 + b * 16, valid, sum);
    }
    /* values: accumulators in the interleaved order, kept in o's tile between blocks of JB positions */
    float *ot = o + t0 * K;
    memset(ot, 0, sizeof(float) * (size_t)(cnt * K));
    for (int64_t j0 = 0; j0 < n; j0 += JB) {
        const int64_t j1 = j0 + JB < n ? j0 + JB : n;
        for (int64_t j = j0 + JB; j < j1 + JB && j < n; j++)
            for (int64_t i = 0; i < cnt; i++) prefetch(v + j * ps + off[i], K * 2);
        for (int64_t i = 0; i < cnt; i++) {
            __m512 acc[8];
            float *orow = ot + i * K;
            for (int64_t c = 0; c < 2 * c32; c++) acc[c] = _mm512_loadu_ps(orow + 16 * c);
            for (int64_t j = j0; j < j1; j += 2) {
                const uint16_t *va = v + j * ps + off[i];
                const uint16_t *vb = j + 1 < n ? va + ps : va; /* a lone last position pairs with weight 0 */
                __m512bh w = (__m512bh)_mm512_set1_epi32((int)wp[(j / 2) * TILE + i]);
                for (int64_t c = 0; c < c32; c++) {
                    __m512i a = _mm512_loadu_si512(va + 32 * c), bb = _mm512_loadu_si512(vb + 32 * c);
                    acc[2 * c] = _mm512_dpbf16_ps(acc[2 * c], w, (__m512bh)_mm512_unpacklo_epi16(a, bb));
                    acc[2 * c + 1] = _mm512_dpbf16_ps(acc[2 * c + 1], w, (__m512bh)_mm512_unpackhi_epi16(a, bb));
                }
            }
            for (int64_t c = 0; c < 2 * c32; c++) _mm512_storeu_ps(orow + 16 * c, acc[c]);
        }
    }
    /* undo the interleaving: lane 4L+p of accumulator 2c (2c+1) is element 32c + 8L + p (+ 4) */
    float tmp[128];
    for (int64_t i = 0; i < cnt; i++) {
        float *orow = ot + i * K;
        memcpy(tmp, orow, sizeof(float) * (size_t)K);
        for (int64_t c = 0; c < c32; c++)
            for (int64_t L = 0; L < 4; L++)
                for (int64_t p = 0; p < 4; p++) {
                    orow[32 * c + 8 * L + p] = tmp[32 * c + 4 * L + p];
                    orow[32 * c + 8 * L + 4 + p] = tmp[32 * c + 16 + 4 * L + p];
                }
    }
}
#define SCORE_EXTRA(n) (((n) + 1) / 2) /* the bf16 weight pairs stored after the scores */
#define tile_bf16_64 tile_bf16_dp /* one function for both head sizes: K is an argument */
#define tile_bf16_128 tile_bf16_dp
#else
DEFINE_TILE(tile_bf16_64, uint16_t, load_bf16, 4)
DEFINE_TILE(tile_bf16_128, uint16_t, load_bf16, 8)
#endif
DEFINE_TILE(tile_bf16_any, uint16_t, load_bf16, K / 16)
#define VECTOR_TILES 1
#else
#define VECTOR_TILES 0
#endif

/* Portable version of one tile (any K): the same loops in scalar C. */
#define SCALAR_TILE(T, LOAD)                                                                          \
    for (int64_t i = 0; i < cnt; i++) m[t0 + i] = -INFINITY;                                          \
    for (int64_t j = 0; j < n; j++)                                                                   \
        for (int64_t i = 0; i < cnt; i++) {                                                           \
            const float *qr = q + (t0 + i) * K;                                                       \
            const T *kr = k + off[i] + j * ps;                                                        \
            float acc = 0.0f;                                                                         \
            for (int64_t d = 0; d < K; d++) acc += qr[d] * LOAD(kr[d]);                               \
            s[j * TILE + i] = acc;                                                                    \
            if (acc > m[t0 + i]) m[t0 + i] = acc;                                                     \
        }                                                                                             \
    for (int64_t i = 0; i < cnt; i++) {                                                               \
        float sum = 0.0f;                                                                             \
        for (int64_t j = 0; j < n; j++) {                                                             \
            float e = exp_neg(s[j * TILE + i] - m[t0 + i]);                                           \
            s[j * TILE + i] = e;                                                                      \
            sum += e;                                                                                 \
        }                                                                                             \
        l[t0 + i] = sum;                                                                              \
    }                                                                                                 \
    memset(o + t0 * K, 0, sizeof(float) * (size_t)(cnt * K));                                        \
    for (int64_t j = 0; j < n; j++)                                                                   \
        for (int64_t i = 0; i < cnt; i++) {                                                           \
            const T *vr = v + off[i] + j * ps;                                                        \
            float w = s[j * TILE + i], *orow = o + (t0 + i) * K;                                      \
            for (int64_t d = 0; d < K; d++) orow[d] += w * LOAD(vr[d]);                               \
        }

#define LOAD_F32(x) (x)
#define LOAD_BF16(x) f32_of_bf16(x)

static void scalar_f32(const float *q, const float *k, const float *v, const int64_t *off, int64_t ps, int64_t n,
                       int64_t K, int64_t t0, int64_t cnt, float *s, float *m, float *l, float *o) {
    SCALAR_TILE(float, LOAD_F32)
}

static void scalar_bf16(const float *q, const uint16_t *k, const uint16_t *v, const int64_t *off, int64_t ps, int64_t n,
                        int64_t K, int64_t t0, int64_t cnt, float *s, float *m, float *l, float *o) {
    SCALAR_TILE(uint16_t, LOAD_BF16)
}

#ifndef SCORE_EXTRA
#define SCORE_EXTRA(n) 0
#endif

static void *run(void *arg) {
    job_t *j = (job_t *)arg;
    float *s = (float *)malloc(sizeof(float) * (size_t)((j->n + SCORE_EXTRA(j->n)) * TILE));
    if (s == NULL) return (void *)1;
    int64_t off[TILE];
    for (int64_t t0 = j->r0; t0 < j->r1; t0 += TILE) {
        int64_t cnt = j->r1 - t0 < TILE ? j->r1 - t0 : TILE;
        for (int64_t i = 0; i < cnt; i++) off[i] = (j->rows ? j->rows[t0 + i] : t0 + i) * j->rs;
#define ARGS j->q, k, v, off, j->ps, j->n
#define REST t0, cnt, s, j->m, j->l, j->o
        if (j->bf16) {
            const uint16_t *k = (const uint16_t *)j->k, *v = (const uint16_t *)j->v;
#if VECTOR_TILES
            if (j->K == 64) { tile_bf16_64(ARGS, 64, REST); continue; }
            if (j->K == 128) { tile_bf16_128(ARGS, 128, REST); continue; }
            if (j->K % 16 == 0) { tile_bf16_any(ARGS, j->K, REST); continue; }
#endif
            scalar_bf16(ARGS, j->K, REST);
        } else {
            const float *k = (const float *)j->k, *v = (const float *)j->v;
#if VECTOR_TILES
            if (j->K == 64) { tile_f32_64(ARGS, 64, REST); continue; }
            if (j->K == 128) { tile_f32_128(ARGS, 128, REST); continue; }
            if (j->K % 16 == 0) { tile_f32_any(ARGS, j->K, REST); continue; }
#endif
            scalar_f32(ARGS, j->K, REST);
        }
#undef ARGS
#undef REST
    }
    free(s);
    return NULL;
}

/* 1 when the AVX-512 tiles are built: only then is the kernel faster than PyTorch (the scalar tiles serve
   head sizes that are not a multiple of 16 on such CPUs). */
int ks_vectorized(void) { return VECTOR_TILES; }

/* Rows 0..R-1 split into `threads` contiguous ranges. → 0, or 1 when out of memory.
   Built with OpenMP, the ranges run on the process's OpenMP team — PyTorch's own (its libgomp is the one
   loaded), whose threads are still spinning from the last PyTorch op and start at once; a thread of our own
   would wait for that spin to end. Without OpenMP, on POSIX threads (the calling thread takes the first). */
int ks_partial_attention(const float *q, const void *k, const void *v, const int64_t *rows, int64_t rs, int64_t ps,
                         int64_t n, int64_t K, int64_t R, int bf16, int threads, float *m, float *l, float *o) {
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    if (threads > R) threads = R > 0 ? (int)R : 1;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
        job_t j = {q, k, v, rows, rs, ps, n, K, R * t / T, R * (t + 1) / T, m, l, o, bf16};
        failed |= run(&j) != NULL;
    }
#else
    job_t jobs[64];
    pthread_t tid[64];
    int started[64] = {0};
    for (int t = 0; t < threads; t++) {
        job_t j = {q, k, v, rows, rs, ps, n, K, R * t / threads, R * (t + 1) / threads, m, l, o, bf16};
        jobs[t] = j;
    }
    for (int t = 1; t < threads; t++) started[t] = pthread_create(&tid[t], NULL, run, &jobs[t]) == 0;
    failed = run(&jobs[0]) != NULL;
    for (int t = 1; t < threads; t++) {
        void *ret = NULL;
        if (started[t]) pthread_join(tid[t], &ret);
        else ret = run(&jobs[t]); /* a thread that could not start: do its rows here */
        failed |= ret != NULL;
    }
#endif
    return failed;
}

/* ---- Shared prefix in packed layouts (bf16, head sizes 64 and 128) ----------------------------------------
 * The context's keys and values are written once, at the prefill, and read at every decode step by all of its
 * samples; stored packed for products without horizontal sums:
 *   kt (N, H, K/2, P16, 2): element [d2][p][e] = k[p][2*d2 + e], so one vector is 16 positions x a dim pair;
 *   vt (N, H, P16/2, K, 2): element [p2][d][e] = v[2*p2 + e][d], so one vector is 16 dims x a position pair;
 * P16 = the prefix length rounded up to 16, the padding zero. Scores of 16 positions are then one vdpbf16ps
 * per dim pair against the broadcast query pair, and outputs one per position pair against the broadcast
 * weight pair, in float32 lanes, for up to NR rows of a group at once (the rows of one context and head share
 * every load). Every row's lanes see the same operations whatever rows share its block (a partial block
 * repeats its last row), so its bytes do not depend on the batch. */
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#define PACKED_PREFIX 1
#define DEFINE_PREFIX_BLOCK(NAME, KD, NR)                                                                  \
static void NAME(const float *const *qrow, const uint16_t *kt, const uint16_t *vt, int64_t p16, int64_t n,   \
                 float *const *orow, float *mrow, float *lrow) {                                             \
    uint32_t qp[NR][KD / 2];                                                                                 \
    float sc[NR][p16];                                                                                       \
    uint32_t wp[NR][p16 / 2 + 8];                                                                              \
    for (int r = 0; r < NR; r++) /* bf16 in order: element pairs (q[2·d2], q[2·d2+1]) are the 32-bit words */   \
        for (int c = 0; c < KD / 16; c++)                                                                    \
            _mm256_storeu_si256((__m256i *)(qp[r] + 8 * c), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(qrow[r] + 16 * c))); \
    const int64_t nb = (n + 15) / 16;                                                                        \
    for (int64_t pb = 0; pb < nb; pb++) {                                                                    \
        __m512 a0[NR], a1[NR];                                                                               \
        for (int r = 0; r < NR; r++) a0[r] = a1[r] = _mm512_setzero_ps();                                   \
        const uint16_t *kb = kt + pb * 32;                                                                   \
        for (int d2 = 0; d2 < KD / 2; d2 += 2) {                                                             \
            __m512bh k0 = (__m512bh)_mm512_loadu_si512(kb + d2 * p16 * 2);                                   \
            __m512bh k1 = (__m512bh)_mm512_loadu_si512(kb + (d2 + 1) * p16 * 2);                             \
            for (int r = 0; r < NR; r++) {                                                                   \
                a0[r] = _mm512_dpbf16_ps(a0[r], (__m512bh)_mm512_set1_epi32((int)qp[r][d2]), k0);            \
                a1[r] = _mm512_dpbf16_ps(a1[r], (__m512bh)_mm512_set1_epi32((int)qp[r][d2 + 1]), k1);        \
            }                                                                                                \
        }                                                                                                    \
        for (int r = 0; r < NR; r++) _mm512_storeu_ps(sc[r] + pb * 16, _mm512_add_ps(a0[r], a1[r]));        \
    }                                                                                                        \
    for (int r = 0; r < NR; r++) {                                                                           \
        __m512 mx = _mm512_set1_ps(-INFINITY);                                                               \
        for (int64_t p0 = 0; p0 < nb * 16; p0 += 16)                                                         \
            mx = _mm512_mask_max_ps(mx, (__mmask16)(n - p0 >= 16 ? 0xFFFFu : (1u << (n - p0)) - 1), mx,      \
                                    _mm512_loadu_ps(sc[r] + p0));                                            \
        const float peak = _mm512_reduce_max_ps(mx);                                                         \
        __m512 s16 = _mm512_setzero_ps();                                                                    \
        for (int64_t p0 = 0; p0 < nb * 16; p0 += 16) {                                                      \
            __mmask16 valid = (__mmask16)(n - p0 >= 16 ? 0xFFFFu : (1u << (n - p0)) - 1);                   \
            __m512 e = _mm512_maskz_mov_ps(valid, exp_neg16(_mm512_sub_ps(_mm512_loadu_ps(sc[r] + p0),       \
                                                                           _mm512_set1_ps(peak))));          \
            _mm512_storeu_ps(sc[r] + p0, e);                                                                 \
            s16 = _mm512_add_ps(s16, e);                                                                     \
        }                                                                                                    \
        for (int64_t p0 = 0; p0 < nb * 16; p0 += 16) /* weights in order: pairs (w[2·p2], w[2·p2+1]) */      \
            _mm256_storeu_si256((__m256i *)(wp[r] + p0 / 2), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(sc[r] + p0))); \
        mrow[r] = peak;                                                                                      \
        lrow[r] = _mm512_reduce_add_ps(s16);                                                                 \
    }                                                                                                        \
    __m512 acc[NR][KD / 16];                                                                                 \
    for (int r = 0; r < NR; r++)                                                                             \
        for (int c = 0; c < KD / 16; c++) acc[r][c] = _mm512_setzero_ps();                                  \
    for (int64_t p2 = 0; p2 < (n + 1) / 2; p2++) {                                                           \
        __m512bh vz[KD / 16];                                                                                \
        for (int c = 0; c < KD / 16; c++) vz[c] = (__m512bh)_mm512_loadu_si512(vt + (p2 * KD + 16 * c) * 2); \
        for (int r = 0; r < NR; r++) {                                                                       \
            __m512bh w = (__m512bh)_mm512_set1_epi32((int)wp[r][p2]);                                        \
            for (int c = 0; c < KD / 16; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], w, vz[c]);             \
        }                                                                                                    \
    }                                                                                                        \
    for (int r = 0; r < NR; r++)                                                                             \
        for (int c = 0; c < KD / 16; c++) _mm512_storeu_ps(orow[r] + 16 * c, acc[r][c]);                    \
}
DEFINE_PREFIX_BLOCK(prefix_block_64, 64, 6)
DEFINE_PREFIX_BLOCK(prefix_block_128, 128, 3)
#else
#define PACKED_PREFIX 0
#endif

int ks_packed_prefix(void) { return PACKED_PREFIX; }

/* Rows b = 0..B-1 (query rows b*H + h) over the packed prefix of storage row rows[b] (kt, vt as above, P16
   positions, the first n read). q (B, H, K) float32 scaled; → m, l (B, H), o (B, H, K) as ks_partial_attention.
   Consecutive rows with the same storage row form the blocks. → 0, or 1 when this build has no packed path. */
int ks_prefix_attention(const float *q, const uint16_t *kt, const uint16_t *vt, const int64_t *rows, int64_t B,
                        int64_t H, int64_t K, int64_t p16, int64_t n, int threads, float *m, float *l, float *o) {
#if PACKED_PREFIX
    if ((K != 64 && K != 128) || n < 1 || n > p16 || p16 % 16) return 1;
    if (threads < 1) threads = 1;
    if (threads > B) threads = B > 0 ? (int)B : 1;
    const int nr = K == 64 ? 6 : 3;
    const int64_t per_head = K * p16; /* elements of one (storage row, head) in kt and in vt */
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
#ifdef _OPENMP
        const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
#else
        const int64_t t = 0, T = 1;
#endif
        const int64_t b1 = B * (t + 1) / T;
        for (int64_t b0 = B * t / T; b0 < b1;) {
            int64_t cnt = 1; /* rows b0.. of one storage row, at most nr */
            while (cnt < nr && b0 + cnt < b1 && rows[b0 + cnt] == rows[b0]) cnt++;
            for (int64_t h = 0; h < H; h++) {
                const float *qr[6];
                float *orr[6], mr[6], lr[6], scratch[6][128];
                for (int r = 0; r < nr; r++) {
                    const int64_t b = b0 + (r < cnt ? r : cnt - 1);
                    qr[r] = q + (b * H + h) * K;
                    orr[r] = r < cnt ? o + (b * H + h) * K : scratch[r];
                }
                const int64_t base = (rows[b0] * H + h) * per_head;
                if (K == 64) prefix_block_64(qr, kt + base, vt + base, p16, n, orr, mr, lr);
                else prefix_block_128(qr, kt + base, vt + base, p16, n, orr, mr, lr);
                for (int64_t r = 0; r < cnt; r++) {
                    m[(b0 + r) * H + h] = mr[r];
                    l[(b0 + r) * H + h] = lr[r];
                }
            }
            b0 += cnt;
        }
    }
    return 0;
#else
    (void)q, (void)kt, (void)vt, (void)rows, (void)B, (void)H, (void)K, (void)p16, (void)n, (void)threads;
    (void)m, (void)l, (void)o;
    return 1;
#endif
}
