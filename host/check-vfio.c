/* SPDX-License-Identifier: MIT */
/*
 * VFIO VF hotplug: SR-IOV virtual functions of the host (--vfio, or the
 * first usable one found) handed to the guest on free root ports. Before
 * any action the host's sysfs is asked whether a VM can take the VF
 * (check-vfio-host.h); in the guest the VF is the function behind its port
 * with the VF's vendor:device, bound to the VF driver its PF's driver implies,
 * carrying a network link; the unplug must take both away. A host without
 * VFs, or a backend without VFIO, skips the check with the reason.
 */
#include "check-vfio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-vfio-host.h"
#include "escape.h"
#include "sysroot.h"

#define CHECK "vfio"

struct vf {
	char id[16];
	char addr[VMC_VFIO_ADDR_LEN];
	struct vmc_vfio_host host;
	bool managed; /* the backend rebinds it to vfio-pci */
	bool usable;  /* passed its host step */
	const struct vmc_hv_slot *slot;
	struct vmc_vfio_want want;
	bool added;
};

static const Vmcheck__V1__Link *link_on(const Vmcheck__V1__State *st, const char *pci)
{
	for (size_t i = 0; *pci && i < st->n_links; i++)
		if (vmc_chk_addr_eq(st->links[i]->pci_address, pci))
			return st->links[i];
	return NULL;
}

static void copy(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

bool vmc_vfio_guest_up(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	struct vmc_vfio_want *w = arg;
	const Vmcheck__V1__PciFunction *f = vmc_chk_pci_behind(st, w->port);
	const Vmcheck__V1__Link *l;

	if (!vmc_chk_section(st, VMCHECK__V1__SECTION__SECTION_PCI, why) ||
	    !vmc_chk_section(st, VMCHECK__V1__SECTION__SECTION_LINKS, why))
		return false;
	if (!f) {
		vmc_why_set(why, "no PCI function behind root port %s", w->port);
		return false;
	}
	copy(w->pci, sizeof(w->pci), f->address);
	if (f->vendor != w->vendor || f->device != w->device) {
		vmc_why_set(why, "%s behind %s is %04x:%04x, want the VF's %04x:%04x",
			    VMC_Q(f->address), w->port, f->vendor, f->device, w->vendor, w->device);
		return false;
	}
	if (!f->driver || !*f->driver) {
		vmc_why_set(why, "%s (%04x:%04x): no driver bound%s%s%s", VMC_Q(f->address),
			    f->vendor, f->device, w->driver ? " (want " : "",
			    w->driver ? w->driver : "", w->driver ? ": is it in the guest?)" : "");
		return false;
	}
	if (w->driver && strcmp(f->driver, w->driver)) {
		vmc_why_set(why, "%s: driver %s, want %s", VMC_Q(f->address), VMC_Q(f->driver),
			    w->driver);
		return false;
	}
	l = link_on(st, f->address);
	if (!l) {
		vmc_why_set(why, "%s bound to %s, no network link on it", VMC_Q(f->address),
			    VMC_Q(f->driver));
		return false;
	}
	copy(w->link, sizeof(w->link), l->name);
	copy(w->got_driver, sizeof(w->got_driver), f->driver);
	return true;
}

bool vmc_vfio_guest_gone(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const struct vmc_vfio_want *w = arg;
	const Vmcheck__V1__PciFunction *f = vmc_chk_pci_behind(st, w->port);
	const Vmcheck__V1__Link *l = link_on(st, w->pci);

	/* Absent from a section the agent could not read is not gone. */
	if (!vmc_chk_section(st, VMCHECK__V1__SECTION__SECTION_PCI, why) ||
	    !vmc_chk_section(st, VMCHECK__V1__SECTION__SECTION_LINKS, why))
		return false;
	if (f && f->vendor == w->vendor && f->device == w->device) {
		vmc_why_set(why, "%s (%04x:%04x) still behind %s", VMC_Q(f->address), f->vendor,
			    f->device, w->port);
		return false;
	}
	if (l) {
		vmc_why_set(why, "link %s still on %s", VMC_Q(l->name), VMC_Q(w->pci));
		return false;
	}
	return true;
}

static void note_host(struct vmc_step *s, const struct vmc_vfio_host *h)
{
	char peers[256] = "";
	size_t len = 0;

	for (size_t i = 0; i < h->n_peers && len < sizeof(peers); i++)
		len += (size_t)snprintf(peers + len, sizeof(peers) - len, "%s%s (%s)",
					i ? ", " : "", h->peers[i].addr,
					*h->peers[i].driver ? h->peers[i].driver : "no driver");
	if (*h->physfn)
		vmc_step_note(s, "%s [%04x:%04x], driver %s, VF of %s (driver %s)", h->addr,
			      h->vendor, h->device, *h->driver ? h->driver : "none", h->physfn,
			      *h->pf_driver ? h->pf_driver : "none");
	else
		vmc_step_note(s, "%s [%04x:%04x], driver %s, no VF", h->addr, h->vendor, h->device,
			      *h->driver ? h->driver : "none");
	if (h->group >= 0)
		vmc_step_note(s, "IOMMU group %d, %s; /dev/vfio/%d %s", h->group,
			      len ? peers : "no other member", h->group,
			      h->group_dev ? "exists" : "missing");
}

/* Step "host ADDR": the host's preconditions, before any action. */
static int host_step(struct vmc_ctx *c, int rootfd, struct vf *v)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step *s = vmc_step_begin(c, CHECK, "host %s", v->addr);
	int r = vmc_vfio_host_read(rootfd, v->addr, &v->host);

	if (r < 0)
		return vmc_step_end(s, r, "/sys/bus/pci/devices/%s: %s", v->addr,
				    r == -ENOENT ? "no such PCI device" : strerror(-r));
	note_host(s, &v->host);
	r = vmc_vfio_host_usable(&v->host, c->hv->ops->vfio_rebinds, &v->managed, &err);
	if (r < 0) {
		r = vmc_step_end(s, r, "%s", err.msg);
		vmc_error_clear(&err);
		return r;
	}
	if (v->managed)
		vmc_step_note(s,
			      "bound to %s: %s binds it to vfio-pci (managed='yes') and gives it "
			      "back after the unplug",
			      *v->host.driver ? v->host.driver : "no driver", c->hv->ops->name);
	v->usable = true;
	return vmc_step_end(s, 0, NULL);
}

/*
 * Without --vfio: the first VF the host can hand over. Returns 1 with
 * @v->addr set, 0 when there is none (the check is skipped with why).
 */
static int discover(struct vmc_ctx *c, int rootfd, struct vf *v)
{
	struct vmc_error err = VMC_ERROR_INIT;
	char **vfs = NULL, first[512] = "";
	int n = vmc_vfio_host_vfs(rootfd, &vfs), found = 0;

	if (n < 0) {
		vmc_step_skip(c, CHECK, "plug", "no PCI devices in the host's sysfs (%s)",
			      strerror(-n));
		return 0;
	}
	for (int i = 0; i < n && !found; i++) {
		struct vmc_vfio_host h;
		bool managed;

		if (vmc_vfio_host_read(rootfd, vfs[i], &h) < 0)
			continue;
		if (vmc_vfio_host_usable(&h, c->hv->ops->vfio_rebinds, &managed, &err) == 0) {
			copy(v->addr, sizeof(v->addr), vfs[i]);
			found = 1;
		} else if (!*first) {
			copy(first, sizeof(first), err.msg);
		}
		vmc_error_clear(&err);
		vmc_vfio_host_free(&h);
	}
	if (n == 0)
		vmc_step_skip(c, CHECK, "plug",
			      "no SR-IOV VF on this host (no /sys/bus/pci/devices/*/physfn); "
			      "name one with --vfio ADDR");
	else if (!found)
		vmc_step_skip(c, CHECK, "plug", "none of the host's %d VFs is usable: %s", n,
			      *first ? first : "unreadable");
	vmc_sysroot_names_free(vfs, n);
	return found;
}

static void ladder(struct vmc_step *s, struct vmc_ctx *c, const struct vf *v, bool gone)
{
	const Vmcheck__V1__Link *l = link_on(vmc_view(c), v->want.pci);
	const char *pci = *v->want.pci ? v->want.pci : v->want.port;
	char kobj[64];

	/* A VF's MAC comes from its PF or its driver: the link is known only once it is there. */
	if (l && l->mac && *l->mac)
		snprintf(kobj, sizeof(kobj), "link %s", l->mac);
	else
		snprintf(kobj, sizeof(kobj), "VF %04x:%04x", v->want.vendor, v->want.device);
	if (gone)
		vmc_step_ladder_gone(s, v->id, pci, kobj);
	else
		vmc_step_ladder(s, v->id, pci, kobj);
}

static int plug(struct vmc_ctx *c, struct vf *v)
{
	struct vmc_hv *hv = c->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_vfio spec = { .id = v->id,
				    .host = v->addr,
				    .slot = v->slot->id,
				    .managed = v->managed };
	struct vmc_step *s;
	int r;

	memset(&v->want, 0, sizeof(v->want));
	v->want.vendor = v->host.vendor;
	v->want.device = v->host.device;
	v->want.port = v->slot->address;
	v->want.driver = vmc_vfio_vf_driver(v->host.pf_driver);
	s = vmc_step_begin(c, CHECK, "plug %s (host %s) on %s", v->id, v->addr, v->slot->id);
	r = vmc_chk_slot_address(v->slot, &err);
	if (r == 0)
		r = hv->ops->vfio_add(hv, &spec, &err);
	r = vmc_step_acted(s, r, &err);
	vmc_error_clear(&err);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	v->added = true;
	r = vmc_step_expect(s, vmc_vfio_guest_up, &v->want, c->opts->deadline_ms);
	if (r == -ETIMEDOUT) {
		ladder(s, c, v, false);
	} else if (r == 0) {
		vmc_step_note(s, "%s at %s behind %s, driver %s", VMC_Q(v->want.link),
			      VMC_Q(v->want.pci), v->slot->address, VMC_Q(v->want.got_driver));
		if (!v->want.driver)
			vmc_step_note(s, "no VF driver known for PF driver \"%s\" to compare with",
				      v->host.pf_driver);
	}
	return vmc_step_end(s, r, NULL);
}

/*
 * The guest drops the function before QEMU reports DEVICE_DELETED: wait in that
 * order, within the architecture's unplug deadline.
 */
static int unplug(struct vmc_ctx *c, struct vf *v)
{
	struct vmc_hv *hv = c->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	unsigned deadline = vmc_chk_unplug_ms(c);
	struct vmc_step *s;
	bool pending = false, shown;
	int r;

	s = vmc_step_begin(c, CHECK, "unplug %s (host %s)", v->id, v->addr);
	shown = vmc_chk_shown(c, vmc_vfio_guest_gone, &v->want);
	r = vmc_chk_del(s, hv->ops->vfio_del(hv, v->id, &err), &err, &pending);
	if (r == 0)
		r = vmc_step_expect(s, vmc_vfio_guest_gone, &v->want, deadline);
	if (r == -ETIMEDOUT)
		ladder(s, c, v, true);
	else if (r == 0)
		r = vmc_chk_removed(c, s, v->id, pending, deadline);
	if (r == 0)
		v->added = false;
	return vmc_step_end(s, vmc_chk_seen_go(s, r, shown, v->id), NULL);
}

/* One plug/unplug cycle of every usable VF over free root ports found afresh. */
static int cycle(struct vmc_ctx *c, struct vf *vfs, size_t n, unsigned *seq)
{
	struct vmc_hv_slot *slots = NULL;
	size_t n_slots = 0, want = 0, k = 0;
	int r, rc = 0;

	for (size_t i = 0; i < n; i++)
		want += vfs[i].usable;
	r = vmc_chk_free_slots(c, CHECK, (unsigned)want, "--vfio", &slots, &n_slots);
	if (r <= 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (!vfs[i].usable)
			continue;
		snprintf(vfs[i].id, sizeof(vfs[i].id), "vf%u", ++*seq);
		vfs[i].slot = &slots[k++];
		r = plug(c, &vfs[i]);
		rc = rc ? rc : r;
		if (vmc_chk_fatal(r))
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (!vfs[i].added)
			continue;
		r = unplug(c, &vfs[i]);
		rc = rc ? rc : r;
		if (vmc_chk_fatal(r))
			break;
	}
out:
	vmc_hv_slots_free(slots, n_slots);
	return rc;
}

/* The VFs to try: each of --vfio's, or the one discover() found. */
static int pick(struct vmc_ctx *c, int rootfd, struct vf **out, size_t *n)
{
	const char *list = c->opts->vfio;
	struct vf *v;
	size_t k = 1;

	for (const char *p = list; p && *p; p++)
		k += *p == ',';
	v = calloc(k, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (!list) {
		if (!discover(c, rootfd, v)) {
			free(v);
			return 0;
		}
	} else {
		k = 0;
		for (const char *p = list; *p; p += strcspn(p, ","), p += *p == ',')
			snprintf(v[k++].addr, sizeof(v->addr), "%.*s", (int)strcspn(p, ","), p);
	}
	*out = v;
	*n = k;
	return 1;
}

int vmc_check_vfio(struct vmc_ctx *c)
{
	struct vmc_sysroot root;
	struct vf *vfs = NULL;
	unsigned seq = 0;
	size_t n = 0, usable = 0;
	int r, rc = 0, crc = 0;

	if (!c->hv->ops->vfio_add) {
		vmc_step_skip(c, CHECK, "plug", "the %s backend has no VFIO passthrough",
			      c->hv->ops->name);
		return 0;
	}
	r = vmc_sysroot_open(&root, NULL);
	if (r == 0) {
		r = pick(c, root.fd, &vfs, &n);
		for (size_t i = 0; r > 0 && i < n; i++) {
			int h = host_step(c, root.fd, &vfs[i]);

			rc = rc ? rc : h;
			usable += vfs[i].usable;
		}
		vmc_sysroot_close(&root);
	}
	if (r < 0) {
		struct vmc_error err = VMC_ERROR_INIT;

		vmc_error_set(&err, r, "reading the host's sysfs: %s", strerror(-r));
		r = vmc_chk_fail(c, CHECK, "host", r, &err);
		vmc_error_clear(&err);
		return r;
	}
	/*
	 * The VFs the host step passed go on (a refused one has not touched the
	 * VM); a failed cycle leaves the VM in an unknown state: repeating it
	 * measures nothing.
	 */
	for (unsigned i = 0; usable && i < c->opts->repeat && crc == 0; i++)
		crc = cycle(c, vfs, n, &seq);
	rc = rc ? rc : crc;
	for (size_t i = 0; i < n; i++)
		vmc_vfio_host_free(&vfs[i].host);
	free(vfs);
	return rc;
}
