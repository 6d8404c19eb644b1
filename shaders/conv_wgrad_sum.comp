#version 450
// The second step of the conv2d weight gradient (conv_wgrad_f32.comp): dW[i] = Σ_s part[s, i]
// over the splits of the reduction, in split order. Each invocation sums 4 consecutive
// elements (vec4 loads when count % 4 == 0).
// local_size = (64,1,1); dispatch groups = ceil(ceil(count/4)/64), spread over x and y.
layout(local_size_x = 64, local_size_y = 1, local_size_z = 1) in;

layout(set = 0, binding = 0, std430) readonly buffer BufP  { float part[];  };
layout(set = 0, binding = 0, std430) readonly buffer BufP4 { vec4  part4[]; };
layout(set = 0, binding = 1, std430) writeonly buffer BufD  { float dw[];  };
layout(set = 0, binding = 1, std430) writeonly buffer BufD4 { vec4  dw4[]; };

layout(push_constant) uniform PC { uint count, splits; } pc;

void main() {
  const uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * 64u + gl_LocalInvocationID.x;
  const uint e0 = 4u * i;
  if (e0 >= pc.count) return;
  if ((pc.count & 3u) == 0u) {
    const uint q = pc.count >> 2;
    vec4 s = vec4(0.0);
    for (uint k = 0u; k < pc.splits; k++) s += part4[k * q + i];
    dw4[i] = s;
  } else {
    for (uint e = e0; e < min(e0 + 4u, pc.count); e++) {
      float s = 0.0;
      for (uint k = 0u; k < pc.splits; k++) s += part[k * pc.count + e];
      dw[e] = s;
    }
  }
}
