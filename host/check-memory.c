/* SPDX-License-Identifier: MIT */
/*
 * DIMM hotplug: pc-dimms within the slots and maxmem QEMU reports, each
 * identified in the guest by its address: the hypervisor says where it put
 * the DIMM and the guest must show exactly the memory blocks of that range,
 * and no other new one. Blocks the guest leaves offline are onlined movable
 * through the agent, since only movable memory can be unplugged again; a
 * block that lands in another zone fails there and then. A usage probe has
 * the agent touch memory until it holds pages on the DIMM's own frames and
 * write and read them back. The unplug must take exactly those blocks away
 * and bring online memory back to where it was.
 */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-util.h"
#include "clock.h"
#include "escape.h"

#define CHECK "memory"
/* What the usage probe must verify of each DIMM, at most (MiB). */
#define USE_WANT_MB 16

/* ACPI _OST eject statuses QEMU relays: the guest could not offline the memory; working on it. */
#define OST_DEVICE_BUSY 0x82
#define OST_EJECT_IN_PROGRESS 0x84

struct dimm {
	char id[16];
	struct vmc_chk_dimm want;
	bool added;
};

/* MemoryProbe.timeout_ms's maximum in the protocol (proto/vmcheck.proto). */
#define MEMORY_PROBE_MAX_MS 60000u

static void ladder(struct vmc_step *s, const struct dimm *m, bool gone)
{
	char kobj[64];

	if (m->want.count)
		snprintf(kobj, sizeof(kobj), "memory blocks %" PRIu64 "-%" PRIu64, m->want.first,
			 m->want.first + m->want.count - 1);
	else
		snprintf(kobj, sizeof(kobj), "memory blocks for %" PRIu64 " bytes", m->want.size);
	if (gone)
		vmc_step_ladder_gone(s, m->id, "", kobj);
	else
		vmc_step_ladder(s, m->id, "", kobj);
}

/*
 * How the guest onlines hot-added memory by itself (memhp_default_state on
 * its command line): "offline" (the check onlines it), "online_movable",
 * or "online"/"online_kernel" (the kernel's zone, or Normal).
 */
static const char *auto_online(const Vmcheck__V1__State *st)
{
	const char *a = st->memory ? st->memory->auto_online_blocks : NULL;

	return a && *a ? a : "offline";
}

/* Memory the kernel put in another zone than Movable cannot be taken back: say so now. */
static void note_zones(struct vmc_step *s, const struct dimm *m, const Vmcheck__V1__State *st)
{
	for (uint64_t i = m->want.first; i < m->want.first + m->want.count; i++) {
		const Vmcheck__V1__MemoryBlock *b = vmc_chk_memblock(st, i);

		if (b && strcmp(b->valid_zones, "Movable")) {
			vmc_step_note(s,
				      "memory block %" PRIu64
				      " online in zone \"%s\", not Movable (the guest onlines "
				      "\"%s\"): the guest will not be able to unplug it",
				      i, VMC_Q(b->valid_zones), VMC_Q(auto_online(st)));
			return;
		}
	}
}

/* Online every offline block of the DIMM movable, one Act each, then wait for all. */
static int online(struct vmc_ctx *c, struct dimm *m)
{
	uint64_t last = m->want.first + m->want.count - 1;
	struct vmc_step *s;
	int r = 0;

	s = vmc_step_begin(c, CHECK, "online %s (blocks %" PRIu64 "-%" PRIu64 ")", m->id,
			   m->want.first, last);
	for (uint64_t i = m->want.first; i <= last && r == 0; i++) {
		const Vmcheck__V1__MemoryBlock *b = vmc_chk_memblock(vmc_view(c), i);
		Vmcheck__V1__Act act = VMCHECK__V1__ACT__INIT;
		Vmcheck__V1__MemoryOnline mo = VMCHECK__V1__MEMORY_ONLINE__INIT;

		if (b && b->state == VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE)
			continue;
		mo.block = i;
		mo.zone = "online_movable";
		act.kind_case = VMCHECK__V1__ACT__KIND_MEMORY_ONLINE;
		act.memory_online = &mo;
		r = vmc_chk_act(s, &act, c->opts->deadline_ms);
	}
	if (r == 0)
		r = vmc_step_expect(s, vmc_chk_dimm_online, &m->want, c->opts->deadline_ms);
	if (r == -ETIMEDOUT)
		ladder(s, m, false);
	else if (r == 0)
		note_zones(s, m, vmc_view(c));
	return vmc_step_end(s, r, NULL);
}

/* Where the hypervisor put @m: its blocks in the guest. Returns 0 or the step's failure. */
static int place(struct vmc_ctx *c, struct vmc_step *s, struct dimm *m)
{
	struct vmc_hv_dimm_info di = { 0 };
	struct vmc_error err = VMC_ERROR_INIT;
	char sz[32];
	int r;

	if (!c->hv->ops->dimm_info)
		return vmc_step_fail(s, -ENOTSUP,
				     "the %s backend cannot say where it put %s: the guest's blocks "
				     "cannot be matched to it",
				     c->hv->ops->name, m->id);
	r = c->hv->ops->dimm_info(c->hv, m->id, &di, &err);
	if (r == 0)
		r = vmc_chk_dimm_place(&m->want, di.addr, di.size, &err);
	if (r < 0) {
		r = vmc_step_fail(s, r, "where is %s: %s", m->id, err.msg ? err.msg : strerror(-r));
		vmc_error_clear(&err);
		return r;
	}
	vmc_step_note(s, "%s at 0x%" PRIx64 " (%s, slot %d): memory blocks %" PRIu64 "-%" PRIu64,
		      m->id, di.addr, vmc_chk_bytes(di.size, sz), di.slot, m->want.first,
		      m->want.first + m->want.count - 1);
	return 0;
}

static int plug(struct vmc_ctx *c, struct dimm *m, uint64_t size)
{
	struct vmc_hv *hv = c->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_dimm spec = { .id = m->id, .size = size };
	struct vmc_why why = { .text = "" };
	const char *onlines;
	char sz[32];
	struct vmc_step *s;
	int r;

	s = vmc_step_begin(c, CHECK, "plug %s (%s)", m->id, vmc_chk_bytes(size, sz));
	/* The baseline is the view just before the action: what the DIMM adds is the rest. */
	r = vmc_chk_dimm_init(&m->want, vmc_view(c), size);
	if (r < 0) {
		vmc_chk_section(vmc_view(c), VMCHECK__V1__SECTION__SECTION_MEMORY, &why);
		return vmc_step_end(s, r, "no baseline of the guest's memory blocks: %s",
				    why.text[0] ? why.text : "no block size");
	}
	onlines = auto_online(vmc_view(c));
	/* The check onlines what the guest leaves offline, and always movable. */
	m->want.movable = !strcmp(onlines, "offline") || !strcmp(onlines, "online_movable");
	r = vmc_step_acted(s, hv->ops->mem_add(hv, &spec, &err), &err);
	vmc_error_clear(&err);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	m->added = true;
	r = place(c, s, m);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	r = vmc_step_expect(s, vmc_chk_dimm_blocks, &m->want, c->opts->deadline_ms);
	if (r == 0) {
		/*
		 * A guest that onlines by itself may show the blocks before it
		 * onlines them: wait for it here. One that does not needs the
		 * agent, in a step of its own so this one measures the plug.
		 */
		if (!strcmp(onlines, "offline")) {
			vmc_step_end(s, 0, NULL);
			return online(c, m);
		}
		r = vmc_step_expect(s, vmc_chk_dimm_online, &m->want, c->opts->deadline_ms);
		if (r == 0)
			note_zones(s, m, vmc_view(c));
	}
	if (r == -ETIMEDOUT)
		ladder(s, m, false);
	return vmc_step_end(s, r, NULL);
}

/*
 * The guest uses the DIMM: the agent's memory probe holds pages on the
 * DIMM's own frames, writes them and reads them back. An agent older than
 * the probe (protocol minor 0, or one answering UNSUPPORTED) is a skip
 * with that reason.
 */
static int use(struct vmc_ctx *c, struct dimm *m)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Probe pr = VMCHECK__V1__PROBE__INIT;
	Vmcheck__V1__MemoryProbe mp = VMCHECK__V1__MEMORY_PROBE__INIT;
	Vmcheck__V1__Response *resp = NULL;
	const Vmcheck__V1__ProbeResult *p;
	char name[64], b1[32], b2[32], b3[32], b4[32];
	uint64_t need;
	struct vmc_step *s;
	int r;

	snprintf(name, sizeof(name), "use %s (blocks %" PRIu64 "-%" PRIu64 ")", m->id,
		 m->want.first, m->want.first + m->want.count - 1);
	if (vmc_agent_minor(c) < 1) {
		vmc_step_skip(c, CHECK, name,
			      "the agent speaks protocol minor %u: it has no memory probe (minor 1)",
			      vmc_agent_minor(c));
		return 0;
	}
	s = vmc_step_begin(c, CHECK, "%s", name);
	mp.phys_start = m->want.addr;
	mp.size = m->want.size;
	mp.want_bytes = m->want.size < (uint64_t)USE_WANT_MB << 20 ? m->want.size
								   : (uint64_t)USE_WANT_MB << 20;
	/* The protocol caps a memory probe at 60 s. */
	mp.timeout_ms = c->opts->deadline_ms < MEMORY_PROBE_MAX_MS ? c->opts->deadline_ms
								   : MEMORY_PROBE_MAX_MS;
	pr.kind_case = VMCHECK__V1__PROBE__KIND_MEMORY;
	pr.memory = &mp;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_PROBE;
	req.probe = &pr;
	/* The agent keeps to the step's deadline itself: its reply gets a little more. */
	r = vmc_step_agent(s, &req, c->opts->deadline_ms + 2000, &resp);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	p = resp->probe;
	vmc_step_note(s,
		      "touched %s, %s of it on the DIMM's frames, %s verified; %" PRIu64
		      " pages read back wrong, %" PRIu64 " moved; %.1f ms",
		      vmc_chk_bytes(p->allocated_bytes, b1), vmc_chk_bytes(p->in_range_bytes, b2),
		      vmc_chk_bytes(p->verified_bytes, b3), p->mismatched_pages, p->moved_pages,
		      (double)p->duration_ns / 1e6);
	/* A quarter of what was asked at least: which frames the allocator hands out is the guest's. */
	need = mp.want_bytes / 4;
	if (p->mismatched_pages)
		r = vmc_step_fail(s, -EIO, "%" PRIu64 " pages on %s read back other than written",
				  p->mismatched_pages, m->id);
	else if (!p->verified_bytes || p->verified_bytes < need)
		r = vmc_step_fail(s, -EIO,
				  "the guest verified %s on %s's frames, want at least %s (it touched "
				  "%s, %s of it on the DIMM)",
				  vmc_chk_bytes(p->verified_bytes, b1), m->id,
				  vmc_chk_bytes(need, b2), vmc_chk_bytes(p->allocated_bytes, b3),
				  vmc_chk_bytes(p->in_range_bytes, b4));
	if (r < 0)
		vmc_step_usable(s, false, "memory probe: %s verified on the DIMM's frames",
				vmc_chk_bytes(p->verified_bytes, b1));
	vmc_agent_response_free(vmc_step_conn(s), resp);
	return vmc_step_end(s, r, NULL);
}

/* The _OST status of an ACPI_DEVICE_OST event's data ({"info": {..., "status": N}}). */
static int ost_status(const char *detail)
{
	json_object *o = detail ? json_tokener_parse(detail) : NULL, *info, *st;
	int v = -1;

	if (!o)
		return -1;
	if (!json_object_object_get_ex(o, "info", &info))
		info = o;
	if (json_object_object_get_ex(info, "status", &st) &&
	    json_object_is_type(st, json_type_int))
		v = json_object_get_int(st);
	json_object_put(o);
	return v;
}

/*
 * The guest refused the eject: it answers the eject request with _OST
 * "in progress", then a failure status, and QEMU never sends
 * DEVICE_DELETED. Take the failure from the queued ACPI_DEVICE_OST events
 * and name the blocks that kept the DIMM (those not in zone Movable, else
 * all still there). Returns the step's end, or 1 if the guest did not refuse.
 */
static int explain_refusal(struct vmc_ctx *c, struct vmc_step *s, const struct dimm *m)
{
	struct vmc_hv *hv = c->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	const Vmcheck__V1__State *st = vmc_view(c);
	char blocks[256] = "", *detail = NULL;
	int status = -1, r;
	size_t len = 0;

	if (hv->ops->seen_event(hv, VMC_EV_DEVICE_DELETED, m->id))
		return 1;
	for (;;) {
		struct vmc_hv_event ev = { 0 };
		int v;

		if (hv->ops->wait_event(hv, VMC_EV_ACPI_DEVICE_OST, m->id, vmc_mono_ns(), &ev,
					&err) < 0)
			break;
		v = ost_status(ev.detail);
		if (v != 0 && v != OST_EJECT_IN_PROGRESS) {
			status = v;
			free(detail);
			detail = TAKE_PTR(ev.detail);
		}
		vmc_hv_event_free(&ev);
	}
	vmc_error_clear(&err);
	if (status < 0)
		return 1;
	for (int pass = 0; pass < 2 && !len; pass++) {
		for (uint64_t i = m->want.first; i < m->want.first + m->want.count; i++) {
			const Vmcheck__V1__MemoryBlock *b = vmc_chk_memblock(st, i);

			if (!b || (pass == 0 && strstr(b->valid_zones, "Movable")))
				continue;
			if (len < sizeof(blocks))
				len += (size_t)snprintf(blocks + len, sizeof(blocks) - len,
							"%s%" PRIu64 " [%s]", len ? ", " : "", i,
							VMC_Q(b->valid_zones));
		}
	}
	vmc_step_note(s, "%s: %s", VMC_EV_ACPI_DEVICE_OST, detail ? detail : "");
	free(detail);
	if (status == OST_DEVICE_BUSY)
		r = vmc_step_end(
			s, -EBUSY,
			"guest could not offline the DIMM's memory (ACPI_DEVICE_OST status %d; "
			"blocks not movable: %s)",
			status, len ? blocks : "none left");
	else
		r = vmc_step_end(s, -EBUSY, "guest refused to eject %s: ACPI_DEVICE_OST status %d",
				 m->id, status);
	return r;
}

/* The guest drops the blocks ~0.3 s before QEMU reports DEVICE_DELETED: wait in that order. */
static int unplug(struct vmc_ctx *c, struct dimm *m)
{
	struct vmc_hv *hv = c->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	unsigned deadline = c->opts->deadline_ms;
	struct vmc_step *s;
	bool pending = false, shown;
	int r;

	s = vmc_step_begin(c, CHECK, "unplug %s (blocks %" PRIu64 "-%" PRIu64 ")", m->id,
			   m->want.first, m->want.first + m->want.count - 1);
	vmc_chk_dimm_unplugging(&m->want, vmc_view(c));
	shown = vmc_chk_shown(c, vmc_chk_dimm_gone, &m->want);
	r = vmc_chk_del(s, hv->ops->mem_del(hv, m->id, &err), &err, &pending);
	if (r == 0)
		r = vmc_step_expect(s, vmc_chk_dimm_gone, &m->want, deadline);
	if (r == -ETIMEDOUT) {
		ladder(s, m, true);
		r = explain_refusal(c, s, m);
		return r == 1 ? vmc_step_end(s, -ETIMEDOUT, NULL) : r;
	}
	if (r == 0)
		r = vmc_chk_removed(c, s, m->id, pending, deadline);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	m->added = false;
	r = hv->ops->mem_release(hv, m->id, &err);
	r = r < 0 ? vmc_step_end(s, r, "%s", err.msg ? err.msg : "mem_release failed")
		  : vmc_step_end(s, vmc_chk_seen_go(s, 0, shown, m->id), NULL);
	vmc_error_clear(&err);
	return r;
}

/* Plug every DIMM, then unplug every one that QEMU holds. */
static int cycle(struct vmc_ctx *c, unsigned *seq)
{
	const struct vmc_run_opts *o = c->opts;
	struct dimm *dimms = calloc(o->dimms, sizeof(*dimms));
	int r, rc = 0;

	if (!dimms)
		return -ENOMEM;
	for (unsigned i = 0; i < o->dimms; i++) {
		snprintf(dimms[i].id, sizeof(dimms[i].id), "dimm%u", ++*seq);
		r = plug(c, &dimms[i], o->dimm_bytes);
		if (r == 0)
			r = use(c, &dimms[i]);
		rc = rc ? rc : r;
		if (vmc_chk_fatal(r))
			goto out;
	}
	for (unsigned i = 0; i < o->dimms; i++) {
		if (!dimms[i].added)
			continue;
		r = unplug(c, &dimms[i]);
		rc = rc ? rc : r;
		if (vmc_chk_fatal(r))
			break;
	}
out:
	for (unsigned i = 0; i < o->dimms; i++)
		vmc_chk_dimm_free(&dimms[i].want);
	free(dimms);
	return rc;
}

/*
 * What QEMU and the guest allow: 0 to go ahead, 1 when the check was
 * skipped with the reason, negative when it failed.
 */
static int plan(struct vmc_ctx *c)
{
	const struct vmc_run_opts *o = c->opts;
	const Vmcheck__V1__State *st = vmc_view(c);
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_mem mi = { 0 };
	struct vmc_why why = { .text = "" };
	uint64_t room, need = (uint64_t)o->dimms * o->dimm_bytes, bs;
	unsigned free_slots;
	char a[32], b[32], d[32];
	int r;

	r = c->hv->ops->mem_info(c->hv, &mi, &err);
	if (r < 0) {
		r = vmc_chk_fail(c, CHECK, "memory capacity", r, &err);
		vmc_error_clear(&err);
		return r;
	}
	free_slots = mi.slots > mi.used_slots ? mi.slots - mi.used_slots : 0;
	room = mi.max_bytes > mi.base_bytes + mi.plugged_bytes
		       ? mi.max_bytes - mi.base_bytes - mi.plugged_bytes
		       : 0;
	if (free_slots < o->dimms) {
		vmc_step_skip(c, CHECK, "plug",
			      "--dimms %u needs as many free DIMM slots, QEMU has %u free of %u",
			      o->dimms, free_slots, mi.slots);
		return 1;
	}
	if (room < need) {
		vmc_step_skip(c, CHECK, "plug",
			      "--dimms %u x %s needs %s below maxmem, QEMU has %s", o->dimms,
			      vmc_chk_bytes(o->dimm_bytes, a), vmc_chk_bytes(need, b),
			      vmc_chk_bytes(room, d));
		return 1;
	}
	/* A guest that cannot show memory blocks cannot show a DIMM: that fails the check. */
	bs = st->memory ? st->memory->block_size : 0;
	if (!vmc_chk_section(st, VMCHECK__V1__SECTION__SECTION_MEMORY, &why) || !bs) {
		vmc_error_set(&err, -ENOENT, "the guest's memory blocks cannot be read: %s",
			      why.text[0] ? why.text
					  : "no memory block size (no memory hotplug support)");
		r = vmc_chk_fail(c, CHECK, "plan", -ENOENT, &err);
		vmc_error_clear(&err);
		return r;
	}
	if (!o->dimm_bytes || o->dimm_bytes % bs) {
		vmc_error_set(&err, -EINVAL,
			      "DIMM size %s is not a multiple of the guest's memory block size %s",
			      vmc_chk_bytes(o->dimm_bytes, a), vmc_chk_bytes(bs, b));
		r = vmc_chk_fail(c, CHECK, "plan", -EINVAL, &err);
		vmc_error_clear(&err);
		return r;
	}
	return 0;
}

int vmc_check_memory(struct vmc_ctx *c)
{
	int rc;

	if (!c->opts->dimms) {
		vmc_step_skip(c, CHECK, "plug", "--dimms 0");
		return 0;
	}
	rc = plan(c);
	if (rc)
		return rc < 0 ? rc : 0;
	return vmc_chk_repeat(c, cycle);
}
