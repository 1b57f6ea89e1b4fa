/* SPDX-License-Identifier: MIT */
/*
 * Reads relative to a root directory fd: bounded files, sysfs attributes, resolved
 * links, sorted directory listings and a device's NUMA node.
 */
#include "sysroot.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "parse.h"

int vmc_sysroot_open(struct vmc_sysroot *sr, const char *path)
{
	int fd;

	if (!path || !*path)
		path = "/";
	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	sr->fd = fd;
	sr->live = strcmp(path, "/") == 0;
	return 0;
}

void vmc_sysroot_close(struct vmc_sysroot *sr)
{
	if (sr->fd >= 0)
		close(sr->fd);
	sr->fd = -1;
}

/* Paths are relative to the root: a leading "/" would escape a fixture. */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

int vmc_sysroot_read_str(int dirfd, const char *path, char *buf, size_t size)
{
	_cleanup_close_ int fd = -1;
	size_t len = 0;

	if (size == 0)
		return -EINVAL;
	fd = openat(dirfd, rel(path), O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t r;

		if (len == size - 1) {
			char c;

			/* Full: fine only if the file ends here. */
			r = TEMP_FAILURE_RETRY(read(fd, &c, 1));
			if (r < 0)
				return -errno;
			if (r > 0)
				return -EOVERFLOW;
			break;
		}
		r = TEMP_FAILURE_RETRY(read(fd, buf + len, size - 1 - len));
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		len += (size_t)r;
	}
	while (len > 0 && buf[len - 1] == '\n')
		len--;
	buf[len] = '\0';
	return (int)len;
}

int vmc_sysroot_read_attr(int dirfd, const char *path, char *buf, size_t size)
{
	_cleanup_close_ int fd = -1;
	ssize_t len;

	if (size < 2)
		return -EINVAL;
	fd = openat(dirfd, rel(path), O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	len = TEMP_FAILURE_RETRY(read(fd, buf, size - 1));
	if (len < 0)
		return -errno;
	if ((size_t)len == size - 1)
		return -EOVERFLOW;
	while (len > 0 && buf[len - 1] == '\n')
		len--;
	buf[len] = '\0';
	return (int)len;
}

#define FMT_PATH(path, fmt)                                       \
	char path[PATH_MAX];                                      \
	do {                                                      \
		va_list ap;                                       \
		int fmt_n_;                                       \
		va_start(ap, fmt);                                \
		fmt_n_ = vsnprintf(path, sizeof(path), fmt, ap);  \
		va_end(ap);                                       \
		if (fmt_n_ < 0 || (size_t)fmt_n_ >= sizeof(path)) \
			return -ENAMETOOLONG;                     \
	} while (0)

int vmc_sysroot_read_strf(int dirfd, char *buf, size_t size, const char *fmt, ...)
{
	FMT_PATH(path, fmt);
	return vmc_sysroot_read_str(dirfd, path, buf, size);
}

int vmc_sysroot_read_u64f(int dirfd, uint64_t *out, int base, const char *fmt, ...)
{
	char buf[64];
	int r;

	FMT_PATH(path, fmt);
	r = vmc_sysroot_read_str(dirfd, path, buf, sizeof(buf));
	if (r < 0)
		return r;
	return vmc_parse_u64(buf, base, out);
}

int vmc_sysroot_read_s64f(int dirfd, int64_t *out, int base, const char *fmt, ...)
{
	char buf[64];
	int r;

	FMT_PATH(path, fmt);
	r = vmc_sysroot_read_str(dirfd, path, buf, sizeof(buf));
	if (r < 0)
		return r;
	return vmc_parse_s64(buf, base, out);
}

/* Normalize "a/b/../c/./d" in place; fails if ".." climbs above the root. */
static int normalize(char *p)
{
	char *out = p, *s = p;

	while (*s) {
		char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);

		if (n == 0 || (n == 1 && s[0] == '.')) {
			/* skip */
		} else if (n == 2 && s[0] == '.' && s[1] == '.') {
			if (out == p)
				return -EXDEV;
			out--;
			while (out > p && out[-1] != '/')
				out--;
		} else {
			memmove(out, s, n);
			out += n;
			*out++ = '/';
		}
		s += n;
		if (*s == '/')
			s++;
	}
	if (out > p)
		out--;
	*out = '\0';
	return 0;
}

int vmc_sysroot_resolve_linkf(int dirfd, char *out, size_t size, const char *fmt, ...)
{
	char target[PATH_MAX], full[2 * PATH_MAX];
	const char *lp, *slash;
	ssize_t n;
	int r;

	FMT_PATH(path, fmt);
	lp = rel(path);
	n = readlinkat(dirfd, lp, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	if (target[0] == '/') {
		snprintf(full, sizeof(full), "%s", target + 1);
	} else {
		slash = strrchr(lp, '/');
		snprintf(full, sizeof(full), "%.*s/%s", slash ? (int)(slash - lp) : 0, lp, target);
	}
	r = normalize(full);
	if (r < 0)
		return r;
	if (strlen(full) >= size)
		return -ENAMETOOLONG;
	strcpy(out, full);
	return 0;
}

int vmc_sysroot_link_basef(int dirfd, char *out, size_t size, const char *fmt, ...)
{
	char target[PATH_MAX];
	const char *b;
	ssize_t n;

	FMT_PATH(path, fmt);
	n = readlinkat(dirfd, rel(path), target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	while (n > 1 && target[n - 1] == '/')
		target[--n] = '\0';
	b = strrchr(target, '/');
	b = b ? b + 1 : target;
	if (strlen(b) >= size)
		return -ENAMETOOLONG;
	strcpy(out, b);
	return 0;
}

static int natcmp_p(const void *a, const void *b)
{
	return vmc_parse_natcmp(*(char *const *)a, *(char *const *)b);
}

void vmc_sysroot_names_free(char **names, int n)
{
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int vmc_sysroot_dir_open(struct vmc_sysroot_dir *d, int dirfd, const char *path)
{
	d->fd = openat(dirfd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d->pos = d->end = 0;
	return d->fd < 0 ? -errno : 0;
}

/* The kernel's record (linux/dirent.h has none for user space). */
struct dirent64_rec {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

int vmc_sysroot_dir_next(struct vmc_sysroot_dir *d, const char **name)
{
	for (;;) {
		const struct dirent64_rec *e;

		if (d->pos >= d->end) {
			long n = syscall(SYS_getdents64, d->fd, d->buf, sizeof(d->buf));

			if (n < 0)
				return -errno;
			if (n == 0)
				return 0;
			d->pos = 0;
			d->end = (size_t)n;
		}
		e = (const struct dirent64_rec *)(d->buf + d->pos);
		if (e->reclen == 0 || e->reclen > d->end - d->pos)
			return -EIO;
		d->pos += e->reclen;
		if (strcmp(e->name, ".") && strcmp(e->name, "..")) {
			*name = e->name;
			return 1;
		}
	}
}

void vmc_sysroot_dir_close(struct vmc_sysroot_dir *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

int vmc_sysroot_list_dirf(int dirfd, char ***names, const char *fmt, ...)
{
	char **v = NULL;
	size_t n = 0, cap = 0;
	struct vmc_sysroot_dir d;
	const char *name;
	int r;

	FMT_PATH(path, fmt);
	r = vmc_sysroot_dir_open(&d, dirfd, path);
	if (r < 0)
		return r;
	while ((r = vmc_sysroot_dir_next(&d, &name)) > 0) {
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			char **nv = realloc(v, nc * sizeof(*nv));

			if (!nv)
				goto fail_nomem;
			v = nv;
			cap = nc;
		}
		v[n] = strdup(name);
		if (!v[n])
			goto fail_nomem;
		n++;
	}
	vmc_sysroot_dir_close(&d);
	if (r < 0) {
		vmc_sysroot_names_free(v, (int)n);
		return r;
	}
	/*
	 * Insertion sort for the short listings readers make by the thousand
	 * (a device's attributes): musl's qsort moves every element with
	 * memcpy, which dominated a snapshot's user time.
	 */
	if (n > 64) {
		qsort(v, n, sizeof(*v), natcmp_p);
	} else {
		for (size_t i = 1; i < n; i++) {
			char *x = v[i];
			size_t j = i;

			for (; j > 0 && vmc_parse_natcmp(v[j - 1], x) > 0; j--)
				v[j] = v[j - 1];
			v[j] = x;
		}
	}
	if (n > INT_MAX) {
		vmc_sysroot_names_free(v, (int)n);
		return -EOVERFLOW;
	}
	*names = v;
	return (int)n;
fail_nomem:
	vmc_sysroot_dir_close(&d);
	vmc_sysroot_names_free(v, (int)n);
	return -ENOMEM;
}

int vmc_sysroot_node_of_dirf(int dirfd, int *node, const char *fmt, ...)
{
	char **names;
	int n, found = -1;

	FMT_PATH(path, fmt);
	n = vmc_sysroot_list_dirf(dirfd, &names, "%s", path);
	if (n < 0)
		return n;
	/* Sorted naturally: the first match is the lowest N. */
	for (int i = 0; i < n && found < 0; i++) {
		uint64_t v;

		if (strncmp(names[i], "node", 4) == 0 && isdigit((unsigned char)names[i][4]) &&
		    vmc_parse_u64(names[i] + 4, 10, &v) == 0 && v <= INT_MAX)
			found = (int)v;
	}
	vmc_sysroot_names_free(names, n);
	*node = found;
	return 0;
}
