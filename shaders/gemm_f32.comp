#version 450
// fp32 GEMM tuned for Mesa lavapipe (llvmpipe, 8-wide SIMD): C = alpha*A*B (+ C if flags&1).
// A: M x K, B: K x N, C: M x N, all row-major float, tightly packed.
//
// TILE_M 16 TILE_N 16   (each workgroup computes a 16 x 16 block of C)
// local_size = (8,1,1); dispatch groups = (ceil(N/16), ceil(M/16), 1)
//
// Design (why): lavapipe runs one workgroup of 8 invocations as one 256-bit SIMD vector and
// turns every divergent buffer load into a scalar per-lane loop with bounds checks, so loads
// are the bottleneck and FMAs per load is what counts. Lane l owns rows m0+l and m0+l+8 and
// all 16 columns (8 vec4 accumulators). Per 8-step k block each lane issues only 4+4 vec4
// loads: its own A rows as vec4 along k, and one vec4-chunked row k0+l of B, which the other
// lanes get via subgroupBroadcast (register shuffles, no memory) -> 256 FMAs per 8 loads.
// Measured alternatives (1024^3, Mesa 25): scalar loads instead of vec4 ~0.6x; lanes along N
// with A broadcast ~0.7x; 24x16 / 16x24 / 32x8 tiles slightly slower; bigger tiles spill.
//
// Subgroups: the fast path needs the whole workgroup in one subgroup with invocation ids 0..7
// (always true on lavapipe, subgroupSize 8). This is checked at run time (gl_NumSubgroups and a
// ballot); if it does not hold (e.g. subgroups of 4), a slower path without subgroup ops is used,
// so results are correct for any subgroup size.
//
// Edges: interior tiles with K%4==0 and N%4==0 use unguarded vec4 loads/stores. Other tiles
// clamp row/column indices into range (the extra rows/columns compute garbage that is never
// stored) and guard only the final stores; no load is ever out of range.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require
#extension GL_EXT_control_flow_attributes : require

#ifndef RM
#define RM 2            // rows per lane (rows lane, lane+8, ...)
#endif
#ifndef TN
#define TN 16           // columns per tile (multiple of 4)
#endif
#define TQ (TN / 4)
#define TILE_M (8 * RM)

layout(local_size_x = 8, local_size_y = 1, local_size_z = 1) in;

// Each binding is declared twice (float and vec4 views of the same buffer); the vec4 views are
// used only where every access is 16-byte aligned and in range.
layout(set = 0, binding = 0, std430) readonly buffer BufA  { float a[];  };
layout(set = 0, binding = 0, std430) readonly buffer BufA4 { vec4  a4[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufB  { float b[];  };
layout(set = 0, binding = 1, std430) readonly buffer BufB4 { vec4  b4[]; };
layout(set = 0, binding = 2, std430) buffer BufC  { float c[];  };
layout(set = 0, binding = 2, std430) buffer BufC4 { vec4  c4[]; };
#extension GL_GOOGLE_include_directive : require
#include "storage.glsl"
F16_IN(0, a) F16_IN(1, b) F16_INOUT(2, c)
#ifdef APS_F16 // and the vec4 views as f16vec4 (8-byte aligned where the vec4s are 16)
layout(set = 0, binding = 0, std430) readonly buffer BufA4h { f16vec4 a4_h[]; };
layout(set = 0, binding = 1, std430) readonly buffer BufB4h { f16vec4 b4_h[]; };
layout(set = 0, binding = 2, std430) buffer BufC4h { f16vec4 c4_h[]; };
vec4 a4_ld(uint i) { if (a_is_f16) return vec4(a4_h[i]); return a4[i]; }
vec4 b4_ld(uint i) { if (b_is_f16) return vec4(b4_h[i]); return b4[i]; }
vec4 c4_ld(uint i) { if (c_is_f16) return vec4(c4_h[i]); return c4[i]; }
void c4_st(uint i, vec4 v) { if (c_is_f16) c4_h[i] = f16vec4(v); else c4[i] = v; }
#endif

// Batches: workgroup z is the batch index; each operand advances by its stride (in floats,
// multiples of 4; 0 broadcasts one matrix to every batch).
layout(push_constant) uniform PC {
  uint M; uint N; uint K; float alpha; uint flags;
  uint stride_a; uint stride_b; uint stride_c;
} pc;

// Fused epilogue (graph/ fusion): bias, activation, residual, ... on each stored value,
// with c = the column (the last dimension). Bindings 3..6.
#define EP_BINDING 3
#include "epilogue.glsl"

vec4 acc[RM][TQ];

// 8 k-steps: A values come from this lane's registers, B row k0+kk from lane kk.
void kblock(vec4 al[RM][2], vec4 bl[TQ]) {
  [[unroll]] for (int kk = 0; kk < 8; kk++) {
    [[unroll]] for (int q = 0; q < TQ; q++) {
      vec4 bv = subgroupBroadcast(bl[q], kk);
      [[unroll]] for (int i = 0; i < RM; i++) acc[i][q] += al[i][kk >> 2][kk & 3] * bv;
    }
  }
}

void main() {
  const uint M = pc.M, N = pc.N, K = pc.K;
  const uint za = gl_WorkGroupID.z * pc.stride_a, zb = gl_WorkGroupID.z * pc.stride_b;
  const uint zc = gl_WorkGroupID.z * pc.stride_c;
  const uint m0 = gl_WorkGroupID.y * TILE_M, n0 = gl_WorkGroupID.x * TN;
  const bool sg = gl_NumSubgroups == 1u && (subgroupBallot(true).x & 0xFFu) == 0xFFu;
  const uint lane = sg ? gl_SubgroupInvocationID : gl_LocalInvocationID.x;
  const bool interior = m0 + TILE_M <= M && n0 + TN <= N;
  const bool vec = interior && (K & 3u) == 0u && (N & 3u) == 0u;

  uint arow[RM];                 // offsets of this lane's A rows, clamped into range
  [[unroll]] for (int i = 0; i < RM; i++) arow[i] = za + min(m0 + lane + 8u * i, M - 1u) * K;
  [[unroll]] for (int i = 0; i < RM; i++) [[unroll]] for (int q = 0; q < TQ; q++) acc[i][q] = vec4(0.0);

  uint k = 0u;
  if (sg) {
    const uint kend = K & ~7u;
    if (vec) {
      for (; k < kend; k += 8u) {
        vec4 al[RM][2]; vec4 bl[TQ];
        [[unroll]] for (int i = 0; i < RM; i++) {
          al[i][0] = LD(a4, (arow[i] + k) >> 2);
          al[i][1] = LD(a4, ((arow[i] + k) >> 2) + 1u);
        }
        const uint bo = (zb + (k + lane) * N + n0) >> 2;
        [[unroll]] for (int q = 0; q < TQ; q++) bl[q] = LD(b4, bo + q);
        kblock(al, bl);
      }
    } else {
      for (; k < kend; k += 8u) {
        vec4 al[RM][2]; vec4 bl[TQ];
        [[unroll]] for (int i = 0; i < RM; i++) [[unroll]] for (int h = 0; h < 2; h++) {
          const uint o = arow[i] + k + 4u * h;
          al[i][h] = vec4(LD(a, o), LD(a, o + 1u), LD(a, o + 2u), LD(a, o + 3u));
        }
        const uint bo = zb + (k + lane) * N;
        [[unroll]] for (int q = 0; q < TQ; q++) {
          const uint n = n0 + 4u * q;
          bl[q] = vec4(LD(b, bo + min(n, N - 1u)), LD(b, bo + min(n + 1u, N - 1u)),
                       LD(b, bo + min(n + 2u, N - 1u)), LD(b, bo + min(n + 3u, N - 1u)));
        }
        kblock(al, bl);
      }
    }
  }
  // Remaining k (K % 8, or all of K when subgroups are unusable): no subgroup operations.
  for (; k < K; k++) {
    const uint bo = zb + k * N;
    [[unroll]] for (int q = 0; q < TQ; q++) {
      const uint n = n0 + 4u * q;
      const vec4 bv = vec4(LD(b, bo + min(n, N - 1u)), LD(b, bo + min(n + 1u, N - 1u)),
                           LD(b, bo + min(n + 2u, N - 1u)), LD(b, bo + min(n + 3u, N - 1u)));
      [[unroll]] for (int i = 0; i < RM; i++) acc[i][q] += LD(a, arow[i] + k) * bv;
    }
  }

  const bool accum = (pc.flags & 1u) != 0u;
  [[unroll]] for (int i = 0; i < RM; i++) {
    const uint m = m0 + lane + 8u * i;
    if (vec) {
      [[unroll]] for (int q = 0; q < TQ; q++) {
        const uint o = (zc + m * N + n0) / 4u + q;
        vec4 v = pc.alpha * acc[i][q];
        if (accum) v += LD(c4, o);
        if (EP_COUNT > 0u)
          [[unroll]] for (int e = 0; e < 4; e++) {
            const uint n = n0 + 4u * q + e;
            v[e] = epilogue(v[e], zc + m * N + n, 0u, n);
          }
        ST(c4, o, v);
      }
    } else if (m < M) {
      [[unroll]] for (int q = 0; q < TQ; q++) [[unroll]] for (int e = 0; e < 4; e++) {
        const uint n = n0 + 4u * q + e;
        if (n < N) {
          const uint o = zc + m * N + n;
          float v = pc.alpha * acc[i][q][e];
          if (accum) v += LD(c, o);
          ST(c, o, epilogue(v, o, 0u, n));
        }
      }
    }
  }
}
