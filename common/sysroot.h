/* SPDX-License-Identifier: MIT */
/*
 * Bounded, strict reads of sysfs/procfs files relative to a root directory,
 * so every reader runs against "/" or a fixture tree alike. All functions
 * return 0 (or a length) on success and -errno on failure; -ENOENT means
 * "absent, or hot-removed while we looked" and is never fatal for a reader.
 * Outputs are untouched on failure.
 */
#ifndef VMC_SYSROOT_H
#define VMC_SYSROOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

struct vmc_sysroot {
	int fd;    /* O_PATH|O_DIRECTORY fd of the root ("/" or a fixture) */
	bool live; /* the running system: netlink and uname may be used */
};

/* Open @path (NULL: "/") as a root. Returns 0 or -errno. */
int vmc_sysroot_open(struct vmc_sysroot *sr, const char *path);
void vmc_sysroot_close(struct vmc_sysroot *sr);

/* Largest file these helpers read whole. */
#define VMC_SYSROOT_READ_MAX 65536

/*
 * vmc_sysroot_read_str - read a small file, trailing newlines stripped
 * @buf: NUL-terminated on success
 * Returns the string length, -EOVERFLOW if the file does not fit, -errno.
 */
int vmc_sysroot_read_str(int dirfd, const char *path, char *buf, size_t size);
int vmc_sysroot_read_strf(int dirfd, char *buf, size_t size, const char *fmt, ...) _printf_(4, 5);

/*
 * vmc_sysroot_read_attr - vmc_sysroot_read_str for a sysfs attribute: one
 * read() only, since sysfs hands an attribute (at most a page) over whole.
 * For hot paths that read thousands of attributes; never for procfs
 * seq_files.
 */
int vmc_sysroot_read_attr(int dirfd, const char *path, char *buf, size_t size);

/* A number read from a file, parsed as vmc_parse_u64()/vmc_parse_s64() do. */
int vmc_sysroot_read_u64f(int dirfd, uint64_t *out, int base, const char *fmt, ...) _printf_(4, 5);
int vmc_sysroot_read_s64f(int dirfd, int64_t *out, int base, const char *fmt, ...) _printf_(4, 5);

/*
 * vmc_sysroot_resolve_link - follow one symlink textually, within the root
 * @out: the target as a normalized path relative to the root
 *       ("sys/devices/pci0000:00/0000:00:01.0/virtio1")
 * Works on fixture trees (no realpath, no escaping the root).
 */
int vmc_sysroot_resolve_linkf(int dirfd, char *out, size_t size, const char *fmt, ...)
	_printf_(4, 5);

/* Basename of a symlink's target ("virtio_net" for .../driver). */
int vmc_sysroot_link_basef(int dirfd, char *out, size_t size, const char *fmt, ...) _printf_(4, 5);

/*
 * vmc_sysroot_list_dir - names in a directory, "." and ".." left out
 * @names: malloc'd array of malloc'd names, sorted with vmc_parse_natcmp
 * Returns the count or -errno. Free with vmc_sysroot_names_free().
 */
int vmc_sysroot_list_dirf(int dirfd, char ***names, const char *fmt, ...) _printf_(3, 4);
void vmc_sysroot_names_free(char **names, int n);

/*
 * A directory read with getdents64 into a buffer of its own, for readers
 * that list directories by the dozen per snapshot: no DIR to allocate (musl
 * maps and unmaps a page for each, a TLB shootdown with several threads).
 */
struct vmc_sysroot_dir {
	int fd;
	size_t pos, end;
	_Alignas(8) char buf[4096];
};

/* Open directory @path under @dirfd. Returns 0 or -errno. */
int vmc_sysroot_dir_open(struct vmc_sysroot_dir *d, int dirfd, const char *path);
/* The next name, "." and ".." left out: 1 and @name, 0 at the end, -errno. */
int vmc_sysroot_dir_next(struct vmc_sysroot_dir *d, const char **name);
void vmc_sysroot_dir_close(struct vmc_sysroot_dir *d);

/*
 * vmc_sysroot_node_of_dirf - NUMA node of a sysfs device from its "nodeN" entry
 * @node: N of the lowest "nodeN" entry in the directory, or -1 if none
 * Returns 0, -ENOENT if the directory is gone, or -errno; @node is
 * untouched on failure.
 */
int vmc_sysroot_node_of_dirf(int dirfd, int *node, const char *fmt, ...) _printf_(3, 4);

#endif
