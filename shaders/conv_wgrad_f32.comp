#version 450
// fp32 conv2d weight gradient as a split-K GEMM, tuned for Mesa lavapipe like gemm_f32.comp.
// Per group g (O = GROUPS·Og output channels, C = GROUPS·Ig input channels):
//   part[s, g·Og + o, j] = Σ_{k in split s} gy[n, g·Og + o, p] · X_col[k, j]
//   k = n·P + p (P = OH·OW: the reduction over images and output pixels),
//   j = (c·KH + ky)·KW + kx, X_col[k, j] = x[n, g·Ig + c, oy·S + ky·D − PAD, ox·S + kx·D − PAD]
//   (zero outside x) — an implicit im2col: nothing is materialised.
// Split s covers k in [s·chunk, min((s+1)·chunk, N·P)), chunk a multiple of 8; the partial sums
// [splits, O, Ig·KH·KW] are added by conv_wgrad_sum.comp.
//
// TILE_M 32 TILE_N 16   (each workgroup: 32 output channels x 16 columns j of one split and group)
// local_size = (8,1,1); dispatch groups = (ceil(Ig·KH·KW/16), ceil(Og/32), GROUPS·splits)
//
// Design (why): lavapipe runs a workgroup of 8 invocations as one 8-wide SIMD vector and turns
// every buffer load into a per-lane scalar loop, so loads per FMA decide speed. Lane l owns
// rows (output channels) m0+l, m0+l+8, m0+l+16, m0+l+24 and all 16 columns. Per 8-step k
// block each lane loads its four gy rows along k (4 x 2 vec4 when P % 8 == 0, else scalars)
// and gathers row k0+l of X_col (16 taps, each with its own index and padding test); the
// other lanes get that row by subgroupBroadcast: 512 FMAs per 16 gathers + 8 vec4 loads.
// Measured on lavapipe (Mesa 25, 2 busy cores, batch 64, 3x3, 32-64 channels): 2 rows per lane
// 6 GFLOP/s, 4 rows 11-13, 8 rows 6-12 with a 7 s cold compile (spills). Every shape and the convolution's geometry are push constants, so one
// pipeline serves every layer (no specialisation constants: a cold compile takes well under
// a second), and the kernel does not grow with the layer's output size.
//
// Subgroups: the broadcast path needs the workgroup to be one subgroup with ids 0..7 (always
// so on lavapipe, checked at run time); otherwise every k goes through the plain loop below,
// so results are correct for any subgroup size. Out-of-range rows and columns are clamped
// (computed, never stored); padded taps load index 0 and are zeroed: no load is out of range.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_ballot : require
#extension GL_EXT_control_flow_attributes : require

#define RM 4            // rows per lane (lane, lane + 8, ...)
#define TN 16           // columns per tile
#define TQ (TN / 4)
#define TILE_M (8 * RM)

layout(local_size_x = 8, local_size_y = 1, local_size_z = 1) in;

layout(set = 0, binding = 0, std430) readonly buffer BufX   { float x[];   };
layout(set = 0, binding = 1, std430) readonly buffer BufG   { float gy[];  };
layout(set = 0, binding = 1, std430) readonly buffer BufG4  { vec4  gy4[]; };
layout(set = 0, binding = 2, std430) writeonly buffer BufP  { float part[]; };

layout(push_constant) uniform PC {
  uint N, C, H, W, O, OH, OW, KH, KW, stride, pad, dil, groups, splits, chunk;
} pc;

vec4 acc[RM][TQ];

void kblock(vec4 al[RM][2], vec4 bl[TQ]) {
  [[unroll]] for (int kk = 0; kk < 8; kk++) {
    [[unroll]] for (int q = 0; q < TQ; q++) {
      vec4 bv = subgroupBroadcast(bl[q], kk);
      [[unroll]] for (int i = 0; i < RM; i++) acc[i][q] += al[i][kk >> 2][kk & 3] * bv;
    }
  }
}

void main() {
  const uint P = pc.OH * pc.OW, HW = pc.H * pc.W, K = pc.N * P;
  const uint Og = pc.O / pc.groups, Ig = pc.C / pc.groups, KK = pc.KH * pc.KW, NC = Ig * KK;
  const uint g = gl_WorkGroupID.z / pc.splits, s = gl_WorkGroupID.z % pc.splits;
  const uint m0 = gl_WorkGroupID.y * TILE_M, n0 = gl_WorkGroupID.x * TN;
  const uint kbeg = s * pc.chunk, kend = min(kbeg + pc.chunk, K);
  const bool sg = gl_NumSubgroups == 1u && (subgroupBallot(true).x & 0xFFu) == 0xFFu;
  const uint lane = sg ? gl_SubgroupInvocationID : gl_LocalInvocationID.x;
  const int S = int(pc.stride), PAD = int(pc.pad), H = int(pc.H), W = int(pc.W);

  // This lane's gy rows: offsets of [n = 0, o, p = 0] (clamped into the group).
  uint grow[RM];
  [[unroll]] for (int i = 0; i < RM; i++) grow[i] = (g * Og + min(m0 + lane + 8u * i, Og - 1u)) * P;
  // The tile's columns: tap offsets in x (from the tap's channel plane and (ky·D, kx·D)).
  uint coff[TN];
  int cdy[TN], cdx[TN];
  [[unroll]] for (int j = 0; j < TN; j++) {
    const uint col = min(n0 + uint(j), NC - 1u), c = col / KK, r = col % KK;
    coff[j] = (g * Ig + c) * HW;
    cdy[j] = int((r / pc.KW) * pc.dil);
    cdx[j] = int((r % pc.KW) * pc.dil);
  }
  [[unroll]] for (int i = 0; i < RM; i++) [[unroll]] for (int q = 0; q < TQ; q++) acc[i][q] = vec4(0.0);

  uint k = kbeg;
  if (sg) {
    const uint kend8 = kbeg + ((kend - kbeg) & ~7u);
    const bool vec = (P & 7u) == 0u;   // every 8-block lies in one image, 32-byte aligned
    for (; k < kend8; k += 8u) {
      vec4 al[RM][2];
      if (vec) {
        const uint nb = k / P, pb = k % P;
        [[unroll]] for (int i = 0; i < RM; i++) {
          const uint o4 = (nb * pc.O * P + grow[i] + pb) >> 2;
          al[i][0] = gy4[o4];
          al[i][1] = gy4[o4 + 1u];
        }
      } else {
        [[unroll]] for (int e = 0; e < 8; e++) {
          const uint ke = k + uint(e), base = (ke / P) * pc.O * P + ke % P;
          [[unroll]] for (int i = 0; i < RM; i++) al[i][e >> 2][e & 3] = gy[base + grow[i]];
        }
      }
      // Row k + lane of X_col.
      const uint kl = k + lane, nl = kl / P, pl = kl % P;
      const int iy0 = int(pl / pc.OW) * S - PAD, ix0 = int(pl % pc.OW) * S - PAD;
      const uint xb = nl * pc.C * HW;
      vec4 bl[TQ];
      [[unroll]] for (int j = 0; j < TN; j++) {
        const int iy = iy0 + cdy[j], ix = ix0 + cdx[j];
        const bool inside = uint(iy) < uint(H) && uint(ix) < uint(W);
        const float v = x[inside ? xb + coff[j] + uint(iy * W + ix) : 0u];
        bl[j >> 2][j & 3] = inside ? v : 0.0;
      }
      kblock(al, bl);
    }
  }
  // The rest of the split (fewer than 8, or all of it without usable subgroups).
  for (; k < kend; k++) {
    const uint nk = k / P, pk = k % P;
    const int iy0 = int(pk / pc.OW) * S - PAD, ix0 = int(pk % pc.OW) * S - PAD;
    const uint xb = nk * pc.C * HW, gb = nk * pc.O * P + pk;
    vec4 bv[TQ];
    [[unroll]] for (int j = 0; j < TN; j++) {
      const int iy = iy0 + cdy[j], ix = ix0 + cdx[j];
      const bool inside = uint(iy) < uint(H) && uint(ix) < uint(W);
      const float v = x[inside ? xb + coff[j] + uint(iy * W + ix) : 0u];
      bv[j >> 2][j & 3] = inside ? v : 0.0;
    }
    [[unroll]] for (int i = 0; i < RM; i++) {
      const float a = gy[gb + grow[i]];
      [[unroll]] for (int q = 0; q < TQ; q++) acc[i][q] += a * bv[q];
    }
  }

  [[unroll]] for (int i = 0; i < RM; i++) {
    const uint m = m0 + lane + 8u * i;
    if (m < Og) {
      const uint row = (s * pc.O + g * Og + m) * NC;
      [[unroll]] for (int j = 0; j < TN; j++)
        if (n0 + uint(j) < NC) part[row + n0 + uint(j)] = acc[i][j >> 2][j & 3];
    }
  }
}
