/* SPDX-License-Identifier: MIT */
/*
 * CPUs from sys/devices/system/cpu: the kernel's possible/present/online
 * sets as it prints them, and every present CPU with its topology. An offline
 * CPU has no topology directory (its ids are -1); cpu0 often has no "online"
 * file, so whether a CPU is online comes from the online list. A CPU
 * hot-removed while we read it is left out.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

#define CPU "sys/devices/system/cpu"

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

	r = vmc_read_strf(fd, buf, VMC_READ_MAX, CPU "/%s", file);
	if (r < 0)
		return r;
	/*
	 * "offline" appends ",N-M" for CPUs beyond nr_cpu_ids even when the
	 * list before it is empty: the kernel really prints ",1-3" (nr_cpus=1).
	 */
	if (*list == ',')
		list++;
	r = vmc_cpulist_contains(list, 0, &in);
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

	r = vmc_read_s64f(fd, &v, 10, CPU "/%s/topology/%s", cpu, attr);
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

/*
 * One present cpuN. Listing its directory for the node link is what tells
 * us it still exists: -ENOENT from there means it was hot-removed.
 */
static int read_cpu(int fd, const char *name, const char *online, char *buf, struct vmc_arena *a,
		    Vmcheck__V1__Cpu *c)
{
	bool on;
	int r;

	r = vmc_cpulist_contains(online, c->id, &on);
	if (r < 0)
		return r;
	c->online = on;
	r = vmc_node_of_dirf(fd, &c->node, CPU "/%s", name);
	if (r == 0)
		r = read_topo_id(fd, name, "core_id", &c->core_id);
	if (r == 0)
		r = read_topo_id(fd, name, "physical_package_id", &c->package_id);
	if (r == 0)
		r = read_topo_id(fd, name, "die_id", &c->die_id);
	if (r < 0)
		return r;
	r = vmc_read_strf(fd, buf, VMC_READ_MAX, CPU "/%s/topology/thread_siblings_list", name);
	if (vanished(r))
		return 0;
	if (r < 0)
		return r;
	c->thread_siblings = vmc_arena_strdup(a, buf);
	return c->thread_siblings ? 0 : -ENOMEM;
}

static int read_cpus(int fd, char **names, size_t n, char *buf, struct vmc_arena *a,
		     Vmcheck__V1__State *st)
{
	Vmcheck__V1__Cpus *cs = vmc_arena_alloc(a, sizeof(*cs));
	Vmcheck__V1__Cpu *cpus = vmc_arena_alloc(a, n * sizeof(*cpus));
	Vmcheck__V1__Cpu **ptrs = vmc_arena_alloc(a, n * sizeof(*ptrs));
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

	/* The listing is sorted naturally: cpu2 before cpu10. */
	for (size_t i = 0; i < n; i++) {
		Vmcheck__V1__Cpu *c = &cpus[cs->n_cpus];
		unsigned id;
		bool present;

		if (!cpu_id(names[i], &id))
			continue;
		r = vmc_cpulist_contains(cs->present, id, &present);
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
	char *buf = vmc_arena_scratch(a, VMC_READ_MAX); /* lists can be a page or more */
	char **names;
	int n, r;

	if (!buf)
		return -ENOMEM;
	n = vmc_list_dirf(o->root.fd, &names, CPU);
	if (n < 0)
		return n;
	r = read_cpus(o->root.fd, names, (size_t)n, buf, a, st);
	vmc_names_free(names, n);
	return r;
}
