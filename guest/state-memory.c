/* SPDX-License-Identifier: MIT */
/*
 * Memory blocks from sys/devices/system/memory. Totals and ranges must agree
 * with lsmem(1) of util-linux 2.38.1 run on the same tree (`lsmem -J -b`):
 * the host matches a DIMM by its range, so merging follows lsmem's default
 * rules exactly. A block hot-removed while we read it is left out.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "state.h"

#define MEM "sys/devices/system/memory"

/* Gone while we looked: files disappear, or an open attribute says ENODEV. */
static bool vanished(int r)
{
	return r == -ENOENT || r == -ENODEV;
}

/* "memoryN" with N all digits, as lsmem filters its scandir. */
static bool block_index(const char *name, uint64_t *index)
{
	return strncmp(name, "memory", 6) == 0 && isdigit((unsigned char)name[6]) &&
	       vmc_parse_u64(name + 6, 10, index) == 0;
}

static Vmcheck__V1__MemoryBlock__State parse_state(const char *s)
{
	if (strcmp(s, "online") == 0)
		return VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE;
	if (strcmp(s, "offline") == 0)
		return VMCHECK__V1__MEMORY_BLOCK__STATE__OFFLINE;
	if (strcmp(s, "going-offline") == 0)
		return VMCHECK__V1__MEMORY_BLOCK__STATE__GOING_OFFLINE;
	return VMCHECK__V1__MEMORY_BLOCK__STATE__STATE_UNKNOWN;
}

/* The STATE column exactly as lsmem 2.38.1 prints it. */
static char *lsmem_state(Vmcheck__V1__MemoryBlock__State s)
{
	switch (s) {
	case VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE:
		return "online";
	case VMCHECK__V1__MEMORY_BLOCK__STATE__OFFLINE:
		return "offline";
	case VMCHECK__V1__MEMORY_BLOCK__STATE__GOING_OFFLINE:
		return "on->off";
	default:
		return "?";
	}
}

/*
 * Call @fn for every entry of directory @path under @dirfd, in readdir
 * order: no copies, no sorting (a node directory lists every block).
 * Returns 0 or -errno.
 */
static int scan_dir(int dirfd, const char *path, void (*fn)(const char *name, void *ctx), void *ctx)
{
	struct vmc_sysroot_dir d;
	const char *name;
	int r = vmc_sysroot_dir_open(&d, dirfd, path);

	if (r < 0)
		return r;
	while ((r = vmc_sysroot_dir_next(&d, &name)) > 0)
		fn(name, ctx);
	vmc_sysroot_dir_close(&d);
	return r;
}

struct node_scan {
	int rootfd;
	int *map;
	uint64_t max_index;
	int node;
};

static void note_block(const char *name, void *ctx)
{
	struct node_scan *ns = ctx;
	uint64_t idx;

	if (block_index(name, &idx) && idx <= ns->max_index && ns->map[idx] < 0)
		ns->map[idx] = ns->node;
}

static void scan_node(const char *name, void *ctx)
{
	struct node_scan *ns = ctx;
	char path[64];
	uint64_t node;

	if (strncmp(name, "node", 4) || vmc_parse_u64(name + 4, 10, &node) || node > INT32_MAX)
		return;
	ns->node = (int)node;
	snprintf(path, sizeof(path), "sys/devices/system/node/%s", name);
	scan_dir(ns->rootfd, path, note_block, ns);
}

/*
 * Block -> NUMA node, from sys/devices/system/node/nodeN/memoryM links: one
 * listing per node instead of one per block (thousands of blocks on a big
 * guest). Returns the map (index -> node, -1 unknown) or NULL when the tree
 * has no node directory; then each block's own nodeN entry is used.
 */
static int *node_map(int rootfd, uint64_t max_index, bool *have)
{
	struct node_scan ns = { .rootfd = rootfd, .max_index = max_index };

	*have = false;
	ns.map = malloc((max_index + 1) * sizeof(*ns.map));
	if (!ns.map)
		return NULL;
	for (uint64_t i = 0; i <= max_index; i++)
		ns.map[i] = -1;
	if (scan_dir(rootfd, "sys/devices/system/node", scan_node, &ns) < 0) {
		free(ns.map);
		return NULL;
	}
	*have = true;
	return ns.map;
}

/*
 * Open attribute files of the live system's memory blocks, kept between
 * snapshots: a sysfs attribute re-reads fresh with pread(fd, .., 0), so a
 * cached block costs one system call per attribute instead of three, and
 * memory blocks are most of a snapshot's system calls (thousands of 128 MiB
 * blocks on a big guest). A block that was removed answers ENODEV on its old
 * fd: it is reopened (a new block of the same index) or found absent.
 * Fixture trees are never cached (a replaced file would keep old bytes).
 * One process-wide cache for the one live root; memory reads serialise on
 * its lock, which is cheap next to the syscalls saved.
 */
enum {
	ATTR_STATE,
	ATTR_ZONES,
	N_ATTRS
};

static struct {
	pthread_mutex_t mu;
	int (*fds)[N_ATTRS]; /* by block index; -1 = not open */
	size_t cap;          /* indices covered */
	size_t max_blocks;   /* from RLIMIT_NOFILE: leave room for the rest */
} cache = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* Make room for @n indices; false when the cache cannot cover them. */
static bool cache_reserve(size_t n)
{
	int(*fds)[N_ATTRS];

	if (!cache.max_blocks) {
		struct rlimit rl;

		cache.max_blocks = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 512
					   ? (rl.rlim_cur - 256) / N_ATTRS
					   : 1;
	}
	if (n > cache.max_blocks)
		return false;
	if (n <= cache.cap)
		return true;
	fds = realloc(cache.fds, n * sizeof(*fds));
	if (!fds)
		return false;
	for (size_t i = cache.cap; i < n; i++)
		for (int k = 0; k < N_ATTRS; k++)
			fds[i][k] = -1;
	cache.fds = fds;
	cache.cap = n;
	return true;
}

/* Close the fds of blocks no longer listed (@idx sorted, @n of them). */
static void cache_prune(const uint64_t *idx, size_t n)
{
	size_t j = 0;

	for (size_t i = 0; i < cache.cap; i++) {
		while (j < n && idx[j] < i)
			j++;
		if (j < n && idx[j] == i)
			continue;
		for (int k = 0; k < N_ATTRS; k++)
			if (cache.fds[i][k] >= 0) {
				close(cache.fds[i][k]);
				cache.fds[i][k] = -1;
			}
	}
}

/*
 * Read attribute @attr of block @name into @buf, through the cached fd in
 * *@slot when there is one (NULL: no caching). Same returns as vmc_sysroot_read_attr.
 */
static int block_attr(int memfd, const char *name, const char *attr, int *slot, char *buf,
		      size_t size)
{
	char path[64];
	ssize_t len;
	int fd;

	if (slot && *slot >= 0) {
		len = TEMP_FAILURE_RETRY(pread(*slot, buf, size - 1, 0));
		if (len >= 0 && (size_t)len < size - 1)
			goto done;
		/* Removed (ENODEV), or odd: forget the fd and look again. */
		close(*slot);
		*slot = -1;
	}
	snprintf(path, sizeof(path), "%s/%s", name, attr);
	fd = openat(memfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	len = TEMP_FAILURE_RETRY(read(fd, buf, size - 1));
	if (len < 0 || (size_t)len == size - 1) {
		int e = len < 0 ? -errno : -EOVERFLOW;

		close(fd);
		return e;
	}
	if (slot)
		*slot = fd;
	else
		close(fd);
done:
	while (len > 0 && buf[len - 1] == '\n')
		len--;
	buf[len] = '\0';
	return (int)len;
}

/* Is block @name linked to node @node (>= 0) right now? */
static bool node_linked(int memfd, const char *name, int node)
{
	char path[64];

	if (node < 0)
		return false;
	snprintf(path, sizeof(path), "%s/node%d", name, node);
	return faccessat(memfd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/*
 * One memoryN directory, read relative to the memory directory's fd with
 * single-read attributes: this is the hot path of a snapshot. The state
 * file decides whether the block exists: -ENOENT/-ENODEV from it means the
 * block went away while we looked. Other attributes are optional.
 */
static int read_block(int memfd, const char *name, const int *nodes, int *removable, int *fds,
		      struct vmc_arena *a, Vmcheck__V1__MemoryBlock *b)
{
	char path[64], buf[128];
	uint64_t v;
	int r;

	r = block_attr(memfd, name, "state", fds ? &fds[ATTR_STATE] : NULL, buf, sizeof(buf));
	if (r < 0)
		return r;
	b->state = parse_state(buf);
	b->node = -1;
	if (nodes)
		b->node = nodes[b->index];

	/*
	 * A hot-added block is announced before the kernel gives it a node
	 * (memory_block_add_nid() runs, then the nodeN links appear); until
	 * then valid_zones of an offline block dereferences
	 * NODE_DATA(NUMA_NO_NODE) and oopses the guest (Linux 6.1, seen under
	 * systemd). On a NUMA kernel (node links exist), such a block has no
	 * zones yet: the snapshot its node link brings will have them. The
	 * link is looked for again right before the read: the map is a few
	 * milliseconds old, and a DIMM unplugged and plugged again in that
	 * time is a new block with no node yet.
	 */
	if (nodes && b->state != VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE &&
	    !node_linked(memfd, name, b->node))
		r = -ENOENT;
	else
		r = block_attr(memfd, name, "valid_zones", fds ? &fds[ATTR_ZONES] : NULL, buf,
			       sizeof(buf));
	if (r >= 0) {
		b->valid_zones = vmc_arena_strdup(a, buf);
		if (!b->valid_zones)
			return -ENOMEM;
	} else if (!vanished(r)) {
		return r;
	}

	/* Legacy, but lsmem splits ranges on it. See removable_is_constant(). */
	if (*removable >= 0) {
		b->removable = *removable;
	} else {
		snprintf(path, sizeof(path), "%s/removable", name);
		r = vmc_sysroot_read_attr(memfd, path, buf, sizeof(buf));
		if (r >= 0 && vmc_parse_u64(buf, 10, &v) == 0)
			b->removable = v == 1;
		else if (r >= 0)
			return -EINVAL;
		else if (!vanished(r))
			return r;
		if (*removable == -2 && r >= 0)
			*removable = b->removable;
	}

	if (nodes)
		return 0;
	return vmc_sysroot_node_of_dirf(memfd, &b->node, "%s", name);
}

/*
 * Since Linux 5.7 ("drivers/base/memory.c: indicate all memory blocks as
 * removable") every block's removable file prints the same constant, so one
 * read stands for all: a third fewer sysfs opens on the snapshot's hot path.
 * Older or unknown kernels (fixture trees without osrelease) are read per
 * block. Returns -2 ("read the first block, then reuse") or -1 (per block).
 */
static int removable_is_constant(int rootfd)
{
	char rel[64];
	unsigned maj = 0, min = 0;

	if (vmc_sysroot_read_str(rootfd, "proc/sys/kernel/osrelease", rel, sizeof(rel)) < 0 ||
	    sscanf(rel, "%u.%u", &maj, &min) != 2)
		return -1;
	return maj > 5 || (maj == 5 && min >= 7) ? -2 : -1;
}

/*
 * lsmem's default split: a new range at a hole in the indices, a change of
 * state or a change of the removable file. Its JSON prints removable true
 * only for an online range, so the range reports what lsmem prints.
 */
int vmc_state_memory_ranges(struct vmc_arena *a, Vmcheck__V1__Memory *m)
{
	Vmcheck__V1__MemoryRange *rs = vmc_arena_alloc(a, m->n_blocks * sizeof(*rs));
	Vmcheck__V1__MemoryRange **ptrs = vmc_arena_alloc(a, m->n_blocks * sizeof(*ptrs));
	const uint64_t bs = m->block_size;
	size_t n = 0;

	if (!rs || !ptrs)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_blocks; i++) {
		const Vmcheck__V1__MemoryBlock *b = m->blocks[i],
					       *prev = i ? m->blocks[i - 1] : NULL;
		Vmcheck__V1__MemoryRange *r;

		if (prev && prev->index + 1 == b->index && prev->state == b->state &&
		    prev->removable == b->removable) {
			r = ptrs[n - 1];
			r->last_block = b->index;
			r->size += bs;
			r->end += bs;
			continue;
		}
		r = &rs[n];
		ptrs[n++] = r;
		vmcheck__v1__memory_range__init(r);
		r->first_block = r->last_block = b->index;
		r->start = b->phys_start;
		r->size = bs;
		r->end = b->phys_start + bs - 1;
		r->state = lsmem_state(b->state);
		r->removable = b->removable && b->state == VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE;
	}
	m->ranges = ptrs;
	m->n_ranges = n;
	return 0;
}

int vmc_state_meminfo_kb(int rootfd, const char *key, uint64_t *kb)
{
	char buf[8192], num[24], *p;
	size_t len, klen = strlen(key);
	int r;

	r = vmc_sysroot_read_str(rootfd, "proc/meminfo", buf, sizeof(buf));
	if (r < 0)
		return r;
	/* "MemTotal:       24684092 kB": the key, a colon, spaces, a number, " kB". */
	for (p = buf; strncmp(p, key, klen) != 0 || p[klen] != ':'; p++) {
		p = strchr(p, '\n');
		if (!p)
			return -ENOENT;
	}
	p += klen + 1;
	p += strspn(p, " ");
	len = strspn(p, "0123456789");
	if (len == 0 || len >= sizeof(num) || strncmp(p + len, " kB", 3) != 0 ||
	    (p[len + 3] != '\n' && p[len + 3] != '\0'))
		return -EINVAL;
	memcpy(num, p, len);
	num[len] = '\0';
	return vmc_parse_u64(num, 10, kb);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The memoryN indices under @memfd, sorted. Straight from getdents into an
 * integer array: no per-name allocation for thousands of blocks.
 */
/*
 * Sort block indices: sysfs lists them in hash order. Indices are dense and
 * small (one per 128 MiB), so a bitmap pass beats a comparison sort by far;
 * a sparse or huge range falls back to qsort.
 */
static void sort_indices(uint64_t *v, size_t n)
{
	uint64_t max = 0, *bits;
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (v[i] > max)
			max = v[i];
	if (n == 0 || max >= (1u << 24) || max / 64 > 16 * n ||
	    !(bits = calloc(max / 64 + 1, sizeof(*bits)))) {
		qsort(v, n, sizeof(*v), cmp_u64);
		return;
	}
	for (size_t i = 0; i < n; i++)
		bits[v[i] / 64] |= 1ull << (v[i] % 64);
	for (uint64_t w = 0; w <= max / 64; w++)
		for (uint64_t b = bits[w]; b; b &= b - 1)
			v[k++] = w * 64 + (uint64_t)__builtin_ctzll(b);
	free(bits);
}

static int list_blocks(int memfd, uint64_t **out)
{
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;
	struct vmc_sysroot_dir d;
	const char *name;
	int r;

	r = vmc_sysroot_dir_open(&d, memfd, ".");
	if (r < 0)
		return r;
	while ((r = vmc_sysroot_dir_next(&d, &name)) > 0) {
		uint64_t index;

		if (!block_index(name, &index))
			continue;
		if (n == cap) {
			uint64_t *nv;

			cap = cap ? cap * 2 : 256;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[n++] = index;
	}
	vmc_sysroot_dir_close(&d);
	if (r < 0) {
		free(v);
		return r;
	}
	if (n > INT_MAX) {
		free(v);
		return -EOVERFLOW;
	}
	sort_indices(v, n);
	*out = v;
	return (int)n;
}

static int read_memory(int fd, int memfd, const uint64_t *idx, size_t n, bool live,
		       struct vmc_arena *a, Vmcheck__V1__State *st)
{
	_cleanup_free_ int *nodes = NULL;
	uint64_t max_index = 0;
	bool have_nodes, cached;
	int removable;
	Vmcheck__V1__Memory *m = vmc_arena_alloc(a, sizeof(*m));
	Vmcheck__V1__MemoryBlock *blocks = vmc_arena_alloc(a, n * sizeof(*blocks));
	Vmcheck__V1__MemoryBlock **ptrs = vmc_arena_alloc(a, n * sizeof(*ptrs));
	char buf[64];
	int r;

	if (!m || !blocks || !ptrs)
		return -ENOMEM;
	vmcheck__v1__memory__init(m);
	r = vmc_sysroot_read_u64f(fd, &m->block_size, 16, MEM "/block_size_bytes");
	if (r < 0)
		return r;
	if (m->block_size == 0)
		return -EINVAL;
	if (n > 0)
		max_index = idx[n - 1];
	/* The map is only worth it (and bounded) for a sane index range. */
	if (max_index < (1u << 24)) {
		nodes = node_map(fd, max_index, &have_nodes);
		if (!have_nodes && nodes) {
			free(nodes);
			nodes = NULL;
		}
	}

	/* Caller holds cache.mu when @live. */
	cached = live && n > 0 && max_index < SIZE_MAX / 2 && cache_reserve((size_t)max_index + 1);
	if (cached)
		cache_prune(idx, n);
	removable = removable_is_constant(fd);
	for (size_t i = 0; i < n; i++) {
		Vmcheck__V1__MemoryBlock *b = &blocks[m->n_blocks];
		uint64_t index = idx[i];
		char name[32];

		/* Its last byte must be addressable, or the sums below wrap. */
		if (index >= UINT64_MAX / m->block_size)
			return -ERANGE;
		vmcheck__v1__memory_block__init(b);
		b->index = index;
		b->phys_start = index * m->block_size;
		snprintf(name, sizeof(name), "memory%llu", (unsigned long long)index);
		r = read_block(memfd, name, nodes, &removable, cached ? cache.fds[index] : NULL, a,
			       b);
		if (vanished(r))
			continue;
		if (r < 0)
			return r;
		if (b->state == VMCHECK__V1__MEMORY_BLOCK__STATE__ONLINE)
			m->online_bytes += m->block_size;
		else
			m->offline_bytes += m->block_size;
		ptrs[m->n_blocks++] = b;
	}
	m->blocks = ptrs;
	r = vmc_state_memory_ranges(a, m);
	if (r < 0)
		return r;

	r = vmc_sysroot_read_str(fd, MEM "/auto_online_blocks", buf, sizeof(buf));
	if (r >= 0) {
		m->auto_online_blocks = vmc_arena_strdup(a, buf);
		if (!m->auto_online_blocks)
			return -ENOMEM;
	} else if (!vanished(r)) {
		return r;
	}
	r = vmc_state_meminfo_kb(fd, "MemTotal", &m->mem_total_kb);
	if (r < 0 && !vanished(r))
		return r;

	st->memory = m;
	return 0;
}

/*
 * vmc_state_read_memory - fill st->memory from sys/devices/system/memory
 *
 * Blocks sorted by index (the listing's natural order); online/offline totals
 * and ranges as lsmem computes them (going-offline and unknown blocks count
 * as offline). Returns 0; -ENOENT without memory-block support (no memory
 * directory or no block_size_bytes); -EINVAL/-ERANGE on malformed files;
 * -ENOMEM. st->memory is left unset on failure.
 */
int vmc_state_read_memory(const struct vmc_state_opts *o, struct vmc_arena *a,
			  Vmcheck__V1__State *st)
{
	_cleanup_close_ int memfd = -1;
	_cleanup_free_ uint64_t *idx = NULL;
	int n;

	memfd = openat(o->root.fd, MEM, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (memfd < 0)
		return -errno;
	n = list_blocks(memfd, &idx);
	if (n < 0)
		return n;
	if (!o->root.live)
		return read_memory(o->root.fd, memfd, idx, (size_t)n, false, a, st);
	pthread_mutex_lock(&cache.mu);
	n = read_memory(o->root.fd, memfd, idx, (size_t)n, true, a, st);
	pthread_mutex_unlock(&cache.mu);
	return n;
}
