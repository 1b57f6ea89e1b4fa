/* SPDX-License-Identifier: MIT */
/*
 * The actions on the guest: CPU and memory-block onlining, and opening the suspend
 * and crash triggers, each refused or reported with its detail in an outcome.
 */
#include "act.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "sysroot.h"

#define CPU_DIR "sys/devices/system/cpu"
#define MEM_DIR "sys/devices/system/memory"
#define ECODE(x) VMCHECK__V1__ERROR__CODE__##x

/* A failed system call on @path; @what says which ("opening", ...). */
static int fail_errno(struct vmc_outcome *o, int err, const char *what, const char *path)
{
	return vmc_outcome_fail(o, vmc_outcome_code_of(err), err, "%s %s: %s", what, path,
				strerror(err));
}

/*
 * Open an attribute for writing. sysfs and procfs ignore truncation; a
 * fixture file is overwritten from its start, and not emptied before the
 * write, so a test can see when the write happened.
 */
static int open_attr(int rootfd, const char *path, int *fd, struct vmc_outcome *o)
{
	int f = openat(rootfd, path, O_WRONLY | O_CLOEXEC | O_NOCTTY);

	if (f < 0)
		return fail_errno(o, errno, "opening", path);
	*fd = f;
	return 0;
}

int vmc_act_write(int fd, const char *word)
{
	size_t len = strlen(word);
	ssize_t n = TEMP_FAILURE_RETRY(write(fd, word, len));

	if (n < 0)
		return -errno;
	/* sysfs takes an attribute in one write: a short one did not land. */
	return (size_t)n == len ? 0 : -EIO;
}

static int write_attr(int rootfd, const char *path, const char *word, struct vmc_outcome *o)
{
	_cleanup_close_ int fd = -1;
	int r = open_attr(rootfd, path, &fd, o);

	if (r < 0)
		return r;
	r = vmc_act_write(fd, word);
	if (r < 0)
		return vmc_outcome_fail(o, vmc_outcome_code_of(-r), -r, "writing %s to %s: %s",
					word, path, strerror(-r));
	return 0;
}

/* -ENOENT (answered as NOT_FOUND with @what) when @dir does not exist. */
static int need_dir(int rootfd, const char *dir, const char *what, struct vmc_outcome *o)
{
	if (faccessat(rootfd, dir, F_OK, 0) == 0)
		return 0;
	if (errno == ENOENT) {
		vmc_outcome_fail(o, ECODE(NOT_FOUND), 0, "%s (no %s)", what, dir);
		return -ENOENT;
	}
	return fail_errno(o, errno, "looking up", dir);
}

int vmc_act_cpu_online(int rootfd, uint32_t cpu, bool online, struct vmc_outcome *o)
{
	char dir[64], what[64], path[80];
	int r;

	snprintf(dir, sizeof(dir), CPU_DIR "/cpu%u", cpu);
	snprintf(what, sizeof(what), "cpu%u: no such CPU", cpu);
	r = need_dir(rootfd, dir, what, o);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/online", dir);
	if (faccessat(rootfd, path, F_OK, 0) < 0 && errno == ENOENT) {
		/* The boot CPU on most configurations: always online. */
		if (!online)
			return vmc_outcome_fail(o, ECODE(NOT_PERMITTED), 0,
						"cpu%u cannot be offlined: no online file", cpu);
		vmc_outcome_ok(o, "cpu%u is online (no online file: it cannot be offlined)", cpu);
		return 0;
	}
	r = write_attr(rootfd, path, online ? "1" : "0", o);
	if (r < 0)
		return r;
	vmc_outcome_ok(o, "cpu%u %s", cpu, online ? "onlined" : "offlined");
	return 0;
}

static bool is_zone_word(const char *zone)
{
	static const char *const words[] = { "online_movable", "online_kernel", "online",
					     "offline" };

	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (!strcmp(zone, words[i]))
			return true;
	return false;
}

/*
 * The zones an onlining word accepts, and how a message names them; NULL
 * for "online" (the kernel's choice is fine) and "offline".
 */
static const char *const *zones_for(const char *word, const char **named)
{
	static const char *const movable[] = { "Movable", NULL };
	static const char *const kernel[] = { "Normal", "DMA32", "DMA", NULL };

	if (!strcmp(word, "online_movable")) {
		*named = "Movable";
		return movable;
	}
	if (!strcmp(word, "online_kernel")) {
		*named = "Normal, DMA32 or DMA";
		return kernel;
	}
	return NULL;
}

/* An online block's valid_zones names exactly its zone: is it one of @want? */
static bool in_zones(const char *zones, const char *const *want)
{
	for (; *want; want++)
		if (!strcmp(zones, *want))
			return true;
	return false;
}

/*
 * "zone Normal" ("zones ..." for an offline block's list); "several zones"
 * for "none", the kernel's word for a block spanning zones; memory_settled()
 * leaves "?" when valid_zones is unreadable.
 */
static const char *zone_phrase(const char *zones, char *buf, size_t size)
{
	if (!strcmp(zones, "none"))
		return "several zones";
	if (!strcmp(zones, "?"))
		return "a zone it does not tell (valid_zones unreadable)";
	snprintf(buf, size, "%s %s", strchr(zones, ' ') ? "zones" : "zone", zones);
	return buf;
}

/* Reads the block's state and zones; true if it already is where @want_online says. */
static bool memory_settled(int rootfd, const char *dir, bool want_online, char state[32],
			   char zones[128])
{
	if (vmc_sysroot_read_strf(rootfd, state, 32, "%s/state", dir) < 0)
		strcpy(state, "?");
	if (vmc_sysroot_read_strf(rootfd, zones, 128, "%s/valid_zones", dir) < 0)
		strcpy(zones, "?");
	return !strcmp(state, want_online ? "online" : "offline");
}

int vmc_act_memory_online(int rootfd, uint64_t block, const char *zone, struct vmc_outcome *o)
{
	char dir[64], what[80], path[80], state[32], zones[128], where[160];
	const char *const *want, *named = "";
	bool want_online;
	int r;

	if (!*zone)
		zone = "online_movable";
	if (!is_zone_word(zone))
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"unknown zone '%.64s': want online_movable, online_kernel, "
					"online or offline",
					zone);
	want_online = strcmp(zone, "offline") != 0;
	want = zones_for(zone, &named);
	snprintf(dir, sizeof(dir), MEM_DIR "/memory%llu", (unsigned long long)block);
	snprintf(what, sizeof(what), "memory%llu: no such memory block", (unsigned long long)block);
	r = need_dir(rootfd, dir, what, o);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/state", dir);
	if (memory_settled(rootfd, dir, want_online, state, zones))
		goto already;
	r = write_attr(rootfd, path, zone, o);
	if (r == -EINVAL) {
		size_t n = strlen(o->msg);

		/*
		 * The kernel's answer when the block got there first: hot-added
		 * memory may be onlined by the kernel itself (memhp_default_state)
		 * between our look and our write.
		 */
		if (memory_settled(rootfd, dir, want_online, state, zones))
			goto already;
		/* Its only explanation otherwise: which zones the block could go to. */
		snprintf(o->msg + n, sizeof(o->msg) - n, " (valid_zones: %s)", zones);
	}
	if (r < 0)
		return r;
	(void)memory_settled(rootfd, dir, want_online, state, zones);
	/* The kernel took the word; where the block landed is what counts. */
	if (want && !in_zones(zones, want))
		return vmc_outcome_fail(o, ECODE(NOT_PERMITTED), 0,
					"memory%llu: %s written, but it is in %s, not %s",
					(unsigned long long)block, zone,
					zone_phrase(zones, where, sizeof(where)), named);
	vmc_outcome_ok(o, "memory%llu: %s written, now %s (valid_zones: %s)",
		       (unsigned long long)block, zone, state, zones);
	return 0;
already:
	/* Online elsewhere is no success: moving it needs an offline first. */
	if (want && !in_zones(zones, want))
		return vmc_outcome_fail(o, ECODE(NOT_PERMITTED), 0,
					"memory%llu is already online in %s, not %s",
					(unsigned long long)block,
					zone_phrase(zones, where, sizeof(where)), named);
	vmc_outcome_ok(o, "memory%llu is already %s (valid_zones: %s)", (unsigned long long)block,
		       state, zones);
	return 0;
}

/* True if the space-separated @list holds @word. */
static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

int vmc_act_suspend_open(int rootfd, const char *state, const char **word, int *fd,
			 struct vmc_outcome *o)
{
	char offered[128];
	int r;

	if (!*state)
		state = "mem";
	if (strcmp(state, "mem") && strcmp(state, "freeze"))
		return vmc_outcome_fail(o, ECODE(BAD_ARGUMENT), 0,
					"unknown suspend state '%.64s': want mem or freeze", state);
	r = vmc_sysroot_read_str(rootfd, "sys/power/state", offered, sizeof(offered));
	if (r == -ENOENT)
		return vmc_outcome_fail(
			o, ECODE(UNSUPPORTED), 0,
			"suspend: no sys/power/state (kernel without suspend support)");
	if (r < 0)
		return fail_errno(o, -r, "reading", "sys/power/state");
	if (!has_word(offered, state))
		return vmc_outcome_fail(
			o, ECODE(UNSUPPORTED), 0,
			"suspend to %s: the kernel offers only '%s' (sys/power/state)", state,
			offered);
	r = open_attr(rootfd, "sys/power/state", fd, o);
	if (r < 0)
		return r;
	*word = state;
	return 0;
}

int vmc_act_crash_open(int rootfd, int *fd, struct vmc_outcome *o)
{
	int r = open_attr(rootfd, "proc/sysrq-trigger", fd, o);

	if (r == -ENOENT)
		return vmc_outcome_fail(o, ECODE(UNSUPPORTED), 0,
					"crash: no proc/sysrq-trigger (kernel without MAGIC_SYSRQ)");
	return r;
}

int vmc_act_crash(int fd)
{
	/* Whatever the guest wrote should be on disk for the dump to be read. */
	sync();
	return vmc_act_write(fd, "c");
}
