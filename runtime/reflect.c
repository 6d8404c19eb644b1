/* Just enough SPIR-V reflection to build layouts from the binary instead of by hand:
 * the storage-buffer bindings of set 0 and whether each is read, written or both; the size
 * of the push-constant block; and the local size, with the spec-constant ids that set it. */
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

enum {
  OP_EXECUTION_MODE = 16, OP_TYPE_INT = 21, OP_TYPE_FLOAT = 22, OP_TYPE_VECTOR = 23,
  OP_TYPE_MATRIX = 24, OP_TYPE_ARRAY = 28, OP_TYPE_STRUCT = 30, OP_TYPE_POINTER = 32,
  OP_CONSTANT = 43, OP_CONSTANT_COMPOSITE = 44, OP_SPEC_CONSTANT = 50,
  OP_SPEC_CONSTANT_COMPOSITE = 51, OP_VARIABLE = 59, OP_DECORATE = 71, OP_MEMBER_DECORATE = 72,
  OP_EXECUTION_MODE_ID = 331,
  DEC_SPEC_ID = 1, DEC_ARRAY_STRIDE = 6, DEC_BUILTIN = 11, DEC_NON_WRITABLE = 24,
  DEC_NON_READABLE = 25, DEC_BINDING = 33, DEC_SET = 34, DEC_OFFSET = 35,
  BUILTIN_WORKGROUP_SIZE = 25, MODE_LOCAL_SIZE = 17, MODE_LOCAL_SIZE_ID = 38,
  SC_UNIFORM = 2, SC_WORKGROUP = 4, SC_PUSH_CONSTANT = 9, SC_STORAGE_BUFFER = 12,
  MAX_MEMBERS = 32,
};

typedef struct id_info {
  uint16_t op;
  uint32_t a, b, c;          /* operands as the opcode defines (see parse) */
  uint32_t binding, set;     /* UINT32_MAX when undecorated */
  uint32_t spec_id;          /* UINT32_MAX when undecorated */
  uint32_t array_stride;
  uint8_t non_writable, non_readable, workgroup_size;
  const uint32_t *operands;  /* struct members / composite constituents */
  uint32_t operand_count;
  uint32_t member_offset[MAX_MEMBERS];
  uint8_t member_non_writable[MAX_MEMBERS], member_non_readable[MAX_MEMBERS];
} id_info;

static uint32_t type_size(const id_info *ids, uint32_t bound, uint32_t t, int depth) {
  if (t >= bound || depth > 8)
    return 0;
  const id_info *i = &ids[t];
  switch (i->op) {
  case OP_TYPE_INT:
  case OP_TYPE_FLOAT: return i->a / 8;
  case OP_TYPE_VECTOR:
  case OP_TYPE_MATRIX: return i->b * type_size(ids, bound, i->a, depth + 1);
  case OP_TYPE_ARRAY: {
    uint32_t len = i->b < bound && (ids[i->b].op == OP_CONSTANT || ids[i->b].op == OP_SPEC_CONSTANT) ? ids[i->b].a : 0;
    uint32_t stride = i->array_stride ? i->array_stride : type_size(ids, bound, i->a, depth + 1);
    return len * stride;
  }
  case OP_TYPE_STRUCT: {
    uint32_t end = 0;
    for (uint32_t m = 0; m < i->operand_count && m < MAX_MEMBERS; m++) {
      uint32_t e = i->member_offset[m] + type_size(ids, bound, i->operands[m], depth + 1);
      if (e > end)
        end = e;
    }
    return end;
  }
  default: return 0;
  }
}

static rt_access struct_access(const id_info *s, int var_nw, int var_nr) {
  int all_nw = 1, all_nr = 1;
  for (uint32_t m = 0; m < s->operand_count && m < MAX_MEMBERS; m++) {
    all_nw &= s->member_non_writable[m];
    all_nr &= s->member_non_readable[m];
  }
  if (var_nw || (all_nw && s->operand_count))
    return RT_ACCESS_READ;
  if (var_nr || (all_nr && s->operand_count))
    return RT_ACCESS_WRITE;
  return RT_ACCESS_READ_WRITE;
}

static aps_status bad(const char *name, const char *what) {
  return aps_fail(APS_ERR_FORMAT, "shader %s: SPIR-V reflection: %s", name, what);
}

aps_status rt_reflect(const uint32_t *w, size_t size, const char *name, rt_reflection *out) {
  return rt_reflect_spec(w, size, name, NULL, 0, out);
}

aps_status rt_reflect_spec(const uint32_t *w, size_t size, const char *name, const uint32_t *spec,
                           uint32_t spec_count, rt_reflection *out) {
  memset(out, 0, sizeof *out);
  for (int i = 0; i < 3; i++)
    out->local_size_spec[i] = UINT32_MAX;
  size_t n = size / 4;
  if (n < 5 || w[0] != 0x07230203u)
    return bad(name, "not a SPIR-V module");
  uint32_t bound = w[3];
  if (bound == 0 || bound > (1u << 22))
    return bad(name, "implausible id bound");
  id_info *ids = calloc(bound, sizeof *ids);
  if (!ids)
    return aps_fail(APS_ERR_OUT_OF_MEMORY, "out of host memory reflecting %s", name);
  for (uint32_t i = 0; i < bound; i++)
    ids[i].binding = ids[i].set = ids[i].spec_id = UINT32_MAX;

  uint32_t local_size[3] = {1, 1, 1};
  uint32_t local_size_ids[3] = {0, 0, 0};
  aps_status status = APS_OK;
  for (size_t p = 5; p < n;) {
    uint32_t count = w[p] >> 16, op = w[p] & 0xffff;
    if (count == 0 || p + count > n) {
      status = bad(name, "truncated instruction");
      break;
    }
    const uint32_t *o = w + p + 1;
    uint32_t no = count - 1;
    switch (op) {
    case OP_TYPE_INT:
    case OP_TYPE_FLOAT:
      if (no >= 2 && o[0] < bound) {
        ids[o[0]].op = (uint16_t)op;
        ids[o[0]].a = o[1]; /* width in bits */
      }
      break;
    case OP_TYPE_VECTOR:
    case OP_TYPE_MATRIX:
    case OP_TYPE_ARRAY:
    case OP_TYPE_POINTER:
      if (no >= 3 && o[0] < bound) {
        ids[o[0]].op = (uint16_t)op;
        ids[o[0]].a = op == OP_TYPE_POINTER ? o[2] : o[1]; /* element or pointee type */
        ids[o[0]].b = op == OP_TYPE_POINTER ? o[1] : o[2]; /* count / length id / class */
      }
      break;
    case OP_TYPE_STRUCT:
      if (no >= 1 && o[0] < bound) {
        ids[o[0]].op = OP_TYPE_STRUCT;
        ids[o[0]].operands = o + 1;
        ids[o[0]].operand_count = no - 1;
      }
      break;
    case OP_CONSTANT:
    case OP_SPEC_CONSTANT:
      if (no >= 3 && o[1] < bound) {
        ids[o[1]].op = (uint16_t)op;
        ids[o[1]].a = o[2];
        /* Decorations precede constants, so the SpecId is known here. */
        if (op == OP_SPEC_CONSTANT && ids[o[1]].spec_id < spec_count)
          ids[o[1]].a = spec[ids[o[1]].spec_id];
      }
      break;
    case OP_CONSTANT_COMPOSITE:
    case OP_SPEC_CONSTANT_COMPOSITE:
      if (no >= 2 && o[1] < bound) {
        ids[o[1]].op = (uint16_t)op;
        ids[o[1]].operands = o + 2;
        ids[o[1]].operand_count = no - 2;
      }
      break;
    case OP_VARIABLE:
      if (no >= 3 && o[1] < bound) {
        ids[o[1]].op = OP_VARIABLE;
        ids[o[1]].a = o[0]; /* pointer type */
        ids[o[1]].c = o[2]; /* storage class */
      }
      break;
    case OP_DECORATE:
      if (no >= 2 && o[0] < bound) {
        id_info *t = &ids[o[0]];
        uint32_t lit = no >= 3 ? o[2] : 0;
        switch (o[1]) {
        case DEC_BINDING: t->binding = lit; break;
        case DEC_SET: t->set = lit; break;
        case DEC_SPEC_ID: t->spec_id = lit; break;
        case DEC_ARRAY_STRIDE: t->array_stride = lit; break;
        case DEC_NON_WRITABLE: t->non_writable = 1; break;
        case DEC_NON_READABLE: t->non_readable = 1; break;
        case DEC_BUILTIN: t->workgroup_size |= lit == BUILTIN_WORKGROUP_SIZE; break;
        }
      }
      break;
    case OP_MEMBER_DECORATE:
      if (no >= 3 && o[0] < bound && o[1] < MAX_MEMBERS) {
        id_info *t = &ids[o[0]];
        if (o[2] == DEC_OFFSET && no >= 4)
          t->member_offset[o[1]] = o[3];
        else if (o[2] == DEC_NON_WRITABLE)
          t->member_non_writable[o[1]] = 1;
        else if (o[2] == DEC_NON_READABLE)
          t->member_non_readable[o[1]] = 1;
      }
      break;
    case OP_EXECUTION_MODE:
      if (no >= 5 && o[1] == MODE_LOCAL_SIZE)
        memcpy(local_size, o + 2, sizeof local_size);
      break;
    case OP_EXECUTION_MODE_ID:
      if (no >= 5 && o[1] == MODE_LOCAL_SIZE_ID)
        memcpy(local_size_ids, o + 2, sizeof local_size_ids);
      break;
    }
    p += count;
  }

  rt_kernel_info *info = &out->info;
  for (uint32_t id = 0; id < bound && status == APS_OK; id++) {
    const id_info *v = &ids[id];
    if (v->op != OP_VARIABLE || v->a >= bound || ids[v->a].op != OP_TYPE_POINTER)
      continue;
    uint32_t pointee = ids[v->a].a;
    if (pointee >= bound)
      continue;
    if (v->c == SC_PUSH_CONSTANT) {
      info->push_size = type_size(ids, bound, pointee, 0);
    } else if (v->c == SC_WORKGROUP) {
      info->shared_bytes += type_size(ids, bound, pointee, 0);
    } else if (v->c == SC_STORAGE_BUFFER || v->c == SC_UNIFORM) {
      if (v->set != 0 && v->set != UINT32_MAX)
        status = bad(name, "only descriptor set 0 is supported");
      else if (v->binding >= RT_MAX_BINDINGS)
        status = bad(name, "binding number beyond RT_MAX_BINDINGS");
      else if (v->c == SC_UNIFORM && ids[pointee].op == OP_TYPE_STRUCT && v->binding != UINT32_MAX)
        status = bad(name, "uniform buffers are not used by aps kernels; use a storage buffer");
      else {
        info->access[v->binding] = struct_access(&ids[pointee], v->non_writable, v->non_readable);
        if (v->binding + 1 > info->binding_count)
          info->binding_count = v->binding + 1;
      }
    }
  }
  for (uint32_t b = 0; b < info->binding_count && status == APS_OK; b++)
    if (!info->access[b])
      status = bad(name, "bindings must be numbered 0..n-1 without gaps");

  /* Local size: the WorkgroupSize builtin constant wins, then LocalSizeId, then LocalSize. */
  memcpy(info->local_size, local_size, sizeof local_size);
  for (uint32_t id = 0; id < bound; id++) {
    const id_info *c = &ids[id];
    const uint32_t *parts = NULL;
    if (c->workgroup_size && c->operand_count == 3)
      parts = c->operands;
    else if (local_size_ids[0] && id == 0)
      parts = local_size_ids;
    if (!parts)
      continue;
    for (int d = 0; d < 3; d++)
      if (parts[d] < bound) {
        info->local_size[d] = ids[parts[d]].a;
        out->local_size_spec[d] = ids[parts[d]].op == OP_SPEC_CONSTANT ? ids[parts[d]].spec_id : UINT32_MAX;
      }
  }
  free(ids);
  return status;
}
