/* SPDX-License-Identifier: MIT */
/*
 * The identity-matching diff of two States (state-diff.h), and the words
 * for State fields it shares with the text tables.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "macro.h"
#include "state-diff.h"
#include "text.h"

const char *vmc_human_size(uint64_t bytes, char buf[static 16])
{
	static const char units[] = "BKMGTPE";
	unsigned exp = 0;
	uint64_t whole, tenths = 0;

	while (exp < 6 && bytes >> (10 * (exp + 1)))
		exp++;
	whole = bytes >> (10 * exp);
	if (exp) {
		uint64_t rem = bytes & ((1ull << (10 * exp)) - 1);

		/* Thousandths truncated, then rounded half up to one digit. */
		uint64_t th = exp < 6 ? rem * 1000 >> (10 * exp) : (rem >> 10) * 1000 >> 50;

		tenths = (th + 50) / 100;
		if (tenths == 10) {
			whole++;
			tenths = 0;
		}
	}
	/* whole <= 1024 here; the clamp only tells the compiler so. */
	if (tenths)
		snprintf(buf, 16, "%u.%u%c", whole > 9999 ? 9999u : (unsigned)whole,
			 (unsigned)tenths % 10, units[exp]);
	else
		snprintf(buf, 16, "%u%c", whole > 9999 ? 9999u : (unsigned)whole, units[exp]);
	return buf;
}

const char *vmc_link_carrier_name(int c)
{
	switch (c) {
	case VMCHECK__V1__LINK__CARRIER__CARRIER_UP:
		return "up";
	case VMCHECK__V1__LINK__CARRIER__CARRIER_DOWN:
		return "down";
	default:
		return "unknown";
	}
}

char *vmc_link_addresses(const Vmcheck__V1__Link *l)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	if (!m)
		return NULL;
	for (size_t i = 0; i < l->n_addresses; i++)
		if (l->addresses[i])
			fprintf(m, "%s%s/%u", i ? " " : "", vmc_text_str(l->addresses[i]->address),
				l->addresses[i]->prefixlen);
	fclose(m);
	return buf;
}

/* ---------------------------------------------------------------- diff */

/* The changes of one object, "mtu 1500 -> 9000, carrier down -> up". */
struct chg {
	char buf[512];
	size_t len;
};

/* Append one change; what does not fit in the buffer is cut off. */
static void _printf_(2, 3) chg_add(struct chg *c, const char *fmt, ...)
{
	size_t room = sizeof(c->buf) - c->len;
	va_list ap;
	int w;

	if (room < 3)
		return;
	if (c->len) {
		memcpy(c->buf + c->len, ", ", 2);
		c->len += 2;
		room -= 2;
	}
	va_start(ap, fmt);
	w = vsnprintf(c->buf + c->len, room, fmt, ap);
	va_end(ap);
	if (w > 0)
		c->len += (size_t)w < room ? (size_t)w : room - 1;
	c->buf[c->len] = '\0';
}

static void chg_str(struct chg *c, const char *field, const char *a, const char *b)
{
	if (strcmp(vmc_text_str(a), vmc_text_str(b)))
		chg_add(c, "%s %s -> %s", field, vmc_text_dash(a), vmc_text_dash(b));
}

static void chg_u64(struct chg *c, const char *field, uint64_t a, uint64_t b)
{
	if (a != b)
		chg_add(c, "%s %llu -> %llu", field, (unsigned long long)a, (unsigned long long)b);
}

static void chg_s64(struct chg *c, const char *field, int64_t a, int64_t b)
{
	if (a != b)
		chg_add(c, "%s %lld -> %lld", field, (long long)a, (long long)b);
}

static void chg_bool(struct chg *c, const char *field, bool a, bool b)
{
	if (a != b)
		chg_add(c, "%s %s -> %s", field, vmc_text_yesno(a), vmc_text_yesno(b));
}

static void chg_size(struct chg *c, const char *field, uint64_t a, uint64_t b)
{
	char x[16], y[16];

	if (a != b)
		chg_add(c, "%s %s -> %s", field, vmc_human_size(a, x), vmc_human_size(b, y));
}

/* How one kind of object is identified, labelled and compared. */
struct diff_kind {
	const char *what;
	int (*cmp)(const void *, const void *); /* qsort() on pointers to elements */
	/* Identity, and with @full what else is worth showing on an addition. */
	void (*label)(char *buf, size_t size, const void *x, bool full);
	void (*changes)(struct chg *c, const void *a, const void *b);
};

static int cmp_u64(uint64_t a, uint64_t b)
{
	return (a > b) - (a < b);
}

#define ELEM(T, p) (*(const T *const *)(p))

static int link_cmp(const void *x, const void *y)
{
	const Vmcheck__V1__Link *a = ELEM(Vmcheck__V1__Link, x), *b = ELEM(Vmcheck__V1__Link, y);
	int r = strcmp(vmc_text_str(a->name), vmc_text_str(b->name));

	return r ? r : cmp_u64(a->ifindex, b->ifindex);
}

static void link_label(char *buf, size_t size, const void *x, bool full)
{
	const Vmcheck__V1__Link *l = x;

	if (full)
		snprintf(buf, size, "%s (ifindex %u, mac %s, pci %s, driver %s)",
			 vmc_text_dash(l->name), l->ifindex, vmc_text_dash(l->mac),
			 vmc_text_dash(l->pci_address), vmc_text_dash(l->driver));
	else
		snprintf(buf, size, "%s (ifindex %u)", vmc_text_dash(l->name), l->ifindex);
}

static void link_changes(struct chg *c, const void *x, const void *y)
{
	const Vmcheck__V1__Link *a = x, *b = y;
	char *aa = vmc_link_addresses(a), *ba = vmc_link_addresses(b);

	chg_str(c, "mac", a->mac, b->mac);
	chg_u64(c, "mtu", a->mtu, b->mtu);
	chg_str(c, "operstate", a->operstate, b->operstate);
	if (a->carrier != b->carrier)
		chg_add(c, "carrier %s -> %s", vmc_link_carrier_name(a->carrier),
			vmc_link_carrier_name(b->carrier));
	if (a->flags != b->flags)
		chg_add(c, "flags 0x%x -> 0x%x", a->flags, b->flags);
	chg_str(c, "driver", a->driver, b->driver);
	chg_str(c, "pci", a->pci_address, b->pci_address);
	chg_str(c, "addresses", aa, ba);
	free(aa);
	free(ba);
}

static int block_cmp(const void *x, const void *y)
{
	return strcmp(vmc_text_str(ELEM(Vmcheck__V1__Block, x)->name),
		      vmc_text_str(ELEM(Vmcheck__V1__Block, y)->name));
}

static void block_label(char *buf, size_t size, const void *x, bool full)
{
	const Vmcheck__V1__Block *b = x;
	char sz[16];

	if (full)
		snprintf(buf, size, "%s (%u:%u, %s, %s, serial %s, pci %s)", vmc_text_dash(b->name),
			 b->major, b->minor, vmc_human_size(b->size_bytes, sz),
			 vmc_text_dash(b->type), vmc_text_dash(b->serial),
			 vmc_text_dash(b->pci_address));
	else
		snprintf(buf, size, "%s", vmc_text_dash(b->name));
}

static void block_changes(struct chg *c, const void *x, const void *y)
{
	const Vmcheck__V1__Block *a = x, *b = y;

	if (a->major != b->major || a->minor != b->minor)
		chg_add(c, "maj:min %u:%u -> %u:%u", a->major, a->minor, b->major, b->minor);
	chg_size(c, "size", a->size_bytes, b->size_bytes);
	chg_bool(c, "ro", a->ro, b->ro);
	chg_bool(c, "removable", a->removable, b->removable);
	chg_str(c, "type", a->type, b->type);
	chg_str(c, "serial", a->serial, b->serial);
	chg_str(c, "pci", a->pci_address, b->pci_address);
	chg_u64(c, "partitions", a->n_partitions, b->n_partitions);
	chg_u64(c, "holders", a->n_holders, b->n_holders);
	chg_str(c, "backing_file", a->backing_file, b->backing_file);
}

static const char *mem_state(int s)
{
	static const char *const names[] = { "unknown", "online", "offline", "going-offline" };

	return s >= 0 && (size_t)s < ARRAY_SIZE(names) ? names[s] : "?";
}

static int memblock_cmp(const void *x, const void *y)
{
	return cmp_u64(ELEM(Vmcheck__V1__MemoryBlock, x)->index,
		       ELEM(Vmcheck__V1__MemoryBlock, y)->index);
}

static void memblock_label(char *buf, size_t size, const void *x, bool full)
{
	const Vmcheck__V1__MemoryBlock *m = x;

	if (full)
		snprintf(buf, size, "%llu (0x%llx, %s, zones %s)", (unsigned long long)m->index,
			 (unsigned long long)m->phys_start, mem_state(m->state),
			 vmc_text_dash(m->valid_zones));
	else
		snprintf(buf, size, "%llu", (unsigned long long)m->index);
}

static void memblock_changes(struct chg *c, const void *x, const void *y)
{
	const Vmcheck__V1__MemoryBlock *a = x, *b = y;

	if (a->state != b->state)
		chg_add(c, "%s -> %s", mem_state(a->state), mem_state(b->state));
	chg_str(c, "zones", a->valid_zones, b->valid_zones);
	chg_s64(c, "node", a->node, b->node);
	chg_bool(c, "removable", a->removable, b->removable);
}

static int cpu_cmp(const void *x, const void *y)
{
	return cmp_u64(ELEM(Vmcheck__V1__Cpu, x)->id, ELEM(Vmcheck__V1__Cpu, y)->id);
}

static void cpu_label(char *buf, size_t size, const void *x, bool full)
{
	const Vmcheck__V1__Cpu *c = x;

	if (full)
		snprintf(buf, size, "%u (%s, core %d, socket %d)", c->id,
			 c->online ? "online" : "offline", c->core_id, c->package_id);
	else
		snprintf(buf, size, "%u", c->id);
}

static void cpu_changes(struct chg *c, const void *x, const void *y)
{
	const Vmcheck__V1__Cpu *a = x, *b = y;

	chg_bool(c, "online", a->online, b->online);
	chg_bool(c, "present", a->present, b->present);
	chg_s64(c, "core", a->core_id, b->core_id);
	chg_s64(c, "socket", a->package_id, b->package_id);
	chg_s64(c, "die", a->die_id, b->die_id);
	chg_s64(c, "node", a->node, b->node);
	chg_str(c, "siblings", a->thread_siblings, b->thread_siblings);
}

static int pci_cmp(const void *x, const void *y)
{
	return strcmp(vmc_text_str(ELEM(Vmcheck__V1__PciFunction, x)->address),
		      vmc_text_str(ELEM(Vmcheck__V1__PciFunction, y)->address));
}

static void pci_label(char *buf, size_t size, const void *x, bool full)
{
	const Vmcheck__V1__PciFunction *f = x;

	if (full)
		snprintf(buf, size, "%s (%04x:%04x, class %06x, driver %s)",
			 vmc_text_dash(f->address), f->vendor, f->device, f->class_code,
			 vmc_text_dash(f->driver));
	else
		snprintf(buf, size, "%s", vmc_text_dash(f->address));
}

static void pci_changes(struct chg *c, const void *x, const void *y)
{
	const Vmcheck__V1__PciFunction *a = x, *b = y;

	if (a->vendor != b->vendor || a->device != b->device)
		chg_add(c, "id %04x:%04x -> %04x:%04x", a->vendor, a->device, b->vendor, b->device);
	chg_str(c, "driver", a->driver, b->driver);
	chg_str(c, "slot", a->slot, b->slot);
}

static const struct diff_kind link_kind = { "link", link_cmp, link_label, link_changes };
static const struct diff_kind block_kind = { "block", block_cmp, block_label, block_changes };
static const struct diff_kind mem_kind = { "memory block", memblock_cmp, memblock_label,
					   memblock_changes };
static const struct diff_kind cpu_kind = { "cpu", cpu_cmp, cpu_label, cpu_changes };
static const struct diff_kind pci_kind = { "pci", pci_cmp, pci_label, pci_changes };

/* Sorted copy of @n element pointers without the NULL ones; NULL on ENOMEM. */
static void **sorted(void *const *items, size_t n, size_t *out_n,
		     int (*cmp)(const void *, const void *))
{
	void **v = malloc((n + 1) * sizeof(*v));
	size_t k = 0;

	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (items[i])
			v[k++] = items[i];
	qsort(v, k, sizeof(*v), cmp);
	*out_n = k;
	return v;
}

/* Where the items go, and how many were told. */
struct sink {
	const struct vmc_state_diff_ops *ops;
	void *arg;
	unsigned n;
};

static void diff_items(struct sink *out, const struct diff_kind *k, void *const *a, size_t na,
		       void *const *b, size_t nb)
{
	size_t sa = 0, sb = 0, i = 0, j = 0;
	void **va = sorted(a, na, &sa, k->cmp), **vb = sorted(b, nb, &sb, k->cmp);
	char label[256];

	if (!va || !vb) {
		out->ops->failed(out->arg, k->what, -ENOMEM);
		out->n++;
		free(va);
		free(vb);
		return;
	}
	while (i < sa || j < sb) {
		int r = i == sa ? 1 : j == sb ? -1 : k->cmp(&va[i], &vb[j]);
		struct chg c = { .len = 0 };

		if (r < 0) {
			k->label(label, sizeof(label), va[i++], false);
			out->ops->removed(out->arg, k->what, label);
		} else if (r > 0) {
			k->label(label, sizeof(label), vb[j++], true);
			out->ops->added(out->arg, k->what, label);
		} else {
			k->changes(&c, va[i], vb[j]);
			k->label(label, sizeof(label), va[i], false);
			i++, j++;
			if (!c.len)
				continue;
			out->ops->changed(out->arg, k->what, label, c.buf);
		}
		out->n++;
	}
	free(va);
	free(vb);
}

/* A section that is one item: told as changed when @c holds a change. */
static void diff_one(struct sink *out, const char *what, const struct chg *c)
{
	if (!c->len)
		return;
	out->ops->changed(out->arg, what, NULL, c->buf);
	out->n++;
}

static void diff_system(struct sink *out, const Vmcheck__V1__System *a,
			const Vmcheck__V1__System *b)
{
	struct chg c = { .len = 0 };

	chg_str(&c, "boot_id", a->boot_id, b->boot_id);
	chg_str(&c, "kernel", a->kernel_release, b->kernel_release);
	chg_str(&c, "hostname", a->hostname, b->hostname);
	chg_u64(&c, "suspend ok", a->suspend_success, b->suspend_success);
	chg_u64(&c, "suspend failed", a->suspend_fail, b->suspend_fail);
	diff_one(out, "system", &c);
}

static size_t dump_count(const Vmcheck__V1__Crash *c)
{
	size_t n = 0;

	for (size_t i = 0; i < c->n_dirs; i++)
		n += c->dirs[i] ? c->dirs[i]->n_dumps : 0;
	return n;
}

static void diff_crash(struct sink *out, const Vmcheck__V1__Crash *a, const Vmcheck__V1__Crash *b)
{
	struct chg c = { .len = 0 };

	chg_bool(&c, "armed", a->kexec_crash_loaded, b->kexec_crash_loaded);
	chg_size(&c, "crash size", a->crash_size, b->crash_size);
	chg_u64(&c, "dumps", dump_count(a), dump_count(b));
	diff_one(out, "crash", &c);
}

#define BOTH(a, b, bit) ((a)->sections & (b)->sections & VMCHECK__V1__SECTION__SECTION_##bit)

unsigned vmc_state_diff(const Vmcheck__V1__State *a, const Vmcheck__V1__State *b,
			const struct vmc_state_diff_ops *ops, void *arg)
{
	struct sink out = { .ops = ops, .arg = arg, .n = 0 };

	if (BOTH(a, b, SYSTEM) && a->system && b->system)
		diff_system(&out, a->system, b->system);
	if (BOTH(a, b, LINKS))
		diff_items(&out, &link_kind, (void *const *)a->links, a->n_links,
			   (void *const *)b->links, b->n_links);
	if (BOTH(a, b, BLOCKS))
		diff_items(&out, &block_kind, (void *const *)a->blocks, a->n_blocks,
			   (void *const *)b->blocks, b->n_blocks);
	if (BOTH(a, b, MEMORY) && a->memory && b->memory)
		diff_items(&out, &mem_kind, (void *const *)a->memory->blocks, a->memory->n_blocks,
			   (void *const *)b->memory->blocks, b->memory->n_blocks);
	if (BOTH(a, b, CPUS) && a->cpus && b->cpus)
		diff_items(&out, &cpu_kind, (void *const *)a->cpus->cpus, a->cpus->n_cpus,
			   (void *const *)b->cpus->cpus, b->cpus->n_cpus);
	if (BOTH(a, b, PCI) && a->pci && b->pci)
		diff_items(&out, &pci_kind, (void *const *)a->pci->functions, a->pci->n_functions,
			   (void *const *)b->pci->functions, b->pci->n_functions);
	if (BOTH(a, b, CRASH) && a->crash && b->crash)
		diff_crash(&out, a->crash, b->crash);
	return out.n;
}

/* ------------------------------------------------------------ as lines */

/*
 * Where lines go: at most @max of them, the rest only counted. Labels and
 * changes quote the guest's strings: each line is escaped (escape.h).
 */
struct lines {
	FILE *fp;
	unsigned max, n;
};

/* Whether one more line may be written (counted either way). */
static bool line_room(struct lines *l)
{
	return l->n++ < l->max;
}

static void line_added(void *arg, const char *what, const char *label)
{
	struct lines *l = arg;

	if (line_room(l))
		vmc_esc_line(l->fp, "  + %s %s", what, label);
}

static void line_removed(void *arg, const char *what, const char *label)
{
	struct lines *l = arg;

	if (line_room(l))
		vmc_esc_line(l->fp, "  - %s %s", what, label);
}

static void line_changed(void *arg, const char *what, const char *label, const char *changes)
{
	struct lines *l = arg;

	if (!line_room(l))
		return;
	if (label)
		vmc_esc_line(l->fp, "  ~ %s %s: %s", what, label, changes);
	else
		vmc_esc_line(l->fp, "  ~ %s: %s", what, changes);
}

static void line_failed(void *arg, const char *what, int err)
{
	struct lines *l = arg;

	if (line_room(l))
		fprintf(l->fp, "  (%s diff: %s)\n", what,
			err == -ENOMEM ? "out of memory" : strerror(-err));
}

static const struct vmc_state_diff_ops line_ops = {
	.added = line_added,
	.removed = line_removed,
	.changed = line_changed,
	.failed = line_failed,
};

unsigned vmc_state_diff_write(FILE *fp, const Vmcheck__V1__State *a, const Vmcheck__V1__State *b)
{
	return vmc_state_diff_write_max(fp, a, b, UINT_MAX);
}

unsigned vmc_state_diff_write_max(FILE *fp, const Vmcheck__V1__State *a,
				  const Vmcheck__V1__State *b, unsigned max)
{
	struct lines l = { .fp = fp, .max = max, .n = 0 };
	unsigned n = vmc_state_diff(a, b, &line_ops, &l);

	if (n > max)
		fprintf(fp, "  ... and %u more changes, not shown (at most %u lines are kept)\n",
			n - max, max);
	return n;
}
