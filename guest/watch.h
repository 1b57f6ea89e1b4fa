/* SPDX-License-Identifier: MIT */
/*
 * Kernel change notifications for pushes: NETLINK_KOBJECT_UEVENT and
 * rtnetlink messages are parsed into causes, coalesced into bursts and
 * handed to a callback on the watcher's own thread. The watcher always
 * listens to the running kernel; what a burst makes the agent read is the
 * agent's business (it may be a fixture sysroot). The crash dirs, where no
 * kernel object announces a dump being written, are followed with inotify
 * below the same root the agent reads.
 */
#ifndef VMC_WATCH_H
#define VMC_WATCH_H

#include <stddef.h>
#include <stdint.h>

/* A burst is flushed early once it holds this many causes. */
#define VMC_WATCH_MAX_CAUSES 64
/* Largest uevent accepted; the kernel's own limit is 2048 bytes of env. */
#define VMC_UEVENT_MAX 8192

/*
 * One kernel message. Strings are NUL-terminated and silently truncated to
 * their buffers: a cause is evidence, and a burst must not be lost because
 * one devpath was unusually long.
 */
struct vmc_cause {
	uint32_t source;   /* VMCHECK__V1__CAUSE__SOURCE__* */
	uint32_t sections; /* Section bits it affects; 0: of no interest */
	uint32_t ifindex;  /* rtnetlink only */
	uint64_t mono_ns;  /* CLOCK_MONOTONIC when it was received */
	char action[16];
	char subsystem[32];
	char name[64];
	char devpath[512];
};

/* Section bits a uevent of @subsystem affects ("net" -> links); 0 if none. */
uint32_t vmc_watch_subsystem_sections(const char *subsystem);

/*
 * vmc_watch_parse_uevent - parse one kernel uevent datagram
 * @buf: "ACTION@DEVPATH\0KEY=VALUE\0...", every field NUL-terminated
 * @c:   filled on success; c->sections is 0 for subsystems of no interest
 *
 * The name is INTERFACE, else DEVNAME, else the last DEVPATH component.
 * Returns 0; -EMSGSIZE over VMC_UEVENT_MAX; -EINVAL when a field is not
 * terminated or ACTION, DEVPATH or SUBSYSTEM is missing. @c is untouched
 * on failure.
 */
int vmc_watch_parse_uevent(const void *buf, size_t len, uint64_t mono_ns, struct vmc_cause *c);

/*
 * vmc_watch_parse_rtnl - parse one rtnetlink datagram
 * @out: room for @max causes
 *
 * Every RTM_{NEW,DEL}{LINK,ADDR} message becomes a cause with subsystem
 * "net" and the links section; its name comes from IFLA_IFNAME or IFA_LABEL,
 * and is left empty (ifindex set) when the message has neither. Other
 * message types and messages with malformed attributes are skipped; a
 * header whose length does not fit ends the walk. Returns the number of
 * causes stored.
 */
size_t vmc_watch_parse_rtnl(const void *buf, size_t len, uint64_t mono_ns, struct vmc_cause *out,
			    size_t max);

struct vmc_watch;

struct vmc_watch_ops {
	/* The burst window in ms, asked when the first message of a burst arrives. */
	unsigned (*window_ms)(void *ctx);
	/* One burst of relevant causes (1..VMC_WATCH_MAX_CAUSES), oldest first. */
	void (*burst)(void *ctx, const struct vmc_cause *causes, size_t n);
};

/* What the watcher follows besides netlink. */
struct vmc_watch_config {
	int root_fd;                   /* the crash dirs are relative to it */
	const char *const *crash_dirs; /* NULL-terminated; NULL: none */
};

/*
 * vmc_watch_start - open both netlink sockets and start the watcher thread
 * @cfg: NULL, or crash dirs to follow (copied; its strings and root_fd must
 *       outlive the watcher)
 *
 * Each crash dir that exists, and every directory in it (a dump), is
 * watched with inotify: a file created, written, closed after writing,
 * renamed in or out, or deleted there becomes a FILE cause for the crash
 * section, and a directory appearing in a crash dir is watched from then
 * on. A change of the mount table (a crash disk mounted over a crash dir)
 * is a FILE cause "mount" and has the dirs watched again. The watches run
 * through /proc/self/fd, so they need procfs. Returns 0 and sets *out, or
 * -errno when a netlink socket cannot be opened or bound (nothing is left
 * running then); without inotify, or a crash dir that cannot be watched,
 * it starts all the same and says why on stderr.
 */
int vmc_watch_start(const struct vmc_watch_ops *ops, void *ctx, const struct vmc_watch_config *cfg,
		    struct vmc_watch **out);

/* Stop the thread (a burst being delivered completes first) and free @w. */
void vmc_watch_stop(struct vmc_watch *w);

#endif
