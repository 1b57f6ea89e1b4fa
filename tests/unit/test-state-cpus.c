/* SPDX-License-Identifier: MIT */
/* The CPU reader against scratch and committed trees. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "parse.h"
#include "state.h"

#define CPU "sys/devices/system/cpu/"

struct cpu_read {
	struct vmc_arena a;
	Vmcheck__V1__State st;
	int r;
};

static Vmcheck__V1__Cpus *read_cpus_smt(struct cpu_read *c, const struct vmc_sysroot *root,
					int smt_shift)
{
	struct vmc_state_opts o = { .root = *root, .smt_shift = smt_shift };

	c->a = (struct vmc_arena)VMC_ARENA_INIT;
	vmcheck__v1__state__init(&c->st);
	c->r = vmc_state_read_cpus(&o, &c->a, &c->st);
	return c->st.cpus;
}

/* The SMT width unknown, as an agent without CPUID or cpuinfo would have it. */
static Vmcheck__V1__Cpus *read_cpus(struct cpu_read *c, const struct vmc_sysroot *root)
{
	return read_cpus_smt(c, root, -1);
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

/*
 * A q35 guest (-cpu qemu64) with -smp 2,maxcpus=4 after two vCPUs were
 * hot-added, not yet onlined.
 */
static void offline_cpus_have_no_topology(void)
{
	struct vmc_sysroot root;
	struct cpu_read c;
	Vmcheck__V1__Cpus *cpus;

	fx_open_committed("offline-cpus", &root);
	/* Its cpuinfo (the guest's own) lists the online two: one thread per core. */
	CU_ASSERT_EQUAL(vmc_state_smt_shift(&root), 0);
	cpus = read_cpus_smt(&c, &root, vmc_state_smt_shift(&root));
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
		/* Offline: not in cpuinfo, no APIC id. */
		CU_ASSERT_EQUAL(cpu->apic_id, i < 2 ? (int)i : -1);
		CU_ASSERT_EQUAL(cpu->thread_id, i < 2 ? 0 : -1);
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

/*
 * One cpuinfo processor block as x86 prints it, with a flags line longer
 * than any line the reader keeps.
 */
static void cpuinfo_block(char **out, size_t *len, unsigned cpu, unsigned apic,
			  const char *siblings, const char *cores)
{
	FILE *fp = open_memstream(out, len);

	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	fprintf(fp, "processor\t: %u\nvendor_id\t: GenuineIntel\nphysical id\t: 0\n", cpu);
	fprintf(fp, "siblings\t: %s\ncore id\t\t: %u\ncpu cores\t: %s\n", siblings, apic >> 1,
		cores);
	fprintf(fp, "apicid\t\t: %u\ninitial apicid\t: %u\nflags\t\t:", apic, apic);
	for (int i = 0; i < 300; i++)
		fprintf(fp, " flag%d", i);
	fprintf(fp, "\nbogomips\t: 5192.28\n\n");
	fclose(fp);
}

/*
 * cpuinfo of processors @cpus[i] with APIC ids @apics[i]. With @split, a
 * line of padding first puts the reader's first read boundary (it reads
 * VMC_SYSROOT_READ_MAX bytes at a time) inside an "apicid" line.
 */
static void write_cpuinfo_split(struct fx *f, const unsigned *cpus, const unsigned *apics, size_t n,
				const char *siblings, const char *cores, bool split)
{
	char *all = NULL, *cut = NULL;
	size_t all_len = 0;
	FILE *fp = open_memstream(&all, &all_len);

	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	for (size_t i = 0; i < n; i++) {
		char *b;
		size_t len;

		cpuinfo_block(&b, &len, cpus[i], apics[i], siblings, cores);
		fwrite(b, 1, len, fp);
		free(b);
	}
	fclose(fp);
	if (split) {
		char *joined;
		size_t pad;

		/* The last "apicid" line starting at least 16 bytes before the boundary. */
		for (char *p = all;
		     (p = strstr(p, "\napicid")) && p + 1 + 16 <= all + VMC_SYSROOT_READ_MAX; p++)
			cut = p + 1;
		CU_ASSERT_PTR_NOT_NULL_FATAL(cut);
		/* A line of padding that moves it so the boundary cuts it "api|cid". */
		pad = (size_t)(all + VMC_SYSROOT_READ_MAX - 3 - cut);
		joined = malloc(pad + all_len + 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(joined);
		memset(joined, 'z', pad - 1);
		joined[pad - 1] = '\n';
		memcpy(joined + pad, all, all_len + 1);
		CU_ASSERT_FATAL(!strncmp(joined + VMC_SYSROOT_READ_MAX - 3, "apicid", 6));
		free(all);
		all = joined;
	}
	fx_write(f, "proc/cpuinfo", all);
	free(all);
}

static void write_cpuinfo(struct fx *f, const unsigned *cpus, const unsigned *apics, size_t n,
			  const char *siblings, const char *cores)
{
	write_cpuinfo_split(f, cpus, apics, n, siblings, cores, false);
}

/*
 * Two cores of two threads, Intel-style numbering: processor 1 is the
 * second core (APIC id 2), processor 2 the first core's second thread
 * (APIC id 1). cpu3 is offline and so not in cpuinfo at all.
 */
static void apic_and_thread_ids_from_cpuinfo(void)
{
	static const unsigned cpus[] = { 0, 1, 2 }, apics[] = { 0, 2, 1 };
	struct cpu_read c;
	Vmcheck__V1__Cpus *cc;
	struct fx f;

	fx_init(&f);
	lists(&f, "0-3\n", "0-3\n", "0-2\n");
	for (unsigned i = 0; i < 4; i++)
		topology(&f, i, "0\n", "0\n");
	write_cpuinfo(&f, cpus, apics, 3, "4", "2");

	cc = read_cpus_smt(&c, &f.root, 1);
	CU_ASSERT_EQUAL_FATAL(c.r, 0);
	CU_ASSERT_EQUAL_FATAL(cc->n_cpus, 4);
	CU_ASSERT_EQUAL(cc->cpus[0]->apic_id, 0);
	CU_ASSERT_EQUAL(cc->cpus[0]->thread_id, 0);
	CU_ASSERT_EQUAL(cc->cpus[1]->apic_id, 2);
	CU_ASSERT_EQUAL(cc->cpus[1]->thread_id, 0);
	CU_ASSERT_EQUAL(cc->cpus[2]->apic_id, 1);
	CU_ASSERT_EQUAL(cc->cpus[2]->thread_id, 1);
	CU_ASSERT_FALSE(cc->cpus[3]->online);
	CU_ASSERT_EQUAL(cc->cpus[3]->apic_id, -1);
	CU_ASSERT_EQUAL(cc->cpus[3]->thread_id, -1);
	vmc_arena_free(&c.a);

	/* The width unknown: APIC ids still, no thread ids. */
	cc = read_cpus_smt(&c, &f.root, -1);
	CU_ASSERT_EQUAL_FATAL(c.r, 0);
	CU_ASSERT_EQUAL(cc->cpus[1]->apic_id, 2);
	CU_ASSERT_EQUAL(cc->cpus[1]->thread_id, -1);
	CU_ASSERT_EQUAL(cc->cpus[2]->thread_id, -1);
	vmc_arena_free(&c.a);

	/* Online in sysfs, not yet in cpuinfo (onlined between the reads): unknown. */
	lists(&f, "0-3\n", "0-3\n", "0-3\n");
	cc = read_cpus_smt(&c, &f.root, 1);
	CU_ASSERT_EQUAL_FATAL(c.r, 0);
	CU_ASSERT_TRUE(cc->cpus[3]->online);
	CU_ASSERT_EQUAL(cc->cpus[3]->apic_id, -1);
	CU_ASSERT_EQUAL(cc->cpus[3]->thread_id, -1);
	vmc_arena_free(&c.a);
	fx_cleanup(&f);
}

/* cpuinfo is read in pieces: a file far over one read's worth, ids at the end. */
static void a_long_cpuinfo_is_read_through(void)
{
	enum {
		N = 128
	};
	unsigned cpus[N], apics[N];
	struct cpu_read c;
	Vmcheck__V1__Cpus *cc;
	struct fx f;

	for (unsigned i = 0; i < N; i++) {
		cpus[i] = i;
		apics[i] = 2 * i + 16; /* APIC ids need not start at 0 or be dense */
	}
	fx_init(&f);
	lists(&f, "0-127\n", "0-127\n", "0-127\n");
	for (unsigned i = 0; i < N; i++)
		topology(&f, i, "0\n", "0\n");
	write_cpuinfo_split(&f, cpus, apics, N, "128", "64", true);
	cc = read_cpus_smt(&c, &f.root, 1);
	CU_ASSERT_EQUAL_FATAL(c.r, 0);
	CU_ASSERT_EQUAL_FATAL(cc->n_cpus, N);
	for (unsigned i = 0; i < N; i++) {
		CU_ASSERT_EQUAL(cc->cpus[i]->apic_id, 2 * i + 16);
		CU_ASSERT_EQUAL(cc->cpus[i]->thread_id, 0);
	}
	vmc_arena_free(&c.a);
	fx_cleanup(&f);
}

static void malformed_cpuinfo_fails_the_section(void)
{
	struct cpu_read c;
	struct fx f;

	fx_init(&f);
	lists(&f, "0\n", "0\n", "0\n");
	topology(&f, 0, "0\n", "0\n");
	fx_write(&f, "proc/cpuinfo", "processor\t: 0\napicid\t\t: 0x10\n");
	CU_ASSERT_PTR_NULL(read_cpus_smt(&c, &f.root, 0));
	CU_ASSERT_EQUAL(c.r, -EINVAL);
	vmc_arena_free(&c.a);
	/* An APIC id before any processor line: not the file we know. */
	fx_write(&f, "proc/cpuinfo", "apicid\t\t: 3\nprocessor\t: 0\n\n");
	CU_ASSERT_PTR_NULL(read_cpus_smt(&c, &f.root, 0));
	CU_ASSERT_EQUAL(c.r, -EINVAL);
	vmc_arena_free(&c.a);
	/* No apicid lines at all (not x86): -1, no failure. */
	fx_write(&f, "proc/cpuinfo", "processor\t: 0\nBogoMIPS\t: 50.00\n\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(read_cpus_smt(&c, &f.root, 0));
	CU_ASSERT_EQUAL(c.st.cpus->cpus[0]->apic_id, -1);
	CU_ASSERT_EQUAL(c.st.cpus->cpus[0]->thread_id, -1);
	vmc_arena_free(&c.a);
	fx_cleanup(&f);
}

/* Without CPUID (a fixture is never live): siblings / cpu cores of cpuinfo. */
static void smt_shift_from_cpuinfo(void)
{
	static const struct {
		const char *siblings, *cores;
		int shift;
	} cases[] = {
		{ "2", "2", 0 }, { "4", "2", 1 },  { "6", "2", 2 },  { "16", "4", 2 },
		{ "3", "2", 1 }, { "2", "0", -1 }, { "x", "2", -1 },
	};
	static const unsigned cpus[] = { 0 }, apics[] = { 0 };
	struct fx f;

	fx_init(&f);
	CU_ASSERT_EQUAL(vmc_state_smt_shift(&f.root), -1); /* no cpuinfo */
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		write_cpuinfo(&f, cpus, apics, 1, cases[i].siblings, cases[i].cores);
		CU_ASSERT_EQUAL(vmc_state_smt_shift(&f.root), cases[i].shift);
	}
	/* Not x86: no such lines. */
	fx_write(&f, "proc/cpuinfo", "processor\t: 0\nBogoMIPS\t: 50.00\n\n");
	CU_ASSERT_EQUAL(vmc_state_smt_shift(&f.root), -1);
	fx_cleanup(&f);
}

/* This machine's capture: two cores of one thread each, APIC ids 0 and 1. */
static void captured_host_apic_ids(void)
{
	struct vmc_sysroot root;
	struct cpu_read c;
	Vmcheck__V1__Cpus *cc;
	int shift;

	fx_open_committed("debian12-host", &root);
	shift = vmc_state_smt_shift(&root);
	CU_ASSERT_EQUAL(shift, 0);
	cc = read_cpus_smt(&c, &root, shift);
	CU_ASSERT_EQUAL_FATAL(c.r, 0);
	CU_ASSERT_EQUAL_FATAL(cc->n_cpus, 2);
	for (unsigned i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL(cc->cpus[i]->apic_id, i);
		CU_ASSERT_EQUAL(cc->cpus[i]->thread_id, 0);
	}
	vmc_arena_free(&c.a);
	vmc_sysroot_close(&root);
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
		CU_ASSERT_EQUAL(vmc_parse_cpulist_contains(cpus->present, cpu->id, &in), 0);
		CU_ASSERT_TRUE(in);
		if (!cpu->online)
			continue;
		n_online++;
		/* An online CPU is its own thread sibling. */
		CU_ASSERT_EQUAL(vmc_parse_cpulist_contains(cpu->thread_siblings, cpu->id, &in), 0);
		CU_ASSERT_TRUE(in);
		CU_ASSERT_TRUE(cpu->core_id >= 0);
	}
	/* This very process runs on an online CPU. */
	CU_ASSERT_TRUE(n_online > 0);
	vmc_arena_free(&c.a);
}

#if defined(__x86_64__) || defined(__i386__)
/*
 * On this machine CPUID answers: the width it reports is the one cpuinfo's
 * counts imply while every CPU is online, and online CPUs have distinct
 * APIC ids whose low bits are their thread ids.
 */
static void live_smt_shift_and_apic_ids(void)
{
	struct vmc_sysroot root, not_live;
	struct cpu_read c;
	Vmcheck__V1__Cpus *cc;
	int shift;

	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&root, "/"), 0);
	not_live = root;
	not_live.live = false;
	shift = vmc_state_smt_shift(&root);
	CU_ASSERT_TRUE(shift >= 0);
	cc = read_cpus_smt(&c, &root, shift);
	CU_ASSERT_EQUAL_FATAL(c.r, 0);
	if (!cc->offline[0])
		CU_ASSERT_EQUAL(vmc_state_smt_shift(&not_live), shift);
	for (size_t i = 0; i < cc->n_cpus; i++) {
		const Vmcheck__V1__Cpu *a = cc->cpus[i];

		if (!a->online)
			continue;
		CU_ASSERT_TRUE(a->apic_id >= 0);
		CU_ASSERT_EQUAL(a->thread_id, a->apic_id & ((1 << shift) - 1));
		for (size_t j = 0; j < i; j++)
			if (cc->cpus[j]->online)
				CU_ASSERT_NOT_EQUAL(cc->cpus[j]->apic_id, a->apic_id);
	}
	vmc_arena_free(&c.a);
	vmc_sysroot_close(&root);
}
#endif

VMC_SUITE(state_cpus, NULL, NULL, VMC_TEST(offline_cpus_have_no_topology),
	  VMC_TEST(cpus_sorted_and_only_present), VMC_TEST(vanished_cpu_is_skipped),
	  VMC_TEST(offline_list_beyond_nr_cpus_is_read), VMC_TEST(missing_or_malformed_fails),
	  VMC_TEST(apic_and_thread_ids_from_cpuinfo), VMC_TEST(a_long_cpuinfo_is_read_through),
	  VMC_TEST(malformed_cpuinfo_fails_the_section), VMC_TEST(smt_shift_from_cpuinfo),
	  VMC_TEST(captured_host_apic_ids),
#if defined(__x86_64__) || defined(__i386__)
	  VMC_TEST(live_smt_shift_and_apic_ids),
#endif
	  VMC_TEST(live_tree_is_consistent))
