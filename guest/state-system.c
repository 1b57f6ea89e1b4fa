/* SPDX-License-Identifier: MIT */
/*
 * The system section: boot identity, uptime, kernel, OS and suspend counters.
 * Every field is optional: a file that cannot be read leaves its field empty,
 * so the section fails only when memory runs out.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "state.h"

/* Read @path into @field; a missing or unreadable file leaves @field as is. */
static int read_field(int fd, struct vmc_arena *a, char **field, const char *path)
{
	char buf[4096];
	char *s;

	if (vmc_sysroot_read_str(fd, path, buf, sizeof(buf)) < 0)
		return 0;
	s = vmc_arena_strdup(a, buf);
	if (!s)
		return -ENOMEM;
	*field = s;
	return 0;
}

/*
 * The first field of /proc/uptime ("358.41 668.81") in milliseconds. Parsed
 * digit by digit: a double would turn 0.29 s into 289 ms.
 */
static int parse_uptime_ms(const char *s, uint64_t *out)
{
	uint64_t sec = 0, frac = 0;
	unsigned digits = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (sec > (UINT64_MAX - d) / 10)
			return -ERANGE;
		sec = sec * 10 + d;
	}
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		for (; isdigit((unsigned char)*s); s++) {
			if (digits < 3) {
				frac = frac * 10 + (unsigned)(*s - '0');
				digits++;
			}
		}
	}
	if (*s && *s != ' ')
		return -EINVAL;
	for (; digits < 3; digits++)
		frac *= 10;
	if (sec > (UINT64_MAX - frac) / 1000)
		return -ERANGE;
	*out = sec * 1000 + frac;
	return 0;
}

/*
 * Strip shell quoting from an os-release value in place, as os-release(5)
 * allows it: '...' literally, "..." with \ escaping $ " \ `, and bare words
 * with \ escaping any character. Returns -EINVAL for an unterminated quote
 * or a second word.
 */
static int unquote(char *s)
{
	char *w = s, *r;
	char q = 0;

	for (r = s; *r; r++) {
		if (q == '\'') {
			if (*r == '\'')
				q = 0;
			else
				*w++ = *r;
		} else if (q == '"') {
			if (*r == '"')
				q = 0;
			else if (*r == '\\' && r[1] && strchr("$\"\\`", r[1]))
				*w++ = *++r;
			else
				*w++ = *r;
		} else if (*r == '\'' || *r == '"') {
			q = *r;
		} else if (*r == '\\' && r[1]) {
			*w++ = *++r;
		} else if (isspace((unsigned char)*r)) {
			break;
		} else {
			*w++ = *r;
		}
	}
	if (q)
		return -EINVAL;
	for (; *r; r++)
		if (!isspace((unsigned char)*r))
			return -EINVAL;
	*w = '\0';
	return 0;
}

static int parse_os_release(char *text, struct vmc_arena *a, Vmcheck__V1__System *sys)
{
	char *line, *next;

	for (line = text; line; line = next) {
		char **field = NULL, *eq, *v;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		while (isspace((unsigned char)*line))
			line++;
		eq = strchr(line, '=');
		if (*line == '#' || !eq)
			continue;
		*eq = '\0';
		if (!strcmp(line, "ID"))
			field = &sys->os_id;
		else if (!strcmp(line, "VERSION_ID"))
			field = &sys->os_version_id;
		else if (!strcmp(line, "PRETTY_NAME"))
			field = &sys->os_pretty_name;
		if (!field || unquote(eq + 1) < 0)
			continue;
		v = vmc_arena_strdup(a, eq + 1);
		if (!v)
			return -ENOMEM;
		*field = v;
	}
	return 0;
}

static int read_os_release(int fd, struct vmc_arena *a, Vmcheck__V1__System *sys)
{
	char *buf = vmc_arena_scratch(a, VMC_SYSROOT_READ_MAX);
	int r;

	if (!buf)
		return -ENOMEM;
	r = vmc_sysroot_read_str(fd, "etc/os-release", buf, VMC_SYSROOT_READ_MAX);
	if (r == -ENOENT)
		r = vmc_sysroot_read_str(fd, "usr/lib/os-release", buf, VMC_SYSROOT_READ_MAX);
	if (r < 0)
		return 0;
	return parse_os_release(buf, a, sys);
}

int vmc_state_read_system(const struct vmc_state_opts *o, struct vmc_arena *a,
			  Vmcheck__V1__State *st)
{
	Vmcheck__V1__System *sys = vmc_arena_alloc(a, sizeof(*sys));
	int fd = o->root.fd;
	char buf[64];
	struct stat sb;
	int r;

	if (!sys)
		return -ENOMEM;
	vmcheck__v1__system__init(sys);
	if ((r = read_field(fd, a, &sys->boot_id, "proc/sys/kernel/random/boot_id")) < 0 ||
	    (r = read_field(fd, a, &sys->kernel_release, "proc/sys/kernel/osrelease")) < 0 ||
	    (r = read_field(fd, a, &sys->kernel_version, "proc/sys/kernel/version")) < 0 ||
	    (r = read_field(fd, a, &sys->hostname, "proc/sys/kernel/hostname")) < 0 ||
	    (r = read_field(fd, a, &sys->power_states, "sys/power/state")) < 0 ||
	    (r = read_field(fd, a, &sys->mem_sleep, "sys/power/mem_sleep")) < 0 ||
	    (r = read_os_release(fd, a, sys)) < 0)
		return r;
	/* Outputs stay 0 when a file is missing or malformed. */
	if (vmc_sysroot_read_str(fd, "proc/uptime", buf, sizeof(buf)) >= 0)
		(void)parse_uptime_ms(buf, &sys->uptime_ms);

	/* uname() describes the running kernel, not a fixture tree. */
	if (o->root.live) {
		struct utsname u;

		if (uname(&u) == 0) {
			sys->machine = vmc_arena_strdup(a, u.machine);
			if (!sys->machine)
				return -ENOMEM;
		}
	}

	sys->has_suspend_stats = fstatat(fd, "sys/power/suspend_stats", &sb, 0) == 0 &&
				 S_ISDIR(sb.st_mode);
	if (sys->has_suspend_stats) {
		(void)vmc_sysroot_read_u64f(fd, &sys->suspend_success, 10,
					    "sys/power/suspend_stats/success");
		(void)vmc_sysroot_read_u64f(fd, &sys->suspend_fail, 10,
					    "sys/power/suspend_stats/fail");
	}
	st->system = sys;
	return 0;
}
