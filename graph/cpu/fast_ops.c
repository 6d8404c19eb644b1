/* The CPU device's kernels for everything but matmul, attention and zero-padded convs
 * (oneDNN's, fast_dnnl.c): the reference's loops split over OpenMP threads, with float sums
 * and a vectorisable exp. Each parallel loop
 * hands contiguous chunks to small serial kernels, which are compiled once per x86 ISA
 * level (target_clones) so that a generic build still uses AVX-512 where it exists. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fast_ops.h"
#include "reference_ops.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

enum { PAR_MIN = GR_FAST_PAR_MIN };

/* exp(x) = 2^k · p(r), r = x - k·ln2 in [-ln2/2, ln2/2], Taylor to r^6: relative error
 * about 1e-7, and plain arithmetic, so loops of it vectorise (libm's expf does not). */
static inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x; /* (fminf is a libm call: no vectors) */
  float t = x * 1.44269504f + 12582912.0f; /* rounds x/ln2 to an integer in t's low bits */
  /* Unsigned: a NaN input passes the clamp and leaves any bits in t; signed arithmetic on
   * them (k + 127, << 23) would be undefined behaviour. The result is NaN through p. */
  uint32_t k;
  memcpy(&k, &t, sizeof k);
  k -= 0x4B400000u;
  float kf = t - 12582912.0f;
  float r = x - kf * 0.693145752f - kf * 1.42860677e-6f;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
  uint32_t e = (k + 127u) << 23;
  float s;
  memcpy(&s, &e, sizeof s);
  return p * s;
}

/* ---- unary. Loops are `omp simd`: the CPU device runs many elementwise nodes in place
 * (y == x, fast_memory_plan.c), and GCC's own vectoriser would check for overlap and take
 * its scalar loop (y == x is no hazard: lane i reads x[i] before writing y[i]). This file is
 * compiled with -fno-trapping-math (graph/CMakeLists.txt) so that the conditionals
 * vectorise on AVX2 too. */
#define EACH(expr) _Pragma("omp simd") for (int64_t i = 0; i < n; i++) y[i] = (expr)
CLONES void gr_fast_unary_block(gr_unary f, float a, float b, const float *x, float *y, int64_t n) {
  switch (f) {
  case GR_IDENTITY: if (y != x) memcpy(y, x, (size_t)n * sizeof *y); break;
  case GR_EXP: EACH(fast_exp(x[i])); break;
  case GR_SIGMOID: EACH(1.0f / (1.0f + fast_exp(-x[i]))); break;
  case GR_SILU: EACH(x[i] / (1.0f + fast_exp(-x[i]))); break;
  case GR_LEAKY_RELU: EACH(x[i] >= 0 ? x[i] : a * x[i]); break;
  case GR_SQUARE: EACH(x[i] * x[i]); break;
  case GR_ABS: EACH(fabsf(x[i])); break;
  case GR_NEG: EACH(-x[i]); break;
  case GR_RELU: EACH(x[i] > 0 ? x[i] : 0.0f); break;
  case GR_AFFINE: EACH(x[i] * a + b); break;
  case GR_CLAMP: EACH(fminf(fmaxf(x[i], a), b)); break;
  default: for (int64_t i = 0; i < n; i++) y[i] = gr_unary_eval(f, x[i], a, b);
  }
}

#ifdef _OPENMP
#include <omp.h>
static int64_t omp_threads(void) { return omp_get_num_threads(); }
static int64_t omp_id(void) { return omp_get_thread_num(); }
#else
static int64_t omp_threads(void) { return 1; }
static int64_t omp_id(void) { return 0; }
#endif

/* Splits [0, count) into one chunk per thread (multiples of 64 values). */
#define FOR_CHUNKS(count, lo, len, body)                                                       \
  do {                                                                                        \
    int64_t count_ = (count);                                                                 \
    _Pragma("omp parallel if (count_ >= PAR_MIN)") {                                          \
      int64_t nt_ = omp_threads(), id_ = omp_id(), per_ = ((count_ + nt_ - 1) / nt_ + 63) & ~63; \
      int64_t lo = id_ * per_, len = count_ - lo < per_ ? count_ - lo : per_;                 \
      if (len > 0) {                                                                          \
        body;                                                                                 \
      }                                                                                       \
    }                                                                                         \
  } while (0)

void gr_fast_unary(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  FOR_CHUNKS(gr_shape_count(SHAPE(n->output)), lo, len,
             gr_fast_unary_block((gr_unary)n->ia[0], n->fa[0], n->fa[1], in[0] + lo, out + lo, len));
}

void gr_fast_reshape(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  FOR_CHUNKS(gr_shape_count(SHAPE(n->output)), lo, len, memcpy(out + lo, in[0] + lo, (size_t)len * sizeof *out));
}

/* ---- binary and where: rows of the 4-D broadcast; sa, sb = 1 (contiguous) or 0 (one value).
 * `omp simd` for the in-place case, as the unary loops. */
#define ROW(expr)                                                               \
  do {                                                                          \
    if (sa && sb)                                                               \
      _Pragma("omp simd") for (int64_t i = 0; i < n; i++) { float x = pa[i], z = pb[i]; y[i] = (expr); (void)x; (void)z; } \
    else if (sa)                                                                \
      _Pragma("omp simd") for (int64_t i = 0; i < n; i++) { float x = pa[i], z = pb[0]; y[i] = (expr); (void)x; (void)z; } \
    else if (sb)                                                                \
      _Pragma("omp simd") for (int64_t i = 0; i < n; i++) { float x = pa[0], z = pb[i]; y[i] = (expr); (void)x; (void)z; } \
    else                                                                        \
      for (int64_t i = 0; i < n; i++) { float x = pa[0], z = pb[0]; y[i] = (expr); (void)x; (void)z; } \
  } while (0)

CLONES void gr_fast_binary_block(gr_binary f, const float *pa, int sa, const float *pb, int sb, float *y, int64_t n) {
  switch (f) {
  case GR_ADD: ROW(x + z); break;
  case GR_SUB: ROW(x - z); break;
  case GR_MUL: ROW(x * z); break;
  case GR_DIV: ROW(x / z); break;
  case GR_MAX: ROW(fmaxf(x, z)); break;
  case GR_MIN: ROW(fminf(x, z)); break;
  default: ROW(NAN);
  }
}

CLONES void gr_fast_where_block(const float *c, int sc, const float *a, int sa, const float *b, int sb, float *y,
                                int64_t n) {
  if (sc && sa && sb) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++)
      y[i] = c[i] != 0.0f ? a[i] : b[i];
  } else {
    for (int64_t i = 0; i < n; i++)
      y[i] = c[i * sc] != 0.0f ? a[i * sa] : b[i * sb];
  }
}

/* Operands broadcast over whole trailing blocks: the output's trailing dimensions merge into
 * one row as long as each operand is either contiguous along them or one value across them
 * ([N, C, H, W] ∘ [1, C, 1, 1]: rows of H·W); rows (or, when there are few, pieces of
 * them) go to the threads. */
static void fast_broadcast(const gr_graph *g, const gr_node *n, const float *const *in, float *out, int arity) {
  gr_shape so = SHAPE(n->output);
  int64_t o[4], st[3][4], count = gr_shape_count(so);
  gr_shape4(so, o);
  for (int k = 0; k < arity; k++)
    gr_bcast_strides(SHAPE(n->inputs[k]), so, st[k]);
  int rdim = 4, mode[3] = {-1, -1, -1}; /* per operand: 1 contiguous along the row, 0 one value */
  int64_t width = 1;
  while (rdim > 0) {
    int j = rdim - 1, ok = 1;
    if (o[j] != 1)
      for (int k = 0; k < arity; k++) {
        int m = st[k][j] == 0 ? 0 : st[k][j] == width ? 1 : -2;
        ok &= m != -2 && (mode[k] == -1 || mode[k] == m);
      }
    if (!ok)
      break;
    if (o[j] != 1)
      for (int k = 0; k < arity; k++)
        mode[k] = st[k][j] != 0;
    width *= o[j];
    rdim = j;
  }
  int sa[3];
  for (int k = 0; k < arity; k++)
    sa[k] = mode[k] != 0;
  int64_t rows = count / width, pieces = rows >= 16 || width < 2 * PAR_MIN ? 1 : (width + PAR_MIN - 1) / PAR_MIN;
  int64_t per = ((width + pieces - 1) / pieces + 63) & ~(int64_t)63;
#pragma omp parallel for schedule(static) if (count >= PAR_MIN)
  for (int64_t rp = 0; rp < rows * pieces; rp++) {
    int64_t r = rp / pieces, lo = rp % pieces * per, len = width - lo < per ? width - lo : per;
    if (len <= 0)
      continue;
    const float *p[3];
    for (int k = 0; k < arity; k++) {
      int64_t off = 0, rest = r;
      for (int j = rdim - 1; j >= 0; j--) {
        off += rest % o[j] * st[k][j];
        rest /= o[j];
      }
      p[k] = in[k] + off + (sa[k] ? lo : 0);
    }
    float *y = out + r * width + lo;
    if (arity == 2) {
      gr_fast_binary_block((gr_binary)n->ia[0], p[0], sa[0], p[1], sa[1], y, len);
    } else {
      gr_fast_where_block(p[0], sa[0], p[1], sa[1], p[2], sa[2], y, len);
    }
  }
}

void gr_fast_binary(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  fast_broadcast(g, n, in, out, 2);
}

void gr_fast_where(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  fast_broadcast(g, n, in, out, 3);
}

/* ---- group norm: one (sample, group) per iteration; two passes, float sums */
CLONES static void norm_group(const float *x, float *y, int64_t cg, int64_t spatial, const float *gamma,
                              const float *beta, float eps) {
  int64_t count = cg * spatial;
  float sum = 0, sq = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < count; i++)
    sum += x[i];
  float mean = sum / (float)count;
#pragma omp simd reduction(+ : sq)
  for (int64_t i = 0; i < count; i++)
    sq += (x[i] - mean) * (x[i] - mean);
  float inv = 1.0f / sqrtf(sq / (float)count + eps);
  for (int64_t c = 0; c < cg; c++) {
    float scale = inv * (gamma ? gamma[c] : 1.0f), shift = (beta ? beta[c] : 0.0f) - mean * scale;
    for (int64_t i = 0; i < spatial; i++)
      y[c * spatial + i] = x[c * spatial + i] * scale + shift;
  }
}

void gr_fast_group_norm(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape s = SHAPE(n->output);
  int64_t N = s.d[0], C = s.d[1], groups = n->ia[0], spatial = gr_shape_count(s) / (N * C), cg = C / groups;
  const float *gamma = n->ia[1] ? in[1] : NULL, *beta = n->ia[2] ? in[1 + (n->ia[1] != 0)] : NULL;
#pragma omp parallel for schedule(static) if (N * C * spatial >= PAR_MIN)
  for (int64_t bg = 0; bg < N * groups; bg++) {
    int64_t first = (bg / groups * C + bg % groups * cg), ch = bg % groups * cg;
    norm_group(in[0] + first * spatial, out + first * spatial, cg, spatial, gamma ? gamma + ch : NULL,
               beta ? beta + ch : NULL, n->fa[0]);
  }
}

/* ---- softmax over the last dimension, one row per iteration */
CLONES void gr_fast_softmax_row(const float *x, float *y, int64_t cols) {
  float mx = -INFINITY, sum = 0;
  for (int64_t i = 0; i < cols; i++)
    mx = x[i] > mx ? x[i] : mx;
  for (int64_t i = 0; i < cols; i++) {
    y[i] = fast_exp(x[i] - mx);
    sum += y[i];
  }
  float inv = 1.0f / sum;
  for (int64_t i = 0; i < cols; i++)
    y[i] *= inv;
}

void gr_fast_softmax(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape s = SHAPE(n->output);
  int64_t cols = s.d[s.rank - 1], rows = gr_shape_count(s) / cols;
#pragma omp parallel for schedule(static) if (rows * cols >= PAR_MIN)
  for (int64_t r = 0; r < rows; r++)
    gr_fast_softmax_row(in[0] + r * cols, out + r * cols, cols);
}

/* ---- reduce over axes that include the last: per kept value, contiguous runs of the
 * trailing reduced dimensions, each summed in float lanes (vectorised) and the runs added in
 * double. The [N, G, M] group statistics of group norm's backward and the per-channel sums
 * of bias gradients ([N, C, H, W] over 0, 2, 3) are of this form. */
typedef struct run_sums { float sum, sq, mx; } run_sums;
enum { RUN_BLOCK = 2048 };
/* Sums of x − shift: a variance is shift-invariant, and shifting by a value of the data
 * keeps E[x²] − mean² from cancelling away when the mean is large against the spread. */
CLONES static run_sums run_chunk(const float *x, int64_t len, float shift, int want_sq, int want_max) {
  float sum = 0, sq = 0, mx = -INFINITY;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < len; i++)
    sum += x[i] - shift;
  if (want_sq) {
#pragma omp simd reduction(+ : sq)
    for (int64_t i = 0; i < len; i++)
      sq += (x[i] - shift) * (x[i] - shift);
  }
  if (want_max)
    for (int64_t i = 0; i < len; i++)
      mx = x[i] > mx ? x[i] : mx;
  return (run_sums){sum, sq, mx};
}

/* One reduced value from its sum, sum of squares, maximum and Σ exp(x − max) (double). */
static float reduce_result(gr_reduce f, double s, double s2, double mx, double se, int64_t count) {
  double mean = s / (double)count;
  switch (f) {
  case GR_SUM: return (float)s;
  case GR_MEAN: return (float)mean;
  case GR_VAR: return (float)fmax(s2 / (double)count - mean * mean, 0.0);
  case GR_RMAX: return (float)mx;
  case GR_SUMSQ: return (float)s2;
  case GR_LOGSUMEXP: return (float)(mx + log(se));
  default: return NAN;
  }
}

static void reduce_runs(gr_reduce f, const float *x, float *out, const int64_t d[4], unsigned axes) {
  int k0 = 4;
  int64_t run = 1, count = 1, kept = 1, reduced = 1;
  while (k0 > 0 && axes & (1u << (k0 - 1)))
    run *= d[--k0];
  int64_t st[4], acc = 1;
  for (int i = 3; i >= 0; i--) {
    st[i] = acc;
    acc *= d[i];
  }
  for (int i = 0; i < k0; i++)
    *(axes & (1u << i) ? &reduced : &kept) *= d[i];
  count = reduced * run;
  int want_sq = f == GR_VAR || f == GR_SUMSQ, want_max = f == GR_RMAX;
#pragma omp parallel for schedule(static) if (kept * count >= PAR_MIN)
  for (int64_t idx = 0; idx < kept; idx++) {
    double s = 0, s2 = 0, mx = -INFINITY;
    float shift = 0;
    for (int64_t r = 0; r < reduced; r++) {
      int64_t off = 0, ki = idx, ri = r; /* coordinates of dims 0..k0-1 from (idx, r) */
      for (int i = k0 - 1; i >= 0; i--) {
        int64_t *src = axes & (1u << i) ? &ri : &ki;
        off += *src % d[i] * st[i];
        *src /= d[i];
      }
      if (r == 0 && f == GR_VAR)
        shift = x[off];
      for (int64_t b = 0; b < run; b += RUN_BLOCK) {
        run_sums p = run_chunk(x + off + b, run - b < RUN_BLOCK ? run - b : RUN_BLOCK, shift, want_sq, want_max);
        s += p.sum;
        s2 += p.sq;
        mx = p.mx > mx ? p.mx : mx;
      }
    }
    out[idx] = reduce_result(f, s, s2, mx, 0.0, count);
  }
}

/* ---- reduce: the reference's loops over kept indices in parallel (double sums: these are
 * not on a hot path, and long sums such as the mean of a whole tensor need them) */
void gr_fast_reduce(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sx = SHAPE(n->inputs[0]);
  int64_t d[4], st[4], inner = 1;
  gr_shape4(sx, d);
  unsigned axes = (unsigned)n->ia[1] << (4 - sx.rank);
  for (int i = 3; i >= 0; i--) {
    st[i] = inner;
    inner *= d[i];
  }
  int64_t r[4], o[4], count = 1;
  for (int i = 0; i < 4; i++) {
    r[i] = axes & (1u << i) ? d[i] : 1;
    o[i] = axes & (1u << i) ? 1 : d[i];
    count *= r[i];
  }
  gr_reduce f = (gr_reduce)n->ia[0];
  int64_t kept = o[0] * o[1] * o[2] * o[3];
  if (axes & 8u && f != GR_LOGSUMEXP) {
    reduce_runs(f, in[0], out, d, axes);
    return;
  }
#pragma omp parallel for schedule(static) if (kept * count >= PAR_MIN)
  for (int64_t idx = 0; idx < kept; idx++) {
    int64_t a = idx / (o[1] * o[2] * o[3]), b = idx / (o[2] * o[3]) % o[1], c = idx / o[3] % o[2], e = idx % o[3];
    const float *base = in[0] + a * st[0] + b * st[1] + c * st[2] + e * st[3];
    double s = 0, s2 = 0, se = 0, mx = -INFINITY;
    for (int pass = 0; pass < (f == GR_LOGSUMEXP ? 2 : 1); pass++)
      for (int64_t i = 0; i < r[0]; i++)
        for (int64_t j = 0; j < r[1]; j++)
          for (int64_t k = 0; k < r[2]; k++) {
            const float *row = base + i * st[0] + j * st[1] + k * st[2];
            for (int64_t l = 0; l < r[3]; l++) {
              double v = row[l * st[3]];
              if (pass == 0) {
                s += v;
                s2 += v * v;
                mx = v > mx ? v : mx;
              } else {
                se += exp(v - mx);
              }
            }
          }
    out[idx] = reduce_result(f, s, s2, mx, se, count);
  }
}

/* ---- layout ops */
void gr_fast_permute(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sx = SHAPE(n->inputs[0]), so = SHAPE(n->output);
  int r = sx.rank;
  int64_t xs[4], od[4] = {1, 1, 1, 1}, ss[4] = {0, 0, 0, 0}, acc = 1;
  for (int i = r - 1; i >= 0; i--) {
    xs[i] = acc;
    acc *= sx.d[i];
  }
  for (int i = 0; i < r; i++) { /* right-aligned in 4-D: source stride per output dim */
    od[4 - r + i] = so.d[i];
    ss[4 - r + i] = xs[n->ia[i]];
  }
  int64_t rows = od[0] * od[1] * od[2];
#pragma omp parallel for schedule(static) if (rows * od[3] >= PAR_MIN)
  for (int64_t row = 0; row < rows; row++) {
    int64_t a = row / (od[1] * od[2]), b = row / od[2] % od[1], c = row % od[2];
    const float *src = in[0] + a * ss[0] + b * ss[1] + c * ss[2];
    float *y = out + row * od[3];
    for (int64_t i = 0; i < od[3]; i++)
      y[i] = src[i * ss[3]];
  }
}

static void split_at(gr_shape s, int axis, int64_t *outer, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < axis; i++)
    *outer *= s.d[i];
  for (int i = axis + 1; i < s.rank; i++)
    *inner *= s.d[i];
}

void gr_fast_concat(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  int axis = (int)n->ia[0];
  int64_t outer, inner, la = SHAPE(n->inputs[0]).d[axis], lb = SHAPE(n->inputs[1]).d[axis];
  split_at(SHAPE(n->output), axis, &outer, &inner);
#pragma omp parallel for schedule(static) if (outer * (la + lb) * inner >= PAR_MIN)
  for (int64_t o = 0; o < outer; o++) {
    memcpy(out + o * (la + lb) * inner, in[0] + o * la * inner, (size_t)(la * inner) * sizeof(float));
    memcpy(out + (o * (la + lb) + la) * inner, in[1] + o * lb * inner, (size_t)(lb * inner) * sizeof(float));
  }
}

void gr_fast_slice(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  int axis = (int)n->ia[0];
  int64_t outer, inner, start = n->ia[1], len = SHAPE(n->output).d[axis], full = SHAPE(n->inputs[0]).d[axis];
  split_at(SHAPE(n->output), axis, &outer, &inner);
#pragma omp parallel for schedule(static) if (outer * len * inner >= PAR_MIN)
  for (int64_t o = 0; o < outer; o++)
    memcpy(out + o * len * inner, in[0] + (o * full + start) * inner, (size_t)(len * inner) * sizeof(float));
}

/* ---- flip: one output row (the last dimension) per iteration, read forwards or backwards */
void gr_fast_flip(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape s = SHAPE(n->output);
  int64_t d[4];
  gr_shape4(s, d);
  unsigned axes = (unsigned)n->ia[0] << (4 - s.rank);
  int64_t rows = d[0] * d[1] * d[2], W = d[3];
#pragma omp parallel for schedule(static) if (rows * W >= PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    int64_t a = r / (d[1] * d[2]), b = r / d[2] % d[1], c = r % d[2];
    a = axes & 1u ? d[0] - 1 - a : a;
    b = axes & 2u ? d[1] - 1 - b : b;
    c = axes & 4u ? d[2] - 1 - c : c;
    const float *x = in[0] + ((a * d[1] + b) * d[2] + c) * W;
    float *y = out + r * W;
    if (axes & 8u)
      for (int64_t i = 0; i < W; i++)
        y[i] = x[W - 1 - i];
    else
      memcpy(y, x, (size_t)W * sizeof *y);
  }
}

/* ---- resampling, one plane per iteration */
CLONES static void upsample_plane(const float *src, float *dst, int64_t H, int64_t W, int bilinear) {
  for (int64_t y = 0; y < 2 * H; y++) {
    float fy = fmaxf((y + 0.5f) * 0.5f - 0.5f, 0.0f);
    int64_t y0 = (int64_t)fy, y1 = y0 + 1 < H ? y0 + 1 : H - 1;
    float wy = fy - (float)y0;
    for (int64_t x = 0; x < 2 * W; x++) {
      float v;
      if (!bilinear) {
        v = src[(y / 2) * W + x / 2];
      } else { /* half-pixel centres, edges clamped, as the reference */
        float fx = fmaxf((x + 0.5f) * 0.5f - 0.5f, 0.0f);
        int64_t x0 = (int64_t)fx, x1 = x0 + 1 < W ? x0 + 1 : W - 1;
        float wx = fx - (float)x0;
        v = (1 - wy) * ((1 - wx) * src[y0 * W + x0] + wx * src[y0 * W + x1]) +
            wy * ((1 - wx) * src[y1 * W + x0] + wx * src[y1 * W + x1]);
      }
      dst[y * 2 * W + x] = v;
    }
  }
}

void gr_fast_upsample(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sx = SHAPE(n->inputs[0]);
  int64_t planes = sx.d[0] * sx.d[1], H = sx.d[2], W = sx.d[3];
#pragma omp parallel for schedule(static) if (planes * H * W * 4 >= PAR_MIN)
  for (int64_t p = 0; p < planes; p++)
    upsample_plane(in[0] + p * H * W, out + p * 4 * H * W, H, W, n->ia[0] != GR_NEAREST);
}

void gr_fast_avg_pool(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape so = SHAPE(n->output);
  int64_t planes = so.d[0] * so.d[1], H = so.d[2], W = so.d[3];
#pragma omp parallel for schedule(static) if (planes * H * W * 4 >= PAR_MIN)
  for (int64_t p = 0; p < planes; p++)
    for (int64_t y = 0; y < H; y++) {
      const float *s0 = in[0] + (p * 2 * H + 2 * y) * 2 * W, *s1 = s0 + 2 * W;
      float *d = out + (p * H + y) * W;
      for (int64_t x = 0; x < W; x++)
        d[x] = 0.25f * (s0[2 * x] + s0[2 * x + 1] + s1[2 * x] + s1[2 * x + 1]);
    }
}

/* ---- conv2d that oneDNN does not take (reflect padding: the blur operators). Output planes
 * in parallel; each tap adds w * x along output rows through precomputed input columns. */
void gr_fast_conv2d(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  gr_shape sx = SHAPE(n->inputs[0]), sw = SHAPE(n->inputs[1]), so = SHAPE(n->output);
  int64_t stride = n->ia[0], pad = n->ia[1], dil = n->ia[2], groups = n->ia[3];
  int reflect = n->ia[4] == GR_PAD_REFLECT;
  int64_t N = sx.d[0], C = sx.d[1], H = sx.d[2], W = sx.d[3];
  int64_t O = sw.d[0], CG = sw.d[1], KH = sw.d[2], KW = sw.d[3], OH = so.d[2], OW = so.d[3], OG = O / groups;
  int64_t *cols = malloc((size_t)(KW * OW + KH * OH) * sizeof *cols), *rows = cols + KW * OW;
  if (!cols) { /* no memory for the index tables: the reference loop needs none */
    gr_cpu_conv2d(g, n, in, out);
    return;
  }
  for (int64_t k = 0; k < KW; k++)
    for (int64_t x = 0; x < OW; x++)
      cols[k * OW + x] = gr_cpu_pad_index(x * stride - pad + k * dil, W, reflect);
  for (int64_t k = 0; k < KH; k++)
    for (int64_t y = 0; y < OH; y++)
      rows[k * OH + y] = gr_cpu_pad_index(y * stride - pad + k * dil, H, reflect);
#pragma omp parallel for schedule(static) if (N * O * OH * OW * CG * KH * KW >= PAR_MIN)
  for (int64_t p = 0; p < N * O; p++) {
    int64_t b = p / O, o = p % O;
    float *y = out + p * OH * OW, bias = n->n_inputs > 2 ? in[2][o] : 0.0f;
    for (int64_t i = 0; i < OH * OW; i++)
      y[i] = bias;
    for (int64_t c = 0; c < CG; c++) {
      const float *xc = in[0] + (b * C + o / OG * CG + c) * H * W, *wc = in[1] + (o * CG + c) * KH * KW;
      for (int64_t ky = 0; ky < KH; ky++)
        for (int64_t kx = 0; kx < KW; kx++) {
          const float w = wc[ky * KW + kx];
          const int64_t *ci = cols + kx * OW;
          for (int64_t oy = 0; oy < OH; oy++) {
            int64_t iy = rows[ky * OH + oy];
            if (iy < 0)
              continue;
            const float *xr = xc + iy * W;
            float *yr = y + oy * OW;
            if (reflect) /* every column exists: no test in the loop, so it vectorises */
              for (int64_t ox = 0; ox < OW; ox++)
                yr[ox] += w * xr[ci[ox]];
            else
              for (int64_t ox = 0; ox < OW; ox++)
                if (ci[ox] >= 0)
                  yr[ox] += w * xr[ci[ox]];
          }
        }
    }
  }
  free(cols);
}

/* ---- the conv2d weight gradient: stage 0 runs in oneDNN (fast_dnnl.c: backward-weights
 * convolution over the whole batch, the sum in slot 0 and zeros in the others); stage 1 here,
 * in parallel. */
void gr_fast_conv2d_wgrad(const gr_graph *g, const gr_node *n, const float *const *in, float *out) {
  if (!n->ia[8]) { /* oneDNN did not take it */
    gr_cpu_conv2d_wgrad(g, n, in, out);
    return;
  }
  int64_t count = gr_shape_count(SHAPE(n->output)), splits = n->ia[6];
#pragma omp parallel for schedule(static) if (count * splits >= 65536)
  for (int64_t i = 0; i < count; i++) {
    float s = 0;
    for (int64_t k = 0; k < splits; k++)
      s += in[0][k * count + i];
    out[i] = s;
  }
}
