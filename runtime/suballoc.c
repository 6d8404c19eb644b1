#include "suballoc.h"

#include <stdlib.h>
#include <string.h>

int rt_suballoc_init(rt_suballoc *a, uint64_t capacity) {
  memset(a, 0, sizeof *a);
  a->capacity = capacity;
  a->free_cap = 16;
  a->free = malloc(a->free_cap * sizeof *a->free);
  if (!a->free)
    return -1;
  a->free[0] = (rt_range){0, capacity};
  a->free_count = 1;
  return 0;
}

void rt_suballoc_release_all(rt_suballoc *a) {
  free(a->free);
  memset(a, 0, sizeof *a);
}

static int insert_at(rt_suballoc *a, uint32_t i, rt_range r) {
  if (a->free_count == a->free_cap) {
    uint32_t cap = a->free_cap * 2;
    rt_range *grown = realloc(a->free, cap * sizeof *grown);
    if (!grown)
      return -1;
    a->free = grown;
    a->free_cap = cap;
  }
  memmove(a->free + i + 1, a->free + i, (a->free_count - i) * sizeof *a->free);
  a->free[i] = r;
  a->free_count++;
  return 0;
}

static void remove_at(rt_suballoc *a, uint32_t i) {
  memmove(a->free + i, a->free + i + 1, (a->free_count - i - 1) * sizeof *a->free);
  a->free_count--;
}

int rt_suballoc_alloc(rt_suballoc *a, uint64_t size, uint64_t align, uint64_t *offset) {
  if (size == 0 || align == 0 || (align & (align - 1)))
    return -1;
  for (uint32_t i = 0; i < a->free_count; i++) {
    rt_range r = a->free[i];
    uint64_t start = (r.offset + align - 1) & ~(align - 1);
    if (start < r.offset || start - r.offset > r.size || r.size - (start - r.offset) < size)
      continue;
    uint64_t head = start - r.offset, tail = r.size - head - size;
    /* Split into the padding before and the remainder after. */
    if (head && tail) {
      a->free[i].size = head;
      if (insert_at(a, i + 1, (rt_range){start + size, tail}))
        return -1;
    } else if (head) {
      a->free[i].size = head;
    } else if (tail) {
      a->free[i] = (rt_range){start + size, tail};
    } else {
      remove_at(a, i);
    }
    a->used += size;
    *offset = start;
    return 0;
  }
  return -1;
}

void rt_suballoc_free(rt_suballoc *a, uint64_t offset, uint64_t size) {
  uint32_t i = 0;
  while (i < a->free_count && a->free[i].offset < offset)
    i++;
  a->used -= size;
  int merge_prev = i > 0 && a->free[i - 1].offset + a->free[i - 1].size == offset;
  int merge_next = i < a->free_count && offset + size == a->free[i].offset;
  if (merge_prev && merge_next) {
    a->free[i - 1].size += size + a->free[i].size;
    remove_at(a, i);
  } else if (merge_prev) {
    a->free[i - 1].size += size;
  } else if (merge_next) {
    a->free[i].offset = offset;
    a->free[i].size += size;
  } else {
    /* If the free list cannot grow (host out of memory) the range leaks; nothing breaks. */
    (void)insert_at(a, i, (rt_range){offset, size});
  }
}
