/* SPDX-License-Identifier: MIT */
/*
 * The memory probe: new memory is usable when pages the kernel hands this
 * process land on frames inside it and keep what is written to them. The
 * agent cannot ask for a frame; it can only take anonymous memory until
 * the allocator gives it some from the range, keeping every chunk so the
 * allocator moves on, and look at each page's frame in /proc/self/pagemap.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "clock.h"
#include "probe.h"
#include "state.h"

#define ECODE(x) VMCHECK__V1__ERROR__CODE__##x
#define NS_PER_MS 1000000ull
#define MIB (1ull << 20)
#define CHUNK (4 * MIB)
#define WANT_DEFAULT (16 * MIB)
/* Added to the size for the default bound, and kept free of MemAvailable. */
#define SLACK (64 * MIB)
/* pagemap entries: bit 63 present, bits 0-54 the frame (0 without CAP_SYS_ADMIN). */
#define PM_PRESENT (1ull << 63)
#define PM_PFN ((1ull << 55) - 1)
#define PAGEMAP "/proc/self/pagemap"

/*
 * Two probes at once would each leave the other's memory out of the
 * bound they computed from MemAvailable: one at a time.
 */
static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;

struct chunk {
	uint8_t *addr;
	size_t len;
};

/* A page on a frame inside the range. */
struct hit {
	size_t chunk;
	size_t page; /* within the chunk */
	uint64_t pfn;
};

struct mem {
	size_t ps;            /* page size */
	uint64_t first, end;  /* the range in frames, [first, end) */
	uint64_t want, bound; /* bytes */
	unsigned timeout_ms;
	uint64_t alloc_deadline; /* then the verification gets the rest */
	uint64_t deadline;
	int pagemap;
	uint64_t *pm; /* one chunk's pagemap entries */
	struct chunk *chunks;
	size_t n_chunks, cap_chunks;
	struct hit *hits;
	size_t n_hits, cap_hits;
	uint64_t allocated;
	uint64_t verified, mismatched, moved;
};

static int check_args(const Vmcheck__V1__MemoryProbe *p, size_t ps, struct vmc_outcome *o)
{
	if (p->size == 0 || p->phys_start % ps || p->size % ps)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"range 0x%llx + 0x%llx: want a size > 0, both multiples "
					"of the page size (%zu)",
					(unsigned long long)p->phys_start,
					(unsigned long long)p->size, ps);
	if (p->phys_start > UINT64_MAX - p->size)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"range 0x%llx + 0x%llx ends beyond 2^64",
					(unsigned long long)p->phys_start,
					(unsigned long long)p->size);
	if (p->want_bytes > p->size)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"want_bytes %llu is over the range's %llu bytes",
					(unsigned long long)p->want_bytes,
					(unsigned long long)p->size);
	if (p->timeout_ms > VMC_PROBE_MEM_MAX_MS)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"timeout_ms %u is over the limit of %u", p->timeout_ms,
					VMC_PROBE_MEM_MAX_MS);
	return 0;
}

/*
 * How much may be allocated: what was asked (default size + 64 MiB), and
 * never so much that less than 64 MiB of MemAvailable is left to the guest.
 */
static int compute_bound(int rootfd, const Vmcheck__V1__MemoryProbe *p, struct mem *m,
			 struct vmc_outcome *o)
{
	uint64_t avail_kb, avail, bound;
	int r = vmc_state_meminfo_kb(rootfd, "MemAvailable", &avail_kb);

	if (r < 0)
		return vmc_outcome_fail(o, ECODE(INTERNAL), -r,
					"reading MemAvailable from proc/meminfo: %s", strerror(-r));
	avail = avail_kb > UINT64_MAX / 1024 ? UINT64_MAX : avail_kb * 1024;
	if (p->max_alloc_bytes)
		bound = p->max_alloc_bytes;
	else
		bound = p->size > UINT64_MAX - SLACK ? UINT64_MAX : p->size + SLACK;
	if (avail <= SLACK)
		return vmc_outcome_fail(o, ECODE(INTERNAL), ENOMEM,
					"only %llu MiB available, and the probe leaves 64 MiB free",
					(unsigned long long)(avail / MIB));
	if (bound > avail - SLACK)
		bound = avail - SLACK;
	m->bound = bound / m->ps * m->ps;
	return 0;
}

static int mem_init(struct mem *m, int rootfd, const Vmcheck__V1__MemoryProbe *p, uint64_t start,
		    struct vmc_outcome *o)
{
	int r;

	memset(m, 0, sizeof(*m));
	m->pagemap = -1;
	m->ps = (size_t)sysconf(_SC_PAGESIZE);
	r = check_args(p, m->ps, o);
	if (r < 0)
		return r;
	m->first = p->phys_start / m->ps;
	m->end = m->first + p->size / m->ps;
	m->want = p->want_bytes ? p->want_bytes : p->size < WANT_DEFAULT ? p->size : WANT_DEFAULT;
	m->timeout_ms = p->timeout_ms ? p->timeout_ms : VMC_PROBE_MEM_DEFAULT_MS;
	m->deadline = start + m->timeout_ms * NS_PER_MS;
	/*
	 * Allocation may take three quarters of the time: writing, reading
	 * back and looking up what it found must fit in the rest.
	 */
	m->alloc_deadline = start + m->timeout_ms * NS_PER_MS / 4 * 3;
	r = compute_bound(rootfd, p, m, o);
	if (r < 0)
		return r;
	m->pm = malloc(CHUNK / m->ps * sizeof(*m->pm));
	if (!m->pm)
		return vmc_outcome_fail(o, ECODE(INTERNAL), ENOMEM, "out of memory");
	/* The real one, whatever the sysroot: it describes this process. */
	m->pagemap = open(PAGEMAP, O_RDONLY | O_CLOEXEC);
	if (m->pagemap < 0)
		return vmc_outcome_fail(o, vmc_outcome_code_of(errno), errno, "opening %s: %s",
					PAGEMAP, strerror(errno));
	return 0;
}

/* Everything unmapped and freed: the probe leaves no memory behind. */
static void mem_free(struct mem *m)
{
	for (size_t i = 0; i < m->n_chunks; i++)
		munmap(m->chunks[i].addr, m->chunks[i].len);
	free(m->chunks);
	free(m->hits);
	free(m->pm);
	if (m->pagemap >= 0)
		close(m->pagemap);
}

/* The pagemap entries of chunk @c into m->pm. */
static int read_pagemap(struct mem *m, const struct chunk *c, struct vmc_outcome *o)
{
	size_t n = c->len / m->ps * sizeof(*m->pm);
	off_t off = (off_t)((uintptr_t)c->addr / m->ps * sizeof(*m->pm));
	ssize_t k = TEMP_FAILURE_RETRY(pread(m->pagemap, m->pm, n, off));

	if (k == (ssize_t)n)
		return 0;
	return vmc_outcome_fail(o, ECODE(INTERNAL), k < 0 ? errno : EIO, "reading %s: %s", PAGEMAP,
				k < 0 ? strerror(errno) : "short read");
}

static int push_hit(struct mem *m, size_t chunk, size_t page, uint64_t pfn)
{
	if (m->n_hits == m->cap_hits) {
		size_t cap = m->cap_hits ? 2 * m->cap_hits : CHUNK / m->ps;
		struct hit *h = realloc(m->hits, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		m->hits = h;
		m->cap_hits = cap;
	}
	m->hits[m->n_hits++] = (struct hit){ .chunk = chunk, .page = page, .pfn = pfn };
	return 0;
}

/* Note the pages of the newest chunk whose frames lie in the range. */
static int scan_chunk(struct mem *m, struct vmc_outcome *o)
{
	size_t ci = m->n_chunks - 1, n = m->chunks[ci].len / m->ps;
	int r = read_pagemap(m, &m->chunks[ci], o);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		uint64_t e = m->pm[i], pfn = e & PM_PFN;

		if (!(e & PM_PRESENT))
			continue;
		/* Frame 0 is never a user page: the kernel hides frames from us. */
		if (pfn == 0)
			return vmc_outcome_fail(o, ECODE(NOT_PERMITTED), 0,
						"%s shows no frame numbers: the agent lacks "
						"CAP_SYS_ADMIN",
						PAGEMAP);
		if (pfn >= m->first && pfn < m->end && push_hit(m, ci, i, pfn) < 0)
			return vmc_outcome_fail(o, ECODE(INTERNAL), ENOMEM, "out of memory");
	}
	return 0;
}

/* One more chunk, touched; false when no more memory can be had. */
static bool grow(struct mem *m, size_t len)
{
	void *addr;

	if (m->n_chunks == m->cap_chunks) {
		size_t cap = m->cap_chunks ? 2 * m->cap_chunks : 64;
		struct chunk *c = realloc(m->chunks, cap * sizeof(*c));

		if (!c)
			return false;
		m->chunks = c;
		m->cap_chunks = cap;
	}
	/* MAP_POPULATE write-faults every page of a writable private map. */
	addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		    -1, 0);
	if (addr == MAP_FAILED)
		return false;
	m->chunks[m->n_chunks++] = (struct chunk){ .addr = addr, .len = len };
	m->allocated += len;
	return true;
}

/* Allocate until enough lies in the range, the bound is reached or time runs out. */
static int allocate(struct mem *m, struct vmc_outcome *o)
{
	while ((uint64_t)m->n_hits * m->ps < m->want && m->allocated < m->bound &&
	       vmc_mono_ns() < m->alloc_deadline) {
		uint64_t left = m->bound - m->allocated;
		int r;

		if (!grow(m, left < CHUNK ? (size_t)left : CHUNK))
			break;
		r = scan_chunk(m, o);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The pattern of the page on frame @pfn: no two frames, no two words alike. */
static void pattern(uint64_t *page, size_t words, uint64_t pfn)
{
	for (size_t i = 0; i < words; i++) {
		uint64_t x = (pfn << 12 | i) * 0x9e3779b97f4a7c15ull;

		page[i] = x ^ (x >> 29);
	}
}

static uint8_t *hit_addr(const struct mem *m, const struct hit *h)
{
	return m->chunks[h->chunk].addr + h->page * m->ps;
}

/*
 * Write every page found in the range, then read each back, then look at
 * its frame again. Pages reached before the deadline are checked; the rest
 * count as neither verified nor wrong.
 */
static int verify(struct mem *m, struct vmc_outcome *o)
{
	_cleanup_free_ uint64_t *want = malloc(m->ps);
	size_t words = m->ps / sizeof(*want), n = 0, last = SIZE_MAX;

	if (!want)
		return vmc_outcome_fail(o, ECODE(INTERNAL), ENOMEM, "out of memory");
	for (; n < m->n_hits && (n % 256 || vmc_mono_ns() < m->deadline); n++)
		pattern((uint64_t *)hit_addr(m, &m->hits[n]), words, m->hits[n].pfn);
	for (size_t i = 0; i < n; i++) {
		const struct hit *h = &m->hits[i];
		bool intact, same;

		pattern(want, words, h->pfn);
		intact = !memcmp(hit_addr(m, h), want, m->ps);
		/* Hits are in chunk order: one pagemap read per chunk. */
		if (h->chunk != last) {
			int r = read_pagemap(m, &m->chunks[h->chunk], o);

			if (r < 0)
				return r;
			last = h->chunk;
		}
		same = (m->pm[h->page] & PM_PRESENT) && (m->pm[h->page] & PM_PFN) == h->pfn;
		m->mismatched += !intact;
		m->moved += !same;
		m->verified += intact && same ? m->ps : 0;
	}
	return 0;
}

int vmc_probe_memory(const struct vmc_sysroot *root, const Vmcheck__V1__MemoryProbe *p,
		     Vmcheck__V1__ProbeResult *res, struct vmc_outcome *o)
{
	uint64_t start = vmc_mono_ns();
	struct mem m;
	int r;

	if (pthread_mutex_trylock(&mem_lock))
		return vmc_outcome_fail(o, ECODE(BUSY), 0, "another memory probe is under way");
	r = mem_init(&m, root->fd, p, start, o);
	if (r == 0)
		r = allocate(&m, o);
	if (r == 0)
		r = verify(&m, o);
	mem_free(&m);
	pthread_mutex_unlock(&mem_lock);
	if (r < 0)
		return r;
	res->allocated_bytes = m.allocated;
	res->in_range_bytes = (uint64_t)m.n_hits * m.ps;
	res->verified_bytes = m.verified;
	res->mismatched_pages = m.mismatched;
	res->moved_pages = m.moved;
	res->duration_ns = vmc_mono_ns() - start;
	vmc_outcome_ok(o, "%llu of %llu bytes allocated lie in the range, %llu verified",
		       (unsigned long long)res->in_range_bytes, (unsigned long long)m.allocated,
		       (unsigned long long)m.verified);
	return 0;
}
