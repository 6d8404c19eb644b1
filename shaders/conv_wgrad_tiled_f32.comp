#version 450
// fp32 conv2d weight gradient shaped for GPUs: the split-K GEMM of conv_wgrad_f32.comp
//   part[s, g·Og + o, j] = Σ_{k in split s} gy[n, g·Og + o, p] · X_col[k, j],  k = n·P + p,
//   j = (c·KH + ky)·KW + kx,
// with its push constants, bindings and dispatch grid z (GROUPS·splits), so the lowering
// (graph/vulkan/lower_conv.c) can run either; conv_wgrad_sum.comp adds the splits as before.
//
// A workgroup of WG x WG invocations (local size from constant_ids 0 and 1: 16 -> 256, or 8
// -> 64 where the device allows fewer) computes a BM x BM tile (BM = 4·WG) of output channels
// by columns j, 4 x 4 per invocation in registers (rows ty + WG·i, columns tx + WG·j). Per step
// of BK = 16 along k it stages gy's rows and the gathered X_col rows in shared memory (8 KiB).
// Each invocation gathers one column j of X_col, whose tap (c, ky, kx) it decodes once; k's
// pixel is decoded per load. Why not on lavapipe: see conv2d_tiled_f32.comp.
// No subgroup operations: correct at any subgroup size. Padded taps and rows or columns past
// the edges load 0; stores are guarded.
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0, local_size_y_id = 1) in;

layout(set = 0, binding = 0, std430) readonly buffer BufX { float x[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufG { float gy[]; };
layout(set = 0, binding = 2, std430) writeonly buffer BufP { float part[]; };

layout(push_constant) uniform PC {
  uint N, C, H, W, O, OH, OW, KH, KW, stride, pad, dil, groups, splits, chunk;
} pc;

const uint BK = 16u;
const uint BM_MAX = 64u; // at WG 16; the arrays are sized for it (8 KiB), whatever WG is
shared float Gs[BK * BM_MAX]; // Gs[kk * BM_MAX + mm] = gy row m0 + mm at k0 + kk
shared float Xs[BK * BM_MAX]; // Xs[kk * BM_MAX + nn] = X_col[k0 + kk, n0 + nn]

void main() {
  const uint WG = gl_WorkGroupSize.x, BM = 4u * WG, T = WG * WG;
  const uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y, tid = ty * WG + tx;
  const uint P = pc.OH * pc.OW, HW = pc.H * pc.W, K = pc.N * P;
  const uint Og = pc.O / pc.groups, Ig = pc.C / pc.groups, KK = pc.KH * pc.KW, NC = Ig * KK;
  const uint g = gl_WorkGroupID.z / pc.splits, s = gl_WorkGroupID.z % pc.splits;
  const uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BM;
  const uint kbeg = s * pc.chunk, kend = min(kbeg + pc.chunk, K);
  const int S = int(pc.stride), PAD = int(pc.pad), H = int(pc.H), W = int(pc.W);

  // This invocation's column of X_col: its tap, decoded once.
  const uint nq = tid % BM, kq = tid / BM, KSTEP = T / BM;
  const uint col = min(n0 + nq, NC - 1u), cc = col / KK, cr = col % KK;
  const bool colin = n0 + nq < NC;
  const uint coff = (g * Ig + cc) * HW;
  const int dy = int((cr / pc.KW) * pc.dil), dx = int((cr % pc.KW) * pc.dil);

  float acc[4][4];
  [[unroll]] for (int i = 0; i < 4; i++) [[unroll]] for (int j = 0; j < 4; j++) acc[i][j] = 0.0;

  for (uint k0 = kbeg; k0 < kend; k0 += BK) {
    for (uint e = tid; e < BM * BK; e += T) { // gy: contiguous along k within an image
      const uint kk = e % BK, mm = e / BK, m = m0 + mm, k = k0 + kk;
      float v = 0.0;
      if (m < Og && k < kend) v = gy[((k / P) * pc.O + g * Og + m) * P + k % P];
      Gs[kk * BM_MAX + mm] = v;
    }
    for (uint kk = kq; kk < BK; kk += KSTEP) {
      const uint k = k0 + kk, nk = k / P, pk = k % P;
      const int iy = int(pk / pc.OW) * S - PAD + dy, ix = int(pk % pc.OW) * S - PAD + dx;
      const bool inside = colin && k < kend && uint(iy) < uint(H) && uint(ix) < uint(W);
      const float v = x[inside ? nk * pc.C * HW + coff + uint(iy * W + ix) : 0u];
      Xs[kk * BM_MAX + nq] = inside ? v : 0.0;
    }
    barrier();
    for (uint kk = 0u; kk < BK; kk++) {
      float av[4], bv[4];
      [[unroll]] for (int i = 0; i < 4; i++) av[i] = Gs[kk * BM_MAX + ty + WG * uint(i)];
      [[unroll]] for (int j = 0; j < 4; j++) bv[j] = Xs[kk * BM_MAX + tx + WG * uint(j)];
      [[unroll]] for (int i = 0; i < 4; i++) [[unroll]] for (int j = 0; j < 4; j++)
        acc[i][j] = fma(av[i], bv[j], acc[i][j]);
    }
    barrier();
  }

  [[unroll]] for (int i = 0; i < 4; i++) {
    const uint m = m0 + ty + WG * uint(i);
    if (m >= Og) continue;
    const uint row = (s * pc.O + g * Og + m) * NC;
    [[unroll]] for (int j = 0; j < 4; j++) {
      const uint jj = n0 + tx + WG * uint(j);
      if (jj < NC) part[row + jj] = acc[i][j];
    }
  }
}
