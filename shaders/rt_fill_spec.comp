#version 450
// y = VALUE (a specialization constant) * (i + 1): checks that specialization reaches the
// kernel and that pipelines differing only in constants are kept apart.
layout(local_size_x = 64) in;
layout(constant_id = 0) const float VALUE = 1.0;
layout(set = 0, binding = 0) writeonly buffer Out { float y[]; };
layout(push_constant) uniform Push { uint n; } pc;
void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i < pc.n)
    y[i] = VALUE * float(i + 1u);
}
