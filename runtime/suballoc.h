/* A first-fit range allocator over [0, capacity): the bookkeeping of one memory block,
 * free of Vulkan so it can be tested alone. Free ranges are kept sorted by offset and
 * merged with their neighbours when released. */
#ifndef APS_SUBALLOC_H
#define APS_SUBALLOC_H

#include <stdint.h>

typedef struct rt_range {
  uint64_t offset, size;
} rt_range;

typedef struct rt_suballoc {
  uint64_t capacity, used;
  rt_range *free;
  uint32_t free_count, free_cap;
} rt_suballoc;

int rt_suballoc_init(rt_suballoc *a, uint64_t capacity); /* 0 on success */
void rt_suballoc_release_all(rt_suballoc *a);
/* Returns 0 and the offset of a range of `size` bytes aligned to `align` (a power of
 * two), or -1 when no free range fits. */
int rt_suballoc_alloc(rt_suballoc *a, uint64_t size, uint64_t align, uint64_t *offset);
/* Returns a range given by rt_suballoc_alloc (same offset and size). */
void rt_suballoc_free(rt_suballoc *a, uint64_t offset, uint64_t size);

#endif
