/* SPDX-License-Identifier: MIT */
/*
 * NIC hotplug: virtio-net-pci devices on free root ports, each found in the
 * guest by its MAC and by the PCI function behind its port, bound to
 * virtio_net; then each unplugged: the link gone and DEVICE_DELETED seen.
 */
#include <stdio.h>
#include <stdlib.h>

#include "check-util.h"

#define CHECK "nic"

struct nic {
	char id[16];
	char mac[18];
	const struct vmc_hv_slot *slot;
	struct vmc_chk_nic want;
	bool added; /* the hypervisor has it: unplug it whatever the guest saw */
};

static void ladder(struct vmc_step *s, const struct nic *n, bool gone)
{
	const char *pci = *n->want.pci ? n->want.pci : n->want.port;
	char kobj[32];

	snprintf(kobj, sizeof(kobj), "link %s", n->mac);
	/* Before the function shows, the ladder starts from the port it should sit behind. */
	if (gone)
		vmc_step_ladder_gone(s, n->id, pci, kobj);
	else
		vmc_step_ladder(s, n->id, pci, kobj);
}

static int plug(struct vmc_ctx *c, struct nic *n)
{
	struct vmc_hv *hv = c->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_nic spec = {.id = n->id, .mac = n->mac, .slot = n->slot->id};
	struct vmc_step *s;
	int r;

	s = vmc_step_begin(c, CHECK, "plug %s (%s) on %s", n->id, n->mac, n->slot->id);
	r = vmc_chk_slot_address(n->slot, &err);
	if (r == 0)
		r = hv->ops->nic_add(hv, &spec, &err);
	r = vmc_step_acted(s, r, &err);
	vmc_error_clear(&err);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	n->added = true;
	r = vmc_step_expect(s, vmc_chk_nic_up, &n->want, c->opts->deadline_ms);
	if (r == -ETIMEDOUT)
		ladder(s, n, false);
	else if (r == 0)
		vmc_step_note(s, "%s at %s behind %s", n->want.name, n->want.pci, n->slot->address);
	return vmc_step_end(s, r, NULL);
}

/* The guest drops the link ~0.4 s before QEMU reports DEVICE_DELETED: wait in that order. */
static int unplug(struct vmc_ctx *c, struct nic *n)
{
	struct vmc_hv *hv = c->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	unsigned deadline = c->opts->deadline_ms;
	struct vmc_step *s;
	int r;

	s = vmc_step_begin(c, CHECK, "unplug %s (%s)", n->id, n->mac);
	r = vmc_step_acted(s, hv->ops->nic_del(hv, n->id, &err), &err);
	vmc_error_clear(&err);
	if (r == 0)
		r = vmc_step_expect(s, vmc_chk_nic_gone, &n->want, deadline);
	if (r == 0)
		r = vmc_step_expect_event(s, VMC_EV_DEVICE_DELETED, n->id, deadline);
	if (r == 0)
		n->added = false;
	else if (r == -ETIMEDOUT)
		ladder(s, n, true);
	return vmc_step_end(s, r, NULL);
}

/*
 * One plug/unplug cycle over free root ports discovered afresh (a device
 * that did not go away keeps its port). NIC ids and MACs continue across
 * cycles so a late event of one cycle cannot be taken for the next's.
 */
static int cycle(struct vmc_ctx *c, unsigned *seq)
{
	const struct vmc_run_opts *o = c->opts;
	struct vmc_hv_slot *slots = NULL;
	struct nic *nics;
	size_t n_slots = 0;
	int r, rc = 0;

	r = vmc_chk_free_slots(c, CHECK, o->nics, "--nics", &slots, &n_slots);
	if (r <= 0)
		return r;
	nics = calloc(o->nics, sizeof(*nics));
	if (!nics) {
		vmc_hv_slots_free(slots, n_slots);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < o->nics; i++) {
		struct nic *n = &nics[i];

		++*seq;
		snprintf(n->id, sizeof(n->id), "nic%u", *seq);
		vmc_chk_mac(vmc_chk_run_tag(), *seq, n->mac);
		n->slot = &slots[i];
		n->want.mac = n->mac;
		n->want.port = n->slot->address;
		r = plug(c, n);
		rc = rc ? rc : r;
		if (vmc_chk_fatal(r))
			goto out;
	}
	for (unsigned i = 0; i < o->nics; i++) {
		if (!nics[i].added)
			continue;
		r = unplug(c, &nics[i]);
		rc = rc ? rc : r;
		if (vmc_chk_fatal(r))
			break;
	}
out:
	free(nics);
	vmc_hv_slots_free(slots, n_slots);
	return rc;
}

int vmc_check_nic(struct vmc_ctx *c)
{
	unsigned seq = 0;
	int rc = 0;

	if (!c->opts->nics) {
		vmc_step_skip(c, CHECK, "plug", "--nics 0");
		return 0;
	}
	/* A failed cycle leaves the VM in an unknown state: repeating it measures nothing. */
	for (unsigned i = 0; i < c->opts->repeat && rc == 0; i++)
		rc = cycle(c, &seq);
	return rc;
}
