/* SPDX-License-Identifier: MIT */
/*
 * CPUs from sys/devices/system/cpu: the kernel's possible/present/online
 * sets as it prints them, and every present CPU with its topology. An offline
 * CPU has no topology directory (its ids are -1); cpu0 often has no "online"
 * file, so whether a CPU is online comes from the online list. A CPU
 * hot-removed while we read it is left out. On x86 an online CPU also has
 * its APIC id, which sysfs does not show: it comes from proc/cpuinfo, and
 * the thread within its core from that id and the SMT width the CPU reports.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "parse.h"
#include "state.h"

#define CPU "sys/devices/system/cpu"
#define CPUINFO "proc/cpuinfo"
/* The cpuinfo lines we parse are short; longer ones ("flags") are skipped. */
#define CPUINFO_LINE 256
/* x86 prints about 2 KiB per CPU: room for 16384 of them, and a bound. */
#define CPUINFO_MAX (32u << 20)

struct apic_of {
	uint32_t cpu;
	uint32_t apic;
};

/* What proc/cpuinfo tells us: every processor's APIC id, the first one's counts. */
struct cpuinfo {
	struct apic_of *apics; /* malloc'd, in the file's order */
	size_t n, cap;
	int64_t cur;             /* the processor being read; -1 before the first */
	unsigned blocks;         /* "processor" lines seen */
	int64_t siblings, cores; /* of the first processor; -1 if absent */
};

/* Gone while we looked: files disappear, or an open attribute says ENODEV. */
static bool vanished(int r)
{
	return r == -ENOENT || r == -ENODEV;
}

/* "cpuN" with N all digits: not cpufreq, cpuidle. */
static bool cpu_id(const char *name, unsigned *id)
{
	uint64_t v;

	if (strncmp(name, "cpu", 3) != 0 || !isdigit((unsigned char)name[3]) ||
	    vmc_parse_u64(name + 3, 10, &v) < 0 || v > UINT32_MAX)
		return false;
	*id = (unsigned)v;
	return true;
}

/* A CPU list file into the arena, checked to be in the kernel's list format. */
static int read_list(int fd, const char *file, char *buf, struct vmc_arena *a, char **out)
{
	bool in;
	int r;

	const char *list = buf;

	r = vmc_sysroot_read_strf(fd, buf, VMC_SYSROOT_READ_MAX, CPU "/%s", file);
	if (r < 0)
		return r;
	/*
	 * "offline" appends ",N-M" for CPUs beyond nr_cpu_ids even when the
	 * list before it is empty: the kernel really prints ",1-3" (nr_cpus=1).
	 */
	if (*list == ',')
		list++;
	r = vmc_parse_cpulist_contains(list, 0, &in);
	if (r < 0)
		return r;
	*out = vmc_arena_strdup(a, list);
	return *out ? 0 : -ENOMEM;
}

/* A topology id; -1 when the kernel does not expose it. */
static int read_topo_id(int fd, const char *cpu, const char *attr, int32_t *out)
{
	int64_t v;
	int r;

	r = vmc_sysroot_read_s64f(fd, &v, 10, CPU "/%s/topology/%s", cpu, attr);
	if (vanished(r)) {
		*out = -1;
		return 0;
	}
	if (r < 0)
		return r;
	if (v < INT32_MIN || v > INT32_MAX)
		return -ERANGE;
	*out = (int32_t)v;
	return 0;
}

/* "key<tabs>: value" split in place; false for a line of another shape. */
static bool split_line(char *line, char **key, char **val)
{
	char *colon = strchr(line, ':'), *e;

	if (!colon)
		return false;
	for (e = colon; e > line && (e[-1] == '\t' || e[-1] == ' '); e--)
		;
	*e = '\0';
	*key = line;
	*val = colon + 1;
	if (**val == ' ')
		(*val)++;
	return true;
}

static int push_apic(struct cpuinfo *ci, uint32_t cpu, uint32_t apic)
{
	if (ci->n == ci->cap) {
		size_t cap = ci->cap ? 2 * ci->cap : 16;
		struct apic_of *a = realloc(ci->apics, cap * sizeof(*a));

		if (!a)
			return -ENOMEM;
		ci->apics = a;
		ci->cap = cap;
	}
	ci->apics[ci->n++] = (struct apic_of){ .cpu = cpu, .apic = apic };
	return 0;
}

static int cpuinfo_line(struct cpuinfo *ci, char *line)
{
	char *key, *val;
	uint64_t v;
	int r;

	if (!split_line(line, &key, &val))
		return 0;
	if (!strcmp(key, "processor")) {
		r = vmc_parse_u64(val, 10, &v);
		if (r < 0 || v > UINT32_MAX)
			return r < 0 ? r : -ERANGE;
		ci->cur = (int64_t)v;
		ci->blocks++;
	} else if (!strcmp(key, "apicid")) {
		/* An APIC id of no processor: not the file we know. */
		if (ci->cur < 0)
			return -EINVAL;
		r = vmc_parse_u64(val, 10, &v);
		if (r < 0 || v > UINT32_MAX)
			return r < 0 ? r : -ERANGE;
		return push_apic(ci, (uint32_t)ci->cur, (uint32_t)v);
	} else if (ci->blocks == 1 && (!strcmp(key, "siblings") || !strcmp(key, "cpu cores"))) {
		/* Only the SMT width is derived from these: junk there means "unknown". */
		if (vmc_parse_u64(val, 10, &v) == 0 && v <= INT32_MAX)
			*(key[0] == 's' ? &ci->siblings : &ci->cores) = (int64_t)v;
	}
	return 0;
}

/*
 * Read proc/cpuinfo line by line through @buf (VMC_SYSROOT_READ_MAX bytes): the
 * file grows with the CPU count, past what any buffer should hold whole.
 * Returns 0, -ENOENT without the file, -EFBIG past CPUINFO_MAX, -errno.
 */
static int cpuinfo_read(int rootfd, char *buf, struct cpuinfo *ci)
{
	_cleanup_close_ int fd = openat(rootfd, CPUINFO, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	char line[CPUINFO_LINE];
	size_t len = 0, total = 0;
	bool overlong = false;
	int r = 0;

	*ci = (struct cpuinfo){ .cur = -1, .siblings = -1, .cores = -1 };
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = TEMP_FAILURE_RETRY(read(fd, buf, VMC_SYSROOT_READ_MAX));
		const char *p = buf, *end;

		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		total += (size_t)n;
		if (total > CPUINFO_MAX)
			return -EFBIG;
		for (end = buf + n; p < end;) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t k = (size_t)((nl ? nl : end) - p);

			if (!overlong && len + k < sizeof(line)) {
				memcpy(line + len, p, k);
				len += k;
			} else {
				overlong = true;
			}
			if (!nl)
				break;
			line[len] = '\0';
			if (!overlong && (r = cpuinfo_line(ci, line)) < 0)
				return r;
			len = 0;
			overlong = false;
			p = nl + 1;
		}
	}
	line[len] = '\0';
	return overlong ? 0 : cpuinfo_line(ci, line);
}

static void cpuinfo_free(struct cpuinfo *ci)
{
	free(ci->apics);
	ci->apics = NULL;
}

static int apic_cmp(const void *a, const void *b)
{
	const struct apic_of *x = a, *y = b;

	return (x->cpu > y->cpu) - (x->cpu < y->cpu);
}

/* The APIC id of processor @cpu, or -1 if cpuinfo did not list it. */
static int64_t apic_of(const struct cpuinfo *ci, uint32_t cpu)
{
	const struct apic_of key = { .cpu = cpu }, *a;

	a = ci->n ? bsearch(&key, ci->apics, ci->n, sizeof(key), apic_cmp) : NULL;
	return a ? (int64_t)a->apic : -1;
}

/*
 * One present cpuN. Listing its directory for the node link is what tells
 * us it still exists: -ENOENT from there means it was hot-removed.
 */
static int read_cpu(int fd, const char *name, const char *online, char *buf, struct vmc_arena *a,
		    Vmcheck__V1__Cpu *c)
{
	bool on;
	int r;

	r = vmc_parse_cpulist_contains(online, c->id, &on);
	if (r < 0)
		return r;
	c->online = on;
	r = vmc_sysroot_node_of_dirf(fd, &c->node, CPU "/%s", name);
	if (r == 0)
		r = read_topo_id(fd, name, "core_id", &c->core_id);
	if (r == 0)
		r = read_topo_id(fd, name, "physical_package_id", &c->package_id);
	if (r == 0)
		r = read_topo_id(fd, name, "die_id", &c->die_id);
	if (r < 0)
		return r;
	r = vmc_sysroot_read_strf(fd, buf, VMC_SYSROOT_READ_MAX,
				  CPU "/%s/topology/thread_siblings_list", name);
	if (vanished(r))
		return 0;
	if (r < 0)
		return r;
	c->thread_siblings = vmc_arena_strdup(a, buf);
	return c->thread_siblings ? 0 : -ENOMEM;
}

/*
 * An online CPU's APIC id and the thread within its core: the low
 * @smt_shift bits of the APIC id number the threads of a core.
 */
static void set_apic(Vmcheck__V1__Cpu *c, const struct cpuinfo *ci, int smt_shift)
{
	int64_t apic = c->online ? apic_of(ci, c->id) : -1;

	c->apic_id = apic;
	c->thread_id = -1;
	if (apic >= 0 && smt_shift >= 0 && smt_shift < 32)
		c->thread_id = (int32_t)((uint64_t)apic & ((1ull << smt_shift) - 1));
}

static int read_cpus(const struct vmc_state_opts *o, char **names, size_t n, char *buf,
		     struct vmc_arena *a, Vmcheck__V1__State *st)
{
	int fd = o->root.fd;
	Vmcheck__V1__Cpus *cs = vmc_arena_alloc(a, sizeof(*cs));
	Vmcheck__V1__Cpu *cpus = vmc_arena_alloc(a, n * sizeof(*cpus));
	Vmcheck__V1__Cpu **ptrs = vmc_arena_alloc(a, n * sizeof(*ptrs));
	_cleanup_(cpuinfo_free) struct cpuinfo ci = { 0 };
	int r;

	if (!cs || !cpus || !ptrs)
		return -ENOMEM;
	vmcheck__v1__cpus__init(cs);
	r = read_list(fd, "possible", buf, a, &cs->possible);
	if (r == 0)
		r = read_list(fd, "present", buf, a, &cs->present);
	if (r == 0)
		r = read_list(fd, "online", buf, a, &cs->online);
	if (r < 0)
		return r;
	/* Only "offline" may be missing: then no CPU is offline. */
	r = read_list(fd, "offline", buf, a, &cs->offline);
	if (r < 0 && !vanished(r))
		return r;
	/* No cpuinfo (a fixture without one): no APIC ids. */
	r = cpuinfo_read(fd, buf, &ci);
	if (r < 0 && r != -ENOENT)
		return r;
	/* Linux lists processors in order; sorting is for any other file. */
	if (ci.n > 1)
		qsort(ci.apics, ci.n, sizeof(*ci.apics), apic_cmp);

	/* The listing is sorted naturally: cpu2 before cpu10. */
	for (size_t i = 0; i < n; i++) {
		Vmcheck__V1__Cpu *c = &cpus[cs->n_cpus];
		unsigned id;
		bool present;

		if (!cpu_id(names[i], &id))
			continue;
		r = vmc_parse_cpulist_contains(cs->present, id, &present);
		if (r < 0)
			return r;
		if (!present)
			continue;
		vmcheck__v1__cpu__init(c);
		c->id = id;
		c->present = true;
		r = read_cpu(fd, names[i], cs->online, buf, a, c);
		if (vanished(r))
			continue;
		if (r < 0)
			return r;
		set_apic(c, &ci, o->smt_shift);
		ptrs[cs->n_cpus++] = c;
	}
	cs->cpus = ptrs;
	st->cpus = cs;
	return 0;
}

/*
 * vmc_state_read_cpus - fill st->cpus from sys/devices/system/cpu
 *
 * Returns 0; -ENOENT if the directory or one of its possible/present/online
 * lists is missing; -EINVAL/-ERANGE on malformed files; -ENOMEM. st->cpus is
 * left unset on failure.
 */
int vmc_state_read_cpus(const struct vmc_state_opts *o, struct vmc_arena *a, Vmcheck__V1__State *st)
{
	char *buf = vmc_arena_scratch(a, VMC_SYSROOT_READ_MAX); /* lists can be a page or more */
	char **names;
	int n, r;

	if (!buf)
		return -ENOMEM;
	n = vmc_sysroot_list_dirf(o->root.fd, &names, CPU);
	if (n < 0)
		return n;
	r = read_cpus(o, names, (size_t)n, buf, a, st);
	vmc_sysroot_names_free(names, n);
	return r;
}

/* CPUID leaf 0xB subleaf 0 (the SMT level): its shift, or -1 without the leaf. */
static int cpuid_smt_shift(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned eax, ebx, ecx, edx;

	if (__get_cpuid_max(0, NULL) < 0xb)
		return -1;
	__cpuid_count(0xb, 0, eax, ebx, ecx, edx);
	/* EBX 0: the leaf is not implemented, whatever the highest leaf says. */
	if (ebx == 0)
		return -1;
	return (int)(eax & 0x1f);
#else
	return -1;
#endif
}

int vmc_state_smt_shift(const struct vmc_sysroot *root)
{
	_cleanup_(cpuinfo_free) struct cpuinfo ci = { 0 };
	_cleanup_free_ char *buf = NULL;
	int64_t threads;
	int shift;

	if (root->live && (shift = cpuid_smt_shift()) >= 0)
		return shift;
	buf = malloc(VMC_SYSROOT_READ_MAX);
	if (!buf || cpuinfo_read(root->fd, buf, &ci) < 0 || ci.siblings <= 0 || ci.cores <= 0)
		return -1;
	/* Threads per core, rounded up: 3 threads need 2 bits, as the APIC ids do. */
	threads = (ci.siblings + ci.cores - 1) / ci.cores;
	for (shift = 0; ((int64_t)1 << shift) < threads; shift++)
		;
	return shift;
}
