#version 450
// y = a * x + b over n floats. Used by the runtime tests and benchmarks (dependent chains,
// independent dispatches, barriers); the local size is a specialization constant.
layout(local_size_x_id = 0) in;
layout(set = 0, binding = 0) readonly buffer In { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Out { float y[]; };
layout(push_constant) uniform Push { uint n; float a; float b; } pc;
void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i < pc.n)
    y[i] = pc.a * x[i] + pc.b;
}
