#version 450
// Does nothing: measures the fixed cost of a dispatch (aps bench runtime).
layout(local_size_x = 64) in;
layout(set = 0, binding = 0) readonly buffer In { float x[]; };
void main() {}
