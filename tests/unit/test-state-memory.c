/* SPDX-License-Identifier: MIT */
/*
 * The memory reader against scratch and committed trees. Expected ranges are
 * what lsmem 2.38.1 prints for the same trees (checked with
 * `lsmem --sysroot TREE -J -b` when the tests were written).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "state.h"

#define MEM "sys/devices/system/memory/"
#define BS (128ULL << 20)

/* A scratch or committed tree read into an arena; one per test. */
struct mem_read {
	struct vmc_arena a;
	Vmcheck__V1__State st;
	int r;
};

static Vmcheck__V1__Memory *read_mem(struct mem_read *m, const struct vmc_sysroot *root)
{
	struct vmc_state_opts o = { .root = *root };

	m->a = (struct vmc_arena)VMC_ARENA_INIT;
	vmcheck__v1__state__init(&m->st);
	m->r = vmc_state_read_memory(&o, &m->a, &m->st);
	return m->st.memory;
}

static void block(struct fx *f, uint64_t index, const char *state, const char *removable)
{
	char p[128];

	snprintf(p, sizeof(p), MEM "memory%" PRIu64 "/state", index);
	fx_write(f, p, state);
	if (removable) {
		snprintf(p, sizeof(p), MEM "memory%" PRIu64 "/removable", index);
		fx_write(f, p, removable);
	}
}

static void check_range(const Vmcheck__V1__MemoryRange *r, uint64_t first, uint64_t last,
			const char *state, bool removable)
{
	CU_ASSERT_EQUAL(r->first_block, first);
	CU_ASSERT_EQUAL(r->last_block, last);
	CU_ASSERT_EQUAL(r->start, first * BS);
	CU_ASSERT_EQUAL(r->size, (last - first + 1) * BS);
	CU_ASSERT_EQUAL(r->end, (last + 1) * BS - 1);
	CU_ASSERT_STRING_EQUAL(r->state, state);
	CU_ASSERT_EQUAL(r->removable, removable);
}

static void reads_blocks_sorted_by_index(void)
{
	struct mem_read m;
	Vmcheck__V1__Memory *mem;
	struct fx f;

	fx_init(&f);
	fx_write(&f, MEM "block_size_bytes", "8000000\n");
	block(&f, 10, "offline\n", "1\n");
	fx_write(&f, MEM "memory10/valid_zones", "Normal Movable\n");
	block(&f, 2, "online\n", NULL);
	fx_mkdir(&f, MEM "memory2/node1");
	block(&f, 9, "online\n", "1\n");
	fx_write(&f, MEM "memory9/valid_zones", "Movable\n");
	fx_symlink(&f, "../../node/node0", MEM "memory9/node0");
	/* Not blocks: must be ignored. */
	fx_write(&f, MEM "probe", "");
	fx_write(&f, MEM "soft_offline_page", "");
	fx_write(&f, MEM "memory/state", "online\n");
	fx_write(&f, MEM "memory_x/state", "online\n");
	fx_mkdir(&f, MEM "power");

	mem = read_mem(&m, &f.root);
	CU_ASSERT_EQUAL_FATAL(m.r, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(mem);
	CU_ASSERT_EQUAL(mem->block_size, BS);
	CU_ASSERT_EQUAL_FATAL(mem->n_blocks, 3);
	CU_ASSERT_EQUAL(mem->blocks[0]->index, 2);
	CU_ASSERT_EQUAL(mem->blocks[1]->index, 9);
	CU_ASSERT_EQUAL(mem->blocks[2]->index, 10);
	CU_ASSERT_EQUAL(mem->blocks[0]->phys_start, 2 * BS);
	CU_ASSERT_EQUAL(mem->blocks[2]->phys_start, 10 * BS);
	CU_ASSERT_EQUAL(mem->blocks[0]->node, 1);
	CU_ASSERT_EQUAL(mem->blocks[1]->node, 0);
	CU_ASSERT_EQUAL(mem->blocks[2]->node, -1);
	CU_ASSERT_EQUAL(mem->blocks[0]->state, VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE);
	CU_ASSERT_EQUAL(mem->blocks[2]->state, VMCHECK__V1__MEMORY_BLOCK__STATE__OFFLINE);
	/* Absent files: "" and false, not failures. */
	CU_ASSERT_STRING_EQUAL(mem->blocks[0]->valid_zones, "");
	CU_ASSERT_FALSE(mem->blocks[0]->removable);
	CU_ASSERT_STRING_EQUAL(mem->blocks[1]->valid_zones, "Movable");
	CU_ASSERT_STRING_EQUAL(mem->blocks[2]->valid_zones, "Normal Movable");
	CU_ASSERT_TRUE(mem->blocks[2]->removable);
	CU_ASSERT_EQUAL(mem->online_bytes, 2 * BS);
	CU_ASSERT_EQUAL(mem->offline_bytes, BS);
	CU_ASSERT_STRING_EQUAL(mem->auto_online_blocks, "");
	CU_ASSERT_EQUAL(mem->mem_total_kb, 0);
	vmc_arena_free(&m.a);
	fx_cleanup(&f);
}

/* Every reason lsmem starts a new range, and one it does not print. */
static void merges_ranges_like_lsmem(void)
{
	struct mem_read m;
	Vmcheck__V1__Memory *mem;
	struct fx f;

	fx_init(&f);
	fx_write(&f, MEM "block_size_bytes", "8000000");
	block(&f, 0, "online\n", "1\n");
	block(&f, 1, "online\n", "1\n");
	block(&f, 2, "online\n", "0\n");  /* removable changes */
	block(&f, 3, "offline\n", "0\n"); /* state changes */
	block(&f, 4, "offline\n", "0\n");
	block(&f, 6, "offline\n", "0\n");       /* hole at 5 */
	block(&f, 7, "offline\n", "1\n");       /* splits though both print false */
	block(&f, 8, "going-offline\n", "1\n"); /* state changes */

	mem = read_mem(&m, &f.root);
	CU_ASSERT_EQUAL_FATAL(m.r, 0);
	CU_ASSERT_EQUAL_FATAL(mem->n_ranges, 6);
	check_range(mem->ranges[0], 0, 1, "online", true);
	check_range(mem->ranges[1], 2, 2, "online", false);
	check_range(mem->ranges[2], 3, 4, "offline", false);
	check_range(mem->ranges[3], 6, 6, "offline", false);
	check_range(mem->ranges[4], 7, 7, "offline", false);
	check_range(mem->ranges[5], 8, 8, "on->off", false);
	/* lsmem counts going-offline as offline. */
	CU_ASSERT_EQUAL(mem->online_bytes, 3 * BS);
	CU_ASSERT_EQUAL(mem->offline_bytes, 5 * BS);
	CU_ASSERT_EQUAL(mem->blocks[7]->state, VMCHECK__V1__MEMORY_BLOCK__STATE__GOING_OFFLINE);
	vmc_arena_free(&m.a);
	fx_cleanup(&f);
}

/* A 512M q35 guest after `device_add pc-dimm` of 1G, left offline. */
static void hotplugged_dimm_is_an_offline_range_after_a_hole(void)
{
	struct vmc_sysroot root;
	struct mem_read m;
	Vmcheck__V1__Memory *mem;

	fx_open_committed("hotplug-mem", &root);
	mem = read_mem(&m, &root);
	CU_ASSERT_EQUAL_FATAL(m.r, 0);
	CU_ASSERT_EQUAL(mem->block_size, BS);
	CU_ASSERT_EQUAL_FATAL(mem->n_blocks, 12);
	CU_ASSERT_EQUAL(mem->blocks[3]->index, 3);
	CU_ASSERT_EQUAL(mem->blocks[4]->index, 32);
	CU_ASSERT_EQUAL(mem->blocks[4]->phys_start, 4ULL << 30);
	CU_ASSERT_STRING_EQUAL(mem->blocks[0]->valid_zones, "none");
	CU_ASSERT_STRING_EQUAL(mem->blocks[1]->valid_zones, "DMA32");
	for (size_t i = 4; i < 12; i++) {
		CU_ASSERT_EQUAL(mem->blocks[i]->state, VMCHECK__V1__MEMORY_BLOCK__STATE__OFFLINE);
		CU_ASSERT_STRING_EQUAL(mem->blocks[i]->valid_zones, "Normal Movable");
		CU_ASSERT_EQUAL(mem->blocks[i]->node, 0);
		CU_ASSERT_TRUE(mem->blocks[i]->removable);
	}
	CU_ASSERT_EQUAL(mem->online_bytes, 512ULL << 20);
	CU_ASSERT_EQUAL(mem->offline_bytes, 1ULL << 30);
	CU_ASSERT_EQUAL_FATAL(mem->n_ranges, 2);
	check_range(mem->ranges[0], 0, 3, "online", true);
	check_range(mem->ranges[1], 32, 39, "offline", false);
	CU_ASSERT_EQUAL(mem->ranges[1]->start, 0x100000000ULL);
	CU_ASSERT_EQUAL(mem->ranges[1]->end, 0x13fffffffULL);
	CU_ASSERT_STRING_EQUAL(mem->auto_online_blocks, "offline");
	CU_ASSERT_EQUAL(mem->mem_total_kb, 482412);
	vmc_arena_free(&m.a);
	vmc_sysroot_close(&root);
}

/*
 * A DIMM's blocks just announced, before the kernel put them on a node: an
 * offline block without a node link has no zones (Linux 6.1 oopses on
 * reading its valid_zones), one already on node 0 has them.
 */
static void offline_block_without_node_has_no_zones_yet(void)
{
	struct mem_read m;
	Vmcheck__V1__Memory *mem;
	struct fx f;

	fx_init(&f);
	fx_write(&f, MEM "block_size_bytes", "8000000\n");
	block(&f, 0, "online\n", "1\n");
	fx_write(&f, MEM "memory0/valid_zones", "none\n");
	fx_symlink(&f, "../../memory/memory0", "sys/devices/system/node/node0/memory0");
	block(&f, 32, "offline\n", "1\n");
	fx_write(&f, MEM "memory32/valid_zones", "Normal Movable\n");
	fx_symlink(&f, "../../memory/memory32", "sys/devices/system/node/node0/memory32");
	fx_symlink(&f, "../../node/node0", MEM "memory32/node0");
	block(&f, 33, "offline\n", "1\n");
	fx_write(&f, MEM "memory33/valid_zones", "Normal Movable\n"); /* must not be read */
	/* Half linked (the node's link made, the block's not yet): not read either. */
	block(&f, 34, "offline\n", "1\n");
	fx_write(&f, MEM "memory34/valid_zones", "Normal Movable\n");
	fx_symlink(&f, "../../memory/memory34", "sys/devices/system/node/node0/memory34");

	mem = read_mem(&m, &f.root);
	CU_ASSERT_EQUAL_FATAL(m.r, 0);
	CU_ASSERT_EQUAL_FATAL(mem->n_blocks, 4);
	CU_ASSERT_EQUAL(mem->blocks[3]->node, 0);
	CU_ASSERT_STRING_EQUAL(mem->blocks[3]->valid_zones, "");
	CU_ASSERT_STRING_EQUAL(mem->blocks[0]->valid_zones, "none");
	CU_ASSERT_EQUAL(mem->blocks[1]->node, 0);
	CU_ASSERT_STRING_EQUAL(mem->blocks[1]->valid_zones, "Normal Movable");
	CU_ASSERT_EQUAL(mem->blocks[2]->node, -1);
	CU_ASSERT_STRING_EQUAL(mem->blocks[2]->valid_zones, "");
	CU_ASSERT_EQUAL(mem->offline_bytes, 3 * BS);
	vmc_arena_free(&m.a);
	fx_cleanup(&f);
}

/* Hot-removed while we listed: the block is skipped and leaves a hole. */
static void vanished_block_is_skipped(void)
{
	struct mem_read m;
	Vmcheck__V1__Memory *mem;
	struct fx f;

	fx_init(&f);
	fx_write(&f, MEM "block_size_bytes", "8000000\n");
	block(&f, 0, "online\n", "1\n");
	fx_write(&f, MEM "memory1/valid_zones", "Normal\n"); /* no state file */
	block(&f, 2, "online\n", "1\n");

	mem = read_mem(&m, &f.root);
	CU_ASSERT_EQUAL_FATAL(m.r, 0);
	CU_ASSERT_EQUAL_FATAL(mem->n_blocks, 2);
	CU_ASSERT_EQUAL(mem->blocks[0]->index, 0);
	CU_ASSERT_EQUAL(mem->blocks[1]->index, 2);
	CU_ASSERT_EQUAL(mem->online_bytes, 2 * BS);
	CU_ASSERT_EQUAL_FATAL(mem->n_ranges, 2);
	check_range(mem->ranges[0], 0, 0, "online", true);
	check_range(mem->ranges[1], 2, 2, "online", true);
	vmc_arena_free(&m.a);
	fx_cleanup(&f);
}

static void missing_memory_dir_is_enoent(void)
{
	struct mem_read m;
	struct fx f;

	fx_init(&f);
	fx_mkdir(&f, "sys/devices/system/cpu");
	CU_ASSERT_PTR_NULL(read_mem(&m, &f.root));
	CU_ASSERT_EQUAL(m.r, -ENOENT);
	vmc_arena_free(&m.a);
	/* The directory without block_size_bytes: no block support either. */
	block(&f, 0, "online\n", "1\n");
	CU_ASSERT_PTR_NULL(read_mem(&m, &f.root));
	CU_ASSERT_EQUAL(m.r, -ENOENT);
	vmc_arena_free(&m.a);
	fx_cleanup(&f);
}

static void malformed_files_fail_the_section(void)
{
	struct mem_read m;
	struct fx f;

	fx_init(&f);
	block(&f, 0, "online\n", "1\n");
	fx_write(&f, MEM "block_size_bytes", "0x8000000 junk\n");
	CU_ASSERT_PTR_NULL(read_mem(&m, &f.root));
	CU_ASSERT_EQUAL(m.r, -EINVAL);
	vmc_arena_free(&m.a);
	fx_write(&f, MEM "block_size_bytes", "0\n");
	CU_ASSERT_PTR_NULL(read_mem(&m, &f.root));
	CU_ASSERT_EQUAL(m.r, -EINVAL);
	vmc_arena_free(&m.a);
	fx_write(&f, MEM "block_size_bytes", "8000000\n");
	fx_write(&f, "proc/meminfo", "MemTotal: lots\n");
	CU_ASSERT_PTR_NULL(read_mem(&m, &f.root));
	CU_ASSERT_EQUAL(m.r, -EINVAL);
	vmc_arena_free(&m.a);
	/* A block whose end would not be addressable. */
	fx_remove(&f, "proc");
	block(&f, 999999999999, "online\n", "1\n");
	CU_ASSERT_PTR_NULL(read_mem(&m, &f.root));
	CU_ASSERT_EQUAL(m.r, -ERANGE);
	vmc_arena_free(&m.a);
	fx_cleanup(&f);
}

/* No comparison with lsmem here (the integration test does that): invariants only. */
static void live_tree_is_consistent(void)
{
	struct vmc_sysroot root;
	struct mem_read m;
	Vmcheck__V1__Memory *mem;
	size_t b = 0;

	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&root, "/"), 0);
	mem = read_mem(&m, &root);
	vmc_sysroot_close(&root);
	if (m.r == -ENOENT) /* a kernel without memory hotplug */
		goto out;
	CU_ASSERT_EQUAL_FATAL(m.r, 0);
	CU_ASSERT_TRUE(mem->block_size > 0);
	CU_ASSERT_TRUE(mem->n_blocks > 0);
	CU_ASSERT_TRUE(mem->mem_total_kb > 0);
	CU_ASSERT_EQUAL(mem->online_bytes + mem->offline_bytes, mem->n_blocks * mem->block_size);
	for (size_t i = 1; i < mem->n_blocks; i++)
		CU_ASSERT_TRUE(mem->blocks[i - 1]->index < mem->blocks[i]->index);
	/* Ranges cover every block once, in order, each of one state. */
	for (size_t i = 0; i < mem->n_ranges; i++) {
		const Vmcheck__V1__MemoryRange *r = mem->ranges[i];
		size_t first = b;

		CU_ASSERT_EQUAL(r->size, (r->last_block - r->first_block + 1) * mem->block_size);
		CU_ASSERT_EQUAL(r->end, r->start + r->size - 1);
		CU_ASSERT_EQUAL(r->start, r->first_block * mem->block_size);
		for (uint64_t idx = r->first_block; idx <= r->last_block; idx++, b++) {
			CU_ASSERT_FATAL(b < mem->n_blocks);
			CU_ASSERT_EQUAL(mem->blocks[b]->index, idx);
			CU_ASSERT_EQUAL(mem->blocks[b]->state, mem->blocks[first]->state);
		}
	}
	CU_ASSERT_EQUAL(b, mem->n_blocks);
out:
	vmc_arena_free(&m.a);
}

VMC_SUITE(state_memory, NULL, NULL, VMC_TEST(reads_blocks_sorted_by_index),
	  VMC_TEST(merges_ranges_like_lsmem),
	  VMC_TEST(hotplugged_dimm_is_an_offline_range_after_a_hole),
	  VMC_TEST(offline_block_without_node_has_no_zones_yet),
	  VMC_TEST(vanished_block_is_skipped), VMC_TEST(missing_memory_dir_is_enoent),
	  VMC_TEST(malformed_files_fail_the_section), VMC_TEST(live_tree_is_consistent))
