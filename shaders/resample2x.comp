#version 450
// 2x spatial resampling of NCHW planes: nearest or bilinear upsampling (half-pixel centres,
// edges clamped, as PyTorch with align_corners=False) and 2x2 average pooling. In fused plans a
// conv reading nearest-upsampled values reads them from the small tensor (graph/passes/fusion_conv.c).
layout(local_size_x = 64) in;
layout(constant_id = 0) const uint MODE = 0u; // 0 nearest up, 1 bilinear up, 2 average pool
layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
#extension GL_GOOGLE_include_directive : require
#include "storage.glsl"
F16_IN(0, x) F16_OUT(1, y)
layout(push_constant) uniform PC { uint planes; uint H; uint W; uint count; } pc; // H, W of the input

void main() {
  uint i = gl_GlobalInvocationID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x * 64u;
  if (i >= pc.count) return;
  uint H = pc.H, W = pc.W;
  if (MODE == 2u) {
    uint ow = W / 2u, oh = H / 2u;
    uint xo = i % ow, yo = (i / ow) % oh, p = i / (ow * oh);
    uint b = p * H * W + 2u * yo * W + 2u * xo;
    ST(y, i, 0.25 * (LD(x, b) + LD(x, b + 1u) + LD(x, b + W) + LD(x, b + W + 1u)));
    return;
  }
  uint ow = 2u * W, oh = 2u * H;
  uint xo = i % ow, yo = (i / ow) % oh, p = i / (ow * oh);
  uint b = p * H * W;
  if (MODE == 0u) {
    ST(y, i, LD(x, b + (yo / 2u) * W + xo / 2u));
    return;
  }
  float fy = max((float(yo) + 0.5) * 0.5 - 0.5, 0.0), fx = max((float(xo) + 0.5) * 0.5 - 0.5, 0.0);
  uint y0 = uint(fy), x0 = uint(fx);
  uint y1 = min(y0 + 1u, H - 1u), x1 = min(x0 + 1u, W - 1u);
  float wy = fy - float(y0), wx = fx - float(x0);
  ST(y, i, (1.0 - wy) * ((1.0 - wx) * LD(x, b + y0 * W + x0) + wx * LD(x, b + y0 * W + x1)) +
           wy * ((1.0 - wx) * LD(x, b + y1 * W + x0) + wx * LD(x, b + y1 * W + x1)));
}
