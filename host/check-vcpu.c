/* SPDX-License-Identifier: MIT */
/*
 * vCPU hotplug: CPUs added at free positions from query-hotpluggable-cpus,
 * each identified in the guest as the one CPU that was not there before,
 * onlined through the agent when it arrives offline (the Debian kernel's
 * way), then matched to QEMU's position by its topology ids (socket, die,
 * core, thread): QEMU's cpu-index is never taken for Linux's CPU number.
 * Proven usable by a probe pinned to it; then all unplugged, the removal
 * judged by the guest, QEMU and (through libvirt) libvirt's own state. A
 * machine without vCPU hotplug (arm virt in QEMU 7.2) is a skip in the
 * hypervisor's own words; one that offers it gets the whole check.
 *
 * Order matters because of QEMU 7.2 defects under TCG (doc/facts.md,
 * "Defect 1: a vCPU unplug corrupts QEMU's heap" and "vCPU unplug stalls
 * under TCG, and may hang"): after any vCPU device_del, the next CPU
 * device_add, system_reset or S3 aborts QEMU, so every plug of every
 * --repeat cycle comes first (a cycle adds K more CPUs at new positions),
 * all of them are removed once at the end and the suite runs this check
 * last; and removing any vCPU but the last one stalls the guest, so they go
 * last in, first out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-util.h"

#define CHECK "vcpu"
#define PROBE_MS 50

struct vcpu {
	char id[16];
	const struct vmc_hv_cpu *where; /* a free position at the start */
	struct vmc_chk_cpu want;
	bool added;
};

static void note_defect(struct vmc_step *s, int r, bool deleted)
{
	if (r == -ESRCH && deleted)
		vmc_step_note(s,
			      "QEMU died after a vCPU device_del: QEMU 7.2 defect under TCG "
			      "(README, \"QEMU 7.2 defects\": a vCPU unplug corrupts QEMU's heap)");
}

static void ladder(struct vmc_step *s, const struct vcpu *v, bool gone)
{
	char kobj[24];

	snprintf(kobj, sizeof(kobj), "cpu%d", v->want.id);
	if (gone)
		vmc_step_ladder_gone(s, v->id, "", kobj);
	else
		vmc_step_ladder(s, v->id, "", kobj);
}

/* QEMU numbers its positions (cpu_index) by socket, die, core, thread. */
static int position_cmp(const void *x, const void *y)
{
	const struct vmc_hv_cpu *a = *(const struct vmc_hv_cpu *const *)x;
	const struct vmc_hv_cpu *b = *(const struct vmc_hv_cpu *const *)y;
	const int ka[] = { a->socket_id, a->die_id, a->core_id, a->thread_id };
	const int kb[] = { b->socket_id, b->die_id, b->core_id, b->thread_id };

	for (size_t i = 0; i < ARRAY_SIZE(ka); i++)
		if (ka[i] != kb[i])
			return (ka[i] > kb[i]) - (ka[i] < kb[i]);
	return 0;
}

static int plug(struct vmc_ctx *c, struct vcpu *v)
{
	const Vmcheck__V1__State *st = vmc_view(c);
	struct vmc_hv *hv = c->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_vcpu spec = { .id = v->id, .where = v->where };
	struct vmc_why why = { .text = "" };
	struct vmc_step *s;
	int r;

	s = vmc_step_begin(c, CHECK, "plug %s (socket %d core %d thread %d)", v->id,
			   v->where->socket_id, v->where->core_id, v->where->thread_id);
	vmc_chk_cpu_init(&v->want, st, v->where, vmc_agent_minor(c) >= 1);
	/* Without a fresh baseline the new CPU cannot be told from the old ones. */
	if (!vmc_chk_section(st, VMCHECK__V1__SECTION__SECTION_CPUS, &why))
		return vmc_step_end(s, -ENOENT, "no baseline of the guest's CPUs: %s", why.text);
	r = vmc_step_acted(s, hv->ops->cpu_add(hv, &spec, &err), &err);
	vmc_error_clear(&err);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	v->added = true;
	r = vmc_step_expect(s, vmc_chk_cpu_up, &v->want, c->opts->deadline_ms);
	if (r == -ETIMEDOUT)
		ladder(s, v, false);
	else if (r == 0)
		vmc_step_note(s, "cpu%d is the new CPU", v->want.id);
	return vmc_step_end(s, r, NULL);
}

/*
 * Online the CPU (writing 1 to an online CPU's online file succeeds: no
 * race with a guest that onlines it), then its identity: the kernel shows
 * a CPU's topology only once it is online.
 */
static int online(struct vmc_ctx *c, struct vcpu *v)
{
	Vmcheck__V1__Act act = VMCHECK__V1__ACT__INIT;
	Vmcheck__V1__CpuOnline co = VMCHECK__V1__CPU_ONLINE__INIT;
	char views[320];
	struct vmc_step *s;
	int r;

	s = vmc_step_begin(c, CHECK, "online cpu%d (%s at socket %d core %d thread %d)", v->want.id,
			   v->id, v->where->socket_id, v->where->core_id, v->where->thread_id);
	co.cpu = (uint32_t)v->want.id;
	co.online = true;
	act.kind_case = VMCHECK__V1__ACT__KIND_CPU_ONLINE;
	act.cpu_online = &co;
	r = vmc_chk_act(s, &act, c->opts->deadline_ms);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	r = vmc_step_expect(s, vmc_chk_cpu_topology, &v->want, c->opts->deadline_ms);
	if (r == -ETIMEDOUT)
		ladder(s, v, false);
	if (r == 0) {
		vmc_chk_cpu_views(&v->want, vmc_chk_cpu_present(vmc_view(c), (unsigned)v->want.id),
				  views, sizeof(views));
		vmc_step_note(s, "%s", views);
	}
	return vmc_step_end(s, r, NULL);
}

/* The agent runs a loop pinned to the CPU and says where it really ran. */
static int probe(struct vmc_ctx *c, struct vcpu *v)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Probe pr = VMCHECK__V1__PROBE__INIT;
	Vmcheck__V1__CpuProbe cp = VMCHECK__V1__CPU_PROBE__INIT;
	Vmcheck__V1__Response *resp = NULL;
	struct vmc_step *s;
	uint64_t ran_ns;
	unsigned ran_on;
	int r;

	s = vmc_step_begin(c, CHECK, "use cpu%d", v->want.id);
	cp.cpu = (uint32_t)v->want.id;
	cp.duration_ms = PROBE_MS;
	pr.kind_case = VMCHECK__V1__PROBE__KIND_CPU;
	pr.cpu = &cp;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_PROBE;
	req.probe = &pr;
	r = vmc_step_agent(s, &req, c->opts->deadline_ms, &resp);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	ran_on = resp->probe->cpu_ran_on;
	ran_ns = resp->probe->duration_ns;
	vmc_agent_response_free(vmc_step_conn(s), resp);
	if (ran_on != (unsigned)v->want.id) {
		vmc_step_usable(s, false, "the probe pinned to cpu%d ran on cpu%u", v->want.id,
				ran_on);
		return vmc_step_end(s, -EIO, "the probe pinned to cpu%d ran on cpu%u", v->want.id,
				    ran_on);
	}
	vmc_step_note(s, "ran %llu us on cpu%u", (unsigned long long)(ran_ns / 1000), ran_on);
	return vmc_step_end(s, 0, NULL);
}

/*
 * DEVICE_DELETED for a CPU names only its lapic's path; the backend maps it
 * to the device id. The guest drops the CPU first: wait in that order.
 */
static int unplug(struct vmc_ctx *c, struct vcpu *v, bool *deleted)
{
	struct vmc_hv *hv = c->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	/*
	 * Taking a CPU down under TCG stops every other vCPU (stop_machine);
	 * on a loaded host that alone took 8-24 s here, where the same unplug
	 * takes 0.1 s on a quiet one. A wider cap costs nothing when it is fast.
	 */
	unsigned deadline = 3 * c->opts->deadline_ms;
	struct vmc_step *s;
	bool pending = false, shown;
	int r;

	s = vmc_step_begin(c, CHECK, "unplug %s (cpu%d)", v->id, v->want.id);
	shown = vmc_chk_shown(c, vmc_chk_cpu_gone, &v->want);
	*deleted = true;
	/* Whatever comes of the request, QEMU may abort on the VM's next ACPI event. */
	vmc_suite_taint(c,
			"%s was unplugged, and QEMU 7.2 aborts on the first ACPI event after a "
			"vCPU unplug",
			v->id);
	r = vmc_chk_del(s, hv->ops->cpu_del(hv, v->id, &err), &err, &pending);
	/*
	 * The kernel removes the CPU's device (a uevent, a push) before it
	 * clears the CPU from cpu/present, which nothing announces: ask, too.
	 */
	if (r == 0)
		r = vmc_step_expect_asking(s, vmc_chk_cpu_gone, &v->want,
					   VMCHECK__V1__SECTION__SECTION_CPUS, deadline);
	if (r == -ETIMEDOUT)
		ladder(s, v, true);
	else if (r == 0)
		r = vmc_chk_removed(c, s, v->id, pending, deadline);
	if (r == 0)
		v->added = false;
	note_defect(s, r, *deleted);
	return vmc_step_end(s, vmc_chk_seen_go(s, r, shown, v->id), NULL);
}

/* Plug, online (if the guest left it offline) and identify, use. */
static int bring_up(struct vmc_ctx *c, struct vcpu *v)
{
	int r = plug(c, v);

	if (r == 0)
		r = online(c, v);
	return r < 0 ? r : probe(c, v);
}

/* The free positions, in QEMU's order; -ENOMEM. */
static int free_positions(struct vmc_hv_cpu *cpus, size_t n, const struct vmc_hv_cpu ***out,
			  size_t *n_out)
{
	const struct vmc_hv_cpu **f = calloc(n ? n : 1, sizeof(*f));
	size_t k = 0;

	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!cpus[i].qom_path)
			f[k++] = &cpus[i];
	qsort(f, k, sizeof(*f), position_cmp);
	*out = f;
	*n_out = k;
	return 0;
}

int vmc_check_vcpu(struct vmc_ctx *c)
{
	const struct vmc_run_opts *o = c->opts;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_cpu *cpus = NULL;
	const struct vmc_hv_cpu **pos = NULL;
	struct vcpu *v = NULL;
	size_t n = 0, n_free = 0;
	unsigned cycles, total;
	bool deleted = false;
	int r, rc = 0;

	if (!o->cpus) {
		vmc_step_skip(c, CHECK, "plug", "--cpus 0");
		return 0;
	}
	r = c->hv->ops->cpus(c->hv, &cpus, &n, &err);
	/* Not offered (arm virt): a skip in the hypervisor's own words, never assumed. */
	if (r == -ENOTSUP) {
		vmc_step_skip(c, CHECK, "plug",
			      "the %s backend offers no vCPU hotplug on this VM: %s",
			      c->hv->ops->name, err.msg ? err.msg : "it gave no reason");
		vmc_error_clear(&err);
		return 0;
	}
	if (r < 0) {
		rc = vmc_chk_fail(c, CHECK, "find free vCPU positions", r, &err);
		vmc_error_clear(&err);
		return rc;
	}
	rc = free_positions(cpus, n, &pos, &n_free);
	if (rc < 0)
		goto out;
	if (n_free < o->cpus) {
		vmc_step_skip(c, CHECK, "plug",
			      "--cpus %u needs as many free vCPU positions, found %zu", o->cpus,
			      n_free);
		goto out;
	}
	cycles = o->repeat;
	if ((size_t)cycles * o->cpus > n_free) {
		cycles = (unsigned)(n_free / o->cpus);
		vmc_step_skip(c, CHECK, "repeat",
			      "--repeat %u x --cpus %u needs %u free vCPU positions (each cycle plugs "
			      "new ones: unplugging first would hit QEMU 7.2's defect), found %zu: "
			      "%u of %u cycles run",
			      o->repeat, o->cpus, o->repeat * o->cpus, n_free, cycles, o->repeat);
	}
	total = cycles * o->cpus;
	v = calloc(total, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	/*
	 * A failed cycle leaves the VM in an unknown state: repeating it
	 * measures nothing. The cycle itself goes on (i % cpus != 0), as the
	 * other checks plug all their devices before judging.
	 */
	for (unsigned i = 0; i < total && (rc == 0 || i % o->cpus); i++) {
		snprintf(v[i].id, sizeof(v[i].id), "vcpu%u", i + 1);
		v[i].where = pos[i];
		r = bring_up(c, &v[i]);
		rc = rc ? rc : r;
		if (vmc_chk_fatal(r))
			goto out;
	}
	/*
	 * Last plugged, first unplugged (QEMU 7.2 defect under TCG; doc/facts.md,
	 * "vCPU unplug stalls under TCG, and may hang"): removing a vCPU that is
	 * not the last one stalls the guest's stop_machine for 5-12 s every
	 * time, and hangs the guest for good in about 1 run in 15; removing the
	 * last one takes 40-100 ms.
	 */
	for (unsigned i = total; i-- > 0;) {
		if (!v[i].added)
			continue;
		r = unplug(c, &v[i], &deleted);
		rc = rc ? rc : r;
		if (vmc_chk_fatal(r))
			break;
	}
out:
	free(v);
	free(pos);
	vmc_hv_cpus_free(cpus, n);
	return rc;
}
