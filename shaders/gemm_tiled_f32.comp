#version 450
// fp32 GEMM shaped for GPUs: C = alpha*A*B (+ C if flags&1), with the push constants,
// bindings (0 A, 1 B, 2 C, 3..6 epilogue operands) and epilogue of gemm_f32.comp, so the
// lowering can run either (graph/vulkan/lower_ops.c; gemm_f32.h describes both).
//
// A workgroup of WG x WG invocations (local size from constant_ids 0 and 1: 16 -> 256
// invocations, or 8 -> 64 where the device allows fewer) computes a BM x BM tile of C,
// BM = 4*WG, each invocation 4 x 4 outputs in registers (rows ty + WG*i, columns tx + WG*j).
// Per step of BK = 16 along k the workgroup stages A's and B's sub-tiles in shared memory
// (coalesced loads: consecutive invocations read consecutive addresses), so each value read
// from memory serves BM FMAs. Why not on lavapipe: there a shared-memory load costs what a
// buffer load costs (docs/LAVAPIPE.md), and gemm_f32's subgroup broadcasts win.
// No subgroup operations: correct at any subgroup size. Edges: loads outside A or B read 0,
// stores are guarded; every size works (tested at 1, 7, 33, 257).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0, local_size_y_id = 1) in;

layout(set = 0, binding = 0, std430) readonly buffer BufA { float a[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufB { float b[]; };
layout(set = 0, binding = 2, std430) buffer BufC { float c[]; };
#include "storage.glsl"
F16_IN(0, a) F16_IN(1, b) F16_INOUT(2, c)

layout(push_constant) uniform PC {
  uint M; uint N; uint K; float alpha; uint flags;
  uint stride_a; uint stride_b; uint stride_c;
} pc;

#define EP_BINDING 3
#include "epilogue.glsl"

const uint BK = 16u;
const uint BM_MAX = 64u; // at WG 16; the arrays are sized for it (8 KiB), whatever WG is
shared float As[BK * BM_MAX]; // As[kk * BM_MAX + mm]
shared float Bs[BK * BM_MAX]; // Bs[kk * BM_MAX + nn]

void main() {
  const uint WG = gl_WorkGroupSize.x, BM = 4u * WG, T = WG * WG;
  const uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y, tid = ty * WG + tx;
  const uint M = pc.M, N = pc.N, K = pc.K;
  const uint za = gl_WorkGroupID.z * pc.stride_a, zb = gl_WorkGroupID.z * pc.stride_b;
  const uint zc = gl_WorkGroupID.z * pc.stride_c;
  const uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BM;
  float acc[4][4];
  [[unroll]] for (int i = 0; i < 4; i++) [[unroll]] for (int j = 0; j < 4; j++) acc[i][j] = 0.0;

  for (uint k0 = 0u; k0 < K; k0 += BK) {
    for (uint e = tid; e < BM * BK; e += T) {
      const uint kk = e % BK, mm = e / BK; // A is contiguous along k
      const uint m = m0 + mm, k = k0 + kk;
      As[kk * BM_MAX + mm] = m < M && k < K ? LD(a, za + m * K + k) : 0.0;
      const uint nn = e % BM, kb = e / BM; // B is contiguous along n
      const uint n = n0 + nn, kr = k0 + kb;
      Bs[kb * BM_MAX + nn] = n < N && kr < K ? LD(b, zb + kr * N + n) : 0.0;
    }
    barrier();
    [[unroll]] for (uint kk = 0u; kk < BK; kk++) {
      float av[4], bv[4];
      [[unroll]] for (int i = 0; i < 4; i++) av[i] = As[kk * BM_MAX + ty + WG * uint(i)];
      [[unroll]] for (int j = 0; j < 4; j++) bv[j] = Bs[kk * BM_MAX + tx + WG * uint(j)];
      [[unroll]] for (int i = 0; i < 4; i++) [[unroll]] for (int j = 0; j < 4; j++)
        acc[i][j] = fma(av[i], bv[j], acc[i][j]);
    }
    barrier();
  }

  const bool accum = (pc.flags & 1u) != 0u;
  [[unroll]] for (int i = 0; i < 4; i++) {
    const uint m = m0 + ty + WG * uint(i);
    if (m >= M) continue;
    [[unroll]] for (int j = 0; j < 4; j++) {
      const uint n = n0 + tx + WG * uint(j);
      if (n < N) {
        const uint o = zc + m * N + n;
        float v = pc.alpha * acc[i][j];
        if (accum) v += LD(c, o);
        ST(c, o, epilogue(v, o, 0u, n));
      }
    }
  }
}
