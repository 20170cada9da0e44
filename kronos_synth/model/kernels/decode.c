/* The element-wise work of a decode step's attention, fused (kronos_synth.model.native).
 *
 * PyTorch runs RoPE, the scaling of the query, the cache writes and the merge of two partial softmaxes as
 * about 25 separate passes per layer and step over (B, H, K) tensors, each a few tens of microseconds; here
 * they are two passes. Row r = (b, h) of B*H rows, K = head size; every row is computed alone (the same
 * operations whatever the batch or thread), so a row's bytes never depend on the batch it is in.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bf16.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define ID(x) (x)
/* one (b, h) row: fixed types, so the compiler vectorises the loops */
#define DEFINE_ROPE_ROW(NAME, TIN, LOAD, TC, STORE)                                                       \
static void NAME(const TIN *q, const TIN *k, const TIN *v, int64_t K, const float *cos, const float *sin,  \
                 float scale, float *qo, TC *kc, TC *vc) {                                                \
    const int64_t half = K / 2;                                                                           \
    for (int64_t i = 0; i < half; i++) {                                                                  \
        const float q1 = LOAD(q[i]), q2 = LOAD(q[i + half]), k1 = LOAD(k[i]), k2 = LOAD(k[i + half]);   \
        qo[i] = (q1 * cos[i] - q2 * sin[i]) * scale;                                                      \
        qo[i + half] = (q2 * cos[i + half] + q1 * sin[i + half]) * scale;                                 \
        kc[i] = STORE(k1 * cos[i] - k2 * sin[i]);                                                         \
        kc[i + half] = STORE(k2 * cos[i + half] + k1 * sin[i + half]);                                    \
    }                                                                                                     \
    for (int64_t i = 0; i < K; i++) vc[i] = STORE(LOAD(v[i]));                                            \
}
DEFINE_ROPE_ROW(rope_bf16_bf16, uint16_t, f32_of_bf16, uint16_t, bf16_of_f32)
DEFINE_ROPE_ROW(rope_bf16_f32, uint16_t, f32_of_bf16, float, ID)
DEFINE_ROPE_ROW(rope_f32_bf16, float, ID, uint16_t, bf16_of_f32)
DEFINE_ROPE_ROW(rope_f32_f32, float, ID, float, ID)

/* q, k, v: B rows of H*K projections (float32 or bf16, `in_bf16`), row b at b*in_stride; cos, sin: K float32
   (this position's RoPE table, rotate-half layout). → qout (B, H, K) float32: RoPE(q) * scale; the cache rows
   (b, h) at kc + (b*H + h)*cache_rs, vc likewise (float32 or bf16, `cache_bf16`): RoPE(k) and v. */
void ks_rope_write(const void *q, const void *k, const void *v, int in_bf16, int64_t in_stride, int64_t B,
                   int64_t H, int64_t K, const float *cos, const float *sin, float scale, float *qout, void *kc,
                   void *vc, int64_t cache_rs, int cache_bf16, int threads) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
    for (int64_t b = 0; b < B; b++) {
        for (int64_t h = 0; h < H; h++) {
            const int64_t in = b * in_stride + h * K, r = b * H + h;
            float *qo = qout + r * K;
            if (in_bf16 && cache_bf16)
                rope_bf16_bf16((const uint16_t *)q + in, (const uint16_t *)k + in, (const uint16_t *)v + in, K, cos,
                               sin, scale, qo, (uint16_t *)kc + r * cache_rs, (uint16_t *)vc + r * cache_rs);
            else if (in_bf16)
                rope_bf16_f32((const uint16_t *)q + in, (const uint16_t *)k + in, (const uint16_t *)v + in, K, cos,
                              sin, scale, qo, (float *)kc + r * cache_rs, (float *)vc + r * cache_rs);
            else if (cache_bf16)
                rope_f32_bf16((const float *)q + in, (const float *)k + in, (const float *)v + in, K, cos, sin,
                              scale, qo, (uint16_t *)kc + r * cache_rs, (uint16_t *)vc + r * cache_rs);
            else
                rope_f32_f32((const float *)q + in, (const float *)k + in, (const float *)v + in, K, cos, sin,
                             scale, qo, (float *)kc + r * cache_rs, (float *)vc + r * cache_rs);
        }
    }
}

/* Attention from partial softmaxes (ks_partial_attention's m, l, o per row): one part (m2 == NULL) →
   o1 / l1; two parts → their log-sum-exp merge (e^(m1-m) o1 + e^(m2-m) o2) / (e^(m1-m) l1 + e^(m2-m) l2),
   m = max(m1, m2). → out (R, K), float32 or bf16 (`out_bf16`). */
void ks_combine(const float *m1, const float *l1, const float *o1, const float *m2, const float *l2,
                const float *o2, int64_t R, int64_t K, void *out, int out_bf16, int threads) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
    for (int64_t r = 0; r < R; r++) {
        float a1 = 1.0f, a2 = 0.0f, total = l1[r];
        if (m2 != NULL) {
            const float m = m1[r] > m2[r] ? m1[r] : m2[r];
            a1 = expf(m1[r] - m);
            a2 = expf(m2[r] - m);
            total = a1 * l1[r] + a2 * l2[r];
        }
        const float inv = 1.0f / total, b1 = a1 * inv, b2 = a2 * inv;
        const float *x1 = o1 + r * K, *x2 = m2 != NULL ? o2 + r * K : o1 + r * K;
        if (out_bf16) {
            uint16_t *y = (uint16_t *)out + r * K;
            for (int64_t i = 0; i < K; i++) y[i] = bf16_of_f32(b1 * x1[i] + b2 * x2[i]);
        } else {
            float *y = (float *)out + r * K;
            for (int64_t i = 0; i < K; i++) y[i] = b1 * x1[i] + b2 * x2[i];
        }
    }
}

/* A prefill's RoPE, fused: q, k, v (B, T, H*K) projections (float32 or bf16, contiguous); cos, sin (T, K) float32.
   → qout, kout, vout (B, H, T, K) float32 (RoPE(q), RoPE(k), v: what the prefill's attention reads), and RoPE(k),
   v written into the cache: element (b, h, t, i) at kc + b*cs_b + h*cs_h + t*cs_t + i (float32 or bf16). */
void ks_rope_prefill(const void *q, const void *k, const void *v, int in_bf16, int64_t B, int64_t T, int64_t H,
                     int64_t K, const float *cos, const float *sin, float *qout, float *kout, float *vout, void *kc,
                     void *vc, int64_t cs_b, int64_t cs_h, int64_t cs_t, int cache_bf16, int threads) {
    const int64_t half = K / 2;
#ifdef _OPENMP
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
#endif
    for (int64_t b = 0; b < B; b++) {
        for (int64_t h = 0; h < H; h++) {
            for (int64_t t = 0; t < T; t++) {
                const int64_t in = (b * T + t) * H * K + h * K, o = ((b * H + h) * T + t) * K;
                const int64_t c = b * cs_b + h * cs_h + t * cs_t;
                const float *cs = cos + t * K, *sn = sin + t * K;
                float *qo = qout + o, *ko = kout + o, *vo = vout + o;
                if (in_bf16) {
                    const uint16_t *qi = (const uint16_t *)q + in, *ki = (const uint16_t *)k + in,
                                   *vi = (const uint16_t *)v + in;
                    for (int64_t i = 0; i < half; i++) {
                        const float q1 = f32_of_bf16(qi[i]), q2 = f32_of_bf16(qi[i + half]);
                        const float k1 = f32_of_bf16(ki[i]), k2 = f32_of_bf16(ki[i + half]);
                        qo[i] = q1 * cs[i] - q2 * sn[i];
                        qo[i + half] = q2 * cs[i + half] + q1 * sn[i + half];
                        ko[i] = k1 * cs[i] - k2 * sn[i];
                        ko[i + half] = k2 * cs[i + half] + k1 * sn[i + half];
                    }
                    for (int64_t i = 0; i < K; i++) vo[i] = f32_of_bf16(vi[i]);
                } else {
                    const float *qi = (const float *)q + in, *ki = (const float *)k + in, *vi = (const float *)v + in;
                    for (int64_t i = 0; i < half; i++) {
                        qo[i] = qi[i] * cs[i] - qi[i + half] * sn[i];
                        qo[i + half] = qi[i + half] * cs[i + half] + qi[i] * sn[i + half];
                        ko[i] = ki[i] * cs[i] - ki[i + half] * sn[i];
                        ko[i + half] = ki[i + half] * cs[i + half] + ki[i] * sn[i + half];
                    }
                    for (int64_t i = 0; i < K; i++) vo[i] = vi[i];
                }
                if (cache_bf16) {
                    uint16_t *kd = (uint16_t *)kc + c, *vd = (uint16_t *)vc + c;
                    for (int64_t i = 0; i < K; i++) {
                        kd[i] = bf16_of_f32(ko[i]);
                        vd[i] = bf16_of_f32(vo[i]);
                    }
                } else {
                    memcpy((float *)kc + c, ko, sizeof(float) * (size_t)K);
                    memcpy((float *)vc + c, vo, sizeof(float) * (size_t)K);
                }
            }
        }
    }
}

/* RMSNorm of R rows of D bf16 values with a bf16 weight: y = bf16(bf16(x * rsqrt(mean(x^2) + eps)) * w), the
   float32 arithmetic of PyTorch's path (normalise in float32, round, multiply by the weight, round) in one
   pass instead of five; the mean's summation order differs, so the last bit can. */
void ks_rms_norm_bf16(const uint16_t *x, int64_t R, int64_t D, const uint16_t *w, float eps, uint16_t *out,
                      int threads) {
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
    for (int64_t r = 0; r < R; r++) {
        const uint16_t *xr = x + r * D;
        uint16_t *yr = out + r * D;
        float ss = 0.0f;
        for (int64_t i = 0; i < D; i++) {
            const float v = f32_of_bf16(xr[i]);
            ss += v * v;
        }
        const float scale = 1.0f / sqrtf(ss / (float)D + eps);
        for (int64_t i = 0; i < D; i++) {
            const float n = f32_of_bf16(bf16_of_f32(f32_of_bf16(xr[i]) * scale));
            yr[i] = bf16_of_f32(n * f32_of_bf16(w[i]));
        }
    }
}
