#version 450
// dst = src, four floats per invocation (n4 = number of vec4s). lavapipe turns each buffer
// access into a scalar loop per lane, so vec4 access is what keeps this near its ceiling.
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer Src { vec4 src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { vec4 dst[]; };
layout(push_constant) uniform Push { uint n4; } pc;
void main() {
  uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64u;
  if (i < pc.n4)
    dst[i] = src[i];
}
