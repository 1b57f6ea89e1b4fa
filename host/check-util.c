/* SPDX-License-Identifier: MIT */
/*
 * What the hotplug checks share: device identities, predicates over the merged
 * view, and the steps that remove a device and judge its removal.
 */
#include "check-util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "escape.h"
#include "parse.h"

unsigned vmc_chk_run_tag(void)
{
	static unsigned tag;
	static bool drawn;
	uint16_t r;

	if (!drawn) {
		/* No entropy yet (early boot): the pid and the clock still differ per run. */
		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
			r = (uint16_t)(getpid() ^ vmc_mono_ns());
		tag = r;
		drawn = true;
	}
	return tag;
}

void vmc_chk_mac(unsigned run, unsigned seq, char out[18])
{
	snprintf(out, 18, "52:54:00:76:%02x:%02x", run & 0xff, seq & 0xff);
}

bool vmc_chk_addr_eq(const char *a, const char *b)
{
	return a && b && !strcasecmp(a, b);
}

const Vmcheck__V1__SectionError *vmc_chk_section_error(const Vmcheck__V1__State *st, uint32_t bit)
{
	for (size_t i = 0; i < st->n_errors; i++)
		if (st->errors[i] && (uint32_t)st->errors[i]->section == bit)
			return st->errors[i];
	return NULL;
}

bool vmc_chk_section(const Vmcheck__V1__State *st, uint32_t bit, struct vmc_why *why)
{
	const Vmcheck__V1__SectionError *e = vmc_chk_section_error(st, bit);
	const char *name = vmc_section_name(bit);

	if (e) {
		vmc_why_set(why, "the agent could not read the %s section: %s", name ? name : "?",
			    e->message && *e->message ? VMC_Q(e->message)
			    : e->errno_value > 0      ? strerror(e->errno_value)
						      : "no reason given");
		return false;
	}
	if (!(st->sections & bit)) {
		vmc_why_set(why, "the agent has sent no %s section", name ? name : "?");
		return false;
	}
	return true;
}

#define SEC(x) VMCHECK__V1__SECTION__SECTION_##x

const Vmcheck__V1__Link *vmc_chk_link_by_mac(const Vmcheck__V1__State *st, const char *mac)
{
	for (size_t i = 0; i < st->n_links; i++)
		if (vmc_chk_addr_eq(st->links[i]->mac, mac))
			return st->links[i];
	return NULL;
}

const Vmcheck__V1__Block *vmc_chk_block_by_serial(const Vmcheck__V1__State *st, const char *serial)
{
	/* A partition may carry its disk's serial: the identity is the whole disk's. */
	for (size_t i = 0; i < st->n_blocks; i++)
		if (!*st->blocks[i]->parent && !strcmp(st->blocks[i]->serial, serial))
			return st->blocks[i];
	return NULL;
}

const Vmcheck__V1__PciFunction *vmc_chk_pci_function(const Vmcheck__V1__State *st, const char *addr)
{
	if (!st->pci)
		return NULL;
	for (size_t i = 0; i < st->pci->n_functions; i++)
		if (vmc_chk_addr_eq(st->pci->functions[i]->address, addr))
			return st->pci->functions[i];
	return NULL;
}

const Vmcheck__V1__PciFunction *vmc_chk_pci_behind(const Vmcheck__V1__State *st, const char *port)
{
	if (!st->pci)
		return NULL;
	for (size_t i = 0; i < st->pci->n_functions; i++)
		if (vmc_chk_addr_eq(st->pci->functions[i]->parent, port))
			return st->pci->functions[i];
	return NULL;
}

const Vmcheck__V1__MemoryBlock *vmc_chk_memblock(const Vmcheck__V1__State *st, uint64_t index)
{
	if (!st->memory)
		return NULL;
	for (size_t i = 0; i < st->memory->n_blocks; i++)
		if (st->memory->blocks[i]->index == index)
			return st->memory->blocks[i];
	return NULL;
}

static bool in_cpulist(const char *list, unsigned id)
{
	bool in = false;

	/* A malformed list (never from a sane agent) contains nothing. */
	return list && vmc_parse_cpulist_contains(list, id, &in) == 0 && in;
}

const Vmcheck__V1__Cpu *vmc_chk_cpu_present(const Vmcheck__V1__State *st, unsigned id)
{
	if (!st->cpus || !in_cpulist(st->cpus->present, id))
		return NULL;
	for (size_t i = 0; i < st->cpus->n_cpus; i++)
		if (st->cpus->cpus[i]->id == id && st->cpus->cpus[i]->present)
			return st->cpus->cpus[i];
	return NULL;
}

static void copy_name(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

/*
 * The device's function must be the one behind @port: the same MAC or
 * serial on another port would be somebody else's device. Fills @pci with
 * what is behind the port, for the ladder.
 */
static bool behind_port(const Vmcheck__V1__State *st, const char *what, const char *addr,
			const char *port, char pci[VMC_CHK_PCI_LEN], struct vmc_why *why)
{
	const Vmcheck__V1__PciFunction *f = vmc_chk_pci_behind(st, port);

	if (f)
		copy_name(pci, VMC_CHK_PCI_LEN, f->address);
	if (!addr || !*addr) {
		vmc_why_set(why, "%s: no PCI address", what);
		return false;
	}
	f = vmc_chk_pci_function(st, addr);
	if (!f) {
		vmc_why_set(why, "%s: PCI function %s not in the PCI section", what, VMC_Q(addr));
		return false;
	}
	if (!vmc_chk_addr_eq(f->parent, port)) {
		vmc_why_set(why, "%s: PCI function %s sits behind %s, want root port %s", what,
			    VMC_Q(addr), *f->parent ? VMC_Q(f->parent) : "the root bus", port);
		return false;
	}
	return true;
}

bool vmc_chk_nic_up(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	struct vmc_chk_nic *n = arg;
	const Vmcheck__V1__PciFunction *f = vmc_chk_pci_behind(st, n->port);
	const Vmcheck__V1__Link *l = vmc_chk_link_by_mac(st, n->mac);
	char what[VMC_Q_SIZE + 32];

	if (!vmc_chk_section(st, SEC(LINKS), why) || !vmc_chk_section(st, SEC(PCI), why))
		return false;
	if (f)
		copy_name(n->pci, sizeof(n->pci), f->address);
	if (!l) {
		vmc_why_set(why, "no link with MAC %s", n->mac);
		return false;
	}
	copy_name(n->name, sizeof(n->name), l->name);
	snprintf(what, sizeof(what), "link %s (%s)", VMC_Q(l->name), n->mac);
	if (!behind_port(st, what, l->pci_address, n->port, n->pci, why))
		return false;
	if (strcmp(l->driver, "virtio_net")) {
		vmc_why_set(why, "%s: driver \"%s\", want virtio_net", what, VMC_Q(l->driver));
		return false;
	}
	return true;
}

bool vmc_chk_nic_gone(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const struct vmc_chk_nic *n = arg;
	const Vmcheck__V1__Link *l = vmc_chk_link_by_mac(st, n->mac);

	/* Absent from a section the agent could not read is not gone. */
	if (!vmc_chk_section(st, SEC(LINKS), why))
		return false;
	if (l) {
		vmc_why_set(why, "link %s with MAC %s still there", VMC_Q(l->name), n->mac);
		return false;
	}
	return true;
}

bool vmc_chk_disk_up(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	struct vmc_chk_disk *d = arg;
	const Vmcheck__V1__PciFunction *f = vmc_chk_pci_behind(st, d->port);
	const Vmcheck__V1__Block *b = vmc_chk_block_by_serial(st, d->serial);
	char what[VMC_Q_SIZE + 32];

	if (!vmc_chk_section(st, SEC(BLOCKS), why) || !vmc_chk_section(st, SEC(PCI), why))
		return false;
	if (f)
		copy_name(d->pci, sizeof(d->pci), f->address);
	if (!b) {
		vmc_why_set(why, "no block device with serial %s", d->serial);
		return false;
	}
	copy_name(d->name, sizeof(d->name), b->name);
	snprintf(what, sizeof(what), "%s (serial %s)", VMC_Q(b->name), d->serial);
	if (strcmp(b->type, "disk")) {
		vmc_why_set(why, "%s: type \"%s\", want disk", what, VMC_Q(b->type));
		return false;
	}
	/* A virtio-blk disk shows size 0 until its capacity is read: wait. */
	if (b->size_bytes != d->size) {
		vmc_why_set(why, "%s: size %llu, want %llu", what,
			    (unsigned long long)b->size_bytes, (unsigned long long)d->size);
		return false;
	}
	return behind_port(st, what, b->pci_address, d->port, d->pci, why);
}

bool vmc_chk_disk_gone(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const struct vmc_chk_disk *d = arg;
	const Vmcheck__V1__Block *b = vmc_chk_block_by_serial(st, d->serial);

	if (!vmc_chk_section(st, SEC(BLOCKS), why))
		return false;
	if (b) {
		vmc_why_set(why, "block device %s with serial %s still there", VMC_Q(b->name),
			    d->serial);
		return false;
	}
	return true;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

int vmc_chk_dimm_init(struct vmc_chk_dimm *d, const Vmcheck__V1__State *st, uint64_t size)
{
	const Vmcheck__V1__Memory *m = st->memory;

	memset(d, 0, sizeof(*d));
	if (!vmc_chk_section(st, SEC(MEMORY), &(struct vmc_why){ .text = "" }) || !m ||
	    !m->block_size)
		return -ENOENT;
	d->base = calloc(m->n_blocks ? m->n_blocks : 1, sizeof(*d->base));
	if (!d->base)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_blocks; i++)
		d->base[i] = m->blocks[i]->index;
	qsort(d->base, m->n_blocks, sizeof(*d->base), u64_cmp);
	d->n_base = m->n_blocks;
	d->base_online = m->online_bytes;
	d->block_size = m->block_size;
	d->size = size;
	return 0;
}

int vmc_chk_dimm_place(struct vmc_chk_dimm *d, uint64_t addr, uint64_t size, struct vmc_error *err)
{
	char a[32], b[32];

	if (size != d->size)
		return vmc_error_set(
			err, -EINVAL,
			"the hypervisor reports the DIMM at 0x%llx with %s, asked for %s",
			(unsigned long long)addr, vmc_chk_bytes(size, a),
			vmc_chk_bytes(d->size, b));
	/* A DIMM not aligned to the guest's blocks cannot be told by them: refuse to guess. */
	if (addr % d->block_size || size % d->block_size || !size)
		return vmc_error_set(err, -EINVAL,
				     "the DIMM at 0x%llx (%s) is not aligned to the guest's memory "
				     "block size %s",
				     (unsigned long long)addr, vmc_chk_bytes(size, a),
				     vmc_chk_bytes(d->block_size, b));
	d->addr = addr;
	d->first = addr / d->block_size;
	d->count = size / d->block_size;
	return 0;
}

void vmc_chk_dimm_free(struct vmc_chk_dimm *d)
{
	free(d->base);
	d->base = NULL;
	d->n_base = 0;
}

static bool in_base(const struct vmc_chk_dimm *d, uint64_t index)
{
	return bsearch(&index, d->base, d->n_base, sizeof(*d->base), u64_cmp) != NULL;
}

/* The guest's memory section, fresh, with the block size the DIMM was placed by. */
static const Vmcheck__V1__Memory *dimm_memory(const Vmcheck__V1__State *st,
					      const struct vmc_chk_dimm *d, struct vmc_why *why)
{
	if (!vmc_chk_section(st, SEC(MEMORY), why))
		return NULL;
	if (!st->memory || st->memory->block_size != d->block_size) {
		vmc_why_final(why, "the guest's memory block size changed from %llu to %llu",
			      (unsigned long long)d->block_size,
			      (unsigned long long)(st->memory ? st->memory->block_size : 0));
		return NULL;
	}
	return st->memory;
}

/* "40-41 43" into @buf: new blocks outside the DIMM's range, at most a few. */
static size_t strays(const Vmcheck__V1__Memory *m, const struct vmc_chk_dimm *d, char *buf,
		     size_t size)
{
	size_t n = 0, len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < m->n_blocks; i++) {
		uint64_t idx = m->blocks[i]->index;

		if (in_base(d, idx) || (idx >= d->first && idx < d->first + d->count))
			continue;
		if (n++ < 8 && len < size)
			len += (size_t)snprintf(buf + len, size - len, "%s%llu", len ? " " : "",
						(unsigned long long)idx);
	}
	if (n > 8 && len < size)
		snprintf(buf + len, size - len, " (%zu in all)", n);
	return n;
}

bool vmc_chk_dimm_blocks(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const struct vmc_chk_dimm *d = arg;
	const Vmcheck__V1__Memory *m = dimm_memory(st, d, why);
	uint64_t have = 0, missing = UINT64_MAX;
	char other[160];

	if (!m)
		return false;
	for (uint64_t i = d->first; i < d->first + d->count; i++) {
		if (vmc_chk_memblock(st, i))
			have++;
		else if (missing == UINT64_MAX)
			missing = i;
	}
	if (strays(m, d, other, sizeof(other))) {
		vmc_why_set(why,
			    "new memory blocks %s lie outside the DIMM at 0x%llx (blocks %llu-%llu); "
			    "%llu of its %llu blocks present",
			    other, (unsigned long long)d->addr, (unsigned long long)d->first,
			    (unsigned long long)(d->first + d->count - 1), (unsigned long long)have,
			    (unsigned long long)d->count);
		return false;
	}
	if (have < d->count) {
		vmc_why_set(why,
			    "%llu of the DIMM's %llu memory blocks %llu-%llu present (block %llu "
			    "missing)",
			    (unsigned long long)have, (unsigned long long)d->count,
			    (unsigned long long)d->first,
			    (unsigned long long)(d->first + d->count - 1),
			    (unsigned long long)missing);
		return false;
	}
	return true;
}

bool vmc_chk_dimm_online(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const struct vmc_chk_dimm *d = arg;
	const Vmcheck__V1__Memory *m = dimm_memory(st, d, why);
	const Vmcheck__V1__MemoryBlock *b;

	if (!m || !vmc_chk_dimm_blocks(st, arg, why))
		return false;
	for (uint64_t i = d->first; i < d->first + d->count; i++) {
		b = vmc_chk_memblock(st, i);
		if (b->state != VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE) {
			vmc_why_set(why, "memory block %llu not online", (unsigned long long)i);
			return false;
		}
		/* An online block's valid_zones names the one zone it is in. */
		if (d->movable && strcmp(b->valid_zones, "Movable")) {
			vmc_why_final(why,
				      "memory block %llu is online in zone \"%s\", not Movable: the "
				      "guest will not be able to unplug it",
				      (unsigned long long)i, VMC_Q(b->valid_zones));
			return false;
		}
	}
	if (m->online_bytes != d->base_online + d->size) {
		vmc_why_set(why, "online memory %llu bytes, want %llu + %llu",
			    (unsigned long long)m->online_bytes, (unsigned long long)d->base_online,
			    (unsigned long long)d->size);
		return false;
	}
	return true;
}

void vmc_chk_dimm_unplugging(struct vmc_chk_dimm *d, const Vmcheck__V1__State *st)
{
	uint64_t on = 0;

	if (!st->memory)
		return;
	for (uint64_t i = d->first; i < d->first + d->count; i++) {
		const Vmcheck__V1__MemoryBlock *b = vmc_chk_memblock(st, i);

		on += b && b->state == VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE;
	}
	d->left_online = st->memory->online_bytes - on * st->memory->block_size;
}

bool vmc_chk_dimm_gone(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const struct vmc_chk_dimm *d = arg;
	const Vmcheck__V1__Memory *m = dimm_memory(st, d, why);

	if (!m)
		return false;
	for (uint64_t i = d->first; i < d->first + d->count; i++) {
		if (vmc_chk_memblock(st, i)) {
			vmc_why_set(why, "memory block %llu still there", (unsigned long long)i);
			return false;
		}
	}
	if (m->online_bytes != d->left_online) {
		vmc_why_set(why, "online memory %llu bytes, want %llu",
			    (unsigned long long)m->online_bytes,
			    (unsigned long long)d->left_online);
		return false;
	}
	return true;
}

void vmc_chk_cpu_init(struct vmc_chk_cpu *c, const Vmcheck__V1__State *st,
		      const struct vmc_hv_cpu *where, bool thread_known)
{
	memset(c, 0, sizeof(*c));
	c->id = -1;
	snprintf(c->base_present, sizeof(c->base_present), "%s",
		 st->cpus && st->cpus->present ? st->cpus->present : "");
	c->socket_id = where->socket_id;
	c->die_id = where->die_id;
	c->core_id = where->core_id;
	c->thread_id = where->thread_id;
	c->thread_known = thread_known;
}

bool vmc_chk_cpu_up(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	struct vmc_chk_cpu *c = arg;
	char news[128] = "";
	size_t len = 0, n = 0;
	int id = -1;

	if (!vmc_chk_section(st, SEC(CPUS), why))
		return false;
	/* The CPU QEMU added is the one CPU the guest has that it had not: no id is assumed. */
	for (size_t i = 0; st->cpus && i < st->cpus->n_cpus; i++) {
		const Vmcheck__V1__Cpu *p = st->cpus->cpus[i];

		if (!p->present || !in_cpulist(st->cpus->present, p->id) ||
		    in_cpulist(c->base_present, p->id))
			continue;
		id = (int)p->id;
		n++;
		if (len < sizeof(news))
			len += (size_t)snprintf(news + len, sizeof(news) - len, " cpu%u", p->id);
	}
	if (n == 0) {
		vmc_why_set(why, "no new CPU (present %s, before the plug %s)",
			    st->cpus ? VMC_Q(st->cpus->present) : "?", VMC_Q(c->base_present));
		return false;
	}
	if (n > 1) {
		vmc_why_final(why, "%zu new CPUs for one vCPU:%s (present before the plug %s)", n,
			      news, VMC_Q(c->base_present));
		return false;
	}
	c->id = id;
	return true;
}

bool vmc_chk_cpu_online(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const struct vmc_chk_cpu *c = arg;
	const Vmcheck__V1__Cpu *p;

	if (!vmc_chk_section(st, SEC(CPUS), why))
		return false;
	p = c->id >= 0 ? vmc_chk_cpu_present(st, (unsigned)c->id) : NULL;
	if (!p || !p->online) {
		vmc_why_set(why, "cpu%d %s", c->id, p ? "offline" : "not present");
		return false;
	}
	return true;
}

void vmc_chk_cpu_views(const struct vmc_chk_cpu *c, const Vmcheck__V1__Cpu *p, char *buf,
		       size_t size)
{
	snprintf(buf, size,
		 "QEMU: socket-id %d die-id %d core-id %d thread-id %d; guest cpu%d: "
		 "physical_package_id %d die_id %d core_id %d thread %d%s (apicid %lld)",
		 c->socket_id, c->die_id, c->core_id, c->thread_id, c->id, p ? p->package_id : -1,
		 p ? p->die_id : -1, p ? p->core_id : -1, p && c->thread_known ? p->thread_id : -1,
		 c->thread_known ? "" : " unknown to this agent",
		 (long long)(p && c->thread_known ? p->apic_id : -1));
}

/* Does the guest's id @guest agree with QEMU's @qemu (-1: QEMU has no such property)? */
static bool topo_eq(int qemu, int32_t guest)
{
	/* A property QEMU's machine lacks has one value: 0 in Linux's terms. */
	return qemu < 0 ? guest <= 0 : guest == qemu;
}

bool vmc_chk_cpu_topology(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const struct vmc_chk_cpu *c = arg;
	const Vmcheck__V1__Cpu *p;
	char views[320];

	if (!vmc_chk_cpu_online(st, arg, why))
		return false;
	p = vmc_chk_cpu_present(st, (unsigned)c->id);
	/* The kernel shows a CPU's topology only once it is online: wait for the ids. */
	if (p->core_id < 0 || p->package_id < 0) {
		vmc_why_set(why, "cpu%d: no topology ids yet", c->id);
		return false;
	}
	vmc_chk_cpu_views(c, p, views, sizeof(views));
	/*
	 * Linux counts core_id within the package, QEMU core-id within the die:
	 * with one die per socket (die-id 0 or none) the two are the same.
	 */
	if (!topo_eq(c->socket_id, p->package_id) || !topo_eq(c->die_id, p->die_id) ||
	    (c->die_id <= 0 && !topo_eq(c->core_id, p->core_id)) ||
	    (c->thread_known && !topo_eq(c->thread_id, p->thread_id))) {
		vmc_why_final(why, "the new CPU is not where QEMU put the vCPU: %s", views);
		return false;
	}
	return true;
}

bool vmc_chk_cpu_gone(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const struct vmc_chk_cpu *c = arg;

	if (c->id < 0) {
		vmc_why_final(why, "the guest never showed the CPU: its removal cannot be judged");
		return false;
	}
	if (!vmc_chk_section(st, SEC(CPUS), why))
		return false;
	if (in_cpulist(st->cpus->present, (unsigned)c->id)) {
		vmc_why_set(why, "cpu%d still present (present %s)", c->id,
			    VMC_Q(st->cpus->present));
		return false;
	}
	return true;
}

int vmc_chk_slot_address(const struct vmc_hv_slot *slot, struct vmc_error *err)
{
	/* Without the port's address the device could be anybody's: refuse to guess. */
	if (!slot->address || !*slot->address)
		return vmc_error_set(err, -EINVAL,
				     "root port %s: the hypervisor gives no PCI address", slot->id);
	return 0;
}

int vmc_chk_del(struct vmc_step *s, int rc, struct vmc_error *err, bool *pending)
{
	*pending = rc == -EINPROGRESS;
	if (*pending) {
		vmc_step_note(s,
			      "the hypervisor stopped waiting for the removal: %s; looking for "
			      "ourselves",
			      err->msg ? err->msg : "no reason given");
		rc = 0;
	}
	rc = vmc_step_acted(s, rc, err);
	vmc_error_clear(err);
	return rc;
}

unsigned vmc_chk_unplug_ms(const struct vmc_ctx *c)
{
	return vmc_arch_unplug_ms(vmc_hv_arch(c->hv), c->opts->deadline_ms);
}

bool vmc_chk_shown(struct vmc_ctx *c, vmc_expect_fn gone, void *arg)
{
	struct vmc_why why = { .text = "" };

	return !gone(vmc_view(c), arg, &why);
}

int vmc_chk_seen_go(struct vmc_step *s, int r, bool shown, const char *id)
{
	if (r < 0 || shown)
		return r;
	return vmc_step_fail(s, -ENOENT,
			     "the guest never showed %s before its unplug, so it could not be "
			     "seen to go (the hypervisor did remove it)",
			     id);
}

#define VIEWS_EVERY_MS 500

static const char *view_word(int v)
{
	return v > 0 ? "still has it" : v == 0 ? "gone" : "not asked";
}

int vmc_chk_removed(struct vmc_ctx *c, struct vmc_step *s, const char *id, bool pending,
		    unsigned deadline_ms)
{
	struct vmc_hv *hv = c->hv;
	struct vmc_hv_removal v = { .vmm = -1, .mgmt = -1 };
	struct vmc_error err = VMC_ERROR_INIT;
	char views[700];
	int r, q;

	/*
	 * After a give-up the event may never come and nothing announces the
	 * layers catching up: look at them every VIEWS_EVERY_MS meanwhile.
	 */
	for (unsigned at = vmc_step_elapsed_ms(s) + VIEWS_EVERY_MS;; at += VIEWS_EVERY_MS) {
		unsigned until = pending && at < deadline_ms ? at : deadline_ms;

		r = vmc_step_await_event(s, VMC_EV_DEVICE_DELETED, id, until);
		if (r != -ETIMEDOUT || until == deadline_ms || !hv->ops->removal_views)
			break;
		if (hv->ops->removal_views(hv, id, &v, NULL) == 0 && v.vmm <= 0 && v.mgmt <= 0 &&
		    (v.vmm == 0 || v.mgmt == 0))
			break;
	}
	if (r < 0 && r != -ETIMEDOUT)
		return r;
	if (!hv->ops->removal_views)
		return r == 0 ? 0
			      : vmc_step_fail(s, r, "no %s event for %s within %u ms",
					      VMC_EV_DEVICE_DELETED, id, deadline_ms);
	q = hv->ops->removal_views(hv, id, &v, &err);
	if (v.mgmt < 0)
		snprintf(views, sizeof(views), "guest: gone; QEMU: %s (%s); %s", view_word(v.vmm),
			 v.vmm_says, v.mgmt_says);
	else
		snprintf(views, sizeof(views), "guest: gone; QEMU: %s (%s); %s: %s (%s)",
			 view_word(v.vmm), v.vmm_says, hv->ops->name, view_word(v.mgmt),
			 v.mgmt_says);
	if (q < 0)
		snprintf(views, sizeof(views), "guest: gone; the hypervisor could not be asked: %s",
			 err.msg ? err.msg : strerror(-q));
	vmc_error_clear(&err);
	vmc_step_note(s, "%s%s", r == 0 ? "" : "no DEVICE_DELETED event; ", views);
	if (q == 0 && v.vmm > 0)
		return vmc_step_fail(s, -EBUSY,
				     "QEMU still has %s after the guest let go of it: %s", id,
				     views);
	if (q == 0 && v.mgmt > 0)
		return vmc_step_fail(s, -EBUSY,
				     "the %s layer still lists %s although the guest%s removed it "
				     "(a failure of %s, not of the guest): %s",
				     hv->ops->name, id, v.vmm == 0 ? " and QEMU" : "",
				     hv->ops->name, views);
	if (r == 0 || (q == 0 && (v.vmm == 0 || v.mgmt == 0)))
		return 0;
	return vmc_step_fail(s, -ETIMEDOUT,
			     "no %s event for %s within %u ms and no layer says it is gone%s: %s",
			     VMC_EV_DEVICE_DELETED, id, deadline_ms,
			     pending ? " (the hypervisor had given up waiting)" : "", views);
}

int vmc_chk_act(struct vmc_step *s, Vmcheck__V1__Act *act, unsigned deadline_ms)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Response *resp = NULL;
	int r;

	req.kind_case = VMCHECK__V1__REQUEST__KIND_ACT;
	req.act = act;
	r = vmc_step_agent(s, &req, deadline_ms, &resp);
	if (r == 0)
		vmc_agent_response_free(vmc_step_conn(s), resp);
	return r;
}

int vmc_chk_fail(struct vmc_ctx *c, const char *check, const char *name, int rc,
		 struct vmc_error *err)
{
	struct vmc_step *s = vmc_step_begin(c, check, "%s", name);

	vmc_step_acted(s, rc, err);
	return vmc_step_end(s, rc, NULL);
}

const char *vmc_chk_bytes(uint64_t n, char buf[32])
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;

	while (u + 1 < ARRAY_SIZE(unit) && n && !(n & 1023)) {
		n >>= 10;
		u++;
	}
	snprintf(buf, 32, "%llu %s", (unsigned long long)n, unit[u]);
	return buf;
}

int vmc_chk_free_slots(struct vmc_ctx *c, const char *check, unsigned want, const char *opt,
		       struct vmc_hv_slot **slots, size_t *n)
{
	struct vmc_error err = VMC_ERROR_INIT;
	int r;

	*slots = NULL;
	*n = 0;
	r = c->hv->ops->free_slots(c->hv, slots, n, &err);
	if (r < 0) {
		r = vmc_chk_fail(c, check, "find free root ports", r, &err);
		vmc_error_clear(&err);
		return r;
	}
	if (*n < want) {
		vmc_step_skip(c, check, "plug", "%s %u needs as many free root ports, found %zu",
			      opt, want, *n);
		vmc_hv_slots_free(*slots, *n);
		*slots = NULL;
		*n = 0;
		return 0;
	}
	return 1;
}

int vmc_chk_repeat(struct vmc_ctx *c, int (*cycle)(struct vmc_ctx *c, unsigned *seq))
{
	unsigned seq = 0;
	int rc = 0;

	for (unsigned i = 0; i < c->opts->repeat && rc == 0; i++)
		rc = cycle(c, &seq);
	return rc;
}
