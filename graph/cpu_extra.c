/* CPU reference of pad, space/depth shuffles, gather, random and small linear algebra.
 * The random numbers use fp32 exactly as shaders/random.comp does, so the bits agree;
 * linear algebra works in double, as the oracle of the fp32 kernels. */
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"

#define SHAPE(t) (gr_t(g, (t))->shape)

static int64_t mirror(int64_t i, int64_t n) {
  if (i < 0)
    i = -i;
  return i >= n ? 2 * (n - 1) - i : i;
}

void gr_cpu_pad(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sx = SHAPE(n->inputs[0]), so = SHAPE(n->output);
  int64_t H = sx.d[2], W = sx.d[3], OH = so.d[2], OW = so.d[3], idx = 0;
  for (int64_t p = 0; p < so.d[0] * so.d[1]; p++)
    for (int64_t oh = 0; oh < OH; oh++)
      for (int64_t ow = 0; ow < OW; ow++, idx++) {
        int64_t ih = oh - n->ia[0], iw = ow - n->ia[2];
        if (n->ia[4] == GR_PAD_REFLECT)
          out[idx] = in[0][(p * H + mirror(ih, H)) * W + mirror(iw, W)];
        else
          out[idx] = ih >= 0 && ih < H && iw >= 0 && iw < W ? in[0][(p * H + ih) * W + iw] : 0.0f;
      }
}

/* Index of the space-side element [n, c, h, w] (dims C, H, W) in the depth-side tensor. */
static void shuffle(const gr_graph *g, const gr_node *n, const float *x, float *y, int to_depth) {
  gr_shape big = SHAPE(to_depth ? n->inputs[0] : n->output);
  int64_t b = n->ia[0], C = big.d[1], H = big.d[2], W = big.d[3], h2 = H / b, w2 = W / b, idx = 0;
  for (int64_t nn = 0; nn < big.d[0]; nn++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t h = 0; h < H; h++)
        for (int64_t w = 0; w < W; w++, idx++) {
          int64_t d = (((nn * C + c) * b * b + (h % b) * b + w % b) * h2 + h / b) * w2 + w / b;
          if (to_depth)
            y[d] = x[idx];
          else
            y[idx] = x[d];
        }
}

void gr_cpu_space_to_depth(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  shuffle(g, n, in[0], out, 1);
}
void gr_cpu_depth_to_space(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  shuffle(g, n, in[0], out, 0);
}

void gr_cpu_gather(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sx = SHAPE(n->inputs[0]);
  int axis = (int)n->ia[0];
  int64_t K = n->ia[1], D = sx.d[axis], inner = 1, outer = 1;
  for (int i = axis + 1; i < sx.rank; i++)
    inner *= sx.d[i];
  for (int i = 0; i < axis; i++)
    outer *= sx.d[i];
  for (int64_t o = 0; o < outer; o++)
    for (int64_t k = 0; k < K; k++) {
      /* Clamped as the shader does; NaN reads index 0. */
      float f = in[1][k] >= 1.0f ? fminf(in[1][k], (float)(D - 1)) : 0.0f;
      const float *src = in[0] + (o * D + (int64_t)f) * inner;
      float *dst = out + (o * K + k) * inner;
      for (int64_t r = 0; r < inner; r++)
        dst[r] = src[r];
    }
}

/* ---- random numbers */

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

/* ---- linear algebra, in double */

/* In-place LU with partial pivoting of a [C, C]: returns log|det|, and the row swaps in
 * piv when given. */
static double lu(double *a, int64_t C, int64_t *piv) {
  double lad = 0;
  for (int64_t k = 0; k < C; k++) {
    int64_t p = k;
    for (int64_t i = k + 1; i < C; i++)
      if (fabs(a[i * C + k]) > fabs(a[p * C + k]))
        p = i;
    if (piv)
      piv[k] = p;
    for (int64_t j = 0; p != k && j < C; j++) {
      double t = a[k * C + j];
      a[k * C + j] = a[p * C + j];
      a[p * C + j] = t;
    }
    double d = a[k * C + k];
    lad += log(fabs(d));
    for (int64_t i = k + 1; i < C; i++) {
      double l = a[i * C + k] /= d;
      for (int64_t j = k + 1; j < C; j++)
        a[i * C + j] -= l * a[k * C + j];
    }
  }
  return lad;
}

static double *to_double(const float *x, int64_t n) {
  double *a = malloc((size_t)n * sizeof *a);
  for (int64_t i = 0; a && i < n; i++)
    a[i] = x[i];
  return a;
}

static void fill_nan(float *out, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    out[i] = NAN; /* out of host memory: the CPU interface has no status to return */
}

void gr_cpu_lu(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  int64_t C = SHAPE(n->output).d[0];
  double *a = to_double(in[0], C * C);
  if (!a) {
    fill_nan(out, C * C);
    return;
  }
  lu(a, C, NULL);
  for (int64_t i = 0; i < C * C; i++)
    out[i] = (float)a[i];
  free(a);
}

/* From w itself, independent of the LU node's fp32 values. */
void gr_cpu_logabsdet(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  int64_t C = SHAPE(n->inputs[0]).d[0];
  double *a = to_double(in[0], C * C);
  out[0] = a ? (float)lu(a, C, NULL) : NAN;
  free(a);
}

/* Solves LU·x = P·e_j for each column j. */
void gr_cpu_inverse(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  int64_t C = SHAPE(n->output).d[0];
  double *a = to_double(in[0], C * C), *x = malloc((size_t)C * sizeof *x);
  int64_t *piv = malloc((size_t)C * sizeof *piv);
  if (!a || !x || !piv) {
    fill_nan(out, C * C);
  } else {
    lu(a, C, piv);
    for (int64_t j = 0; j < C; j++) {
      for (int64_t i = 0; i < C; i++)
        x[i] = i == j;
      for (int64_t k = 0; k < C; k++) {
        double t = x[k];
        x[k] = x[piv[k]];
        x[piv[k]] = t;
      }
      for (int64_t i = 0; i < C; i++)
        for (int64_t k = 0; k < i; k++)
          x[i] -= a[i * C + k] * x[k];
      for (int64_t i = C - 1; i >= 0; i--) {
        for (int64_t k = i + 1; k < C; k++)
          x[i] -= a[i * C + k] * x[k];
        x[i] /= a[i * C + i];
      }
      for (int64_t i = 0; i < C; i++)
        out[i * C + j] = (float)x[i];
    }
  }
  free(a);
  free(x);
  free(piv);
}
