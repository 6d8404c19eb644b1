/* The CPU reference of gr_random: Philox4x32-10 and Box-Muller in fp32, operation for
 * operation as shaders/random.comp does them, so that the bits agree. */
#include <math.h>

#include "reference_ops.h"

void gr_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; r++) {
    if (r) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1;
    c3 = (uint32_t)p0;
    c0 = n0;
    c2 = n2;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

static uint32_t seed_word(float v) { return v >= 1.0f ? (uint32_t)fminf(v, 16777215.0f) : 0u; }

uint32_t gr_random_seed(const float *seed, int64_t count) {
  return count == 1 ? seed_word(seed[0]) : (seed_word(seed[0]) & 0xFFFFu) | (seed_word(seed[1]) << 16);
}

/* fp32 throughout, operation for operation as in random.comp. */
void gr_box_muller(uint32_t w0, uint32_t w1, float out[2]) {
  /* ln u1 with u1 = m · 2^-24, m in [1, 2^24]: m = f · 2^e exactly, f in [√½, √2]. */
  uint32_t m = (w0 >> 8) + 1u;
  int e = 31 - __builtin_clz(m);
  float f = ldexpf((float)m, -e);
  if (f > 1.41421356f) {
    f *= 0.5f;
    e += 1;
  }
  float s = (f - 1.0f) / (f + 1.0f), z = s * s;
  float lnf = 2.0f * s * (1.0f + z * (0.333333333f + z * (0.2f + z * (0.142857143f + z * 0.111111111f))));
  float lnu = (float)(e - 24) * 0.693147181f + lnf;
  float r = sqrtf(fmaxf(-2.0f * lnu, 0.0f));
  /* Angle 2π · y · 2^-24 = quadrant · π/2 + t · π/2, folded to [0, π/4]. */
  uint32_t y = w1 >> 8, q = y >> 22;
  float t = (float)(y & 0x3FFFFFu) * 2.38418579e-7f; /* 2^-22 */
  int swap = t > 0.5f;
  float a = (swap ? 1.0f - t : t) * 1.57079633f, a2 = a * a;
  float sa = a * (1.0f - a2 * (0.166666667f - a2 * (8.33333333e-3f - a2 * (1.98412698e-4f - a2 * 2.75573192e-6f))));
  float ca =
      1.0f - a2 * (0.5f - a2 * (4.16666667e-2f - a2 * (1.38888889e-3f - a2 * (2.48015873e-5f - a2 * 2.75573192e-7f))));
  float c = swap ? sa : ca, sn = swap ? ca : sa;
  float cq = q == 0 ? c : q == 1 ? -sn : q == 2 ? -c : sn;
  float sq = q == 0 ? sn : q == 1 ? c : q == 2 ? -sn : -c;
  out[0] = r * cq;
  out[1] = r * sq;
}

void gr_cpu_random(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  int64_t count = gr_shape_count(SHAPE(n->output));
  uint32_t key[2] = {gr_random_seed(in[0], gr_shape_count(SHAPE(n->inputs[0]))), (uint32_t)n->ia[1]};
  for (int64_t b = 0; b * 4 < count; b++) {
    uint32_t ctr[4] = {(uint32_t)b, 0, 0, 0}, w[4];
    float v[4];
    gr_philox4x32_10(ctr, key, w);
    if (n->ia[0] == GR_NORMAL) {
      gr_box_muller(w[0], w[1], v);
      gr_box_muller(w[2], w[3], v + 2);
    } else {
      for (int k = 0; k < 4; k++)
        v[k] = (float)(w[k] >> 8) * 5.96046448e-8f; /* 2^-24 */
    }
    for (int k = 0; k < 4 && b * 4 + k < count; k++)
      out[b * 4 + k] = v[k];
  }
}
