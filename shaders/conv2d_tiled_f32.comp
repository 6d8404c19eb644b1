#version 450
// fp32 2-D convolution shaped for GPUs: an implicit GEMM per group g,
//   y[n, g·OG + o, p] = Σ_k W[g·OG + o, k] · X_col[k, (n, p)],  k = (c, ky, kx) over CG·KH·KW,
// with conv2d_f32.comp's bindings 0-7 (x, w, bias, y, epilogue operands) and specialization
// constants 8-20 (epilogue), 25 (nearest-upsampled input) and 27-30 (the output's place in a
// concatenation, a second output, here at binding 8), chosen by the lowering
// (graph/vulkan/lower_conv.c). It has no folded GroupNorm and no merged skip conv: nodes with
// those keep conv2d_f32. The geometry is in push constants, not specialization constants, so
// one pipeline serves every layer with the same fusions: a cold compile of this kernel took
// 3-4 s on lavapipe at 8 lanes and 10-15 s at 16 (2 busy cores), and GPU drivers' compiles
// are not free either. The price is a few integer divisions per gathered value, which then
// serves BM FMAs.
//
// A workgroup of WG x WG invocations (local size from constant_ids 0 and 1: 16 -> 256
// invocations, or 8 -> 64 where the device allows fewer) computes BM = 4·WG output channels
// of one group by BM pixels, the pixels counted over the whole batch (q = n·OH·OW + p), so
// that small late layers still fill the device. Each invocation holds 4 x 4 outputs in
// registers (channels ty + WG·i, pixels tx + WG·j: neighbouring invocations store
// neighbouring pixels). Per step of BK = 16 along k the workgroup stages the weights' and the
// input patches' sub-tiles in shared memory (8 KiB), so each value read from memory serves BM
// FMAs. Each invocation gathers the patch values of one pixel column of the tile, whose
// position it decodes once per tile. Why not on lavapipe: there shared memory costs what a
// buffer load costs (docs/LAVAPIPE.md), and conv2d_f32's subgroup broadcasts win.
// No subgroup operations: correct at any subgroup size. Loads outside the tensors read 0 (or
// the reflected value), stores are guarded. Pixel tiles past 65535 workgroups are strided over.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0, local_size_y_id = 1) in;

layout(set = 0, binding = 0, std430) readonly buffer BufX { float x[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufW { float w[]; };
layout(set = 0, binding = 2, std430) readonly buffer BufB { float bias[]; };
layout(set = 0, binding = 3, std430) writeonly buffer BufY { float y[]; };
#include "storage.glsl"
F16_IN(0, x) F16_IN(1, w) F16_IN(2, bias) F16_OUT(3, y)

#define EP_BINDING 4
#include "epilogue.glsl"

#ifdef APS_FEW_BINDINGS
#define FUSED_OUT(b) 3
#else
#define FUSED_OUT(b) b
#endif
layout(constant_id = 25) const uint UPSAMPLE = 0u;
layout(constant_id = 27) const uint Y_CHANNELS = 0u; // 0: the output is [N, O, OH, OW]
layout(constant_id = 28) const uint Y_C0 = 0u;
layout(constant_id = 29) const uint Y2_CHANNELS = 0u; // 0: no second output
layout(constant_id = 30) const uint Y2_C0 = 0u;
layout(set = 0, binding = FUSED_OUT(8), std430) writeonly buffer BufY2 { float y2[]; };
F16_OUT(8, y2)

// pad_mode: 0 zeros, 1 reflect
layout(push_constant) uniform PC {
  uint N, C, H, W, O, OH, OW, KH, KW, stride, pad, dil, groups, pad_mode, has_bias;
} pc;

const uint BK = 16u;
const uint BM_MAX = 64u; // at WG 16; the arrays are sized for it (8 KiB), whatever WG is
shared float Ws[BK * BM_MAX]; // Ws[kk * BM_MAX + mm]: weight of channel o0 + mm, tap k0 + kk
shared float Xs[BK * BM_MAX]; // Xs[kk * BM_MAX + nn]: X_col[k0 + kk, q0 + nn]

int reflect_clamp(int i, int n) {
  if (pc.pad_mode == 1u) { i = i < 0 ? -i : i; i = i >= n ? 2 * (n - 1) - i : i; }
  return clamp(i, 0, n - 1);
}

// x[plane + (iy, ix)] with padding (zero or reflect), as conv2d_f32 reads it.
float xat(uint plane, int iy, int ix) {
  const int H = int(pc.H), W = int(pc.W), ry = reflect_clamp(iy, H), rx = reflect_clamp(ix, W);
  const float v = LD(x, plane + uint(UPSAMPLE != 0u ? ((ry >> 1) * W + rx) >> 1 : ry * W + rx));
  return (pc.pad_mode == 1u || (iy >= 0 && iy < H && ix >= 0 && ix < W)) ? v : 0.0;
}

void main() {
  const uint WG = gl_WorkGroupSize.x, BM = 4u * WG, T = WG * WG;
  const uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y, tid = ty * WG + tx;
  const uint C = pc.C, O = pc.O, OW = pc.OW, P = pc.OH * pc.OW, Q = pc.N * P;
  const uint HW = UPSAMPLE != 0u ? (pc.H >> 1) * (pc.W >> 1) : pc.H * pc.W; // an input plane
  const uint CG = C / pc.groups, OG = O / pc.groups, KW = pc.KW, KK = pc.KH * KW, K = CG * KK;
  const int S = int(pc.stride), D = int(pc.dil);
  const uint g = gl_WorkGroupID.z, o0 = gl_WorkGroupID.y * BM;
  const uint wrow = g * OG * K;                 // the group's first weight
  const uint nq = tid % BM, kq = tid / BM, KSTEP = T / BM; // this invocation's patch column, first row
  const uint ntiles = (Q + BM - 1u) / BM;

  for (uint tile = gl_WorkGroupID.x; tile < ntiles; tile += gl_NumWorkGroups.x) {
    const uint q0 = tile * BM;
    // The pixel whose patch this invocation gathers: decoded once per tile.
    const uint q = min(q0 + nq, Q - 1u), qn = q / P, qp = q % P;
    const bool qin = q0 + nq < Q;
    const int iy0 = int(qp / OW) * S - int(pc.pad), ix0 = int(qp % OW) * S - int(pc.pad);
    const uint xbase = (qn * C + g * CG) * HW;

    float acc[4][4];
    [[unroll]] for (int i = 0; i < 4; i++) [[unroll]] for (int j = 0; j < 4; j++) acc[i][j] = 0.0;

    for (uint k0 = 0u; k0 < K; k0 += BK) {
      for (uint e = tid; e < BM * BK; e += T) { // weights: contiguous along k
        const uint kk = e % BK, mm = e / BK, o = o0 + mm, k = k0 + kk;
        Ws[kk * BM_MAX + mm] = o < OG && k < K ? LD(w, wrow + o * K + k) : 0.0;
      }
      for (uint kk = kq; kk < BK; kk += KSTEP) {
        const uint k = k0 + kk, c = k / KK, r = k % KK;
        const int ky = int(r / KW), kx = int(r % KW);
        Xs[kk * BM_MAX + nq] = qin && k < K ? xat(xbase + c * HW, iy0 + ky * D, ix0 + kx * D) : 0.0;
      }
      barrier();
      for (uint kk = 0u; kk < BK; kk++) {
        float av[4], bv[4];
        [[unroll]] for (int i = 0; i < 4; i++) av[i] = Ws[kk * BM_MAX + ty + WG * uint(i)];
        [[unroll]] for (int j = 0; j < 4; j++) bv[j] = Xs[kk * BM_MAX + tx + WG * uint(j)];
        [[unroll]] for (int i = 0; i < 4; i++) [[unroll]] for (int j = 0; j < 4; j++)
          acc[i][j] = fma(av[i], bv[j], acc[i][j]);
      }
      barrier();
    }

    [[unroll]] for (int j = 0; j < 4; j++) {
      const uint qj = q0 + tx + WG * uint(j);
      if (qj >= Q) continue;
      const uint n = qj / P, p = qj % P;
      [[unroll]] for (int i = 0; i < 4; i++) {
        const uint o = o0 + ty + WG * uint(i);
        if (o >= OG) continue;
        const uint oc = g * OG + o, nc = n * O + oc, base = nc * P + p;
        float v = acc[i][j];
        if (pc.has_bias != 0u) v += LD(bias, oc);
        const float r = epilogue(v, base, nc, oc);
        ST(y, Y_CHANNELS != 0u ? (n * Y_CHANNELS + Y_C0 + oc) * P + p : base, r);
        if (Y2_CHANNELS != 0u) ST(y2, (n * Y2_CHANNELS + Y2_C0 + oc) * P + p, r);
      }
    }
  }
}
