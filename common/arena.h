/* SPDX-License-Identifier: MIT */
/*
 * A bump allocator for building one State: every string, array and message
 * of a snapshot comes from one arena and is released with it, so a reader
 * that fails half way leaks nothing and needs no unwinding.
 */
#ifndef VMC_ARENA_H
#define VMC_ARENA_H

#include <stddef.h>

#include "macro.h"

struct vmc_arena_chunk;

struct vmc_arena {
	struct vmc_arena_chunk *head;
	size_t total; /* bytes handed out */
};

#define VMC_ARENA_INIT  \
	{               \
		NULL, 0 \
	}

/* Zeroed memory from @a; NULL on ENOMEM. Lives until vmc_arena_free(). */
void *vmc_arena_alloc(struct vmc_arena *a, size_t size);
/*
 * Uninitialized memory from @a, for a reader's scratch buffer: cheaper than
 * malloc() per snapshot (the arena's chunks are reused), gone with the arena.
 */
void *vmc_arena_scratch(struct vmc_arena *a, size_t size);
char *vmc_arena_strdup(struct vmc_arena *a, const char *s);
char *vmc_arena_strndup(struct vmc_arena *a, const char *s, size_t n);
char *vmc_arena_printf(struct vmc_arena *a, const char *fmt, ...) _printf_(2, 3);
void vmc_arena_free(struct vmc_arena *a);
/* Move everything @from holds into @to (both stay valid; @from ends empty). */
void vmc_arena_adopt(struct vmc_arena *to, struct vmc_arena *from);

/*
 * A growable array of pointers in an arena, for repeated protobuf fields:
 * vmc_ptrvec_push() appends; (v.items, v.n) are then assigned to the
 * message's (field, n_field). Growing abandons the old array in the arena.
 */
struct vmc_ptrvec {
	void **items;
	size_t n, cap;
};

int vmc_ptrvec_push(struct vmc_arena *a, struct vmc_ptrvec *v, void *item);

#endif
