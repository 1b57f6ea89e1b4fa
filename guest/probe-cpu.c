/* SPDX-License-Identifier: MIT */
/*
 * The CPU probe: a new vCPU is usable when a thread pinned to it actually
 * runs there. The spin runs on a thread of its own so that no agent thread
 * keeps the pinning afterwards.
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "probe.h"

#define ECODE(x) VMCHECK__V1__ERROR__CODE__##x

struct spin {
	unsigned cpu;
	uint64_t ns;        /* how long to spin */
	const char *failed; /* the call that failed, or NULL */
	int err;            /* its errno */
	unsigned ran_on;
	uint64_t took_ns;
};

static void *spin_main(void *arg)
{
	struct spin *s = arg;
	cpu_set_t set;
	uint64_t start, now;

	CPU_ZERO(&set);
	CPU_SET(s->cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0) {
		s->failed = "sched_setaffinity";
		s->err = errno;
		return NULL;
	}
	s->ran_on = s->cpu;
	start = now = vmc_mono_ns();
	while (now - start < s->ns) {
		int c = sched_getcpu();

		if (c < 0) {
			s->failed = "sched_getcpu";
			s->err = errno;
			return NULL;
		}
		/* Any other CPU is the finding, whatever follows it. */
		if ((unsigned)c != s->cpu)
			s->ran_on = (unsigned)c;
		now = vmc_mono_ns();
	}
	s->took_ns = now - start;
	return NULL;
}

/* 0 if CPU @cpu is present and online in @rootfd's sysfs. */
static int check_online(int rootfd, unsigned cpu, struct vmc_outcome *o)
{
	uint64_t online;
	int r;

	r = vmc_sysroot_read_u64f(rootfd, &online, 10, "sys/devices/system/cpu/cpu%u/online", cpu);
	if (r == -ENOENT) {
		char dir[64];

		/* No online file: a CPU that cannot go offline, if it exists at all. */
		snprintf(dir, sizeof(dir), "sys/devices/system/cpu/cpu%u", cpu);
		if (faccessat(rootfd, dir, F_OK, 0) == 0)
			return 0;
		return vmc_outcome_fail(o, ECODE(NOT_FOUND), 0, "cpu%u: no such CPU (no %s)", cpu,
					dir);
	}
	if (r < 0)
		return vmc_outcome_fail(o, vmc_outcome_code_of(-r), -r,
					"reading sys/devices/system/cpu/cpu%u/online: %s", cpu,
					strerror(-r));
	if (!online)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0, "cpu%u is offline", cpu);
	return 0;
}

int vmc_probe_cpu(int rootfd, const Vmcheck__V1__CpuProbe *p, Vmcheck__V1__ProbeResult *res,
		  struct vmc_outcome *o)
{
	struct spin s = { .cpu = p->cpu };
	unsigned ms = p->duration_ms ? p->duration_ms : VMC_PROBE_CPU_DEFAULT_MS;
	pthread_t t;
	int r;

	if (ms > VMC_PROBE_CPU_MAX_MS)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"duration_ms %u is over the limit of %u", ms,
					VMC_PROBE_CPU_MAX_MS);
	if (p->cpu >= CPU_SETSIZE)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"cpu%u is beyond the %d CPUs an affinity mask holds",
					p->cpu, CPU_SETSIZE);
	r = check_online(rootfd, p->cpu, o);
	if (r < 0)
		return r;
	s.ns = (uint64_t)ms * 1000000u;
	r = pthread_create(&t, NULL, spin_main, &s);
	if (r)
		return vmc_outcome_fail(o, ECODE(INTERNAL), r, "starting the spin thread: %s",
					strerror(r));
	pthread_join(t, NULL);
	if (s.failed)
		return vmc_outcome_fail(o, vmc_outcome_code_of(s.err), s.err,
					"spinning on cpu%u: %s: %s", p->cpu, s.failed,
					strerror(s.err));
	res->cpu_ran_on = s.ran_on;
	res->duration_ns = s.took_ns;
	vmc_outcome_ok(o, "spun %u ms on cpu%u", ms, s.ran_on);
	return 0;
}
