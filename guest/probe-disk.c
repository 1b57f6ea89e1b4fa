/* SPDX-License-Identifier: MIT */
/*
 * The disk probe: a new disk is usable when a pattern written to the raw
 * device reads back unchanged (and the host later finds it in the image).
 * It destroys data, so it refuses anything that looks in use before it
 * opens the device, and opens it O_EXCL so the kernel refuses it as well.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "clock.h"
#include "parse.h"
#include "probe.h"
#include "sha256.h"

#define ECODE(x) VMCHECK__V1__ERROR__CODE__##x
#define SECTOR 512u
#define MAX_PARTS 128
/* Buffers aligned for O_DIRECT on any logical block size. */
#define BUF_ALIGN 4096u

struct blockdev {
	char name[64];
	unsigned major, minor;
};

/* The disk and its partitions, as sys/block lists them. */
struct disk {
	struct blockdev devs[1 + MAX_PARTS]; /* devs[0]: the disk */
	size_t n;
	uint64_t size; /* bytes */
	unsigned lbs;  /* logical block size */
	bool ro;
};

static int sys_fail(struct vmc_outcome *o, int err, const char *what, const char *name)
{
	return vmc_outcome_fail(o, vmc_outcome_code_of(err), err, "%s %s: %s", what, name,
				strerror(err));
}

/* "254:16" from @dir/dev, strictly. */
static int read_devnum(int rootfd, const char *dir, struct blockdev *d)
{
	char buf[32], *colon;
	uint64_t ma, mi;
	int r = vmc_sysroot_read_strf(rootfd, buf, sizeof(buf), "%s/dev", dir);

	if (r < 0)
		return r;
	colon = strchr(buf, ':');
	if (!colon)
		return -EINVAL;
	*colon = '\0';
	if (vmc_parse_u64(buf, 10, &ma) < 0 || vmc_parse_u64(colon + 1, 10, &mi) < 0 ||
	    ma > UINT_MAX || mi > UINT_MAX)
		return -EINVAL;
	d->major = (unsigned)ma;
	d->minor = (unsigned)mi;
	return 0;
}

static int read_disk(int rootfd, const char *name, struct disk *dk, struct vmc_outcome *o)
{
	char dir[96], **names;
	uint64_t v;
	int n, r;

	snprintf(dir, sizeof(dir), "sys/block/%s", name);
	snprintf(dk->devs[0].name, sizeof(dk->devs[0].name), "%s", name);
	dk->n = 1;
	r = read_devnum(rootfd, dir, &dk->devs[0]);
	if (r == -ENOENT)
		return vmc_outcome_fail(o, ECODE(NOT_FOUND), 0, "%s: no such block device (no %s)",
					name, dir);
	if (r < 0)
		return sys_fail(o, -r, "reading the device number of", name);
	r = vmc_sysroot_read_u64f(rootfd, &v, 10, "%s/size", dir);
	if (r < 0 || v > UINT64_MAX / SECTOR)
		return sys_fail(o, r < 0 ? -r : ERANGE, "reading the size of", name);
	dk->size = v * SECTOR;
	dk->lbs = SECTOR;
	if (vmc_sysroot_read_u64f(rootfd, &v, 10, "%s/queue/logical_block_size", dir) == 0 && v &&
	    v <= BUF_ALIGN)
		dk->lbs = (unsigned)v;
	dk->ro = vmc_sysroot_read_u64f(rootfd, &v, 10, "%s/ro", dir) == 0 && v;

	n = vmc_sysroot_list_dirf(rootfd, &names, "%s", dir);
	if (n < 0)
		return sys_fail(o, -n, "listing", dir);
	r = 0;
	for (int i = 0; i < n && r == 0; i++) {
		struct blockdev *d = &dk->devs[dk->n];
		char pdir[192];

		snprintf(pdir, sizeof(pdir), "%s/%s", dir, names[i]);
		/* Partitions are the subdirectories with a "partition" number. */
		if (strlen(names[i]) >= sizeof(d->name) ||
		    vmc_sysroot_read_u64f(rootfd, &v, 10, "%s/partition", pdir) < 0)
			continue;
		if (dk->n == ARRAY_SIZE(dk->devs))
			r = vmc_outcome_fail(o, ECODE(NOT_PERMITTED), 0,
					     "%s holds over %d partitions", name, MAX_PARTS);
		else if (read_devnum(rootfd, pdir, d) < 0)
			r = sys_fail(o, EINVAL, "reading the device number of", names[i]);
		else
			strcpy(dk->devs[dk->n++].name, names[i]);
	}
	vmc_sysroot_names_free(names, n);
	return r;
}

/* Refuse @dk if proc/self/mountinfo has the disk or one of its partitions. */
static int check_mounts(int rootfd, const struct disk *dk, struct vmc_outcome *o)
{
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	FILE *fp = NULL;
	int fd, r = 0;

	fd = openat(rootfd, "proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !(fp = fdopen(fd, "r"))) {
		r = errno;
		if (fd >= 0)
			close(fd);
		return vmc_outcome_fail(o, vmc_outcome_code_of(r), r,
					"cannot tell whether %s is mounted: proc/self/mountinfo: %s",
					dk->devs[0].name, strerror(r));
	}
	while (r == 0 && getline(&line, &cap, fp) > 0) {
		unsigned ma, mi;

		/* "36 35 98:0 /mnt1 /mnt2 rw ...": the third field is major:minor. */
		if (sscanf(line, "%*u %*u %u:%u ", &ma, &mi) != 2) {
			r = vmc_outcome_fail(o, ECODE(INTERNAL), 0,
					     "cannot tell whether %s is mounted: a line of "
					     "proc/self/mountinfo does not parse",
					     dk->devs[0].name);
			break;
		}
		for (size_t i = 0; i < dk->n; i++)
			if (dk->devs[i].major == ma && dk->devs[i].minor == mi)
				r = vmc_outcome_fail(o, ECODE(NOT_PERMITTED), 0, "%s is mounted",
						     dk->devs[i].name);
	}
	fclose(fp);
	return r;
}

/* Refuse @dk if the disk or a partition has holders (dm, md, ...). */
static int check_holders(int rootfd, const struct disk *dk, struct vmc_outcome *o)
{
	for (size_t i = 0; i < dk->n; i++) {
		char **names;
		int n = i ? vmc_sysroot_list_dirf(rootfd, &names, "sys/block/%s/%s/holders",
						  dk->devs[0].name, dk->devs[i].name)
			  : vmc_sysroot_list_dirf(rootfd, &names, "sys/block/%s/holders",
						  dk->devs[0].name);

		if (n == -ENOENT)
			continue;
		if (n < 0)
			return sys_fail(o, -n, "listing the holders of", dk->devs[i].name);
		if (n > 0)
			vmc_outcome_fail(o, ECODE(NOT_PERMITTED), 0, "%s is held by %s",
					 dk->devs[i].name, names[0]);
		vmc_sysroot_names_free(names, n);
		if (n > 0)
			return -EBUSY;
	}
	return 0;
}

static int check_request(const Vmcheck__V1__DiskProbe *p, const struct disk *dk, size_t len,
			 struct vmc_outcome *o)
{
	for (size_t i = 0; i < p->n_offsets; i++) {
		uint64_t off = p->offsets[i];

		if (off % SECTOR)
			return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
						"offset %llu is not a multiple of %u",
						(unsigned long long)off, SECTOR);
		if (off > dk->size || len > dk->size - off)
			return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
						"a region of %zu bytes at offset %llu ends beyond "
						"%s (%llu bytes)",
						len, (unsigned long long)off, dk->devs[0].name,
						(unsigned long long)dk->size);
		for (size_t j = 0; j < i; j++) {
			uint64_t d = off > p->offsets[j] ? off - p->offsets[j]
							 : p->offsets[j] - off;

			if (d < len)
				return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
							"regions of %zu bytes at offsets %llu and "
							"%llu overlap",
							len, (unsigned long long)p->offsets[j],
							(unsigned long long)off);
		}
	}
	return 0;
}

/* Open dev/NAME and make sure it is the disk sysfs described. */
static int open_disk(const struct vmc_sysroot *root, const struct disk *dk, bool *direct,
		     struct vmc_outcome *o)
{
	char path[96];
	struct stat st;
	/* O_EXCL on a block device: EBUSY if anything in the kernel claims it. */
	int flags = O_RDWR | O_CLOEXEC | O_NOCTTY | (root->live ? O_EXCL : 0);
	int fd = -1;

	snprintf(path, sizeof(path), "dev/%s", dk->devs[0].name);
	if (*direct) {
		fd = openat(root->fd, path, flags | O_DIRECT);
		/* Not every device or file system takes O_DIRECT (tmpfs did not). */
		if (fd < 0 && errno == EINVAL)
			*direct = false;
	}
	if (!*direct)
		fd = openat(root->fd, path, flags);
	if (fd < 0)
		return sys_fail(o, errno, "opening", path);
	if (fstat(fd, &st) < 0) {
		int err = errno;

		close(fd);
		return sys_fail(o, err, "examining", path);
	}
	if (S_ISBLK(st.st_mode) ? major(st.st_rdev) == dk->devs[0].major &&
					  minor(st.st_rdev) == dk->devs[0].minor
				: S_ISREG(st.st_mode) && !root->live)
		return fd;
	close(fd);
	return vmc_outcome_fail(o, ECODE(NOT_PERMITTED), 0, "%s is not the block device %u:%u",
				path, dk->devs[0].major, dk->devs[0].minor);
}

static int io_full(int fd, bool write_it, void *buf, size_t len, uint64_t off)
{
	for (size_t done = 0; done < len;) {
		ssize_t n =
			write_it ? pwrite(fd, (char *)buf + done, len - done, (off_t)(off + done))
				 : pread(fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* Write every region, make it durable, read every region back. */
static int round_trip(int fd, bool direct, const Vmcheck__V1__DiskProbe *p, uint8_t *wbuf,
		      uint8_t *rbuf, size_t len, struct vmc_arena *a, struct vmc_ptrvec *regions,
		      struct vmc_outcome *o)
{
	char whex[VMC_SHA256_HEX], rhex[VMC_SHA256_HEX];
	int r;

	for (size_t i = 0; i < p->n_offsets; i++) {
		r = io_full(fd, true, wbuf, len, p->offsets[i]);
		if (r < 0)
			return vmc_outcome_fail(o, vmc_outcome_code_of(-r), -r,
						"writing %zu bytes at offset %llu: %s", len,
						(unsigned long long)p->offsets[i], strerror(-r));
	}
	if (fsync(fd) < 0)
		return vmc_outcome_fail(o, ECODE(INTERNAL), errno, "fsync: %s", strerror(errno));
	/* Read the device, not the page cache the writes went through. */
	if (!direct)
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	vmc_sha256_hex(wbuf, len, whex);
	for (size_t i = 0; i < p->n_offsets; i++) {
		Vmcheck__V1__ProbeResult__Region *reg;

		r = io_full(fd, false, rbuf, len, p->offsets[i]);
		if (r < 0)
			return vmc_outcome_fail(o, vmc_outcome_code_of(-r), -r,
						"reading %zu bytes at offset %llu: %s", len,
						(unsigned long long)p->offsets[i], strerror(-r));
		vmc_sha256_hex(rbuf, len, rhex);
		reg = vmc_arena_alloc(a, sizeof(*reg));
		if (!reg || vmc_ptrvec_push(a, regions, reg) < 0)
			return vmc_outcome_fail(o, ECODE(INTERNAL), ENOMEM, "out of memory");
		vmcheck__v1__probe_result__region__init(reg);
		reg->offset = p->offsets[i];
		reg->length = (uint32_t)len;
		reg->written_sha256 = vmc_arena_strdup(a, whex);
		reg->read_sha256 = vmc_arena_strdup(a, rhex);
		if (!reg->written_sha256 || !reg->read_sha256)
			return vmc_outcome_fail(o, ECODE(INTERNAL), ENOMEM, "out of memory");
	}
	return 0;
}

int vmc_probe_disk(const struct vmc_sysroot *root, const Vmcheck__V1__DiskProbe *p,
		   struct vmc_arena *a, Vmcheck__V1__ProbeResult *res, struct vmc_outcome *o)
{
	_cleanup_free_ struct disk *dk = NULL;
	_cleanup_free_ uint8_t *wbuf = NULL;
	_cleanup_free_ uint8_t *rbuf = NULL;
	_cleanup_close_ int fd = -1;
	struct vmc_ptrvec regions = { 0 };
	const char *name = p->device;
	size_t len = (p->pattern.len + SECTOR - 1) / SECTOR * SECTOR;
	bool direct;
	uint64_t start;
	int r;

	if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") ||
	    strlen(name) >= sizeof(dk->devs[0].name))
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0, "'%.64s' is not a disk name",
					name);
	if (!p->pattern.len || p->pattern.len > VMC_PROBE_PATTERN_MAX)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"a pattern of %zu bytes: want 1 to %u", p->pattern.len,
					VMC_PROBE_PATTERN_MAX);
	if (!p->n_offsets || p->n_offsets > VMC_PROBE_REGIONS_MAX)
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0, "%zu offsets: want 1 to %u",
					p->n_offsets, VMC_PROBE_REGIONS_MAX);
	dk = calloc(1, sizeof(*dk));
	if (!dk)
		return vmc_outcome_fail(o, ECODE(INTERNAL), ENOMEM, "out of memory");
	if ((r = read_disk(root->fd, name, dk, o)) < 0 || (r = check_request(p, dk, len, o)) < 0 ||
	    (r = check_mounts(root->fd, dk, o)) < 0 || (r = check_holders(root->fd, dk, o)) < 0)
		return r;
	if (dk->n > 1)
		return vmc_outcome_fail(
			o, ECODE(NOT_PERMITTED), 0,
			"%s holds %zu partition(s) (%s%s): refusing to overwrite them", name,
			dk->n - 1, dk->devs[1].name, dk->n > 2 ? ", ..." : "");
	if (dk->ro)
		return vmc_outcome_fail(o, ECODE(NOT_PERMITTED), 0, "%s is read-only", name);

	direct = len % dk->lbs == 0;
	for (size_t i = 0; i < p->n_offsets; i++)
		direct = direct && p->offsets[i] % dk->lbs == 0;
	if (posix_memalign((void **)&wbuf, BUF_ALIGN, len) ||
	    posix_memalign((void **)&rbuf, BUF_ALIGN, len))
		return vmc_outcome_fail(o, ECODE(INTERNAL), ENOMEM, "out of memory");
	memcpy(wbuf, p->pattern.data, p->pattern.len);
	memset(wbuf + p->pattern.len, 0, len - p->pattern.len);
	fd = open_disk(root, dk, &direct, o);
	if (fd < 0)
		return fd;

	start = vmc_mono_ns();
	r = round_trip(fd, direct, p, wbuf, rbuf, len, a, &regions, o);
	if (r < 0)
		return r;
	res->duration_ns = vmc_mono_ns() - start;
	res->regions = (Vmcheck__V1__ProbeResult__Region **)regions.items;
	res->n_regions = regions.n;
	res->direct_io = direct;
	vmc_outcome_ok(o, "%zu region(s) of %zu bytes written to and read back from %s%s",
		       regions.n, len, name, direct ? " with O_DIRECT" : "");
	return 0;
}
