/* SPDX-License-Identifier: MIT */
#include "check-util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "sysroot.h"

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
	return list && vmc_cpulist_contains(list, id, &in) == 0 && in;
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
		vmc_why_set(why, "%s: PCI function %s not in the PCI section", what, addr);
		return false;
	}
	if (!vmc_chk_addr_eq(f->parent, port)) {
		vmc_why_set(why, "%s: PCI function %s sits behind %s, want root port %s", what,
			    addr, *f->parent ? f->parent : "the root bus", port);
		return false;
	}
	return true;
}

bool vmc_chk_nic_up(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	struct vmc_chk_nic *n = arg;
	const Vmcheck__V1__PciFunction *f = vmc_chk_pci_behind(st, n->port);
	const Vmcheck__V1__Link *l = vmc_chk_link_by_mac(st, n->mac);
	char what[64];

	if (f)
		copy_name(n->pci, sizeof(n->pci), f->address);
	if (!l) {
		vmc_why_set(why, "no link with MAC %s", n->mac);
		return false;
	}
	copy_name(n->name, sizeof(n->name), l->name);
	snprintf(what, sizeof(what), "link %s (%s)", l->name, n->mac);
	if (!behind_port(st, what, l->pci_address, n->port, n->pci, why))
		return false;
	if (strcmp(l->driver, "virtio_net")) {
		vmc_why_set(why, "%s: driver \"%s\", want virtio_net", what, l->driver);
		return false;
	}
	return true;
}

bool vmc_chk_nic_gone(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const struct vmc_chk_nic *n = arg;
	const Vmcheck__V1__Link *l = vmc_chk_link_by_mac(st, n->mac);

	if (l) {
		vmc_why_set(why, "link %s with MAC %s still there", l->name, n->mac);
		return false;
	}
	return true;
}

bool vmc_chk_disk_up(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	struct vmc_chk_disk *d = arg;
	const Vmcheck__V1__PciFunction *f = vmc_chk_pci_behind(st, d->port);
	const Vmcheck__V1__Block *b = vmc_chk_block_by_serial(st, d->serial);
	char what[64];

	if (f)
		copy_name(d->pci, sizeof(d->pci), f->address);
	if (!b) {
		vmc_why_set(why, "no block device with serial %s", d->serial);
		return false;
	}
	copy_name(d->name, sizeof(d->name), b->name);
	snprintf(what, sizeof(what), "%s (serial %s)", b->name, d->serial);
	if (strcmp(b->type, "disk")) {
		vmc_why_set(why, "%s: type \"%s\", want disk", what, b->type);
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

	if (b) {
		vmc_why_set(why, "block device %s with serial %s still there", b->name, d->serial);
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
	if (!m || !m->block_size)
		return -ENOENT;
	d->base = calloc(m->n_blocks ? m->n_blocks : 1, sizeof(*d->base));
	if (!d->base)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_blocks; i++)
		d->base[i] = m->blocks[i]->index;
	qsort(d->base, m->n_blocks, sizeof(*d->base), u64_cmp);
	d->n_base = m->n_blocks;
	d->base_online = m->online_bytes;
	d->size = size;
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

bool vmc_chk_dimm_blocks(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	struct vmc_chk_dimm *d = arg;
	const Vmcheck__V1__Memory *m = st->memory;
	uint64_t lo = UINT64_MAX, hi = 0, n = 0, want;

	if (!m || !m->block_size) {
		vmc_why_set(why, "no memory section");
		return false;
	}
	want = d->size / m->block_size;
	for (size_t i = 0; i < m->n_blocks; i++) {
		uint64_t idx = m->blocks[i]->index;

		if (in_base(d, idx))
			continue;
		n++;
		lo = idx < lo ? idx : lo;
		hi = idx > hi ? idx : hi;
	}
	if (n == 0) {
		vmc_why_set(why, "no new memory block (want %llu)", (unsigned long long)want);
		return false;
	}
	if (n != want || hi - lo + 1 != n) {
		vmc_why_set(why, "%llu new memory blocks within %llu-%llu, want %llu contiguous",
			    (unsigned long long)n, (unsigned long long)lo, (unsigned long long)hi,
			    (unsigned long long)want);
		return false;
	}
	d->first = lo;
	d->count = n;
	return true;
}

bool vmc_chk_dimm_online(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const struct vmc_chk_dimm *d = arg;
	const Vmcheck__V1__MemoryBlock *b;

	if (!st->memory) {
		vmc_why_set(why, "no memory section");
		return false;
	}
	for (uint64_t i = d->first; i < d->first + d->count; i++) {
		b = vmc_chk_memblock(st, i);
		if (!b || b->state != VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE) {
			vmc_why_set(why, "memory block %llu %s", (unsigned long long)i,
				    b ? "not online" : "gone");
			return false;
		}
	}
	if (st->memory->online_bytes != d->base_online + d->size) {
		vmc_why_set(why, "online memory %llu bytes, want %llu + %llu",
			    (unsigned long long)st->memory->online_bytes,
			    (unsigned long long)d->base_online, (unsigned long long)d->size);
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

	if (!st->memory) {
		vmc_why_set(why, "no memory section");
		return false;
	}
	for (uint64_t i = d->first; i < d->first + d->count; i++) {
		if (vmc_chk_memblock(st, i)) {
			vmc_why_set(why, "memory block %llu still there", (unsigned long long)i);
			return false;
		}
	}
	if (st->memory->online_bytes != d->left_online) {
		vmc_why_set(why, "online memory %llu bytes, want %llu",
			    (unsigned long long)st->memory->online_bytes,
			    (unsigned long long)d->left_online);
		return false;
	}
	return true;
}

bool vmc_chk_cpu_up(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const struct vmc_chk_cpu *c = arg;
	char others[128] = "";
	size_t len = 0;

	if (in_cpulist(c->base_present, c->id)) {
		vmc_why_set(why, "cpu%u was present before the plug (present %s)", c->id,
			    c->base_present);
		return false;
	}
	if (vmc_chk_cpu_present(st, c->id))
		return true;
	/* Name what did arrive: a CPU under another id means the ids disagree. */
	for (size_t i = 0; st->cpus && i < st->cpus->n_cpus; i++) {
		const Vmcheck__V1__Cpu *p = st->cpus->cpus[i];

		if (p->present && !in_cpulist(c->base_present, p->id) && len < sizeof(others))
			len +=
			    (size_t)snprintf(others + len, sizeof(others) - len, " cpu%u", p->id);
	}
	vmc_why_set(why, "cpu%u not present (present %s; new:%s)", c->id,
		    st->cpus ? st->cpus->present : "?", len ? others : " none");
	return false;
}

bool vmc_chk_cpu_online(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const struct vmc_chk_cpu *c = arg;
	const Vmcheck__V1__Cpu *p = vmc_chk_cpu_present(st, c->id);

	if (!p || !p->online) {
		vmc_why_set(why, "cpu%u %s", c->id, p ? "offline" : "not present");
		return false;
	}
	return true;
}

bool vmc_chk_cpu_gone(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const struct vmc_chk_cpu *c = arg;

	if (!st->cpus) {
		vmc_why_set(why, "no cpus section");
		return false;
	}
	if (in_cpulist(st->cpus->present, c->id)) {
		vmc_why_set(why, "cpu%u still present (present %s)", c->id, st->cpus->present);
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
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
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
