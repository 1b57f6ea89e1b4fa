/* SPDX-License-Identifier: MIT */
/*
 * Large-memory boot: a VM of its own with --bigmem SIZE of RAM (cmd-run.c
 * launches it; doc/facts.md, "Big guests"), held against the guest's memory
 * blocks exactly. The blocks, not MemTotal, are the measure: every block
 * the kernel lists from where the architecture puts RAM on is RAM it was
 * given (below it, arm virt's UEFI flash), so their count times the block
 * size must be the configured size to the byte, all of them online. What
 * the kernel keeps for itself shows only in MemTotal, which is reported
 * with the arithmetic, never used as a tolerance. The boot time and QEMU's
 * RSS go into the notes.
 */
#include "check-bigmem.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check-util.h"
#include "clock.h"
#include "hv.h"
#include "sysroot.h"

#define CHECK "bigmem"

#define MIB (1ULL << 20)
#define GIB (1ULL << 30)
#define TIB (1ULL << 40)
#define MIN_BLOCK (128 * MIB)
#define MAX_SIZE (1ULL << 52) /* 4 PiB: x86-64's widest physical address */

/*
 * QEMU's RSS after the boot, as a line through what the embedded guest
 * took here: 64 GiB 1.69 GB, 256 GiB 5.04, 512 GiB 9.37, 1 TiB 18.23
 * (an older kit: 1.45 ... 17.2; doc/facts.md, "Big guests"). Per GiB, the
 * struct page array is 16.8 MB, QEMU's own bookkeeping the rest.
 */
#define RSS_BASE 700000000ULL
#define RSS_PER_GIB 17200000ULL

/* QEMU 7.2's q35 memory map (hw/i386/pc.c, pc_q35.c). */
#define Q35_LOWMEM_SPLIT 0xb0000000ULL /* from this size on, only 2 GiB stay below 4 GiB */
#define PCI_HOLE64 (32 * GIB)
#define AMD_HT_START 0xfd00000000ULL
#define TCG_PHYS_BITS 40

int vmc_bigmem_parse(const char *s, uint64_t *bytes)
{
	static const struct {
		const char *unit;
		unsigned shift;
	} units[] = {
		{ "M", 20 }, { "MiB", 20 }, { "G", 30 }, { "GiB", 30 }, { "T", 40 }, { "TiB", 40 },
	};
	unsigned long long v;
	unsigned shift = 0;
	uint64_t b;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++)
		if (!strcasecmp(end, units[i].unit))
			shift = units[i].shift;
	/* A bare number would be bytes to QEMU and megabytes to -m: make the user say. */
	if (!shift)
		return -EINVAL;
	if (v > (MAX_SIZE >> shift))
		return -ERANGE;
	b = (uint64_t)v << shift;
	if (b < MIN_BLOCK)
		return -ERANGE;
	if (b % MIN_BLOCK)
		return -EINVAL;
	*bytes = b;
	return 0;
}

uint64_t vmc_bigmem_rss_need(uint64_t bytes)
{
	/* In MiB first: 4 PiB x 17.2 MB would overflow in bytes. */
	return RSS_BASE + (bytes / MIB) * RSS_PER_GIB / 1024;
}

int vmc_bigmem_fits(uint64_t bytes, uint64_t mem_available, struct vmc_error *err)
{
	uint64_t need = vmc_bigmem_rss_need(bytes);
	char sz[32];

	if (need <= mem_available)
		return 0;
	return vmc_error_set(
		err, -ENOMEM,
		"a guest of %s needs about %.1f GB of host RAM for QEMU (%.1f GB + %g GiB x "
		"%.1f MB: the guest kernel writes its struct page array, 64 bytes per 4 KiB page, "
		"at boot; measured, README \"Big guests\") and this host has %.1f GB available "
		"(MemAvailable)",
		vmc_chk_bytes(bytes, sz), need / 1e9, RSS_BASE / 1e9, (double)bytes / GIB,
		RSS_PER_GIB / 1e6, mem_available / 1e9);
}

/* "KEY:   1234 kB" in /proc's key-value files, in bytes; -ENOENT without the key. */
static int kb_field(const char *text, const char *key, uint64_t *bytes)
{
	size_t klen = strlen(key);
	unsigned long long kb;
	const char *p;
	char *end;

	for (p = text; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, key, klen) && p[klen] == ':')
			break;
	if (!p)
		return -ENOENT;
	p += klen + 1;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	errno = 0;
	kb = strtoull(p, &end, 10);
	if (errno || strncmp(end, " kB", 3) || (end[3] && end[3] != '\n') || kb > UINT64_MAX / 1024)
		return -EINVAL;
	*bytes = kb * 1024;
	return 0;
}

int vmc_bigmem_mem_available(int rootfd, uint64_t *bytes)
{
	char buf[8192];
	int r = vmc_sysroot_read_strf(rootfd, buf, sizeof(buf), "proc/meminfo");

	return r < 0 ? r : kb_field(buf, "MemAvailable", bytes);
}

int vmc_bigmem_rss(int rootfd, pid_t pid, uint64_t *rss, uint64_t *hwm)
{
	char buf[8192];
	uint64_t a, b;
	int r = vmc_sysroot_read_strf(rootfd, buf, sizeof(buf), "proc/%d/status", (int)pid);

	if (r < 0)
		return r;
	r = kb_field(buf, "VmRSS", &a);
	if (r == 0)
		r = kb_field(buf, "VmHWM", &b);
	if (r < 0)
		return r;
	*rss = a;
	*hwm = b;
	return 0;
}

int vmc_bigmem_host_check(uint64_t bytes, struct vmc_error *err)
{
	struct vmc_sysroot root;
	uint64_t avail;
	int r = vmc_sysroot_open(&root, NULL);

	if (r == 0) {
		r = vmc_bigmem_mem_available(root.fd, &avail);
		vmc_sysroot_close(&root);
	}
	if (r < 0)
		return vmc_error_set(err, r, "reading MemAvailable in /proc/meminfo: %s",
				     strerror(-r));
	return vmc_bigmem_fits(bytes, avail, err);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

unsigned vmc_bigmem_phys_bits(uint64_t bytes)
{
	uint64_t low = bytes >= Q35_LOWMEM_SPLIT ? 2 * GIB : bytes;
	uint64_t start = 4 * GIB, top;
	unsigned bits = TCG_PHYS_BITS;

	if (bytes == low)
		return 0;
	if (align_up(start + bytes - low, GIB) + PCI_HOLE64 > AMD_HT_START)
		start = TIB;
	top = align_up(start + bytes - low, GIB) + PCI_HOLE64;
	while (bits < 52 && top > (1ULL << bits))
		bits++;
	return bits == TCG_PHYS_BITS ? 0 : bits;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Why the hole [@start, @end) in the guest-physical map is there, where QEMU's q35 map says. */
static const char *hole_reason(uint64_t start, uint64_t end)
{
	if (end == 4 * GIB)
		return ": the 32-bit PCI hole";
	if (end == TIB && start < 4 * GIB)
		return ": the 32-bit PCI hole, then QEMU put the RAM above 1 TiB, past the AMD "
		       "HyperTransport hole";
	if (end == TIB)
		return ": QEMU put the RAM above 1 TiB, past the AMD HyperTransport hole";
	return "";
}

/*
 * The runs of consecutive block indices in @idx (sorted) as address
 * ranges, the holes between them, and the sum, into @w->arithmetic.
 */
static void explain(struct vmc_bigmem_want *w, const Vmcheck__V1__Memory *m, const uint64_t *idx,
		    size_t n, size_t n_below)
{
	uint64_t bs = m->block_size, total = n * bs;
	char *p = w->arithmetic, a[32], b[32], c[32];
	size_t left = sizeof(w->arithmetic), runs = 0;
	int len;

#define PUT(...)                                      \
	do {                                          \
		len = snprintf(p, left, __VA_ARGS__); \
		if (len < 0 || (size_t)len >= left)   \
			return;                       \
		p += len;                             \
		left -= (size_t)len;                  \
	} while (0)

	PUT("block size %s (block_size_bytes %" PRIx64 "); ", vmc_chk_bytes(bs, a), bs);
	if (n_below)
		PUT("%zu block%s below the RAM's start at 0x%" PRIx64 ", not RAM, not counted; ",
		    n_below, n_below == 1 ? "" : "s", w->ram_base);
	PUT("RAM in blocks");
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j + 1 < n && idx[j + 1] == idx[j] + 1)
			j++;
		if (i)
			PUT(", no RAM in 0x%" PRIx64 "-0x%" PRIx64 " (%s%s),",
			    (idx[i - 1] + 1) * bs, idx[i] * bs - 1,
			    vmc_chk_bytes((idx[i] - idx[i - 1] - 1) * bs, a),
			    hole_reason((idx[i - 1] + 1) * bs, idx[i] * bs));
		if (++runs > 8) {
			PUT(" ...");
			break;
		}
		PUT(" %" PRIu64 "-%" PRIu64 " [0x%" PRIx64 "-0x%" PRIx64 "] %s", idx[i], idx[j],
		    idx[i] * bs, (idx[j] + 1) * bs - 1, vmc_chk_bytes((j - i + 1) * bs, a));
		i = j + 1;
	}
	PUT("; %zu blocks x %s = %s online = the configured %s", n, vmc_chk_bytes(bs, a),
	    vmc_chk_bytes(total, b), vmc_chk_bytes(w->bytes, c));
	if (m->mem_total_kb)
		PUT("; MemTotal %.2f GiB, %.2f GiB less: %.2f GiB the kernel's struct page "
		    "array (64 B per 4 KiB page), the rest what the firmware reserves and the "
		    "kernel's own allocations",
		    (double)m->mem_total_kb / (1 << 20),
		    (double)(w->bytes - m->mem_total_kb * 1024) / GIB, (double)w->bytes / 64 / GIB);
#undef PUT
}

/* Block @b lies wholly below @ram_base (no overflow: the index is compared): not RAM. */
static bool below(const Vmcheck__V1__Memory *m, const Vmcheck__V1__MemoryBlock *b,
		  uint64_t ram_base)
{
	return b->index < ram_base / m->block_size;
}

bool vmc_bigmem_memory_ok(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	struct vmc_bigmem_want *w = arg;
	const Vmcheck__V1__Memory *m = st->memory;
	const Vmcheck__V1__MemoryBlock *off = NULL;
	uint64_t *idx, total;
	char a[32], b[32], c[32];
	size_t n_off = 0, n_below = 0, n;
	bool ok = false;

	if (!m || !m->block_size || !m->n_blocks) {
		vmc_why_set(why, "the guest reports no memory blocks (no memory hotplug sysfs): "
				 "its RAM cannot be counted exactly");
		return false;
	}
	for (size_t i = 0; i < m->n_blocks; i++) {
		if (below(m, m->blocks[i], w->ram_base)) {
			n_below++;
			continue;
		}
		if (m->blocks[i]->state == VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE)
			continue;
		off = off ? off : m->blocks[i];
		n_off++;
	}
	n = m->n_blocks - n_below;
	total = n * m->block_size;
	if (n_off) {
		vmc_why_set(why, "%zu of %zu memory blocks not online (first: memory%" PRIu64 ")",
			    n_off, n, off->index);
		return false;
	}
	if (total != w->bytes) {
		vmc_why_set(why, "%zu memory blocks x %s = %s%s, configured %s", n,
			    vmc_chk_bytes(m->block_size, a), vmc_chk_bytes(total, b),
			    n_below ? " from the RAM's start on" : "", vmc_chk_bytes(w->bytes, c));
		return false;
	}
	/* The kernel cannot count more RAM than it was given. */
	if (m->mem_total_kb > w->bytes / 1024) {
		vmc_why_set(why, "MemTotal %" PRIu64 " kB exceeds the configured %s",
			    m->mem_total_kb, vmc_chk_bytes(w->bytes, a));
		return false;
	}
	idx = malloc((n ? n : 1) * sizeof(*idx));
	if (idx) {
		for (size_t i = 0, k = 0; i < m->n_blocks; i++)
			if (!below(m, m->blocks[i], w->ram_base))
				idx[k++] = m->blocks[i]->index;
		qsort(idx, n, sizeof(*idx), u64_cmp);
		explain(w, m, idx, n, n_below);
		ok = true;
	} else {
		vmc_why_set(why, "out of memory");
	}
	free(idx);
	return ok;
}

/* QEMU's RSS now and at its peak, beside what the refusal arithmetic assumed. */
static void note_rss(struct vmc_step *s, pid_t pid, uint64_t bytes)
{
	struct vmc_sysroot root;
	uint64_t rss = 0, hwm = 0;
	int r = pid > 0 ? vmc_sysroot_open(&root, NULL) : -ESRCH;

	if (r == 0) {
		r = vmc_bigmem_rss(root.fd, pid, &rss, &hwm);
		vmc_sysroot_close(&root);
	}
	if (r < 0) {
		vmc_step_note(s, "QEMU RSS: unknown (/proc/%d/status: %s)", (int)pid, strerror(-r));
		return;
	}
	vmc_step_note(s,
		      "QEMU RSS %.2f GB (VmRSS %" PRIu64 " kB, peak VmHWM %" PRIu64
		      " kB); the host check assumed %.2f GB",
		      rss / 1e9, rss / 1024, hwm / 1024, vmc_bigmem_rss_need(bytes) / 1e9);
}

int vmc_check_bigmem(struct vmc_ctx *c)
{
	struct vmc_bigmem_want want = { .bytes = c->opts->bigmem_bytes,
					.ram_base = vmc_hv_arch(c->hv)->ram_base };
	struct vmc_hv_process qemu;
	uint64_t ready = vmc_mono_ns();
	struct vmc_step *s;
	char sz[32];
	int r;

	vmc_hv_process_get(c->hv, &qemu);
	if (!want.bytes) {
		vmc_step_skip(c, CHECK, "count", "no --bigmem SIZE");
		return 0;
	}
	/* The boot's time is the setup step's; this one counts what the guest got. */
	s = vmc_step_begin(c, CHECK, "count %s of RAM online", vmc_chk_bytes(want.bytes, sz));
	/* The suite connected to the agent right before this check: that was the boot. */
	if (qemu.started_ns)
		vmc_step_note(s,
			      "time to agent: %.2f s from QEMU's start to the agent's first answer",
			      (double)(ready - qemu.started_ns) / 1e9);
	note_rss(s, qemu.pid, want.bytes);
	r = vmc_step_expect(s, vmc_bigmem_memory_ok, &want, c->opts->deadline_ms);
	if (r == 0)
		vmc_step_note(s, "%s", want.arithmetic);
	return vmc_step_end(s, r, NULL);
}
