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
// Subgroups: the broadcast path needs the workgroup to be one subgroup with ids 0..7 (always so
// on lavapipe). This is checked at run time; otherwise the one-channel-at-a-time path runs, so
// results are correct for any subgroup size.
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require

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

#define EP_BINDING 4
#include "epilogue.glsl"

layout(push_constant) uniform PC { uint N, C, H, W, O, OH, OW; } pc;

const int KK = KH * KW;
const int WL = 3 * STRIDE + (KW - 1) * DIL + 1;   // input row window of 4 consecutive pixels
const bool WINDOW = WL <= 4 * KW;                  // else load each (pixel, kx) directly

vec4 acc[TO];

int reflect_clamp(int i, int n) {
  if (PAD_MODE == 1u) { i = i < 0 ? -i : i; i = i >= n ? 2 * (n - 1) - i : i; }
  return clamp(i, 0, n - 1);
}

// x[plane + (iy, ix)] with padding (zero or reflect); never reads out of range.
float xat(uint plane, int iy, int ix) {
  const int H = int(pc.H), W = int(pc.W);
  const float v = x[plane + uint(reflect_clamp(iy, H) * W + reflect_clamp(ix, W))];
  return (PAD_MODE == 1u || (iy >= 0 && iy < H && ix >= 0 && ix < W)) ? v : 0.0;
}

// Row path (OW % 4 == 0): the input values of tap kx for the 4 pixels, from the window s.
#define WIN_B(kx) vec4(s[(kx) * DIL], s[(kx) * DIL + STRIDE], s[(kx) * DIL + 2 * STRIDE], s[(kx) * DIL + 3 * STRIDE])

// One (c, ky) step for all TO channels; WGT(i, kx) yields channel o0+i's weight of tap (c, ky, kx).
#define STEP_ROW(WGT)                                                                          \
  {                                                                                            \
    const int iy = iy0.x + ky * DIL;                                                           \
    if (WINDOW) {                                                                              \
      float s[WL];                                                                             \
      [[unroll]] for (int j = 0; j < WL; j++) s[j] = xat(plane, iy, ix0.x + j);                \
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
void store4(uint o, uint n, uint p, vec4 v) {
  const uint O = pc.O, P = pc.OH * pc.OW;
  if (o >= O) return;
  if (HAS_BIAS != 0u) v += bias[o];
  const uint nc = n * O + o, base = nc * P + p;
  [[dont_unroll]] for (uint e = 0u; e < 4u; e++)
    if (p + e < P) y[base + e] = epilogue(v[e], base + e, nc, o);
}

void main() {
  const uint C = pc.C, O = pc.O, OW = pc.OW, P = pc.OH * pc.OW, HW = pc.H * pc.W;
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
          [[unroll]] for (int ky = 0; ky < KH; ky++) {
            const uint kidx = wmine + c * uint(KK) + uint(ky * KW);
            float wl[KW];
            [[unroll]] for (int kx = 0; kx < KW; kx++) wl[kx] = w[kidx + uint(kx)];
            STEP_ROW(WGT_BCAST)
          }
        }
      } else {
        for (uint c = 0u; c < CG; c++) {
          const uint plane = xc0 + c * HW;
          [[dont_unroll]] for (int ky = 0; ky < KH; ky++) [[dont_unroll]] for (int kx = 0; kx < KW; kx++) {
            const float wv = w[wmine + c * uint(KK) + uint(ky * KW + kx)];
            vec4 b;
            [[unroll]] for (int e = 0; e < 4; e++) b[e] = xat(plane, iy0[e] + ky * DIL, ix0[e] + kx * DIL);
            [[unroll]] for (int i = 0; i < TO; i++) acc[i] = fma(vec4(subgroupBroadcast(wv, i)), b, acc[i]);
          }
        }
      }
      [[unroll]] for (int i = 0; i < TO; i++) store4(o0 + uint(i), n, p, acc[i]);
    } else {
      // channels of several groups (depthwise, or O/GROUPS not a multiple of 8), or no usable
      // subgroup: one channel at a time, every lane loading the weights itself
      for (uint i = 0u; i < TO; i++) {
        const uint o = min(o0 + i, O - 1u);
        const uint xc0 = (n * C + (o / OG) * CG) * HW, wr = o * CG * uint(KK);
        vec4 a = vec4(0.0);
        for (uint c = 0u; c < CG; c++) {
          const uint plane = xc0 + c * HW;
          if (rowvec && WINDOW) {
            [[dont_unroll]] for (int ky = 0; ky < KH; ky++) {
              const uint kidx = wr + c * uint(KK) + uint(ky * KW);
              const int iy = iy0.x + ky * DIL;
              float s[WL];
              [[unroll]] for (int j = 0; j < WL; j++) s[j] = xat(plane, iy, ix0.x + j);
              [[unroll]] for (int kx = 0; kx < KW; kx++) a = fma(vec4(w[kidx + uint(kx)]), WIN_B(kx), a);
            }
          } else {
            [[dont_unroll]] for (int ky = 0; ky < KH; ky++) [[dont_unroll]] for (int kx = 0; kx < KW; kx++) {
              vec4 b;
              [[unroll]] for (int e = 0; e < 4; e++) b[e] = xat(plane, iy0[e] + ky * DIL, ix0[e] + kx * DIL);
              a = fma(vec4(w[wr + c * uint(KK) + uint(ky * KW + kx)]), b, a);
            }
          }
        }
        store4(o0 + i, n, p, a);
      }
    }
  }
}
