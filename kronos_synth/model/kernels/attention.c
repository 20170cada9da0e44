/* Single-query attention partials over a K/V cache, streamed once (kronos_synth.model.native).
 *
 * R rows (a row is one (batch row, head)); row r's query q[r] (K floats, already scaled) attends to
 * positions j = 0..n-1 whose key and value start at k + r*rs + j*ps and v + r*rs + j*ps (float32 or bf16
 * elements). For every row the kernel writes the partial softmax, unnormalised:
 *     m = max_j s_j,   l = sum_j exp(s_j - m),   o = sum_j exp(s_j - m) v_j,   s_j = q . k_j,
 * with float32 sums. The caches are laid out position-major (ps = R*K, rs = K), so one position of a tile
 * of rows is one contiguous run of memory; the kernel walks positions in the outer loop and streams the
 * cache at close to memory speed. Every row is computed by the same sequence of operations whatever its
 * tile, lane, batch or thread (vector lanes compute rows independently, sums run over j in order), so its
 * bytes never depend on the batch it is in.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TILE 256 /* rows per tile: a position of a tile is TILE*K elements in one run */

typedef struct {
    const float *q;
    const void *k, *v;
    int64_t rs, ps, n, K, r0, r1;
    float *m, *l, *o;
    int bf16;
} job_t;

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

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
        const T *kj = k + t0 * rs + j * ps;                                                           \
        if (j + 1 < n) for (int64_t i = 0; i < cnt; i++) prefetch(kj + ps + i * rs, K * (int64_t)sizeof(T)); \
        for (int64_t b = 0; b < nb; b++) {                                                            \
            __m512 acc[16];                                                                           \
            for (int64_t i = 0; i < 16; i++) {                                                        \
                int64_t row = b * 16 + i;                                                             \
                if (row >= cnt) { acc[i] = _mm512_setzero_ps(); continue; }                           \
                const float *qr = q + (t0 + row) * K;                                                 \
                const T *kr = kj + row * rs;                                                          \
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
        const T *vj = v + t0 * rs + j * ps;                                                           \
        for (int64_t a = 0; a < jn; a++)                                                              \
            if (j + 4 + a < n) for (int64_t i = 0; i < cnt; i++) prefetch(vj + (4 + a) * ps + i * rs, K * (int64_t)sizeof(T)); \
        const float *w = s + j * TILE;                                                                \
        for (int64_t i = 0; i < cnt; i++) {                                                           \
            const T *vr = vj + i * rs;                                                                \
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
    static void NAME(const float *q, const T *k, const T *v, int64_t rs, int64_t ps, int64_t n,      \
                     int64_t K, int64_t t0, int64_t cnt, float *s, float *m, float *l, float *o) {   \
        TILE_BODY(T, LOAD, C16)                                                                       \
    }

DEFINE_TILE(tile_f32_64, float, load_f32, 4)
DEFINE_TILE(tile_f32_128, float, load_f32, 8)
DEFINE_TILE(tile_f32_any, float, load_f32, K / 16)
DEFINE_TILE(tile_bf16_64, uint16_t, load_bf16, 4)
DEFINE_TILE(tile_bf16_128, uint16_t, load_bf16, 8)
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
            const T *kr = k + (t0 + i) * rs + j * ps;                                                 \
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
            const T *vr = v + (t0 + i) * rs + j * ps;                                                 \
            float w = s[j * TILE + i], *orow = o + (t0 + i) * K;                                      \
            for (int64_t d = 0; d < K; d++) orow[d] += w * LOAD(vr[d]);                               \
        }

#define LOAD_F32(x) (x)
#define LOAD_BF16(x) bf16_to_f32(x)

static void scalar_f32(const float *q, const float *k, const float *v, int64_t rs, int64_t ps, int64_t n,
                       int64_t K, int64_t t0, int64_t cnt, float *s, float *m, float *l, float *o) {
    SCALAR_TILE(float, LOAD_F32)
}

static void scalar_bf16(const float *q, const uint16_t *k, const uint16_t *v, int64_t rs, int64_t ps, int64_t n,
                        int64_t K, int64_t t0, int64_t cnt, float *s, float *m, float *l, float *o) {
    SCALAR_TILE(uint16_t, LOAD_BF16)
}

static void *run(void *arg) {
    job_t *j = (job_t *)arg;
    float *s = (float *)malloc(sizeof(float) * (size_t)(j->n * TILE));
    if (s == NULL) return (void *)1;
    for (int64_t t0 = j->r0; t0 < j->r1; t0 += TILE) {
        int64_t cnt = j->r1 - t0 < TILE ? j->r1 - t0 : TILE;
        if (j->bf16) {
            const uint16_t *k = (const uint16_t *)j->k, *v = (const uint16_t *)j->v;
#if VECTOR_TILES
            if (j->K == 64) { tile_bf16_64(j->q, k, v, j->rs, j->ps, j->n, 64, t0, cnt, s, j->m, j->l, j->o); continue; }
            if (j->K == 128) { tile_bf16_128(j->q, k, v, j->rs, j->ps, j->n, 128, t0, cnt, s, j->m, j->l, j->o); continue; }
            if (j->K % 16 == 0) { tile_bf16_any(j->q, k, v, j->rs, j->ps, j->n, j->K, t0, cnt, s, j->m, j->l, j->o); continue; }
#endif
            scalar_bf16(j->q, k, v, j->rs, j->ps, j->n, j->K, t0, cnt, s, j->m, j->l, j->o);
        } else {
            const float *k = (const float *)j->k, *v = (const float *)j->v;
#if VECTOR_TILES
            if (j->K == 64) { tile_f32_64(j->q, k, v, j->rs, j->ps, j->n, 64, t0, cnt, s, j->m, j->l, j->o); continue; }
            if (j->K == 128) { tile_f32_128(j->q, k, v, j->rs, j->ps, j->n, 128, t0, cnt, s, j->m, j->l, j->o); continue; }
            if (j->K % 16 == 0) { tile_f32_any(j->q, k, v, j->rs, j->ps, j->n, j->K, t0, cnt, s, j->m, j->l, j->o); continue; }
#endif
            scalar_f32(j->q, k, v, j->rs, j->ps, j->n, j->K, t0, cnt, s, j->m, j->l, j->o);
        }
    }
    free(s);
    return NULL;
}

/* Rows 0..R-1 split into `threads` contiguous ranges (the calling thread takes the first). → 0, or 1 when
   out of memory. */
int ks_partial_attention(const float *q, const void *k, const void *v, int64_t rs, int64_t ps, int64_t n,
                         int64_t K, int64_t R, int bf16, int threads, float *m, float *l, float *o) {
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    if (threads > R) threads = R > 0 ? (int)R : 1;
    job_t jobs[64];
    pthread_t tid[64];
    int started[64] = {0};
    for (int t = 0; t < threads; t++) {
        job_t j = {q, k, v, rs, ps, n, K, R * t / threads, R * (t + 1) / threads, m, l, o, bf16};
        jobs[t] = j;
    }
    for (int t = 1; t < threads; t++) started[t] = pthread_create(&tid[t], NULL, run, &jobs[t]) == 0;
    int failed = run(&jobs[0]) != NULL;
    for (int t = 1; t < threads; t++) {
        void *ret = NULL;
        if (started[t]) pthread_join(tid[t], &ret);
        else ret = run(&jobs[t]); /* a thread that could not start: do its rows here */
        failed |= ret != NULL;
    }
    return failed;
}
