#version 450
// fp32 2-D convolution (NCHW, weights [O, C/GROUPS, KH, KW]) tuned for Mesa lavapipe.
//
// TILE_O 8 TILE_P 32   (each workgroup: 8 output channels x 32 consecutive output pixels of one image)
// local_size = (8,1,1); dispatch groups = (min(ceil(OH*OW/32), 65535), ceil(O/8), N)
//
// Design (why): lavapipe runs a workgroup of 8 invocations as one 8-wide SIMD vector and turns
// every buffer load into a per-lane, per-component scalar loop with bounds checks (even for
// addresses that are uniform at run time), so the loaded floats per FMA decide speed; values
// passed between lanes with subgroupBroadcast are register shuffles.
// Implicit GEMM, C_out[o, p] = sum_k W[o, k] * X_col[k, p], k = (c, ky, kx):
// lane l owns 4 consecutive output pixels p0+4l..p0+4l+3 (one vec4 accumulator for each of the
// workgroup's 8 output channels). Per (c, ky) each lane loads the input row window its 4 pixels
// need for all kx (3*STRIDE + (KW-1)*DIL + 1 floats: 6 for 3x3 stride 1) and one weight per kx,
// for output channel o0+lane; the 8 channels' weights reach every lane by subgroupBroadcast.
// 3x3 stride 1: per c a lane loads 18 + 9 floats for 288 FMAs.
// The window path needs the 4 pixels in one output row (OW % 4 == 0); otherwise each pixel
// gathers its own taps. Padding: indices are reflected (PAD_MODE 1) or clamped and the value
// zeroed (PAD_MODE 0); every index is clamped into range before loading, lanes past the end
// compute duplicates that are never stored, stores are guarded.
// Workgroups whose 8 channels span several groups (depthwise, O/GROUPS % 8 != 0) handle one
// channel at a time with per-lane weight loads (a slow but compact path: rolled tap loops keep
// the cold pipeline compile short).
// Folded GroupNorm (graph/passes/fusion.c), both sides chosen by specialization constants 21-24:
// STATS_GROUPS > 0: this conv also writes GroupNorm statistics of its output (after the epilogue)
// for that many groups: per (sample, unit of min(O/groups, 8) channels, tile of TP pixels) the
// pair (mean, M2 = sum of squared deviations from that mean); lanes' partials are merged in a
// fixed order (Chan et al.), so results are deterministic. NORM_GROUPS > 0: the input is the
// un-normalised tensor whose statistics a previous conv wrote; each workgroup merges them per
// group (fixed order again), then every loaded value becomes silu?((x - mean) * rsqrt(var + eps)
// * gamma + beta) before the zero padding applies.
// Fusions into the conv (graph/passes/fusion_conv.c), chosen by specialization constants 25-30,
// each saving a dispatch and a trip of a tensor through memory:
// UPSAMPLE: input 0 is read nearest-upsampled 2x: pc.H, pc.W are the upsampled size and each
// load reads x at (iy/2, ix/2) (never combined with a folded GroupNorm on the input).
// X2_FLAGS: the output also sums a 1x1 conv (stride 1, no padding) of a second input x2
// [N, C2, OH, OW] with weights w2 [O, C2] (+ bias b2): a residual block's skip conv, in the
// same accumulators. A lane's 4 pixels are consecutive in an x2 plane, so it loads 4 floats and
// one weight per channel, as the 1x1 conv itself would.
// Output placement: with Y_CHANNELS > 0, output channel o of sample n is stored at channel
// Y_C0 + o of a tensor of Y_CHANNELS channels (a channel slice of a concatenation); with
// Y2_CHANNELS > 0, also at channel Y2_C0 + o of y2 (when other nodes read the conv's own output
// too). These are specialization constants, not push constants: a store index computed from push
// constants made every conv, placed or not, 10-30 % slower on lavapipe (Mesa 25; the suspect is
// one more value kept live across the spilled accumulators of the hot loop).
// Subgroups: the broadcast path needs the workgroup to be one subgroup with ids 0..7 (always so
// on lavapipe). This is checked at run time; otherwise the one-channel-at-a-time path runs, so
// results are correct for any subgroup size.
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require
#extension GL_KHR_shader_subgroup_arithmetic : require

#define TO 8            // output channels per workgroup (= lanes: one weight row per lane)
#define TP 32           // output pixels per workgroup (8 lanes x 4)

layout(local_size_x = 8, local_size_y = 1, local_size_z = 1) in;

layout(constant_id = 0) const int KH = 3;
layout(constant_id = 1) const int KW = 3;
layout(constant_id = 2) const int STRIDE = 1;
layout(constant_id = 3) const int PAD = 0;
layout(constant_id = 4) const int DIL = 1;
layout(constant_id = 5) const uint GROUPS = 1;
layout(constant_id = 6) const uint PAD_MODE = 0;
layout(constant_id = 7) const uint HAS_BIAS = 0;

layout(set = 0, binding = 0, std430) readonly buffer BufX  { float x[];  };
layout(set = 0, binding = 1, std430) readonly buffer BufW  { float w[];  };
layout(set = 0, binding = 2, std430) readonly buffer BufB  { float bias[]; };
layout(set = 0, binding = 3, std430) writeonly buffer BufY  { float y[];  };
#include "storage.glsl"
F16_IN(0, x) F16_IN(1, w) F16_IN(2, bias) F16_OUT(3, y)   // the statistics (8-11) stay fp32

#define EP_BINDING 4
#include "epilogue.glsl"

// The fusions' bindings (8-15); in the <name>_b4 variant they alias the output (written) or
// binding 0 (read), and a plan for such a device never asks for those fusions.
#ifdef APS_FEW_BINDINGS
#define FUSED_OUT(b) 3
#define FUSED_IN(b) 0
#else
#define FUSED_OUT(b) b
#define FUSED_IN(b) b
#endif

layout(constant_id = 21) const uint STATS_GROUPS = 0u;
layout(constant_id = 22) const uint NORM_GROUPS = 0u;
layout(constant_id = 23) const uint NORM_FLAGS = 0u;   // bit 0 gamma, bit 1 beta, bit 2 SiLU
layout(constant_id = 24) const float NORM_EPS = 0.0;
layout(set = 0, binding = FUSED_OUT(8), std430) writeonly buffer BufSo { float stats_out[]; };
layout(set = 0, binding = FUSED_IN(9), std430) readonly buffer BufSi { float stats_in[]; };
layout(set = 0, binding = FUSED_IN(10), std430) readonly buffer BufG { float gamma[]; };
layout(set = 0, binding = FUSED_IN(11), std430) readonly buffer BufBt { float beta[]; };

layout(constant_id = 25) const uint UPSAMPLE = 0u;
layout(constant_id = 26) const uint X2_FLAGS = 0u;     // bit 0 x2 and w2, bit 1 b2
layout(constant_id = 27) const uint Y_CHANNELS = 0u;   // 0: the output is [N, O, OH, OW]
layout(constant_id = 28) const uint Y_C0 = 0u;
layout(constant_id = 29) const uint Y2_CHANNELS = 0u;  // 0: no second output
layout(constant_id = 30) const uint Y2_C0 = 0u;
layout(set = 0, binding = FUSED_OUT(12), std430) writeonly buffer BufY2 { float y2[]; };
layout(set = 0, binding = FUSED_IN(13), std430) readonly buffer BufX2 { float x2[]; };
layout(set = 0, binding = FUSED_IN(14), std430) readonly buffer BufW2 { float w2[]; };
layout(set = 0, binding = FUSED_IN(15), std430) readonly buffer BufB2 { float b2[]; };
F16_OUT(12, y2) F16_IN(13, x2) F16_IN(14, w2) F16_IN(15, b2)

layout(push_constant) uniform PC { uint N, C, H, W, O, OH, OW, C2; } pc;

const int KK = KH * KW;
const int WL = 3 * STRIDE + (KW - 1) * DIL + 1;   // input row window of 4 consecutive pixels
const bool WINDOW = WL <= 4 * KW;                  // else load each (pixel, kx) directly

vec4 acc[TO];

int reflect_clamp(int i, int n) {
  if (PAD_MODE == 1u) { i = i < 0 ? -i : i; i = i >= n ? 2 * (n - 1) - i : i; }
  return clamp(i, 0, n - 1);
}

// Folded GroupNorm: (count, mean, M2) merged with another set's (k, mk, qk).
void merge(inout float cnt, inout float mean, inout float m2, float k, float mk, float qk) {
  const float tot = cnt + k, d = mk - mean;
  mean += d * (k / tot);
  m2 += qk + d * d * (cnt * k / tot);
  cnt = tot;
}

float nrm_mean = 0.0, nrm_inv = 0.0, nrm_a = 1.0, nrm_b = 0.0;  // x * a + b for the current channel
uint nrm_c0 = 1u, nrm_c1 = 0u;   // the channels [c0, c1) of the group in nrm_mean, nrm_inv (none yet)

// Group g's mean and 1/std from the partials of sample n, merged in a fixed order. Computed
// by every lane when the (workgroup-uniform) channel enters a new group: no shared memory and
// no barrier (lavapipe turns each shared-memory access into a per-lane loop).
void norm_group(uint n, uint g) {
  const uint C = pc.C, P = pc.H * pc.W, cg = C / NORM_GROUPS, uw = min(cg, 8u), U = C / uw, upg = cg / uw;
  const uint nt = (P + TP - 1u) / TP;
  float cnt = 0.0, mean = 0.0, m2 = 0.0;
  for (uint u = g * upg; u < (g + 1u) * upg; u++)
    for (uint t = 0u; t < nt; t++) {
      const uint i = ((n * U + u) * nt + t) * 2u;
      merge(cnt, mean, m2, float(uw * min(TP, P - t * TP)), stats_in[i], stats_in[i + 1u]);
    }
  nrm_mean = mean;
  nrm_inv = inversesqrt(max(m2 / cnt, 0.0) + NORM_EPS);
  nrm_c0 = g * cg;
  nrm_c1 = nrm_c0 + cg;
}

void norm_channel(uint n, uint ch) {
  if (NORM_GROUPS == 0u) return;
  // (an integer division by a run-time value is a per-lane scalar loop on lavapipe: only when
  // the channel leaves the current group)
  if (ch < nrm_c0 || ch >= nrm_c1) norm_group(n, ch / (pc.C / NORM_GROUPS));
  float a = nrm_inv;
  if ((NORM_FLAGS & 1u) != 0u) a *= gamma[ch];
  nrm_b = ((NORM_FLAGS & 2u) != 0u ? beta[ch] : 0.0) - nrm_mean * a;
  nrm_a = a;
}

// x[plane + (iy, ix)] with padding (zero or reflect); never reads out of range.
float xat(uint plane, int iy, int ix) {
  const int H = int(pc.H), W = int(pc.W), ry = reflect_clamp(iy, H), rx = reflect_clamp(ix, W);
  // upsampled: (ry/2) * (W/2) + rx/2, W being even
  float v = LD(x, plane + uint(UPSAMPLE != 0u ? ((ry >> 1) * W + rx) >> 1 : ry * W + rx));
  if (NORM_GROUPS != 0u) {
    v = fma(v, nrm_a, nrm_b);
    if ((NORM_FLAGS & 4u) != 0u) v *= 1.0 / (1.0 + exp2(v * -1.4426950408889634));  // SiLU
  }
  return (PAD_MODE == 1u || (iy >= 0 && iy < H && ix >= 0 && ix < W)) ? v : 0.0;
}

// x2 at a lane's 4 pixels p.. of the plane starting at base (pixels past the end clamped).
vec4 x2at(uint base, uint p) {
  const uint last = pc.OH * pc.OW - 1u;
  return vec4(LD(x2, base + min(p, last)), LD(x2, base + min(p + 1u, last)), LD(x2, base + min(p + 2u, last)),
              LD(x2, base + min(p + 3u, last)));
}

// The row window s[j] = x at (iy, ix + j), j < WL. Upsampled with zero padding, the WL columns
// come from WU source columns, each loaded once (4 loads instead of 6 for 3x3): on the row path
// ix = -PAD mod 2, so column j is source column ix/2 + (j + PAD % 2)/2.
const int WU = ((WL - 1 + (PAD & 1)) >> 1) + 1;
void load_window(uint plane, int iy, int ix, inout float s[WL]) {
  if (UPSAMPLE != 0u && PAD_MODE == 0u) {
    const int W = int(pc.W) >> 1, sx = ix >> 1;
    const bool row_in = iy >= 0 && iy < int(pc.H);
    const uint row = plane + uint(clamp(iy >> 1, 0, (int(pc.H) >> 1) - 1) * W);
    float u[WU];
    [[unroll]] for (int k = 0; k < WU; k++) {
      const float v = LD(x, row + uint(clamp(sx + k, 0, W - 1)));
      u[k] = row_in && sx + k >= 0 && sx + k < W ? v : 0.0;
    }
    [[unroll]] for (int j = 0; j < WL; j++) s[j] = u[(j + (PAD & 1)) >> 1];
  } else {
    [[unroll]] for (int j = 0; j < WL; j++) s[j] = xat(plane, iy, ix + j);
  }
}

// Row path (OW % 4 == 0): the input values of tap kx for the 4 pixels, from the window s.
#define WIN_B(kx) vec4(s[(kx) * DIL], s[(kx) * DIL + STRIDE], s[(kx) * DIL + 2 * STRIDE], s[(kx) * DIL + 3 * STRIDE])

// One (c, ky) step for all TO channels; WGT(i, kx) yields channel o0+i's weight of tap (c, ky, kx).
#define STEP_ROW(WGT)                                                                          \
  {                                                                                            \
    const int iy = iy0.x + ky * DIL;                                                           \
    if (WINDOW) {                                                                              \
      float s[WL];                                                                             \
      load_window(plane, iy, ix0.x, s);                                                        \
      [[unroll]] for (int kx = 0; kx < KW; kx++) {                                             \
        const vec4 b = WIN_B(kx);                                                              \
        [[unroll]] for (int i = 0; i < TO; i++) acc[i] = fma(vec4(WGT(i, kx)), b, acc[i]);     \
      }                                                                                        \
    } else {                                                                                   \
      [[unroll]] for (int kx = 0; kx < KW; kx++) {                                             \
        vec4 b;                                                                                \
        [[unroll]] for (int e = 0; e < 4; e++) b[e] = xat(plane, iy, ix0.x + e * STRIDE + kx * DIL); \
        [[unroll]] for (int i = 0; i < TO; i++) acc[i] = fma(vec4(WGT(i, kx)), b, acc[i]);     \
      }                                                                                        \
    }                                                                                          \
  }
#define WGT_BCAST(i, kx) subgroupBroadcast(wl[kx], i)

// Bias, epilogue and guarded scalar stores (lavapipe splits vec4 stores per component anyway);
// the rolled loop keeps one epilogue instance per channel.
// Returns the stored values (for the statistics). With STATS_GROUPS and shm (the path without
// subgroups): each lane's (count, mean, M2) of its stored values, per channel of the tile.
shared float st_k[TO][8], st_s[TO][8], st_q[TO][8];

vec3 store4(uint o, uint n, uint p, vec4 v, bool shm) {
  const uint O = pc.O, P = pc.OH * pc.OW, i = o % TO, lane = gl_LocalInvocationID.x;
  if (o >= O) {
    if (STATS_GROUPS != 0u && shm) st_k[i][lane] = 0.0;
    return vec3(0.0);
  }
  if (HAS_BIAS != 0u) v += LD(bias, o);
  if ((X2_FLAGS & 2u) != 0u) v += LD(b2, o);
  const uint nc = n * O + o, base = nc * P + p;
  const uint yb = Y_CHANNELS != 0u ? (n * Y_CHANNELS + Y_C0 + o) * P + p : base;
  const uint y2b = (n * Y2_CHANNELS + Y2_C0 + o) * P + p;
  // statistics from scalars shifted by the first value (no read of v after its dynamically
  // indexed writes, which would keep the accumulators in memory on lavapipe)
  float k = 0.0, sh = 0.0, s1 = 0.0, s2 = 0.0;
  [[dont_unroll]] for (uint e = 0u; e < 4u; e++)
    if (p + e < P) {
      const float r = epilogue(v[e], base + e, nc, o);
      ST(y, yb + e, r);
      if (Y2_CHANNELS != 0u) ST(y2, y2b + e, r);
      if (STATS_GROUPS != 0u) {
        sh = k == 0.0 ? r : sh;
        k += 1.0;
        s1 += r - sh;
        s2 += (r - sh) * (r - sh);
      }
    }
  const float m = k > 0.0 ? sh + s1 / k : 0.0, q = k > 0.0 ? max(s2 - s1 * s1 / k, 0.0) : 0.0;
  if (STATS_GROUPS != 0u && shm) {
    st_k[i][lane] = k;
    st_s[i][lane] = m;
    st_q[i][lane] = q;
  }
  return vec3(k, m, q);
}

// The statistics of a tile from each lane's (count, mean, M2) per channel with subgroup sums,
// no shared memory or barrier: per unit of uw channels, mean = sum k m / sum k, then
// M2 = sum (q + k (m - mean)^2); lane j writes unit j. Every sum's order is fixed.
void stats_sg(uint n, uint o0, uint tile, vec3 ls[TO]) {
  // uw is 1, 2, 4 or 8 (passes/fusion.c): shifts instead of divisions, which lavapipe runs per lane
  const uint O = pc.O, P = pc.OH * pc.OW, uw = min(O / STATS_GROUPS, 8u), sh = uint(findLSB(uw)), U = O >> sh;
  const uint nt = (P + TP - 1u) / TP, lane = gl_LocalInvocationID.x, u = (o0 >> sh) + lane;
  float sk[TO], sm[TO], mu[TO], q[TO];
  [[unroll]] for (int i = 0; i < TO; i++) { sk[i] = subgroupAdd(ls[i].x); sm[i] = subgroupAdd(ls[i].x * ls[i].y); }
  [[unroll]] for (int i = 0; i < TO; i++) {
    float t = 0.0, c = 0.0;
    [[unroll]] for (int j = 0; j < TO; j++)
      if (uint(j) >> sh == uint(i) >> sh) { t += sm[j]; c += sk[j]; }
    mu[i] = c > 0.0 ? t / c : 0.0;
  }
  [[unroll]] for (int i = 0; i < TO; i++) {
    const float d = ls[i].y - mu[i];
    q[i] = subgroupAdd(ls[i].z + ls[i].x * d * d);
  }
  float mean = 0.0, m2 = 0.0;
  [[unroll]] for (int i = 0; i < TO; i++)
    if (uint(i) >> sh == lane) {
      m2 += q[i];
      if ((uint(i) & (uw - 1u)) == 0u) mean = mu[i];
    }
  if (lane < TO >> sh && u < U) {
    const uint j = ((n * U + u) * nt + tile) * 2u;
    stats_out[j] = mean;
    stats_out[j + 1u] = m2;
  }
}

void stats_tile(uint n, uint o0, uint tile) {
  barrier();
  const uint O = pc.O, P = pc.OH * pc.OW, cg = O / STATS_GROUPS, uw = min(cg, 8u), U = O / uw;
  const uint nt = (P + TP - 1u) / TP, lane = gl_LocalInvocationID.x, u = o0 / uw + lane;
  if (lane < TO / uw && u < U) {
    float cnt = 0.0, mean = 0.0, m2 = 0.0;
    for (uint i = lane * uw; i < lane * uw + uw; i++)
      for (uint l = 0u; l < gl_WorkGroupSize.x; l++)
        if (st_k[i][l] > 0.0) merge(cnt, mean, m2, st_k[i][l], st_s[i][l], st_q[i][l]);
    const uint j = ((n * U + u) * nt + tile) * 2u;
    stats_out[j] = mean;
    stats_out[j + 1u] = m2;
  }
  barrier();
}

void main() {
  const uint C = pc.C, O = pc.O, OW = pc.OW, P = pc.OH * pc.OW;
  const uint HW = UPSAMPLE != 0u ? (pc.H >> 1) * (pc.W >> 1) : pc.H * pc.W;   // an input plane
  const uint CG = C / GROUPS, OG = O / GROUPS;
  const uint n = gl_WorkGroupID.z, o0 = gl_WorkGroupID.y * TO;
  const uint lane = gl_LocalInvocationID.x;
  const bool sg = gl_NumSubgroups == 1u && (subgroupBallot(true).x & 0xFFu) == 0xFFu;
  const bool rowvec = (OW & 3u) == 0u;     // a lane's 4 pixels lie in one output row (P % 4 == 0 too)
  const uint g0 = o0 / OG;
  const bool onegroup = g0 == min(o0 + TO - 1u, O - 1u) / OG;
  const uint ntiles = (P + TP - 1u) / TP;

  const uint wmine = min(o0 + (sg ? gl_SubgroupInvocationID : 0u), O - 1u) * CG * uint(KK);

  for (uint tile = gl_WorkGroupID.x; tile < ntiles; tile += gl_NumWorkGroups.x) {
    const uint p = tile * TP + 4u * lane;
    ivec4 iy0, ix0;                        // input origin of this lane's 4 pixels (clamped pixels)
    [[unroll]] for (int e = 0; e < 4; e++) {
      const uint pe = min(p + uint(e), P - 1u);
      iy0[e] = int(pe / OW) * STRIDE - PAD;
      ix0[e] = int(pe % OW) * STRIDE - PAD;
    }

    if (onegroup && sg) {
      [[unroll]] for (int i = 0; i < TO; i++) acc[i] = vec4(0.0);
      const uint xc0 = (n * C + g0 * CG) * HW;
      if (rowvec) {
        for (uint c = 0u; c < CG; c++) {
          const uint plane = xc0 + c * HW;
          norm_channel(n, g0 * CG + c);
          [[unroll]] for (int ky = 0; ky < KH; ky++) {
            const uint kidx = wmine + c * uint(KK) + uint(ky * KW);
            float wl[KW];
            [[unroll]] for (int kx = 0; kx < KW; kx++) wl[kx] = LD(w, kidx + uint(kx));
            STEP_ROW(WGT_BCAST)
          }
        }
      } else {
        for (uint c = 0u; c < CG; c++) {
          const uint plane = xc0 + c * HW;
          norm_channel(n, g0 * CG + c);
          [[dont_unroll]] for (int ky = 0; ky < KH; ky++) [[dont_unroll]] for (int kx = 0; kx < KW; kx++) {
            const float wv = LD(w, wmine + c * uint(KK) + uint(ky * KW + kx));
            vec4 b;
            [[unroll]] for (int e = 0; e < 4; e++) b[e] = xat(plane, iy0[e] + ky * DIL, ix0[e] + kx * DIL);
            [[unroll]] for (int i = 0; i < TO; i++) acc[i] = fma(vec4(subgroupBroadcast(wv, i)), b, acc[i]);
          }
        }
      }
      if ((X2_FLAGS & 1u) != 0u) {
        const uint xb = n * pc.C2 * P, wb = min(o0 + gl_SubgroupInvocationID, O - 1u) * pc.C2;
        for (uint c = 0u; c < pc.C2; c++) {
          const vec4 b = x2at(xb + c * P, p);
          const float wv = LD(w2, wb + c);
          [[unroll]] for (int i = 0; i < TO; i++) acc[i] = fma(vec4(subgroupBroadcast(wv, i)), b, acc[i]);
        }
      }
      vec3 ls[TO];
      [[unroll]] for (int i = 0; i < TO; i++) ls[i] = store4(o0 + uint(i), n, p, acc[i], false);
      if (STATS_GROUPS != 0u) stats_sg(n, o0, tile, ls);
    } else {
      // channels of several groups (depthwise, or O/GROUPS not a multiple of 8), or no usable
      // subgroup: one channel at a time, every lane loading the weights itself
      for (uint i = 0u; i < TO; i++) {
        const uint o = min(o0 + i, O - 1u);
        const uint xc0 = (n * C + (o / OG) * CG) * HW, wr = o * CG * uint(KK);
        vec4 a = vec4(0.0);
        for (uint c = 0u; c < CG; c++) {
          const uint plane = xc0 + c * HW;
          norm_channel(n, (o / OG) * CG + c);
          if (rowvec && WINDOW) {
            [[dont_unroll]] for (int ky = 0; ky < KH; ky++) {
              const uint kidx = wr + c * uint(KK) + uint(ky * KW);
              const int iy = iy0.x + ky * DIL;
              float s[WL];
              load_window(plane, iy, ix0.x, s);
              [[unroll]] for (int kx = 0; kx < KW; kx++) a = fma(vec4(LD(w, kidx + uint(kx))), WIN_B(kx), a);
            }
          } else {
            [[dont_unroll]] for (int ky = 0; ky < KH; ky++) [[dont_unroll]] for (int kx = 0; kx < KW; kx++) {
              vec4 b;
              [[unroll]] for (int e = 0; e < 4; e++) b[e] = xat(plane, iy0[e] + ky * DIL, ix0[e] + kx * DIL);
              a = fma(vec4(LD(w, wr + c * uint(KK) + uint(ky * KW + kx))), b, a);
            }
          }
        }
        if ((X2_FLAGS & 1u) != 0u)
          for (uint c = 0u; c < pc.C2; c++) a = fma(vec4(LD(w2, o * pc.C2 + c)), x2at((n * pc.C2 + c) * P, p), a);
        store4(o0 + i, n, p, a, true);
      }
      if (STATS_GROUPS != 0u) stats_tile(n, o0, tile);
    }
  }
}
