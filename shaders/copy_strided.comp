#version 450
// y[dst_offset + i] = x[src_offset + Σ coord(i)·stride] over a 4-D index space: permutes,
// slices, flips (negative strides, as uints that wrap) and each half of a concat (writing
// into a strided window of its output).
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer X { float x[]; };
layout(set = 0, binding = 1) buffer Y { float y[]; };
#extension GL_GOOGLE_include_directive : require
#include "storage.glsl"
F16_IN(0, x) F16_OUT(1, y)
layout(push_constant) uniform PC {
  uvec4 dims;      // the index space
  uvec4 src;       // source strides
  uvec4 dst;       // destination strides
  uint src_offset, dst_offset, count;
} pc;

uint idx4(uvec4 at, uvec4 stride) { return at.x * stride.x + at.y * stride.y + at.z * stride.z + at.w * stride.w; }

void main() {
  uint i = gl_GlobalInvocationID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x * 64u;
  if (i >= pc.count) return;
  uint r = i;
  uvec4 at;
  at.w = r % pc.dims.w; r /= pc.dims.w;
  at.z = r % pc.dims.z; r /= pc.dims.z;
  at.y = r % pc.dims.y; at.x = r / pc.dims.y;
  ST(y, pc.dst_offset + idx4(at, pc.dst), LD(x, pc.src_offset + idx4(at, pc.src)));
}
