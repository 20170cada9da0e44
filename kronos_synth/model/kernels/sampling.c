/* Token draws from logits: temperature, top-k, top-p, then an inverse-CDF lookup (kronos_synth.model.native).
 *
 * The same rule as `sample_from_logits` in generate/sampler.py, row by row:
 *   x = logits / T; order = x sorted descending, ties by ascending token id; p = softmax(x) in that order;
 *   top-k keeps the first k and renormalises; top-p keeps the shortest prefix whose mass reaches top_p
 *   (before_j = cumsum_j - p_j < top_p, the first token always); the draw is the first kept position whose
 *   cumulative mass (float64) exceeds u * (kept mass), and its token id is returned.
 * PyTorch's path sorts every row with a general sort (numpy's, single-threaded) and then runs softmax,
 * two cumsums and a search as separate passes; here one pass per row does it, with a stable radix sort of
 * the 32-bit keys, and the rows are split over the OpenMP team. Each row is computed by the same operations
 * whatever the batch, thread or lane it falls in, so a token never depends on the batch it was drawn in.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#define MAX_VOCAB (1 << 24) /* token ids fit the 32-bit index arrays */

/* order-preserving key: ascending key = descending float (+0.0 and -0.0 equal; NaN never reaches here) */
static inline uint32_t descending_key(float x) {
    x += 0.0f;
    uint32_t u;
    memcpy(&u, &x, 4);
    return (u & 0x80000000u) ? u : u ^ 0x7FFFFFFFu; /* negatives after positives, larger magnitude later */
}

/* One row. x: V scaled logits, work: 5*V words of scratch. → token id */
static int64_t draw_row(const float *x, int64_t V, int64_t top_k, float top_p, double u, uint32_t *work) {
    uint32_t *key = work, *idx = work + V, *key2 = work + 2 * V, *idx2 = work + 3 * V;
    for (int64_t i = 0; i < V; i++) {
        key[i] = descending_key(x[i]);
        idx[i] = (uint32_t)i;
    }
    /* stable LSD radix sort, 11-bit digits: ties keep ascending ids */
    for (int shift = 0; shift < 32; shift += 11) {
        uint32_t count[2049] = {0};
        for (int64_t i = 0; i < V; i++) count[((key[i] >> shift) & 2047u) + 1]++;
        for (int d = 0; d < 2048; d++) count[d + 1] += count[d];
        for (int64_t i = 0; i < V; i++) {
            uint32_t pos = count[(key[i] >> shift) & 2047u]++;
            key2[pos] = key[i];
            idx2[pos] = idx[i];
        }
        uint32_t *t = key; key = key2; key2 = t;
        t = idx; idx = idx2; idx2 = t;
    }
    /* softmax: exp in token order (vectorised), then the probabilities in sorted order (the first is the max) */
    float *e = (float *)key2, *p = (float *)(work + 4 * V);
    const float peak = x[idx[0]];
    for (int64_t i = 0; i < V; i++) e[i] = expf(x[i] - peak);
    float sum = 0.0f;
    for (int64_t j = 0; j < V; j++) {
        p[j] = e[idx[j]];
        sum += p[j];
    }
    for (int64_t j = 0; j < V; j++) p[j] /= sum;
    int64_t kept = V;
    if (top_k > 0 && top_k < V) {
        kept = top_k;
        float s = 0.0f;
        for (int64_t j = 0; j < kept; j++) s += p[j];
        for (int64_t j = 0; j < kept; j++) p[j] /= s;
    }
    if (top_p < 1.0f) {
        double c = 0.0;
        int64_t n = 0;
        for (int64_t j = 0; j < kept; j++) {
            c += p[j];
            if (j > 0 && (float)c - p[j] >= top_p) break; /* before_j = cumsum_j - p_j, in float32 */
            n = j + 1;
        }
        kept = n;
    }
    double total = 0.0;
    for (int64_t j = 0; j < kept; j++) total += p[j];
    const double target = u * total;
    double c = 0.0;
    int64_t pos = kept - 1;
    for (int64_t j = 0; j < kept; j++) {
        c += p[j];
        if (c > target) {
            pos = j;
            break;
        }
    }
    return (int64_t)idx[pos];
}

/* logits: B rows of V (float32, or bf16 when bf16 != 0) at `stride` elements apart; u: B uniforms in [0, 1);
   → out: B token ids. 0, or 1 when out of memory. */
int ks_sample(const void *logits, int bf16, int64_t B, int64_t V, int64_t stride, float temperature, int64_t top_k,
              float top_p, const double *u, int threads, int64_t *out) {
    if (V < 1 || V > MAX_VOCAB) return 1;
    int failed = 0;
    if (threads < 1) threads = 1;
    if (threads > B) threads = B > 0 ? (int)B : 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(| : failed)
#endif
    {
        uint32_t *work = malloc(sizeof(uint32_t) * 6 * (size_t)V);
        float *x = (float *)(work + 5 * V);
#ifdef _OPENMP
        const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
#else
        const int64_t t = 0, T = 1;
#endif
        failed |= work == NULL;
        for (int64_t b = B * t / T; work != NULL && b < B * (t + 1) / T; b++) {
            if (bf16) {
                const uint16_t *row = (const uint16_t *)logits + b * stride;
                for (int64_t i = 0; i < V; i++) x[i] = f32_of_bf16(row[i]) / temperature;
            } else {
                const float *row = (const float *)logits + b * stride;
                for (int64_t i = 0; i < V; i++) x[i] = row[i] / temperature;
            }
            out[b] = draw_row(x, V, top_k, top_p, u[b], work);
        }
        free(work);
    }
    return failed;
}
