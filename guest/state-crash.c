/* SPDX-License-Identifier: MIT */
/*
 * The crash section: is a crash kernel loaded, and what did earlier crashes
 * leave in the dump directories. A dump is a subdirectory of a crash dir; its
 * vmcore is recognised by name and by its first bytes. Nothing in a dump
 * directory is trusted: symlinks are not followed, FIFOs and devices are not
 * opened, and at most 16 bytes of the vmcore are read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"

static const char *const default_dirs[] = {"var/crash", "var/oled/crash", NULL};

struct names {
	char **v;
	int n;
};

static void names_freep(struct names *p)
{
	if (p->v)
		vmc_names_free(p->v, p->n);
}

/*
 * How much a file name says "vmcore": exact names first, then the prefix
 * of partial dumps ("vmcore-incomplete"), then kdump-tools' "dump.<timestamp>".
 * "vmcore-dmesg.txt" (and its "-incomplete" form) is the saved kernel log.
 */
static int vmcore_rank(const char *name)
{
	if (!strcmp(name, "vmcore"))
		return 4;
	if (!strcmp(name, "vmcore.flat"))
		return 3;
	if (!strncmp(name, "vmcore-dmesg", 12))
		return 0;
	if (!strncmp(name, "vmcore", 6))
		return 2;
	if (!strncmp(name, "dump.", 5))
		return 1;
	return 0;
}

/* The dump format from the first bytes of @name, a regular file in @dfd. */
static Vmcheck__V1__CrashDump__Format vmcore_format(int dfd, const char *name)
{
	_cleanup_close_ int fd = -1;
	unsigned char head[16];
	size_t len = 0;
	struct stat sb;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	/* Checked again on the open file: it may have been swapped for a FIFO. */
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
		return VMCHECK__V1__CRASH_DUMP__FORMAT__FORMAT_UNKNOWN;
	while (len < sizeof(head)) {
		ssize_t r = TEMP_FAILURE_RETRY(read(fd, head + len, sizeof(head) - len));

		if (r <= 0)
			break;
		len += (size_t)r;
	}
	if (len >= 4 && !memcmp(head, "\177ELF", 4))
		return VMCHECK__V1__CRASH_DUMP__FORMAT__FORMAT_ELF;
	/* "KDUMP   ": compressed/filtered dump; "makedumpfile": its flattened form. */
	if ((len >= 8 && !memcmp(head, "KDUMP   ", 8)) ||
	    (len >= 12 && !memcmp(head, "makedumpfile", 12)))
		return VMCHECK__V1__CRASH_DUMP__FORMAT__FORMAT_KDUMP;
	return VMCHECK__V1__CRASH_DUMP__FORMAT__FORMAT_UNKNOWN;
}

/*
 * The dump in subdirectory @name of the crash dir @cfd. Returns 0 with *@out
 * set, 0 with *@out NULL if @name is no directory (or vanished), or -errno.
 */
static int read_dump(int cfd, struct vmc_arena *a, const char *name, Vmcheck__V1__CrashDump **out)
{
	_cleanup_(names_freep) struct names ls = {NULL, 0};
	_cleanup_close_ int dfd = -1;
	struct vmc_ptrvec files = {0};
	Vmcheck__V1__CrashDump *d;
	const char *vmcore = NULL;
	int best = 0;
	struct stat sb;

	*out = NULL;
	dfd = openat(cfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? 0 : -errno;
	if (fstat(dfd, &sb) < 0)
		return -errno;
	ls.n = vmc_list_dirf(dfd, &ls.v, ".");
	if (ls.n < 0)
		return ls.n == -ENOENT ? 0 : ls.n;

	d = vmc_arena_alloc(a, sizeof(*d));
	if (!d)
		return -ENOMEM;
	vmcheck__v1__crash_dump__init(d);
	d->mtime_s = sb.st_mtim.tv_sec;
	for (int i = 0; i < ls.n; i++) {
		Vmcheck__V1__CrashFile *f;
		struct stat fs;
		int rank;

		if (fstatat(dfd, ls.v[i], &fs, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(fs.st_mode))
			continue;
		f = vmc_arena_alloc(a, sizeof(*f));
		if (!f)
			return -ENOMEM;
		vmcheck__v1__crash_file__init(f);
		f->name = vmc_arena_strdup(a, ls.v[i]);
		f->size = (uint64_t)fs.st_size;
		if (!f->name || vmc_ptrvec_push(a, &files, f) < 0)
			return -ENOMEM;
		if (strstr(f->name, "incomplete"))
			d->incomplete = true;
		rank = vmcore_rank(f->name);
		if (rank > best) {
			best = rank;
			vmcore = f->name;
			d->vmcore_size = f->size;
		}
	}
	if (vmcore) {
		d->has_vmcore = true;
		d->format = vmcore_format(dfd, vmcore);
	}
	d->name = vmc_arena_strdup(a, name);
	if (!d->name)
		return -ENOMEM;
	d->files = (Vmcheck__V1__CrashFile **)files.items;
	d->n_files = files.n;
	*out = d;
	return 0;
}

/* The crash dir @path; an absent one is reported with exists = false. */
static int read_dir(int root, struct vmc_arena *a, const char *path, Vmcheck__V1__CrashDir **out)
{
	_cleanup_(names_freep) struct names ls = {NULL, 0};
	_cleanup_close_ int cfd = -1;
	struct vmc_ptrvec dumps = {0};
	Vmcheck__V1__CrashDir *c;
	const char *rel = path;

	while (*rel == '/')
		rel++;
	c = vmc_arena_alloc(a, sizeof(*c));
	if (!c)
		return -ENOMEM;
	vmcheck__v1__crash_dir__init(c);
	c->path = vmc_arena_printf(a, "/%s", rel);
	if (!c->path)
		return -ENOMEM;
	if (!*rel)
		rel = ".";

	cfd = openat(root, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cfd < 0) {
		if (errno != ENOENT && errno != ENOTDIR)
			return -errno;
		*out = c;
		return 0;
	}
	c->exists = true;
	c->writable = faccessat(root, rel, W_OK, 0) == 0;
	ls.n = vmc_list_dirf(cfd, &ls.v, ".");
	if (ls.n < 0)
		return ls.n;
	for (int i = 0; i < ls.n; i++) {
		Vmcheck__V1__CrashDump *d;
		int r = read_dump(cfd, a, ls.v[i], &d);

		if (r < 0)
			return r;
		if (d && vmc_ptrvec_push(a, &dumps, d) < 0)
			return -ENOMEM;
	}
	c->dumps = (Vmcheck__V1__CrashDump **)dumps.items;
	c->n_dumps = dumps.n;
	*out = c;
	return 0;
}

/*
 * kdump readiness and the dumps in o->crash_dirs (default: var/crash and
 * var/oled/crash). Missing files and directories are reported as such;
 * fails only when a crash dir that exists cannot be listed, or on -ENOMEM.
 */
int vmc_state_read_crash(const struct vmc_state_opts *o, struct vmc_arena *a,
			 Vmcheck__V1__State *st)
{
	const char *const *dirs = o->crash_dirs ? o->crash_dirs : default_dirs;
	char *cmdline = vmc_arena_scratch(a, VMC_READ_MAX);
	struct vmc_ptrvec out = {0};
	int fd = o->root.fd;
	Vmcheck__V1__Crash *c;
	char buf[32];

	c = vmc_arena_alloc(a, sizeof(*c));
	if (!c || !cmdline)
		return -ENOMEM;
	vmcheck__v1__crash__init(c);
	if (vmc_read_str(fd, "sys/kernel/kexec_crash_loaded", buf, sizeof(buf)) >= 0)
		c->kexec_crash_loaded = !strcmp(buf, "1");
	(void)vmc_read_u64f(fd, &c->crash_size, 10, "sys/kernel/kexec_crash_size");
	if (vmc_read_str(fd, "proc/cmdline", cmdline, VMC_READ_MAX) >= 0 &&
	    !(c->cmdline = vmc_arena_strdup(a, cmdline)))
		return -ENOMEM;

	for (size_t i = 0; dirs[i]; i++) {
		Vmcheck__V1__CrashDir *d = NULL;
		int r = read_dir(fd, a, dirs[i], &d);

		if (r < 0)
			return r;
		if (vmc_ptrvec_push(a, &out, d) < 0)
			return -ENOMEM;
	}
	c->dirs = (Vmcheck__V1__CrashDir **)out.items;
	c->n_dirs = out.n;
	st->crash = c;
	return 0;
}
