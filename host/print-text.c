/* SPDX-License-Identifier: MIT */
/*
 * Text output shaped like the tools the users already read: ip -br link,
 * lsblk, lsmem, lscpu. Every printer takes whatever the agent sent: a
 * section may be missing, a string NULL, an array empty, a string full of
 * control sequences (escaped, escape.h: every cell, value and line that
 * holds a guest string).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "escape.h"
#include "macro.h"
#include "print.h"
#include "state-diff.h"
#include "text.h"

#define NS_PER_S 1000000000ull

/* ------------------------------------------------------------- tables */

struct table {
	unsigned ncols; /* at most 16 */
	const char *const *head;
	uint32_t right; /* bit i: column i is aligned right */
	char **cells;   /* row-major; NULL where formatting failed */
	size_t n, cap;
	bool oom;
};

static void table_init(struct table *t, const char *const *head, unsigned ncols, uint32_t right)
{
	memset(t, 0, sizeof(*t));
	t->head = head;
	t->ncols = ncols;
	t->right = right;
}

static void _printf_(2, 3) cell(struct table *t, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	if (t->oom)
		return;
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		char **c = realloc(t->cells, cap * sizeof(*c));

		if (!c) {
			t->oom = true;
			return;
		}
		t->cells = c;
		t->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	/* NULL (out of memory) prints as "?". */
	t->cells[t->n++] = vmc_esc_str(s, VMC_ESC_QUOTE);
	free(s);
}

/* Columns on screen: UTF-8 continuation bytes take none ("└─"). */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

static void print_cell(FILE *fp, const char *s, size_t w, bool right, bool last)
{
	size_t pad = w - width(s);

	if (right)
		fprintf(fp, "%*s%s", (int)pad, "", s);
	else if (last)
		fputs(s, fp);
	else
		fprintf(fp, "%s%*s", s, (int)pad, "");
	fputs(last ? "\n" : " ", fp);
}

static void table_print(FILE *fp, struct table *t)
{
	size_t w[16] = { 0 };
	unsigned nc = t->ncols;

	if (t->oom) {
		fprintf(fp, "(out of memory)\n");
		return;
	}
	for (unsigned c = 0; c < nc; c++)
		w[c] = width(t->head[c]);
	for (size_t i = 0; i < t->n; i++) {
		size_t cw = width(t->cells[i] ? t->cells[i] : "?");

		if (cw > w[i % t->ncols])
			w[i % t->ncols] = cw;
	}
	for (unsigned c = 0; c < nc; c++)
		print_cell(fp, t->head[c], w[c], t->right & (1u << c), c == nc - 1);
	for (size_t i = 0; i < t->n; i++) {
		unsigned c = (unsigned)(i % t->ncols);

		print_cell(fp, t->cells[i] ? t->cells[i] : "?", w[c], t->right & (1u << c),
			   c == nc - 1);
	}
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->cells[i]);
	free(t->cells);
}

static void table_flush(FILE *fp, struct table *t)
{
	table_print(fp, t);
	table_free(t);
}

/* -------------------------------------------------------------- system */

static void kv(FILE *fp, const char *key, const char *fmt, ...) _printf_(3, 4);
/* "key:   value": the value escaped, it may hold the guest's strings. */
static void kv(FILE *fp, const char *key, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	int n;

	fprintf(fp, "%-22s ", key);
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		fputs("(out of memory)", fp);
	else
		vmc_esc_write(fp, s, (size_t)n, VMC_ESC_QUOTE);
	fputc('\n', fp);
	free(s);
}

static void print_duration_ms(FILE *fp, uint64_t ms)
{
	uint64_t s = ms / 1000;

	if (s >= 86400)
		fprintf(fp, "%llud ", (unsigned long long)(s / 86400));
	fprintf(fp, "%02u:%02u:%02u.%03u", (unsigned)(s % 86400 / 3600), (unsigned)(s % 3600 / 60),
		(unsigned)(s % 60), (unsigned)(ms % 1000));
}

static void print_system(FILE *fp, const Vmcheck__V1__System *s)
{
	if (!s) {
		fprintf(fp, "(no system information)\n");
		return;
	}
	kv(fp, "boot_id:", "%s", vmc_text_dash(s->boot_id));
	kv(fp, "kernel:", "%s%s%s%s%s", vmc_text_dash(s->kernel_release),
	   *vmc_text_str(s->kernel_version) ? " " : "", vmc_text_str(s->kernel_version),
	   *vmc_text_str(s->machine) ? " " : "", vmc_text_str(s->machine));
	if (s->os_pretty_name && *s->os_pretty_name)
		kv(fp, "os:", "%s", s->os_pretty_name);
	else
		kv(fp, "os:", "%s%s%s", vmc_text_dash(s->os_id),
		   *vmc_text_str(s->os_version_id) ? " " : "", vmc_text_str(s->os_version_id));
	kv(fp, "hostname:", "%s", vmc_text_dash(s->hostname));
	fprintf(fp, "%-22s ", "uptime:");
	print_duration_ms(fp, s->uptime_ms);
	fputc('\n', fp);
	if (s->has_suspend_stats)
		kv(fp, "suspend count:", "%llu (%llu failed)",
		   (unsigned long long)s->suspend_success, (unsigned long long)s->suspend_fail);
	else
		kv(fp, "suspend count:", "- (no /sys/power/suspend_stats)");
	kv(fp, "power states:", "%s", vmc_text_dash(s->power_states));
	kv(fp, "mem sleep:", "%s", vmc_text_dash(s->mem_sleep));
}

/* --------------------------------------------------------------- links */

static void upper(char *dst, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i + 1 < n && s[i]; i++)
		dst[i] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 'a' + 'A') : s[i];
	dst[i] = '\0';
}

static void print_links(FILE *fp, const Vmcheck__V1__State *st)
{
	static const char *const head[] = { "NAME",    "IFINDEX", "MAC", "MTU",      "OPERSTATE",
					    "CARRIER", "DRIVER",  "PCI", "ADDRESSES" };
	struct table t;

	table_init(&t, head, ARRAY_SIZE(head), 1u << 1 | 1u << 3);
	for (size_t i = 0; i < st->n_links; i++) {
		const Vmcheck__V1__Link *l = st->links[i];
		char op[32], *addr;

		if (!l)
			continue;
		upper(op, sizeof(op), vmc_text_dash(l->operstate));
		addr = vmc_link_addresses(l);
		cell(&t, "%s", vmc_text_dash(l->name));
		cell(&t, "%u", l->ifindex);
		cell(&t, "%s", vmc_text_dash(l->mac));
		cell(&t, "%u", l->mtu);
		cell(&t, "%s", op);
		cell(&t, "%s", vmc_link_carrier_name(l->carrier));
		cell(&t, "%s", vmc_text_dash(l->driver));
		cell(&t, "%s", vmc_text_dash(l->pci_address));
		cell(&t, "%s", vmc_text_dash(addr));
		free(addr);
	}
	table_flush(fp, &t);
}

/* -------------------------------------------------------------- blocks */

static const Vmcheck__V1__Block *find_block(const Vmcheck__V1__State *st, const char *name)
{
	for (size_t i = 0; i < st->n_blocks; i++)
		if (st->blocks[i] && !strcmp(vmc_text_str(st->blocks[i]->name), name))
			return st->blocks[i];
	return NULL;
}

static void block_row(struct table *t, const Vmcheck__V1__Block *b, const char *name,
		      const char *tree)
{
	char size[16];

	cell(t, "%s%s", tree, name);
	if (!b) {
		/* A partition the disk lists but the agent sent no entry for. */
		for (unsigned c = 1; c < t->ncols; c++)
			cell(t, "-");
		return;
	}
	cell(t, "%u:%u", b->major, b->minor);
	cell(t, "%s", vmc_human_size(b->size_bytes, size));
	cell(t, "%d", b->ro ? 1 : 0);
	cell(t, "%d", b->removable ? 1 : 0);
	cell(t, "%s", vmc_text_dash(b->type));
	cell(t, "%s", vmc_text_dash(b->serial));
	cell(t, "%s", vmc_text_dash(b->pci_address));
}

/* True if @name is listed in @disk's partitions. */
static bool lists_partition(const Vmcheck__V1__Block *disk, const char *name)
{
	for (size_t i = 0; i < disk->n_partitions; i++)
		if (!strcmp(vmc_text_str(disk->partitions[i]), name))
			return true;
	return false;
}

/*
 * The children of @disk, lsblk style: blocks naming it as parent, then the
 * partitions it lists that do not (a NULL entry: known by name only). More
 * than 256 partitions are not shown.
 */
static void block_children(struct table *t, const Vmcheck__V1__State *st,
			   const Vmcheck__V1__Block *disk)
{
	const char *kids[256];
	const Vmcheck__V1__Block *kb[256];
	size_t n = 0;

	for (size_t i = 0; i < st->n_blocks && n < ARRAY_SIZE(kids); i++) {
		const Vmcheck__V1__Block *b = st->blocks[i];

		if (b && b != disk && !strcmp(vmc_text_str(b->parent), vmc_text_str(disk->name))) {
			kb[n] = b;
			kids[n++] = vmc_text_str(b->name);
		}
	}
	for (size_t i = 0; i < disk->n_partitions && n < ARRAY_SIZE(kids); i++) {
		const char *p = vmc_text_str(disk->partitions[i]);
		const Vmcheck__V1__Block *b = find_block(st, p);

		if (b && !strcmp(vmc_text_str(b->parent), vmc_text_str(disk->name)))
			continue;
		kb[n] = b && !*vmc_text_str(b->parent) ? b : NULL;
		kids[n++] = p;
	}
	for (size_t i = 0; i < n; i++)
		block_row(t, kb[i], kids[i], i + 1 < n ? "├─" : "└─");
}

static void print_blocks(FILE *fp, const Vmcheck__V1__State *st)
{
	static const char *const head[] = { "NAME", "MAJ:MIN", "SIZE",   "RO",
					    "RM",   "TYPE",    "SERIAL", "PCI" };
	struct table t;

	table_init(&t, head, ARRAY_SIZE(head), 1u << 2 | 1u << 3 | 1u << 4);
	for (size_t i = 0; i < st->n_blocks; i++) {
		const Vmcheck__V1__Block *b = st->blocks[i];
		const Vmcheck__V1__Block *parent;

		if (!b)
			continue;
		/* A child is printed under its parent, unless the parent is missing. */
		parent = *vmc_text_str(b->parent) ? find_block(st, b->parent) : NULL;
		if (parent && parent != b)
			continue;
		if (!parent && *vmc_text_str(b->parent) == '\0') {
			bool listed = false;

			for (size_t j = 0; j < st->n_blocks && !listed; j++)
				listed = st->blocks[j] && st->blocks[j] != b &&
					 lists_partition(st->blocks[j], vmc_text_str(b->name));
			if (listed)
				continue;
		}
		block_row(&t, b, vmc_text_dash(b->name), "");
		block_children(&t, st, b);
	}
	table_flush(fp, &t);
}

/* -------------------------------------------------------------- memory */

static void print_memory(FILE *fp, const Vmcheck__V1__Memory *m)
{
	static const char *const head[] = { "RANGE", "SIZE", "STATE", "REMOVABLE", "BLOCK" };
	char a[16], b[16];
	struct table t;

	if (!m) {
		fprintf(fp, "(no memory information)\n");
		return;
	}
	table_init(&t, head, ARRAY_SIZE(head), 1u << 1 | 1u << 2 | 1u << 3 | 1u << 4);
	for (size_t i = 0; i < m->n_ranges; i++) {
		const Vmcheck__V1__MemoryRange *r = m->ranges[i];

		if (!r)
			continue;
		cell(&t, "0x%016llx-0x%016llx", (unsigned long long)r->start,
		     (unsigned long long)r->end);
		cell(&t, "%s", vmc_human_size(r->size, a));
		cell(&t, "%s", vmc_text_dash(r->state));
		cell(&t, "%s", vmc_text_yesno(r->removable));
		if (r->first_block == r->last_block)
			cell(&t, "%llu", (unsigned long long)r->first_block);
		else
			cell(&t, "%llu-%llu", (unsigned long long)r->first_block,
			     (unsigned long long)r->last_block);
	}
	table_flush(fp, &t);
	fputc('\n', fp);
	fprintf(fp, "%-21s%8s\n", "Memory block size:", vmc_human_size(m->block_size, a));
	fprintf(fp, "%-21s%8s\n", "Total online memory:", vmc_human_size(m->online_bytes, a));
	fprintf(fp, "%-21s%8s\n", "Total offline memory:", vmc_human_size(m->offline_bytes, b));
}

/* ---------------------------------------------------------------- cpus */

static bool seen_before(const int64_t *ids, size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* lscpu's topology lines, from the online CPUs that expose a topology. */
static void print_topology(FILE *fp, const Vmcheck__V1__Cpus *c)
{
	int64_t *sockets = calloc(c->n_cpus + 1, sizeof(*sockets));
	int64_t *cores = calloc(c->n_cpus + 1, sizeof(*cores));
	int64_t *nodes = calloc(c->n_cpus + 1, sizeof(*nodes));
	size_t ns = 0, nc = 0, nn = 0, threads = 0;

	for (size_t i = 0; sockets && cores && nodes && i < c->n_cpus; i++) {
		const Vmcheck__V1__Cpu *cpu = c->cpus[i];
		/* Core ids repeat across sockets: pair them up. */
		int64_t core;

		if (!cpu || !cpu->online || cpu->core_id < 0 || cpu->package_id < 0)
			continue;
		threads++;
		core = (int64_t)cpu->package_id << 32 | cpu->core_id;
		if (!seen_before(sockets, ns, cpu->package_id))
			sockets[ns++] = cpu->package_id;
		if (!seen_before(cores, nc, core))
			cores[nc++] = core;
		if (cpu->node >= 0 && !seen_before(nodes, nn, cpu->node))
			nodes[nn++] = cpu->node;
	}
	if (nc && ns) {
		kv(fp, "Thread(s) per core:", "%zu", threads / nc);
		kv(fp, "Core(s) per socket:", "%zu", nc / ns);
		kv(fp, "Socket(s):", "%zu", ns);
	}
	if (nn)
		kv(fp, "NUMA node(s):", "%zu", nn);
	free(sockets);
	free(cores);
	free(nodes);
}

static void id_cell(struct table *t, int32_t id)
{
	if (id < 0)
		cell(t, "-");
	else
		cell(t, "%d", id);
}

static void print_cpus(FILE *fp, const Vmcheck__V1__Cpus *c)
{
	static const char *const head[] = { "CPU", "ONLINE", "CORE",    "SOCKET",
					    "DIE", "NODE",   "SIBLINGS" };
	struct table t;

	if (!c) {
		fprintf(fp, "(no cpu information)\n");
		return;
	}
	kv(fp, "CPU(s):", "%zu", c->n_cpus);
	kv(fp, "On-line CPU(s) list:", "%s", vmc_text_dash(c->online));
	if (c->offline && *c->offline)
		kv(fp, "Off-line CPU(s) list:", "%s", c->offline);
	kv(fp, "Present CPU(s) list:", "%s", vmc_text_dash(c->present));
	kv(fp, "Possible CPU(s) list:", "%s", vmc_text_dash(c->possible));
	print_topology(fp, c);
	fputc('\n', fp);
	table_init(&t, head, ARRAY_SIZE(head), 1u << 0 | 1u << 2 | 1u << 3 | 1u << 4 | 1u << 5);
	for (size_t i = 0; i < c->n_cpus; i++) {
		const Vmcheck__V1__Cpu *cpu = c->cpus[i];

		if (!cpu)
			continue;
		cell(&t, "%u", cpu->id);
		cell(&t, "%s", vmc_text_yesno(cpu->online));
		id_cell(&t, cpu->core_id);
		id_cell(&t, cpu->package_id);
		id_cell(&t, cpu->die_id);
		id_cell(&t, cpu->node);
		cell(&t, "%s", vmc_text_dash(cpu->thread_siblings));
	}
	table_flush(fp, &t);
}

/* ----------------------------------------------------------------- pci */

static const char *tristate(int32_t v, const char *off, const char *on)
{
	return v < 0 ? "-" : v ? on : off;
}

static void print_pci(FILE *fp, const Vmcheck__V1__Pci *p)
{
	static const char *const fhead[] = { "ADDRESS", "VENDOR:DEVICE", "CLASS",
					     "DRIVER",  "PARENT",        "SLOT" };
	static const char *const shead[] = { "SLOT", "ADDRESS", "POWER", "PRESENCE" };
	struct table t;

	if (!p) {
		fprintf(fp, "(no pci information)\n");
		return;
	}
	table_init(&t, fhead, ARRAY_SIZE(fhead), 0);
	for (size_t i = 0; i < p->n_functions; i++) {
		const Vmcheck__V1__PciFunction *f = p->functions[i];

		if (!f)
			continue;
		cell(&t, "%s", vmc_text_dash(f->address));
		cell(&t, "%04x:%04x", f->vendor, f->device);
		cell(&t, "%06x", f->class_code);
		cell(&t, "%s", vmc_text_dash(f->driver));
		cell(&t, "%s", vmc_text_dash(f->parent));
		cell(&t, "%s", vmc_text_dash(f->slot));
	}
	table_flush(fp, &t);
	if (!p->n_slots)
		return;
	fputc('\n', fp);
	table_init(&t, shead, ARRAY_SIZE(shead), 0);
	for (size_t i = 0; i < p->n_slots; i++) {
		const Vmcheck__V1__PciSlot *s = p->slots[i];

		if (!s)
			continue;
		cell(&t, "%s", vmc_text_dash(s->name));
		cell(&t, "%s", vmc_text_dash(s->address));
		cell(&t, "%s", tristate(s->power, "off", "on"));
		cell(&t, "%s", tristate(s->presence, "empty", "present"));
	}
	table_flush(fp, &t);
}

/* --------------------------------------------------------------- crash */

static const char *dump_format(int f)
{
	static const char *const names[] = { "none", "elf", "kdump", "unknown" };

	return f >= 0 && (size_t)f < ARRAY_SIZE(names) ? names[f] : "?";
}

/* The crashkernel= word of @cmdline, or "-". */
static void print_crashkernel(FILE *fp, const char *cmdline)
{
	const char *p = strstr(vmc_text_str(cmdline), "crashkernel=");

	if (!p) {
		kv(fp, "crashkernel:", "-");
		return;
	}
	kv(fp, "crashkernel:", "%.*s", (int)strcspn(p, " \n"), p);
}

static void print_crash(FILE *fp, const Vmcheck__V1__Crash *c)
{
	static const char *const head[] = { "DUMP", "FORMAT", "VMCORE", "INCOMPLETE", "FILES" };
	char size[16];

	if (!c) {
		fprintf(fp, "(no crash information)\n");
		return;
	}
	kv(fp, "kdump armed:", "%s", vmc_text_yesno(c->kexec_crash_loaded));
	kv(fp, "crash size:", "%s", vmc_human_size(c->crash_size, size));
	print_crashkernel(fp, c->cmdline);
	for (size_t i = 0; i < c->n_dirs; i++) {
		const Vmcheck__V1__CrashDir *d = c->dirs[i];
		struct table t;

		if (!d)
			continue;
		fputc('\n', fp);
		vmc_esc_line(fp, "%s: %s%s, %zu dump%s", vmc_text_dash(d->path),
			     d->exists ? "exists" : "missing", d->writable ? ", writable" : "",
			     d->n_dumps, d->n_dumps == 1 ? "" : "s");
		if (!d->n_dumps)
			continue;
		table_init(&t, head, ARRAY_SIZE(head), 1u << 2 | 1u << 4);
		for (size_t j = 0; j < d->n_dumps; j++) {
			const Vmcheck__V1__CrashDump *u = d->dumps[j];

			if (!u)
				continue;
			cell(&t, "%s", vmc_text_dash(u->name));
			cell(&t, "%s", dump_format(u->format));
			if (u->has_vmcore)
				cell(&t, "%s", vmc_human_size(u->vmcore_size, size));
			else
				cell(&t, "-");
			cell(&t, "%s", vmc_text_yesno(u->incomplete));
			cell(&t, "%zu", u->n_files);
		}
		table_flush(fp, &t);
	}
}

/* --------------------------------------------------------------- state */

void vmc_print_state(FILE *fp, const Vmcheck__V1__State *st)
{
	unsigned printed = 0, count = 0;

	for (uint32_t bit = 1; bit & VMC_SECTION_ALL; bit <<= 1)
		count += !!(st->sections & bit);
	for (uint32_t bit = 1; bit & VMC_SECTION_ALL; bit <<= 1) {
		if (!(st->sections & bit))
			continue;
		if (printed++)
			fputc('\n', fp);
		if (count > 1)
			fprintf(fp, "[%s]\n", vmc_section_name(bit));
		switch (bit) {
		case VMCHECK__V1__SECTION__SECTION_SYSTEM:
			print_system(fp, st->system);
			break;
		case VMCHECK__V1__SECTION__SECTION_LINKS:
			print_links(fp, st);
			break;
		case VMCHECK__V1__SECTION__SECTION_BLOCKS:
			print_blocks(fp, st);
			break;
		case VMCHECK__V1__SECTION__SECTION_MEMORY:
			print_memory(fp, st->memory);
			break;
		case VMCHECK__V1__SECTION__SECTION_CPUS:
			print_cpus(fp, st->cpus);
			break;
		case VMCHECK__V1__SECTION__SECTION_PCI:
			print_pci(fp, st->pci);
			break;
		case VMCHECK__V1__SECTION__SECTION_CRASH:
			print_crash(fp, st->crash);
			break;
		}
	}
}

void vmc_print_section_errors(FILE *fp, const Vmcheck__V1__State *st)
{
	for (size_t i = 0; i < st->n_errors; i++) {
		const Vmcheck__V1__SectionError *e = st->errors[i];
		const char *name;

		if (!e)
			continue;
		name = vmc_section_name(e->section);
		/* The agent's message already names the section ("reading links: ..."). */
		if (e->message && *e->message)
			vmc_esc_line(fp, "vmcheck: agent: %s", e->message);
		else
			fprintf(fp, "vmcheck: section %s: %s\n", name ? name : "?",
				e->errno_value > 0 ? strerror(e->errno_value) : "failed");
	}
}

/* "lo eth0 vmct0", at most eight, into @buf. */
static const char *some_names(char *buf, size_t size, size_t n,
			      const char *(*name)(const void *, size_t), const void *arr)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && i <= 8 && len < size; i++) {
		int w = snprintf(buf + len, size - len, "%s%s", i ? " " : "",
				 i < 8 ? name(arr, i) : "...");

		if (w < 0)
			break;
		len += (size_t)w;
	}
	return buf;
}

static const char *link_name_at(const void *arr, size_t i)
{
	const Vmcheck__V1__Link *const *l = arr;

	return l[i] ? vmc_text_dash(l[i]->name) : "?";
}

static const char *block_name_at(const void *arr, size_t i)
{
	const Vmcheck__V1__Block *const *b = arr;

	return b[i] ? vmc_text_dash(b[i]->name) : "?";
}

void vmc_print_summary(FILE *fp, const Vmcheck__V1__State *st)
{
	char names[256], a[16], b[16];

	vmc_esc_line(fp, "generation %llu, boot_id %s, read in %llu us",
		     (unsigned long long)st->generation, vmc_text_dash(st->boot_id),
		     (unsigned long long)(st->read_ns / 1000));
	if ((st->sections & VMCHECK__V1__SECTION__SECTION_SYSTEM) && st->system)
		vmc_esc_line(fp, "  system: %s, kernel %s, up %llu s",
			     vmc_text_dash(st->system->hostname),
			     vmc_text_dash(st->system->kernel_release),
			     (unsigned long long)(st->system->uptime_ms / 1000));
	if (st->sections & VMCHECK__V1__SECTION__SECTION_LINKS)
		vmc_esc_line(fp, "  links: %zu (%s)", st->n_links,
			     some_names(names, sizeof(names), st->n_links, link_name_at,
					st->links));
	if (st->sections & VMCHECK__V1__SECTION__SECTION_BLOCKS)
		vmc_esc_line(fp, "  blocks: %zu (%s)", st->n_blocks,
			     some_names(names, sizeof(names), st->n_blocks, block_name_at,
					st->blocks));
	if ((st->sections & VMCHECK__V1__SECTION__SECTION_MEMORY) && st->memory)
		fprintf(fp, "  memory: %s online, %s offline, %zu blocks\n",
			vmc_human_size(st->memory->online_bytes, a),
			vmc_human_size(st->memory->offline_bytes, b), st->memory->n_blocks);
	if ((st->sections & VMCHECK__V1__SECTION__SECTION_CPUS) && st->cpus)
		vmc_esc_line(fp, "  cpus: online %s, present %s", vmc_text_dash(st->cpus->online),
			     vmc_text_dash(st->cpus->present));
	if ((st->sections & VMCHECK__V1__SECTION__SECTION_PCI) && st->pci)
		fprintf(fp, "  pci: %zu functions, %zu slots\n", st->pci->n_functions,
			st->pci->n_slots);
	if ((st->sections & VMCHECK__V1__SECTION__SECTION_CRASH) && st->crash)
		fprintf(fp, "  crash: kdump %s\n",
			st->crash->kexec_crash_loaded ? "armed" : "not armed");
}

/* --------------------------------------------------------------- event */

static void print_guest_time(FILE *fp, uint64_t ns)
{
	fprintf(fp, "%llu.%06llu", (unsigned long long)(ns / NS_PER_S),
		(unsigned long long)(ns % NS_PER_S / 1000));
}

static const char *cause_source(int s)
{
	switch (s) {
	case VMCHECK__V1__CAUSE__SOURCE__UEVENT:
		return "uevent";
	case VMCHECK__V1__CAUSE__SOURCE__RTNETLINK:
		return "rtnetlink";
	case VMCHECK__V1__CAUSE__SOURCE__AGENT:
		return "agent";
	case VMCHECK__V1__CAUSE__SOURCE__FILE:
		return "file";
	default:
		return "unknown";
	}
}

void vmc_print_event(FILE *fp, const Vmcheck__V1__Event *ev, const Vmcheck__V1__State *prev,
		     int64_t host_ns)
{
	const Vmcheck__V1__State *st = ev->state;
	time_t secs = (time_t)(host_ns / (int64_t)NS_PER_S);
	struct tm tm;
	char when[32] = "?";

	if (localtime_r(&secs, &tm))
		strftime(when, sizeof(when), "%H:%M:%S", &tm);
	fprintf(fp, "%s.%06lld event", when, (long long)(host_ns % (int64_t)NS_PER_S / 1000));
	if (!st) {
		fprintf(fp, " without a state (subscription %llu)\n",
			(unsigned long long)ev->subscription_id);
		return;
	}
	fprintf(fp, " generation %llu: kernel ", (unsigned long long)st->generation);
	print_guest_time(fp, ev->kernel_mono_ns);
	fputs(", read ", fp);
	print_guest_time(fp, st->mono_ns);
	fprintf(fp, " +%llu us", (unsigned long long)(st->read_ns / 1000));
	/* A burst that began before the read: how long the guest took to report it. */
	if (ev->kernel_mono_ns && st->mono_ns + st->read_ns >= ev->kernel_mono_ns)
		fprintf(fp, ", latency %.3f ms",
			(double)(st->mono_ns + st->read_ns - ev->kernel_mono_ns) / 1e6);
	fputc('\n', fp);
	for (size_t i = 0; i < ev->n_causes; i++) {
		const Vmcheck__V1__Cause *c = ev->causes[i];

		if (c)
			vmc_esc_line(fp, "  cause: %s %s %s %s", cause_source(c->source),
				     vmc_text_dash(c->action), vmc_text_dash(c->subsystem),
				     vmc_text_dash(c->name));
	}
	if (prev && !vmc_state_diff_write(fp, prev, st))
		fprintf(fp, "  (no change)\n");
}
