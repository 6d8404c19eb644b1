/* The SPIR-V of every shader in shaders/, compiled and validated at build time. */
#ifndef APS_SHADER_TABLE_H
#define APS_SHADER_TABLE_H
#include <stddef.h>
#include <stdint.h>

typedef struct aps_shader_entry {
  const char *name;      /* file name without .comp */
  const uint32_t *words; /* SPIR-V */
  const size_t *size;    /* in bytes */
} aps_shader_entry;

extern const aps_shader_entry aps_shader_table[]; /* sorted by name */
extern const size_t aps_shader_count;

#endif
