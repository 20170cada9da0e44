/* bf16 <-> float32 for the kernels (kronos_synth.model.native): a bf16 is the top half of a float32. */
#ifndef KS_BF16_H
#define KS_BF16_H
#include <stdint.h>
#include <string.h>

static inline float f32_of_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* round to nearest even, as PyTorch's .to(torch.bfloat16) and vcvtneps2bf16 round finite values */
static inline uint16_t bf16_of_f32(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}
#endif
