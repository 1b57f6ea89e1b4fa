/* SPDX-License-Identifier: MIT */
/*
 * The detection ladder: for a device that did not show up (or did not go),
 * the layer where the guest stopped noticing it. This is what users work
 * out by hand today with info qtree, lspci, ls /sys/bus/pci/drivers, ip
 * link, lsblk, lsmem and lscpu, one layer at a time.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "escape.h"
#include "suite.h"

enum rung_state {
	R_PRESENT,
	R_ABSENT,
	R_NA,      /* does not apply to this kind of device */
	R_UNKNOWN, /* could not be found out */
};

struct rung {
	const char *name;
	enum rung_state state;
	char detail[256];
};

enum {
	HOST,
	PCI,
	DRIVER,
	KERNEL,
	ONLINE,
	USABLE,
	NRUNGS
};

enum kobj_kind {
	K_UNKNOWN,
	K_LINK,
	K_BLOCK,
	K_MEMORY,
	K_CPU
};

struct kobj {
	enum kobj_kind kind;
	char key[128];   /* MAC, serial */
	uint64_t lo, hi; /* memory block range, cpu id (lo) */
};

static void parse_kobj(const char *s, struct kobj *k)
{
	unsigned long long lo, hi;
	int n = 0;

	memset(k, 0, sizeof(*k));
	if (sscanf(s, "link %127s%n", k->key, &n) == 1 && !s[n]) {
		k->kind = K_LINK;
	} else if (sscanf(s, "block serial=%127s%n", k->key, &n) == 1 && !s[n]) {
		k->kind = K_BLOCK;
	} else if (sscanf(s, "memory blocks %llu-%llu%n", &lo, &hi, &n) == 2 && !s[n] && lo <= hi) {
		k->kind = K_MEMORY;
		k->lo = lo;
		k->hi = hi;
	} else if (sscanf(s, "memory blocks %llu%n", &lo, &n) == 1 && !s[n]) {
		k->kind = K_MEMORY;
		k->lo = k->hi = lo;
	} else if (sscanf(s, "cpu%llu%n", &lo, &n) == 1 && !s[n]) {
		k->kind = K_CPU;
		k->lo = lo;
	}
}

static void _printf_(3, 4) set(struct rung *r, enum rung_state st, const char *fmt, ...)
{
	va_list ap;

	r->state = st;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
}

/*
 * One line of the ladder on @fp: the rungs quote guest strings as they are
 * built (VMC_Q), and the usable rung is a message the check built, quoted
 * already; this last pass (escape.h) leaves that as it is and still stops
 * anything raw.
 */
static void _printf_(2, 3) line(FILE *fp, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmc_esc_vline(fp, 0, fmt, ap);
	va_end(ap);
}

static const Vmcheck__V1__PciFunction *pci_function(const Vmcheck__V1__State *st, const char *addr)
{
	for (size_t i = 0; st->pci && i < st->pci->n_functions; i++) {
		const Vmcheck__V1__PciFunction *f = st->pci->functions[i];

		if (f && f->address && !strcmp(f->address, addr))
			return f;
	}
	return NULL;
}

/* The first function whose upstream bridge is @bridge. */
static const Vmcheck__V1__PciFunction *pci_child(const Vmcheck__V1__State *st, const char *bridge)
{
	for (size_t i = 0; st->pci && i < st->pci->n_functions; i++) {
		const Vmcheck__V1__PciFunction *f = st->pci->functions[i];

		if (f && f->parent && !strcmp(f->parent, bridge))
			return f;
	}
	return NULL;
}

static const Vmcheck__V1__PciSlot *pci_slot(const Vmcheck__V1__State *st, const char *name)
{
	for (size_t i = 0; st->pci && name && *name && i < st->pci->n_slots; i++)
		if (st->pci->slots[i] && st->pci->slots[i]->name &&
		    !strcmp(st->pci->slots[i]->name, name))
			return st->pci->slots[i];
	return NULL;
}

static const char *tri(int32_t v, const char *off, const char *on)
{
	return v < 0 ? "unknown" : v ? on : off;
}

static const Vmcheck__V1__Link *find_link(const Vmcheck__V1__State *st, const char *mac)
{
	for (size_t i = 0; i < st->n_links; i++)
		if (st->links[i] && st->links[i]->mac && !strcasecmp(st->links[i]->mac, mac))
			return st->links[i];
	return NULL;
}

static const Vmcheck__V1__Block *find_block(const Vmcheck__V1__State *st, const char *serial)
{
	for (size_t i = 0; i < st->n_blocks; i++)
		if (st->blocks[i] && st->blocks[i]->serial &&
		    !strcmp(st->blocks[i]->serial, serial))
			return st->blocks[i];
	return NULL;
}

static const Vmcheck__V1__Cpu *find_cpu(const Vmcheck__V1__State *st, uint64_t id)
{
	for (size_t i = 0; st->cpus && i < st->cpus->n_cpus; i++)
		if (st->cpus->cpus[i] && st->cpus->cpus[i]->id == id)
			return st->cpus->cpus[i];
	return NULL;
}

static void host_rung(struct rung *r, struct vmc_hv *hv, const char *id)
{
	struct vmc_error err = VMC_ERROR_INIT;
	char *where = NULL;
	int p = hv->ops->device_present(hv, id, &where, &err);

	if (p > 0)
		set(r, R_PRESENT, "%s%s%s", id, where ? " on " : "", where ? where : "");
	else if (p == 0)
		set(r, R_ABSENT, "the hypervisor has no device %s", id);
	else
		set(r, R_UNKNOWN, "%s", err.msg ? err.msg : strerror(-p));
	free(where);
	vmc_error_clear(&err);
}

/* The PCI address the kernel object gives, when it exists. */
static const char *kobj_pci(const Vmcheck__V1__State *st, const struct kobj *k)
{
	const Vmcheck__V1__Link *l;
	const Vmcheck__V1__Block *b;

	if (k->kind == K_LINK && (l = find_link(st, k->key)))
		return l->pci_address;
	if (k->kind == K_BLOCK && (b = find_block(st, k->key)))
		return b->pci_address;
	return NULL;
}

/* Virtio device ids (the virtio specification's numbering) of what vmcheck plugs. */
static const char *virtio_type_name(uint32_t type)
{
	switch (type) {
	case 1:
		return "net";
	case 2:
		return "block";
	case 3:
		return "console";
	case 4:
		return "rng";
	case 5:
		return "balloon";
	case 8:
		return "scsi";
	default:
		return "?";
	}
}

/*
 * The driver that makes the device what it is. For a virtio function the
 * PCI driver (virtio-pci) is only the transport: the NIC or disk driver is
 * bound to the virtio device on the virtio bus, which an agent of protocol
 * minor 1 reports.
 */
static void driver_rung(struct rung *rd, const Vmcheck__V1__PciFunction *f)
{
	if (f->virtio_device && *f->virtio_device) {
		if (f->virtio_driver && *f->virtio_driver)
			set(rd, R_PRESENT, "%s on %s (type %s; PCI transport %s)",
			    VMC_Q(f->virtio_driver), VMC_Q(f->virtio_device),
			    virtio_type_name(f->virtio_type),
			    *f->driver ? VMC_Q(f->driver) : "unbound");
		else
			set(rd, R_ABSENT,
			    "virtio device %s (type %s) has no driver (PCI transport %s)",
			    VMC_Q(f->virtio_device), virtio_type_name(f->virtio_type),
			    *f->driver ? VMC_Q(f->driver) : "unbound");
		return;
	}
	if (f->driver && *f->driver)
		set(rd, R_PRESENT, "%s", VMC_Q(f->driver));
	else
		set(rd, R_ABSENT, "no driver bound to %s", VMC_Q(f->address));
}

static void pci_rungs(struct rung *rp, struct rung *rd, const Vmcheck__V1__State *st,
		      const char *pci, const struct kobj *k)
{
	const Vmcheck__V1__PciFunction *f = NULL;
	const Vmcheck__V1__PciSlot *slot;
	const char *known = kobj_pci(st, k);
	char slot_text[VMC_Q_SIZE + 64] = "";

	if ((!pci || !*pci) && (!known || !*known)) {
		if (k->kind == K_MEMORY || k->kind == K_CPU) {
			set(rp, R_NA, "not a PCI device");
			set(rd, R_NA, "ACPI");
		} else {
			set(rp, R_UNKNOWN, "no PCI address known");
			set(rd, R_UNKNOWN, "no PCI function known");
		}
		return;
	}
	if (!(st->sections & VMCHECK__V1__SECTION__SECTION_PCI)) {
		set(rp, R_UNKNOWN, "the agent reported no pci section");
		set(rd, R_UNKNOWN, "the agent reported no pci section");
		return;
	}
	if (pci && *pci) {
		f = pci_function(st, pci);
		/* A bridge (the root port): the device is what sits behind it. */
		if (f && (f->class_code >> 8) == 0x0604) {
			f = pci_child(st, pci);
			if (!f) {
				set(rp, R_ABSENT, "no function behind the port at %s", VMC_Q(pci));
				set(rd, R_ABSENT, "no function to bind");
				return;
			}
		}
	}
	if (!f && known && *known)
		f = pci_function(st, known);
	if (!f) {
		set(rp, R_ABSENT, "no function at %s", VMC_Q(pci && *pci ? pci : known));
		set(rd, R_ABSENT, "no function to bind");
		return;
	}
	slot = pci_slot(st, f->slot);
	if (slot)
		snprintf(slot_text, sizeof(slot_text), ", slot %s: power %s, adapter %s",
			 VMC_Q(slot->name), tri(slot->power, "off", "on"),
			 tri(slot->presence, "empty", "present"));
	set(rp, R_PRESENT, "%s [%04x:%04x]%s", VMC_Q(f->address), f->vendor, f->device, slot_text);
	driver_rung(rd, f);
}

/*
 * Blocks of a DIMM arrive and leave one by one: for an appearance the range
 * holds when every block does, for a removal it is still there while any is.
 */
static void memory_rungs(struct rung *rk, struct rung *ro, const Vmcheck__V1__State *st,
			 const struct kobj *k, bool gone)
{
	uint64_t want = k->hi - k->lo + 1, present = 0, online = 0;
	const Vmcheck__V1__Memory *m = st->memory;

	for (size_t i = 0; m && i < m->n_blocks; i++) {
		const Vmcheck__V1__MemoryBlock *b = m->blocks[i];

		if (!b || b->index < k->lo || b->index > k->hi)
			continue;
		present++;
		online += b->state == VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE;
	}
	set(rk, (gone ? present > 0 : present == want) ? R_PRESENT : R_ABSENT,
	    "%llu of %llu memory blocks %llu-%llu", (unsigned long long)present,
	    (unsigned long long)want, (unsigned long long)k->lo, (unsigned long long)k->hi);
	set(ro, (gone ? online > 0 : online == want) ? R_PRESENT : R_ABSENT, "%llu of %llu online",
	    (unsigned long long)online, (unsigned long long)want);
}

static void kernel_rungs(struct rung *rk, struct rung *ro, const Vmcheck__V1__State *st,
			 const char *kobj, const struct kobj *k, bool gone)
{
	const Vmcheck__V1__Link *l;
	const Vmcheck__V1__Block *b;
	const Vmcheck__V1__Cpu *c;

	switch (k->kind) {
	case K_LINK:
		l = find_link(st, k->key);
		if (!l) {
			set(rk, R_ABSENT, "no link with MAC %s", k->key);
			set(ro, R_NA, "links are not brought up by the check");
			break;
		}
		set(rk, R_PRESENT, "%s (ifindex %u)", VMC_Q(l->name), l->ifindex);
		set(ro, R_NA, "operstate %s", l->operstate ? VMC_Q(l->operstate) : "?");
		break;
	case K_BLOCK:
		b = find_block(st, k->key);
		if (!b) {
			set(rk, R_ABSENT, "no block device with serial %s", k->key);
			set(ro, R_ABSENT, "no block device");
			break;
		}
		set(rk, R_PRESENT, "%s", VMC_Q(b->name));
		set(ro, b->size_bytes ? R_PRESENT : R_ABSENT, "size %llu bytes",
		    (unsigned long long)b->size_bytes);
		break;
	case K_MEMORY:
		memory_rungs(rk, ro, st, k, gone);
		break;
	case K_CPU:
		c = find_cpu(st, k->lo);
		if (!c || !c->present) {
			set(rk, R_ABSENT, "cpu%llu not present (present: %s)",
			    (unsigned long long)k->lo,
			    st->cpus && st->cpus->present ? VMC_Q(st->cpus->present) : "?");
			set(ro, R_ABSENT, "not present");
			break;
		}
		set(rk, R_PRESENT, "cpu%u present", c->id);
		set(ro, c->online ? R_PRESENT : R_ABSENT, "cpu%u %s", c->id,
		    c->online ? "online" : "offline");
		break;
	case K_UNKNOWN:
		set(rk, R_UNKNOWN, "unknown object \"%s\"", kobj);
		set(ro, R_UNKNOWN, "unknown object");
		break;
	}
}

static const char *state_word(const struct rung *r, bool gone)
{
	switch (r->state) {
	case R_PRESENT:
		return gone ? "present" : "ok";
	case R_ABSENT:
		return gone ? "gone" : "MISSING";
	case R_NA:
		return "n/a";
	default:
		return "?";
	}
}

int vmc_ladder_write(FILE *fp, struct vmc_hv *hv, const Vmcheck__V1__State *st, const char *hv_id,
		     const char *pci, const char *kobj, bool gone, int usable,
		     const char *usable_text)
{
	static const int appear_order[] = { HOST, PCI, DRIVER, KERNEL, ONLINE, USABLE };
	static const int gone_order[] = { ONLINE, KERNEL, DRIVER, PCI, HOST };
	struct rung r[NRUNGS] = {
		[HOST] = { .name = "host" },     [PCI] = { .name = "pci" },
		[DRIVER] = { .name = "driver" }, [KERNEL] = { .name = "kernel" },
		[ONLINE] = { .name = "online" }, [USABLE] = { .name = "usable" },
	};
	const int *order = gone ? gone_order : appear_order;
	size_t n = gone ? ARRAY_SIZE(gone_order) : ARRAY_SIZE(appear_order);
	int stopped = -1;
	struct kobj k;

	parse_kobj(kobj ? kobj : "", &k);
	host_rung(&r[HOST], hv, hv_id);
	pci_rungs(&r[PCI], &r[DRIVER], st, pci, &k);
	kernel_rungs(&r[KERNEL], &r[ONLINE], st, kobj ? kobj : "", &k, gone);
	if (usable < 0)
		set(&r[USABLE], R_NA, "%s", usable_text ? usable_text : "no usage probe ran");
	else
		set(&r[USABLE], usable ? R_PRESENT : R_ABSENT, "%s",
		    usable_text ? usable_text
		    : usable    ? "used"
				: "not usable");

	/* Details quote the guest's names as they are built; lines take the last pass. */
	line(fp, "detection ladder (%s) for %s, %s%s%s:",
	     gone ? "removal: guest first, host last" : "appearance: host first", hv_id,
	     kobj ? kobj : "?", pci && *pci ? ", pci " : "", pci && *pci ? VMC_Q(pci) : "");
	for (size_t i = 0; i < n; i++) {
		const struct rung *g = &r[order[i]];
		bool stop = stopped < 0 && g->state == (gone ? R_PRESENT : R_ABSENT);

		if (stop)
			stopped = order[i];
		line(fp, "  %-7s %-8s %s%s", g->name, state_word(g, gone), g->detail,
		     stop ? (gone ? "   <- stopped here (still present)" : "   <- stopped here")
			  : "");
	}
	return stopped;
}
