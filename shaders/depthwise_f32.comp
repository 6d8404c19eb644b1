#version 450
// fp32 depthwise 2-D convolution (groups == input channels; output channel o reads input
// channel o / (O / C)), weights [O, 1, KH, KW]: the blur operators' kernel.
//
// TILE_P 64   (each workgroup: 64 consecutive output pixels of one (sample, output channel))
// local_size = (8,1,1); dispatch groups = (min(ceil(OH*OW/64), 65535), O, N)
//
// Design (why): lavapipe pays per loaded float (each load is a per-lane scalar loop with
// bounds checks), and a depthwise conv has only KH*KW multiply-adds per output, so the loads
// must be shared across outputs. Lane l owns 8 consecutive output pixels of one row; per
// kernel row it loads the input window those 8 pixels need (7*STRIDE + (KW-1)*DIL + 1
// floats) and reads the row's weights from the lanes that loaded them (lane j loads taps j,
// j+8, ... and passes them by subgroupBroadcast): for 9x9 that is 16 + 2 loads per 72 FMAs,
// against 9 + 9 per 9 for a per-pixel loop. The window path needs OW % 8 == 0; otherwise
// each pixel gathers its own taps. Without a usable 8-lane subgroup every lane loads the
// weights itself (correct on any device). Padding is zero or reflect (PAD_MODE 1), every
// index clamped into range before loading; lanes past the end compute duplicates never stored.
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require

#define PX 8            // output pixels per lane
#define TP 64           // output pixels per workgroup

layout(local_size_x = 8, local_size_y = 1, local_size_z = 1) in;

layout(constant_id = 0) const int KH = 3;
layout(constant_id = 1) const int KW = 3;
layout(constant_id = 2) const int STRIDE = 1;
layout(constant_id = 3) const int PAD = 0;
layout(constant_id = 4) const int DIL = 1;
layout(constant_id = 5) const uint PAD_MODE = 0;
layout(constant_id = 6) const uint HAS_BIAS = 0;

layout(set = 0, binding = 0, std430) readonly buffer BufX { float x[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufW { float w[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufB { float bias[]; };
layout(set = 0, binding = 3, std430) writeonly buffer BufY { float y[]; };
#include "storage.glsl"
F16_IN(0, x) F16_IN(1, w) F16_IN(2, bias) F16_OUT(3, y)

#define EP_BINDING 4
#include "epilogue.glsl"

layout(push_constant) uniform PC { uint N, C, H, W, O, OH, OW; } pc;

const int WL = (PX - 1) * STRIDE + (KW - 1) * DIL + 1; // input row window of a lane's pixels
const int WJ = (KW + 7) / 8;                          // weights of a kernel row each lane loads

int reflect_clamp(int i, int n) {
  if (PAD_MODE == 1u) { i = i < 0 ? -i : i; i = i >= n ? 2 * (n - 1) - i : i; }
  return clamp(i, 0, n - 1);
}

float xat(uint plane, int iy, int ix) {
  const int H = int(pc.H), W = int(pc.W);
  const float v = LD(x, plane + uint(reflect_clamp(iy, H) * W + reflect_clamp(ix, W)));
  return (PAD_MODE == 1u || (iy >= 0 && iy < H && ix >= 0 && ix < W)) ? v : 0.0;
}

void main() {
  const uint O = pc.O, OW = pc.OW, P = pc.OH * pc.OW, lane = gl_LocalInvocationID.x;
  const uint n = gl_WorkGroupID.z, o = gl_WorkGroupID.y, c = o / (O / pc.C);
  const uint plane = (n * pc.C + c) * pc.H * pc.W, wrow = o * uint(KH * KW), nc = n * O + o;
  const bool sg = gl_NumSubgroups == 1u && (subgroupBallot(true).x & 0xFFu) == 0xFFu;
  const bool rowvec = (OW % uint(PX)) == 0u;
  const uint ntiles = (P + TP - 1u) / TP;
  const float b = HAS_BIAS != 0u ? LD(bias, o) : 0.0;

  for (uint tile = gl_WorkGroupID.x; tile < ntiles; tile += gl_NumWorkGroups.x) {
    const uint p = tile * TP + uint(PX) * lane;
    float acc[PX];
    [[unroll]] for (int e = 0; e < PX; e++) acc[e] = 0.0;
    if (rowvec) {
      const uint pc0 = min(p, P - 1u);
      const int iy0 = int(pc0 / OW) * STRIDE - PAD, ix0 = int(pc0 % OW) * STRIDE - PAD;
      for (int ky = 0; ky < KH; ky++) {
        float s[WL];
        [[unroll]] for (int j = 0; j < WL; j++) s[j] = xat(plane, iy0 + ky * DIL, ix0 + j);
        const uint wk = wrow + uint(ky * KW);
        float wv[KW];
        if (sg) {
          float wl[WJ];
          [[unroll]] for (int j = 0; j < WJ; j++) wl[j] = LD(w, wk + min(uint(j * 8) + lane, uint(KW - 1)));
          [[unroll]] for (int kx = 0; kx < KW; kx++) wv[kx] = subgroupBroadcast(wl[kx / 8], uint(kx % 8));
        } else {
          [[unroll]] for (int kx = 0; kx < KW; kx++) wv[kx] = LD(w, wk + uint(kx));
        }
        [[unroll]] for (int kx = 0; kx < KW; kx++)
          [[unroll]] for (int e = 0; e < PX; e++) acc[e] = fma(wv[kx], s[kx * DIL + e * STRIDE], acc[e]);
      }
    } else {
      [[unroll]] for (int e = 0; e < PX; e++) {
        const uint pe = min(p + uint(e), P - 1u);
        const int iy0 = int(pe / OW) * STRIDE - PAD, ix0 = int(pe % OW) * STRIDE - PAD;
        float a = 0.0;
        [[dont_unroll]] for (int ky = 0; ky < KH; ky++)
          [[dont_unroll]] for (int kx = 0; kx < KW; kx++)
            a = fma(LD(w, wrow + uint(ky * KW + kx)), xat(plane, iy0 + ky * DIL, ix0 + kx * DIL), a);
        acc[e] = a;
      }
    }
    const uint base = nc * P + p;
    [[dont_unroll]] for (uint e = 0u; e < uint(PX); e++)
      if (p + e < P) ST(y, base + e, epilogue(acc[e] + b, base + e, nc, o));
  }
}
