#version 450
// y = concat(a, b) along one axis, in one dispatch: the output seen as [outer, la + lb, inner].
// Fused plans need it only where an input is not a conv's output or the axis is not channels:
// convs store their slices of a channel concatenation themselves (graph/passes/fusion_conv.c).
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer A { float a[]; };
layout(set = 0, binding = 1) readonly buffer B { float b[]; };
layout(set = 0, binding = 2) writeonly buffer Y { float y[]; };
#extension GL_GOOGLE_include_directive : require
#include "storage.glsl"
F16_IN(0, a) F16_IN(1, b) F16_OUT(2, y)
layout(push_constant) uniform PC { uint la; uint lb; uint inner; uint count; } pc;

void main() {
  uint i = gl_GlobalInvocationID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x * 64u;
  if (i >= pc.count) return;
  uint in_ = i % pc.inner, r = i / pc.inner, l = pc.la + pc.lb;
  uint k = r % l, o = r / l;
  ST(y, i, k < pc.la ? LD(a, (o * pc.la + k) * pc.inner + in_) : LD(b, (o * pc.lb + k - pc.la) * pc.inner + in_));
}
