/* SPDX-License-Identifier: MIT */
/*
 * Block devices from sys/block, as lsblk(8) sees them: name, maj:min, size
 * and ro must agree with `lsblk -J -b`. Every disk is followed by its
 * partitions. A disk or partition hot-removed while we read it is left out,
 * never a failure of the section: the next uevent brings a fresh snapshot.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "parse.h"
#include "state.h"

/* Gone while we looked: files disappear, or an open attribute says ENODEV. */
static bool vanished(int r)
{
	return r == -ENOENT || r == -ENODEV;
}

static bool has(int fd, const char *dir, const char *file)
{
	char p[PATH_MAX];

	if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, file) >= sizeof(p))
		return false;
	return faccessat(fd, p, F_OK, 0) == 0;
}

/* "254:0" -> 254, 0; strictly, as the kernel prints it. */
static int parse_devnum(char *s, uint32_t *major, uint32_t *minor)
{
	char *colon = strchr(s, ':');
	uint64_t ma, mi;
	int r;

	if (!colon)
		return -EINVAL;
	*colon = '\0';
	r = vmc_parse_u64(s, 10, &ma);
	if (r == 0)
		r = vmc_parse_u64(colon + 1, 10, &mi);
	if (r < 0)
		return r;
	if (ma > UINT32_MAX || mi > UINT32_MAX)
		return -ERANGE;
	*major = (uint32_t)ma;
	*minor = (uint32_t)mi;
	return 0;
}

/* An optional 0/1 attribute: left false when absent. */
static int read_flag(int fd, const char *dir, const char *file, protobuf_c_boolean *out)
{
	uint64_t v;
	int r = vmc_sysroot_read_u64f(fd, &v, 10, "%s/%s", dir, file);

	if (vanished(r))
		return 0;
	if (r < 0)
		return r;
	*out = v != 0;
	return 0;
}

/*
 * An optional text attribute (serial, model, backing file): left "" when
 * absent. SCSI pads model strings with blanks; lsblk trims them, so do we.
 */
static int read_text(int fd, struct vmc_arena *a, const char *dir, const char *file, char **out)
{
	char buf[PATH_MAX + 2]; /* a loop backing file: a path and its newline */
	int r = vmc_sysroot_read_strf(fd, buf, sizeof(buf), "%s/%s", dir, file);

	if (vanished(r))
		return 0;
	if (r < 0)
		return r;
	while (r > 0 && isspace((unsigned char)buf[r - 1]))
		buf[--r] = '\0';
	*out = vmc_arena_strdup(a, buf);
	return *out ? 0 : -ENOMEM;
}

/* Entries of a directory, as arena strings; none when it is absent. */
static int read_names(int fd, struct vmc_arena *a, const char *dir, const char *sub, char ***out,
		      size_t *n_out)
{
	struct vmc_ptrvec v = { 0 };
	char **names;
	int n, r = 0;

	n = vmc_sysroot_list_dirf(fd, &names, "%s/%s", dir, sub);
	if (vanished(n))
		return 0;
	if (n < 0)
		return n;
	for (int i = 0; i < n && r == 0; i++) {
		char *s = vmc_arena_strdup(a, names[i]);

		r = s ? vmc_ptrvec_push(a, &v, s) : -ENOMEM;
	}
	vmc_sysroot_names_free(names, n);
	if (r < 0)
		return r;
	*out = (char **)v.items;
	*n_out = v.n;
	return 0;
}

/* "loop3" with @prefix "loop": the prefix followed by a number only. */
static bool is_numbered(const char *name, const char *prefix)
{
	size_t n = strlen(prefix);
	const char *p = name + n;

	if (strncmp(name, prefix, n) || !*p)
		return false;
	for (; *p; p++)
		if (!isdigit((unsigned char)*p))
			return false;
	return true;
}

static const char *disk_type(int fd, const char *dir, const char *name)
{
	if (is_numbered(name, "loop"))
		return "loop";
	if (is_numbered(name, "sr"))
		return "rom";
	if (has(fd, dir, "dm"))
		return "dm";
	if (has(fd, dir, "md"))
		return "md";
	return "disk";
}

/*
 * What a disk and a partition read alike. Returns 0, -ENOENT/-ENODEV if the
 * device vanished (dev or size gone), another -errno otherwise.
 */
static int read_common(int fd, struct vmc_arena *a, const char *dir, const char *name,
		       Vmcheck__V1__Block *b)
{
	uint64_t sectors;
	char dev[32];
	int r;

	r = vmc_sysroot_read_strf(fd, dev, sizeof(dev), "%s/dev", dir);
	if (r >= 0)
		r = parse_devnum(dev, &b->major, &b->minor);
	if (r >= 0)
		r = vmc_sysroot_read_u64f(fd, &sectors, 10, "%s/size", dir);
	if (r < 0)
		return r;
	/* "size" is in 512-byte units whatever the logical block size. */
	if (sectors > UINT64_MAX / 512)
		return -ERANGE;
	b->size_bytes = sectors * 512;
	b->name = vmc_arena_strdup(a, name);
	if (!b->name)
		return -ENOMEM;
	r = read_flag(fd, dir, "ro", &b->ro);
	if (r == 0)
		r = read_names(fd, a, dir, "holders", &b->holders, &b->n_holders);
	return r;
}

/*
 * The hardware behind a disk: PCI function from the sysfs path (the link
 * @dir under the root @fd), bound driver (from the disk's directory @dfd).
 */
static int read_origin(int fd, int dfd, struct vmc_arena *a, const char *dir, Vmcheck__V1__Block *b)
{
	char path[PATH_MAX], pci[13], drv[256];
	int r;

	r = vmc_sysroot_resolve_linkf(fd, path, sizeof(path), "%s", dir);
	/* EINVAL: a real directory, not a link (no device path to learn from). */
	if (r == 0 && vmc_parse_pci_of_path(path, pci, NULL) == 0) {
		b->pci_address = vmc_arena_strdup(a, pci);
		if (!b->pci_address)
			return -ENOMEM;
	} else if (r < 0 && r != -EINVAL) {
		return r;
	}
	r = vmc_sysroot_link_basef(dfd, drv, sizeof(drv), "device/driver");
	if (vanished(r))
		return 0;
	if (r < 0)
		return r;
	b->driver = vmc_arena_strdup(a, drv);
	return b->driver ? 0 : -ENOMEM;
}

static Vmcheck__V1__Block *new_block(struct vmc_arena *a)
{
	Vmcheck__V1__Block *b = vmc_arena_alloc(a, sizeof(*b));

	if (b)
		vmcheck__v1__block__init(b);
	return b;
}

/*
 * Append the partitions of @disk to @out, in name order. Those that vanish
 * are left out of both @out and the disk's partition list.
 */
static int read_partitions(int fd, struct vmc_arena *a, const char *dir, Vmcheck__V1__Block *disk,
			   struct vmc_ptrvec *out)
{
	struct vmc_ptrvec parts = { 0 };
	char **names, pdir[PATH_MAX];
	int n, r = 0;

	n = vmc_sysroot_list_dirf(fd, &names, "%s", dir);
	if (vanished(n))
		return 0;
	if (n < 0)
		return n;
	for (int i = 0; i < n && r == 0; i++) {
		Vmcheck__V1__Block *p;

		/*
		 * The kernel names a partition after its disk (vda1, nvme0n1p1):
		 * test only those entries, not the disk's thirty attributes.
		 */
		if (strncmp(names[i], disk->name, strlen(disk->name)) != 0 ||
		    (size_t)snprintf(pdir, sizeof(pdir), "%s/%s", dir, names[i]) >= sizeof(pdir) ||
		    !has(fd, pdir, "partition"))
			continue;
		p = new_block(a);
		if (!p) {
			r = -ENOMEM;
			break;
		}
		r = read_common(fd, a, pdir, names[i], p);
		if (vanished(r)) {
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		/* A partition has no queue or device of its own: it is its disk's. */
		p->type = "part";
		p->parent = disk->name;
		p->removable = disk->removable;
		p->rotational = disk->rotational;
		p->pci_address = disk->pci_address;
		p->driver = disk->driver;
		r = vmc_ptrvec_push(a, &parts, p->name);
		if (r == 0)
			r = vmc_ptrvec_push(a, out, p);
	}
	vmc_sysroot_names_free(names, n);
	if (r < 0)
		return r;
	disk->partitions = (char **)parts.items;
	disk->n_partitions = parts.n;
	return 0;
}

/* One sys/block entry and its partitions; -ENOENT/-ENODEV if it vanished. */
static int read_disk(int fd, struct vmc_arena *a, const char *name, struct vmc_ptrvec *out)
{
	Vmcheck__V1__Block *b = new_block(a);
	_cleanup_close_ int dfd = -1;
	char dir[PATH_MAX];
	int r;

	if (!b)
		return -ENOMEM;
	if ((size_t)snprintf(dir, sizeof(dir), "sys/block/%s", name) >= sizeof(dir))
		return -ENAMETOOLONG;
	/*
	 * The attributes are read relative to the disk's directory, opened
	 * once: each path from the root would walk sys/block, follow the
	 * symlink and walk the device path again, a dozen times per disk.
	 */
	dfd = openat(fd, dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	r = read_common(dfd, a, ".", name, b);
	if (r < 0)
		return r;
	b->type = (char *)disk_type(dfd, ".", name);
	r = read_flag(dfd, ".", "removable", &b->removable);
	if (r == 0)
		r = read_flag(dfd, ".", "queue/rotational", &b->rotational);
	/* virtio-blk has NAME/serial; SCSI and others keep it on the device. */
	if (r == 0)
		r = read_text(dfd, a, ".", has(dfd, ".", "serial") ? "serial" : "device/serial",
			      &b->serial);
	if (r == 0)
		r = read_text(dfd, a, ".", "device/model", &b->model);
	if (r == 0 && !strcmp(b->type, "loop"))
		r = read_text(dfd, a, ".", "loop/backing_file", &b->backing_file);
	if (r == 0)
		r = read_origin(fd, dfd, a, dir, b);
	if (r == 0)
		r = vmc_ptrvec_push(a, out, b);
	if (r == 0)
		r = read_partitions(dfd, a, ".", b, out);
	return r;
}

/*
 * vmc_state_read_blocks - every device in sys/block, partitions after their disk
 *
 * Fills st->blocks from @a, naturally sorted by name (like lsblk). Devices
 * lsblk hides by default (RAM disks, detached loop devices of size 0) are
 * included. Returns 0, -ENOENT without sys/block, another -errno if a device
 * cannot be parsed; @st is untouched on failure.
 */
int vmc_state_read_blocks(const struct vmc_state_opts *o, struct vmc_arena *a,
			  Vmcheck__V1__State *st)
{
	struct vmc_ptrvec v = { 0 };
	char **names;
	int n, r = 0;

	n = vmc_sysroot_list_dirf(o->root.fd, &names, "sys/block");
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		r = read_disk(o->root.fd, a, names[i], &v);
		if (vanished(r))
			r = 0;
		if (r < 0)
			break;
	}
	vmc_sysroot_names_free(names, n);
	if (r < 0)
		return r;
	st->blocks = (Vmcheck__V1__Block **)v.items;
	st->n_blocks = v.n;
	return 0;
}
