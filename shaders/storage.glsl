// Tensor storage: fp32, or IEEE half per binding in a shader's fp16-storage variant.
//
// A shader that supports fp16 storage includes this file (cmake/shaders.cmake then also builds
// it with -DAPS_F16 as <name>_f16), keeps its fp32 declaration of each tensor binding, adds
// F16_IN / F16_OUT / F16_INOUT(binding, name) after it, and reads and writes the binding only
// through LD(name, i) and ST(name, i, v). Without APS_F16 these are the plain fp32 accesses
// (the SPIR-V is what it was before fp16 existed). With it, each such binding also gets a
// float16_t view at the same set and binding, and the specialization constant F16_MASK
// (constant_id 31 = RT_SPEC_F16_MASK, from rt_kernel_desc.f16_mask: bit b = binding b holds
// halves) picks the view per binding when the pipeline is created: one variant serves every
// mix of fp32 and fp16 tensors, and the driver folds the untaken branch away.
// Values become fp32 on load and half on store (the device rounds to nearest even, or toward
// zero): the arithmetic stays fp32. Only GL_EXT_shader_16bit_storage is needed (the
// storageBuffer16BitAccess feature), not fp16 arithmetic.
#ifndef APS_STORAGE_GLSL
#define APS_STORAGE_GLSL
#ifdef APS_F16
#extension GL_EXT_shader_16bit_storage : require
layout(constant_id = 31) const uint F16_MASK = 0u;
#define F16_VIEW_(b, q, name)                                                               \
  layout(set = 0, binding = b, std430) q buffer name##_f16_view { float16_t name##_h[]; }; \
  const bool name##_is_f16 = (F16_MASK & (1u << (b))) != 0u;
#define F16_LOAD_(name) \
  float name##_ld(uint i) { if (name##_is_f16) return float(name##_h[i]); return name[i]; }
#define F16_STORE_(name) \
  void name##_st(uint i, float v) { if (name##_is_f16) name##_h[i] = float16_t(v); else name[i] = v; }
#define F16_IN(b, name) F16_VIEW_(b, readonly, name) F16_LOAD_(name)
#define F16_OUT(b, name) F16_VIEW_(b, writeonly, name) F16_STORE_(name)
#define F16_INOUT(b, name) F16_VIEW_(b, , name) F16_LOAD_(name) F16_STORE_(name)
#define LD(name, i) name##_ld(i)
#define ST(name, i, v) name##_st(i, v)
#else
#define F16_IN(b, name)
#define F16_OUT(b, name)
#define F16_INOUT(b, name)
#define LD(name, i) name[i]
#define ST(name, i, v) name[i] = (v)
#endif
#endif
