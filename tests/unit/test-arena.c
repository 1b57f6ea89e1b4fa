/* SPDX-License-Identifier: MIT */
/* The snapshot arena: zeroed memory, chunk reuse, adoption. */
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "harness.h"

/* A chunk freed by one arena serves the next, and comes back zeroed. */
static void freed_chunks_are_reused_and_zeroed(void)
{
	struct vmc_arena a = VMC_ARENA_INIT, b = VMC_ARENA_INIT;
	unsigned char *p, *q;
	bool zero = true;

	p = vmc_arena_alloc(&a, 4000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	memset(p, 0xa5, 4000);
	vmc_arena_free(&a);
	CU_ASSERT_PTR_NULL(a.head);
	CU_ASSERT_EQUAL(a.total, 0);
	q = vmc_arena_alloc(&b, 4000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	CU_ASSERT_PTR_EQUAL(q, p);
	for (size_t i = 0; i < 4000; i++)
		zero = zero && q[i] == 0;
	CU_ASSERT_TRUE(zero);
	vmc_arena_free(&b);
}

/* Allocations larger than a chunk, scratch space, and adoption. */
static void large_scratch_and_adopted_memory_live_until_free(void)
{
	struct vmc_arena a = VMC_ARENA_INIT, side = VMC_ARENA_INIT;
	char *big, *s, *t;

	big = vmc_arena_scratch(&a, 200 * 1024);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, 'x', 200 * 1024);
	s = vmc_arena_strdup(&a, "kept");
	t = vmc_arena_printf(&side, "%s-%d", "side", 7);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_TRUE(((uintptr_t)s % sizeof(max_align_t)) == 0);
	vmc_arena_adopt(&a, &side);
	CU_ASSERT_PTR_NULL(side.head);
	CU_ASSERT_EQUAL(side.total, 0);
	CU_ASSERT_TRUE(a.total >= 200 * 1024 + 5 + 7);
	/* Both still readable, and the current chunk keeps filling. */
	CU_ASSERT_STRING_EQUAL(s, "kept");
	CU_ASSERT_STRING_EQUAL(t, "side-7");
	CU_ASSERT_STRING_EQUAL(vmc_arena_strdup(&a, "more"), "more");
	CU_ASSERT_EQUAL(big[200 * 1024 - 1], 'x');
	vmc_arena_free(&a);
}

VMC_SUITE(arena, NULL, NULL, VMC_TEST(freed_chunks_are_reused_and_zeroed),
	  VMC_TEST(large_scratch_and_adopted_memory_live_until_free))
