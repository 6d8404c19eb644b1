#version 450
// x += b in place: one read-write binding, so every dispatch on the same range depends on
// the one before it.
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) buffer Data { float x[]; };
layout(push_constant) uniform Push { uint n; float b; } pc;
void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i < pc.n)
    x[i] += pc.b;
}
