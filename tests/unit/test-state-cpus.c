/* SPDX-License-Identifier: MIT */
/* The CPU reader against scratch and committed trees. */
#include <errno.h>
#include <string.h>

#include "harness.h"
#include "state.h"

#define CPU "sys/devices/system/cpu/"

struct cpu_read {
	struct vmc_arena a;
	Vmcheck__V1__State st;
	int r;
};

static Vmcheck__V1__Cpus *read_cpus(struct cpu_read *c, const struct vmc_sysroot *root)
{
	struct vmc_state_opts o = {.root = *root};

	c->a = (struct vmc_arena)VMC_ARENA_INIT;
	vmcheck__v1__state__init(&c->st);
	c->r = vmc_state_read_cpus(&o, &c->a, &c->st);
	return c->st.cpus;
}

static void lists(struct fx *f, const char *possible, const char *present, const char *online)
{
	fx_write(f, CPU "possible", possible);
	fx_write(f, CPU "present", present);
	fx_write(f, CPU "online", online);
}

static void topology(struct fx *f, unsigned cpu, const char *core, const char *siblings)
{
	char p[128];

	snprintf(p, sizeof(p), CPU "cpu%u/topology/core_id", cpu);
	fx_write(f, p, core);
	snprintf(p, sizeof(p), CPU "cpu%u/topology/physical_package_id", cpu);
	fx_write(f, p, "0\n");
	snprintf(p, sizeof(p), CPU "cpu%u/topology/thread_siblings_list", cpu);
	fx_write(f, p, siblings);
}

/* A q35 guest with -smp 2,maxcpus=4 after two vCPUs were hot-added, not yet onlined. */
static void offline_cpus_have_no_topology(void)
{
	struct vmc_sysroot root;
	struct cpu_read c;
	Vmcheck__V1__Cpus *cpus;

	fx_open_committed("offline-cpus", &root);
	cpus = read_cpus(&c, &root);
	CU_ASSERT_EQUAL_FATAL(c.r, 0);
	CU_ASSERT_STRING_EQUAL(cpus->possible, "0-3");
	CU_ASSERT_STRING_EQUAL(cpus->present, "0-3");
	CU_ASSERT_STRING_EQUAL(cpus->online, "0-1");
	CU_ASSERT_STRING_EQUAL(cpus->offline, "2-3");
	CU_ASSERT_EQUAL_FATAL(cpus->n_cpus, 4);
	for (unsigned i = 0; i < 4; i++) {
		const Vmcheck__V1__Cpu *cpu = cpus->cpus[i];

		CU_ASSERT_EQUAL(cpu->id, i);
		CU_ASSERT_TRUE(cpu->present);
		CU_ASSERT_EQUAL(cpu->node, 0);
		CU_ASSERT_EQUAL(cpu->online, i < 2);
		CU_ASSERT_EQUAL(cpu->core_id, i < 2 ? (int)i : -1);
		CU_ASSERT_EQUAL(cpu->package_id, i < 2 ? 0 : -1);
		CU_ASSERT_EQUAL(cpu->die_id, i < 2 ? 0 : -1);
	}
	/* cpu0 has no online file and is online all the same. */
	CU_ASSERT_TRUE(cpus->cpus[0]->online);
	CU_ASSERT_STRING_EQUAL(cpus->cpus[0]->thread_siblings, "0");
	CU_ASSERT_STRING_EQUAL(cpus->cpus[1]->thread_siblings, "1");
	CU_ASSERT_STRING_EQUAL(cpus->cpus[2]->thread_siblings, "");
	vmc_arena_free(&c.a);
	vmc_sysroot_close(&root);
}

static void cpus_sorted_and_only_present(void)
{
	struct cpu_read c;
	Vmcheck__V1__Cpus *cpus;
	struct fx f;

	fx_init(&f);
	lists(&f, "0-15\n", "0-2,10\n", "0-1,10\n");
	topology(&f, 0, "0\n", "0-1\n");
	topology(&f, 1, "0\n", "0-1\n");
	topology(&f, 10, "5\n", "10\n");
	fx_write(&f, CPU "cpu1/online", "1\n");
	fx_write(&f, CPU "cpu2/online", "0\n");
	fx_write(&f, CPU "cpu10/online", "1\n");
	fx_symlink(&f, "../../node/node1", CPU "cpu10/node1");
	fx_write(&f, CPU "cpu11/online", "0\n"); /* possible, not present */
	fx_mkdir(&f, CPU "cpufreq");
	fx_mkdir(&f, CPU "cpuidle");
	fx_write(&f, CPU "cpu/online", "1\n");

	cpus = read_cpus(&c, &f.root);
	CU_ASSERT_EQUAL_FATAL(c.r, 0);
	/* "offline" missing: no CPU is offline. */
	CU_ASSERT_STRING_EQUAL(cpus->offline, "");
	CU_ASSERT_EQUAL_FATAL(cpus->n_cpus, 4);
	CU_ASSERT_EQUAL(cpus->cpus[0]->id, 0);
	CU_ASSERT_EQUAL(cpus->cpus[1]->id, 1);
	CU_ASSERT_EQUAL(cpus->cpus[2]->id, 2);
	CU_ASSERT_EQUAL(cpus->cpus[3]->id, 10);
	CU_ASSERT_TRUE(cpus->cpus[0]->online);
	CU_ASSERT_FALSE(cpus->cpus[2]->online);
	CU_ASSERT_TRUE(cpus->cpus[3]->online);
	CU_ASSERT_EQUAL(cpus->cpus[3]->core_id, 5);
	CU_ASSERT_STRING_EQUAL(cpus->cpus[0]->thread_siblings, "0-1");
	/* Kernels before 5.2 have no die_id; no nodeN link: -1. */
	CU_ASSERT_EQUAL(cpus->cpus[0]->die_id, -1);
	CU_ASSERT_EQUAL(cpus->cpus[0]->node, -1);
	CU_ASSERT_EQUAL(cpus->cpus[3]->node, 1);
	vmc_arena_free(&c.a);
	fx_cleanup(&f);
}

/* Present in the list but its directory gone: hot-removed while we read. */
static void vanished_cpu_is_skipped(void)
{
	struct cpu_read c;
	Vmcheck__V1__Cpus *cpus;
	struct fx f;

	fx_init(&f);
	lists(&f, "0-2\n", "0-2\n", "0,2\n");
	fx_write(&f, CPU "offline", "1\n");
	topology(&f, 0, "0\n", "0\n");
	topology(&f, 2, "2\n", "2\n");

	cpus = read_cpus(&c, &f.root);
	CU_ASSERT_EQUAL_FATAL(c.r, 0);
	CU_ASSERT_EQUAL_FATAL(cpus->n_cpus, 2);
	CU_ASSERT_EQUAL(cpus->cpus[0]->id, 0);
	CU_ASSERT_EQUAL(cpus->cpus[1]->id, 2);
	CU_ASSERT_EQUAL(cpus->cpus[1]->core_id, 2);
	vmc_arena_free(&c.a);
	fx_cleanup(&f);
}

/* nr_cpus=1 on a maxcpus=4 guest: the kernel prints "offline" as ",1-3". */
static void offline_list_beyond_nr_cpus_is_read(void)
{
	struct cpu_read c;
	Vmcheck__V1__Cpus *cpus;
	struct fx f;

	fx_init(&f);
	lists(&f, "0\n", "0\n", "0\n");
	fx_write(&f, CPU "offline", ",1-3\n");
	topology(&f, 0, "0\n", "0\n");

	cpus = read_cpus(&c, &f.root);
	CU_ASSERT_EQUAL_FATAL(c.r, 0);
	CU_ASSERT_STRING_EQUAL(cpus->offline, "1-3");
	CU_ASSERT_EQUAL(cpus->n_cpus, 1);
	vmc_arena_free(&c.a);
	fx_cleanup(&f);
}

static void missing_or_malformed_fails(void)
{
	struct cpu_read c;
	struct fx f;

	fx_init(&f);
	CU_ASSERT_PTR_NULL(read_cpus(&c, &f.root));
	CU_ASSERT_EQUAL(c.r, -ENOENT);
	vmc_arena_free(&c.a);

	topology(&f, 0, "0\n", "0\n");
	fx_write(&f, CPU "possible", "0\n");
	fx_write(&f, CPU "online", "0\n");
	CU_ASSERT_PTR_NULL(read_cpus(&c, &f.root));
	CU_ASSERT_EQUAL(c.r, -ENOENT); /* no present list */
	vmc_arena_free(&c.a);

	lists(&f, "0\n", "0\n", "0-\n");
	CU_ASSERT_PTR_NULL(read_cpus(&c, &f.root));
	CU_ASSERT_EQUAL(c.r, -EINVAL);
	vmc_arena_free(&c.a);

	lists(&f, "0\n", "0\n", "0\n");
	fx_write(&f, CPU "cpu0/topology/core_id", "4294967296\n");
	CU_ASSERT_PTR_NULL(read_cpus(&c, &f.root));
	CU_ASSERT_EQUAL(c.r, -ERANGE);
	vmc_arena_free(&c.a);
	fx_cleanup(&f);
}

/* Invariants only; the integration test compares with lscpu. */
static void live_tree_is_consistent(void)
{
	struct vmc_sysroot root;
	struct cpu_read c;
	Vmcheck__V1__Cpus *cpus;
	unsigned n_online = 0;

	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&root, "/"), 0);
	cpus = read_cpus(&c, &root);
	vmc_sysroot_close(&root);
	CU_ASSERT_EQUAL_FATAL(c.r, 0);
	CU_ASSERT_TRUE_FATAL(cpus->n_cpus > 0);
	for (size_t i = 0; i < cpus->n_cpus; i++) {
		const Vmcheck__V1__Cpu *cpu = cpus->cpus[i];
		bool in = false;

		if (i > 0)
			CU_ASSERT_TRUE(cpus->cpus[i - 1]->id < cpu->id);
		CU_ASSERT_EQUAL(vmc_cpulist_contains(cpus->present, cpu->id, &in), 0);
		CU_ASSERT_TRUE(in);
		if (!cpu->online)
			continue;
		n_online++;
		/* An online CPU is its own thread sibling. */
		CU_ASSERT_EQUAL(vmc_cpulist_contains(cpu->thread_siblings, cpu->id, &in), 0);
		CU_ASSERT_TRUE(in);
		CU_ASSERT_TRUE(cpu->core_id >= 0);
	}
	/* This very process runs on an online CPU. */
	CU_ASSERT_TRUE(n_online > 0);
	vmc_arena_free(&c.a);
}

VMC_SUITE(state_cpus, NULL, NULL, VMC_TEST(offline_cpus_have_no_topology),
	  VMC_TEST(cpus_sorted_and_only_present), VMC_TEST(vanished_cpu_is_skipped),
	  VMC_TEST(offline_list_beyond_nr_cpus_is_read), VMC_TEST(missing_or_malformed_fails),
	  VMC_TEST(live_tree_is_consistent))
