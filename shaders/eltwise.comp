#version 450
// Elementwise ops over 4-D shapes with numpy broadcasting: unary f(a), binary f(a, b), and
// where(a != 0, b, c), followed by the fused epilogue. Operand strides are 0 along
// broadcast dimensions. One output element per invocation.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x = 64) in;
layout(constant_id = 0) const uint KIND = 0u; // 0 unary, 1 binary, 2 where
layout(constant_id = 1) const uint FN = 0u;   // gr_unary or gr_binary
layout(constant_id = 2) const float PA = 0.0; // unary parameters
layout(constant_id = 3) const float PB = 0.0;

layout(set = 0, binding = 0) readonly buffer A { float a[]; };
layout(set = 0, binding = 1) readonly buffer B { float b[]; };
layout(set = 0, binding = 2) readonly buffer C { float c[]; };
layout(set = 0, binding = 3) writeonly buffer Y { float y[]; };
#include "storage.glsl"
F16_IN(0, a) F16_IN(1, b) F16_IN(2, c) F16_OUT(3, y)
#define EP_BINDING 4
#include "epilogue.glsl"

layout(push_constant) uniform PC {
  uvec4 dims;               // output, 4-D (leading 1s)
  uvec4 sa, sb, sc;         // operand strides in elements
  uint count;
} pc;

uint idx4(uvec4 at, uvec4 stride) { return at.x * stride.x + at.y * stride.y + at.z * stride.z + at.w * stride.w; }

void main() {
  uint i = gl_GlobalInvocationID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x * 64u;
  if (i >= pc.count) return;
  uint w = i % pc.dims.w, r = i / pc.dims.w;
  uint h = r % pc.dims.z; r /= pc.dims.z;
  uint ch = r % pc.dims.y, n = r / pc.dims.y;
  uvec4 at = uvec4(n, ch, h, w);
  float va = LD(a, idx4(at, pc.sa));
  float v;
  if (KIND == 0u) {
    v = aps_unary(FN, va, PA, PB);
  } else if (KIND == 1u) {
    v = aps_binary(FN, va, LD(b, idx4(at, pc.sb)));
  } else {
    v = va != 0.0 ? LD(b, idx4(at, pc.sb)) : LD(c, idx4(at, pc.sc));
  }
  ST(y, i, epilogue(v, i, n * pc.dims.y + ch, ch));
}
