#version 450
// out[o, k, r] = x[o, index[k], r] with x viewed as [outer, D, inner]. Indices are floats
// holding integers; out-of-range ones clamp (and NaN reads 0), as the CPU reference does.
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) readonly buffer I { float index[]; };
layout(set = 0, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform PC { uint inner, D, K, count; } pc;

void main() {
  uint i = gl_GlobalInvocationID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x * 64u;
  if (i >= pc.count) return;
  uint r = i % pc.inner, ok = i / pc.inner;
  uint k = ok % pc.K, o = ok / pc.K;
  float f = index[k];
  f = f >= 1.0 ? min(f, float(pc.D - 1u)) : 0.0;
  y[i] = x[(o * pc.D + uint(f)) * pc.inner + r];
}
