/* SPDX-License-Identifier: MIT */
/*
 * The crash section: is a crash kernel loaded, and what did earlier crashes
 * leave in the dump directories. A dump is a subdirectory of a crash dir; its
 * vmcore is recognised by name and by its first bytes. Nothing in a dump
 * directory is trusted: symlinks are not followed, FIFOs and devices are not
 * opened, and at most 16 bytes of the vmcore are read. Each crash dir also
 * says which mount it is on: a dump written to a RAM-backed filesystem is
 * gone after the reboot that follows it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "parse.h"
#include "state.h"

static const char *const default_dirs[] = { "var/crash", "var/oled/crash", NULL };

struct names {
	char **v;
	int n;
};

static void names_freep(struct names *p)
{
	if (p->v)
		vmc_sysroot_names_free(p->v, p->n);
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
	_cleanup_(names_freep) struct names ls = { NULL, 0 };
	_cleanup_close_ int dfd = -1;
	struct vmc_ptrvec files = { 0 };
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
	ls.n = vmc_sysroot_list_dirf(dfd, &ls.v, ".");
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

/*
 * Undo mountinfo's octal escapes (" " is "\040") in place; false if @s has
 * a malformed one.
 */
static bool unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (*s != '\\') {
			*o++ = *s;
			continue;
		}
		if (s[1] < '0' || s[1] > '3' || s[2] < '0' || s[2] > '7' || s[3] < '0' ||
		    s[3] > '7')
			return false;
		*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
		s += 3;
	}
	*o = '\0';
	return true;
}

/* Is mount point @mp "/" or @path itself or one of its parent directories? */
static bool mount_covers(const char *mp, const char *path)
{
	size_t n = strlen(mp);

	if (!strcmp(mp, "/"))
		return true;
	return !strncmp(mp, path, n) && (path[n] == '/' || path[n] == '\0');
}

/* "MAJ:MIN" as mountinfo prints a device; false if malformed. */
static bool parse_dev(char *s, dev_t *out)
{
	char *colon = strchr(s, ':');
	uint64_t maj, min;

	if (!colon)
		return false;
	*colon = '\0';
	if (vmc_parse_u64(s, 10, &maj) < 0 || vmc_parse_u64(colon + 1, 10, &min) < 0 ||
	    maj > UINT32_MAX || min > UINT32_MAX)
		return false;
	*out = makedev(maj, min);
	return true;
}

/*
 * The mount of crash dir @c, open as @cfd, from the mountinfo text @mi
 * (NULL: unknown): among the lines for the dir's device whose mount point
 * covers its path, the longest mount point, the later line on a tie (it
 * was mounted on top). @c's mount fields stay empty if none matches; a
 * malformed line ends the search. -ENOMEM only.
 */
static int find_mount(const char *mi, int cfd, struct vmc_arena *a, Vmcheck__V1__CrashDir *c)
{
	char line[1024], best[3][sizeof(line)];
	size_t best_len = 0;
	bool found = false;
	struct stat sb;

	if (!mi || fstat(cfd, &sb) < 0)
		return 0;
	for (const char *p = mi; *p; p += strcspn(p, "\n"), p += *p == '\n') {
		/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER"
		 */
		size_t n = strcspn(p, "\n");
		char *f[6], *sep, *fs, *src, *w = NULL;
		dev_t dev;
		int i;

		if (n >= sizeof(line))
			return 0;
		memcpy(line, p, n);
		line[n] = '\0';
		sep = strstr(line, " - ");
		if (!sep)
			return 0;
		*sep = '\0';
		for (i = 0; i < 6 && (f[i] = strtok_r(i ? NULL : line, " ", &w)); i++)
			;
		fs = strtok_r(sep + 3, " ", &w);
		src = fs ? strtok_r(NULL, " ", &w) : NULL;
		if (i < 6 || !src || !parse_dev(f[2], &dev) || !unescape(f[4]) || !unescape(src))
			return 0;
		if (dev != sb.st_dev || !mount_covers(f[4], c->path) ||
		    (found && strlen(f[4]) < best_len))
			continue;
		found = true;
		best_len = strlen(f[4]);
		strcpy(best[0], f[4]);
		strcpy(best[1], fs);
		strcpy(best[2], src);
	}
	if (!found)
		return 0;
	c->mount_point = vmc_arena_strdup(a, best[0]);
	c->fs_type = vmc_arena_strdup(a, best[1]);
	c->mount_source = vmc_arena_strdup(a, best[2]);
	return c->mount_point && c->fs_type && c->mount_source ? 0 : -ENOMEM;
}

/*
 * The crash dir @path; an absent one is reported with exists = false. @mi:
 * the mountinfo text, NULL if unknown.
 */
static int read_dir(int root, struct vmc_arena *a, const char *path, const char *mi,
		    Vmcheck__V1__CrashDir **out)
{
	_cleanup_(names_freep) struct names ls = { NULL, 0 };
	_cleanup_close_ int cfd = -1;
	struct vmc_ptrvec dumps = { 0 };
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
	/* As root this fails only for a read-only mount (EROFS) or an immutable dir. */
	c->writable = faccessat(root, rel, W_OK, 0) == 0;
	if (find_mount(mi, cfd, a, c) < 0)
		return -ENOMEM;
	ls.n = vmc_sysroot_list_dirf(cfd, &ls.v, ".");
	if (ls.n < 0)
		return ls.n;
	for (int i = 0; i < ls.n; i++) {
		Vmcheck__V1__CrashDump *d;
		int r;

		/* A crash dir that is a filesystem of its own has mkfs's lost+found: no dump. */
		if (!strcmp(ls.v[i], "lost+found"))
			continue;
		r = read_dump(cfd, a, ls.v[i], &d);

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
 * The memory reserved for a crash kernel from the "Crash kernel" ranges of
 * the iomem text @io (modified), in bytes; 0 if none or malformed.
 */
static uint64_t iomem_crash_size(char *io)
{
	uint64_t total = 0;
	char *save = NULL;

	for (char *l = strtok_r(io, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		/* "  18000000-1dffffff : Crash kernel" */
		char *colon = strstr(l, " : "), *dash;
		uint64_t a, b;

		if (!colon || strcmp(colon + 3, "Crash kernel"))
			continue;
		*colon = '\0';
		l += strspn(l, " ");
		dash = strchr(l, '-');
		if (!dash)
			return 0;
		*dash = '\0';
		if (vmc_parse_u64(l, 16, &a) < 0 || vmc_parse_u64(dash + 1, 16, &b) < 0 || b < a)
			return 0;
		total += b - a + 1;
	}
	return total;
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
	char *text = vmc_arena_scratch(a, VMC_SYSROOT_READ_MAX); /* iomem, then the command line */
	char *mi = vmc_arena_scratch(a, VMC_SYSROOT_READ_MAX);
	struct vmc_ptrvec out = { 0 };
	int fd = o->root.fd;
	Vmcheck__V1__Crash *c;
	char buf[32];

	c = vmc_arena_alloc(a, sizeof(*c));
	if (!c || !text || !mi)
		return -ENOMEM;
	/* Too big or absent: the mounts stay unknown. */
	if (vmc_sysroot_read_str(fd, "proc/self/mountinfo", mi, VMC_SYSROOT_READ_MAX) < 0)
		mi = NULL;
	vmcheck__v1__crash__init(c);
	if (vmc_sysroot_read_str(fd, "sys/kernel/kexec_crash_loaded", buf, sizeof(buf)) >= 0)
		c->kexec_crash_loaded = !strcmp(buf, "1");
	/*
	 * kexec_crash_size answers EBUSY while a crash kernel is being loaded
	 * (the kernel holds its kexec lock): the reservation is in iomem too.
	 */
	if (vmc_sysroot_read_u64f(fd, &c->crash_size, 10, "sys/kernel/kexec_crash_size") < 0 &&
	    vmc_sysroot_read_str(fd, "proc/iomem", text, VMC_SYSROOT_READ_MAX) >= 0)
		c->crash_size = iomem_crash_size(text);
	/* The old kernel's memory, offered only to a kdump capture kernel. */
	c->capture_kernel = faccessat(fd, "proc/vmcore", F_OK, 0) == 0;
	if (vmc_sysroot_read_str(fd, "proc/cmdline", text, VMC_SYSROOT_READ_MAX) >= 0 &&
	    !(c->cmdline = vmc_arena_strdup(a, text)))
		return -ENOMEM;

	for (size_t i = 0; dirs[i]; i++) {
		Vmcheck__V1__CrashDir *d = NULL;
		int r = read_dir(fd, a, dirs[i], mi, &d);

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
