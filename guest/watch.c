/* SPDX-License-Identifier: MIT */
/* Kernel change notifications (netlink, the clock, the crash dirs) into push bursts. */
#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "clock.h"
#include "macro.h"
#include "pb.h"

#define S(x) VMCHECK__V1__SECTION__SECTION_##x
/* What a lost uevent could have changed: everything pushes cover. */
#define UEVENT_ANY (S(LINKS) | S(BLOCKS) | S(MEMORY) | S(CPUS) | S(PCI))
#define RCVBUF (1 << 20)
#define THREAD_STACK (512u << 10)
/* What changes a crash dir's listing or a dump's files and sizes. */
#define FILE_EVENTS                                                                         \
	(IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | \
	 IN_ONLYDIR)
/* Crash dirs plus the dumps in them; dumps past this many go unwatched. */
#define MAX_DIR_WATCHES 1024
/*
 * A file being written says so on every write(): makedumpfile writing a
 * 22 MB dump in 2 s made some 240 pushes, one per burst window, each a
 * read of the crash section on the capture kernel's one CPU. Growth alone
 * is news this often at most, plenty to tell a dump growing from one
 * stalled (the host allows seconds); anything else goes out as ever.
 */
#define WRITE_EVERY_NS (100 * 1000000ull)

static const struct {
	const char *subsystem;
	uint32_t sections;
} subsystems[] = {
	{ "net", S(LINKS) },
	{ "block", S(BLOCKS) },
	{ "memory", S(MEMORY) },
	{ "cpu", S(CPUS) },
	/* A PCI function coming or going is also the NIC or disk behind it. */
	{ "pci", S(PCI) | S(LINKS) | S(BLOCKS) },
	{ "virtio", S(LINKS) | S(BLOCKS) },
};

uint32_t vmc_watch_subsystem_sections(const char *subsystem)
{
	for (size_t i = 0; i < ARRAY_SIZE(subsystems); i++)
		if (!strcmp(subsystem, subsystems[i].subsystem))
			return subsystems[i].sections;
	return 0;
}

static void copy_field(char *dst, size_t size, const char *src, size_t n)
{
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

#define COPY(dst, s) copy_field(dst, sizeof(dst), s, strlen(s))

static const char *value_of(const char *field, const char *key)
{
	size_t n = strlen(key);

	return strncmp(field, key, n) ? NULL : field + n;
}

int vmc_watch_parse_uevent(const void *buf, size_t len, uint64_t mono_ns, struct vmc_cause *c)
{
	const char *p = buf, *end = p + len, *nul, *v;
	const char *action = NULL, *devpath = NULL, *subsystem = NULL;
	const char *devname = NULL, *iface = NULL, *name;

	if (len > VMC_UEVENT_MAX)
		return -EMSGSIZE;
	/* Kernel messages open with "action@devpath"; libudev's do not. */
	nul = memchr(p, '\0', len);
	if (!nul || !memchr(p, '@', (size_t)(nul - p)))
		return -EINVAL;
	for (p = nul + 1; p < end; p = nul + 1) {
		nul = memchr(p, '\0', (size_t)(end - p));
		if (!nul)
			return -EINVAL;
		if ((v = value_of(p, "ACTION=")))
			action = v;
		else if ((v = value_of(p, "DEVPATH=")))
			devpath = v;
		else if ((v = value_of(p, "SUBSYSTEM=")))
			subsystem = v;
		else if ((v = value_of(p, "DEVNAME=")))
			devname = v;
		else if ((v = value_of(p, "INTERFACE=")))
			iface = v;
	}
	if (!action || !*action || !devpath || !*devpath || !subsystem || !*subsystem)
		return -EINVAL;
	if (iface && *iface)
		name = iface;
	else if (devname && *devname)
		name = devname;
	else
		name = strrchr(devpath, '/') ? strrchr(devpath, '/') + 1 : devpath;

	memset(c, 0, sizeof(*c));
	c->source = VMCHECK__V1__CAUSE__SOURCE__UEVENT;
	c->sections = vmc_watch_subsystem_sections(subsystem);
	c->mono_ns = mono_ns;
	COPY(c->action, action);
	COPY(c->subsystem, subsystem);
	COPY(c->name, name);
	COPY(c->devpath, devpath);
	return 0;
}

static const struct {
	uint16_t type;
	const char *action;
	size_t hdr;       /* family header before the attributes */
	size_t index_off; /* of the ifindex in that header */
	uint16_t name_attr;
} rtnl_kinds[] = {
	{ RTM_NEWLINK, "newlink", sizeof(struct ifinfomsg), offsetof(struct ifinfomsg, ifi_index),
	  IFLA_IFNAME },
	{ RTM_DELLINK, "dellink", sizeof(struct ifinfomsg), offsetof(struct ifinfomsg, ifi_index),
	  IFLA_IFNAME },
	{ RTM_NEWADDR, "newaddr", sizeof(struct ifaddrmsg), offsetof(struct ifaddrmsg, ifa_index),
	  IFA_LABEL },
	{ RTM_DELADDR, "deladdr", sizeof(struct ifaddrmsg), offsetof(struct ifaddrmsg, ifa_index),
	  IFA_LABEL },
};

/* One message's payload (after the nlmsghdr). Returns 0, or -EINVAL to skip it. */
static int parse_rtnl_msg(uint16_t type, const uint8_t *p, size_t len, struct vmc_cause *c)
{
	size_t k, hdr;
	uint32_t ifindex;

	for (k = 0; k < ARRAY_SIZE(rtnl_kinds); k++)
		if (rtnl_kinds[k].type == type)
			break;
	if (k == ARRAY_SIZE(rtnl_kinds) || len < rtnl_kinds[k].hdr)
		return -EINVAL;
	memcpy(&ifindex, p + rtnl_kinds[k].index_off, sizeof(ifindex));
	memset(c, 0, sizeof(*c));
	c->source = VMCHECK__V1__CAUSE__SOURCE__RTNETLINK;
	c->sections = S(LINKS);
	c->ifindex = ifindex;
	COPY(c->action, rtnl_kinds[k].action);
	COPY(c->subsystem, "net");

	hdr = NLMSG_ALIGN(rtnl_kinds[k].hdr);
	if (hdr >= len)
		return 0;
	p += hdr;
	len -= hdr;
	while (len >= sizeof(struct rtattr)) {
		struct rtattr rta;
		size_t step;

		memcpy(&rta, p, sizeof(rta));
		if (rta.rta_len < sizeof(rta) || rta.rta_len > len)
			return -EINVAL;
		if ((rta.rta_type & NLA_TYPE_MASK) == rtnl_kinds[k].name_attr) {
			const char *s = (const char *)p + RTA_LENGTH(0);
			size_t n = rta.rta_len - RTA_LENGTH(0);
			const char *nul = memchr(s, '\0', n);

			if (!nul)
				return -EINVAL;
			copy_field(c->name, sizeof(c->name), s, (size_t)(nul - s));
		}
		step = RTA_ALIGN(rta.rta_len);
		if (step >= len)
			break;
		p += step;
		len -= step;
	}
	return 0;
}

size_t vmc_watch_parse_rtnl(const void *buf, size_t len, uint64_t mono_ns, struct vmc_cause *out,
			    size_t max)
{
	const uint8_t *p = buf;
	size_t n = 0;

	while (len >= NLMSG_HDRLEN && n < max) {
		struct nlmsghdr nh;
		size_t step;

		memcpy(&nh, p, sizeof(nh));
		if (nh.nlmsg_len < NLMSG_HDRLEN || nh.nlmsg_len > len)
			break;
		if (parse_rtnl_msg(nh.nlmsg_type, p + NLMSG_HDRLEN, nh.nlmsg_len - NLMSG_HDRLEN,
				   &out[n]) == 0)
			out[n++].mono_ns = mono_ns;
		step = NLMSG_ALIGN(nh.nlmsg_len);
		if (step >= len)
			break;
		p += step;
		len -= step;
	}
	return n;
}

/* An inotify watch on a crash dir or a dump in one. */
struct dir_watch {
	int wd;
	bool dump;  /* a dump: directories in it are not followed */
	char *path; /* relative to the root: "var/crash", "var/crash/<dump>" */
};

struct vmc_watch {
	const struct vmc_watch_ops *ops;
	void *ctx;
	int stop_fd, uev_fd, rtnl_fd, clock_fd;
	int file_fd;   /* inotify, -1 without crash dirs */
	int mounts_fd; /* the root's proc/self/mountinfo, -1 if absent */
	struct vmc_watch_config cfg;
	struct dir_watch *dirs;
	size_t n_dirs, cap_dirs;
	pthread_t thread;
	size_t n;              /* causes in the current burst */
	uint64_t deadline;     /* CLOCK_MONOTONIC ns at which the burst is pushed */
	uint64_t window_ns;    /* the current burst's window */
	bool held;             /* the burst is all writes, held until writes_after */
	bool wrote;            /* the burst holds a write */
	uint64_t writes_after; /* CLOCK_MONOTONIC ns before which writes alone wait */
	unsigned settle_left;  /* follow-up pushes still due after a clock jump */
	uint64_t settle_at;    /* CLOCK_MONOTONIC ns of the next one */
	struct vmc_cause causes[VMC_WATCH_MAX_CAUSES];
	uint8_t buf[65536] __attribute__((aligned(NLMSG_ALIGNTO)));
};

static void flush(struct vmc_watch *w)
{
	w->ops->burst(w->ctx, w->causes, w->n);
	if (w->wrote)
		w->writes_after = vmc_mono_ns() + WRITE_EVERY_NS;
	w->n = 0;
	w->wrote = false;
}

/*
 * Commit @k causes already stored at causes[n]. @write: they only say a
 * file was written to (WRITE_EVERY_NS); a burst of such waits until
 * writes_after, unless other news joins it.
 */
static void take_write(struct vmc_watch *w, size_t k, bool write)
{
	if (k == 0)
		return;
	if (w->n == 0) {
		w->window_ns = (uint64_t)w->ops->window_ms(w->ctx) * 1000000u;
		w->deadline = w->causes[0].mono_ns + w->window_ns;
		w->held = write && w->deadline < w->writes_after;
		if (w->held)
			w->deadline = w->writes_after;
	} else if (!write && w->held) {
		if (w->causes[w->n].mono_ns + w->window_ns < w->deadline)
			w->deadline = w->causes[w->n].mono_ns + w->window_ns;
		w->held = false;
	}
	w->wrote |= write;
	w->n += k;
	if (w->n == VMC_WATCH_MAX_CAUSES)
		flush(w);
}

static void take(struct vmc_watch *w, size_t k)
{
	take_write(w, k, false);
}

/*
 * The socket's queue overflowed: messages were lost, so say that whatever
 * they could have touched may have changed.
 */
static void take_overflow(struct vmc_watch *w, bool uevent, uint64_t now)
{
	struct vmc_cause *c = &w->causes[w->n];

	memset(c, 0, sizeof(*c));
	c->source = uevent ? VMCHECK__V1__CAUSE__SOURCE__UEVENT
			   : VMCHECK__V1__CAUSE__SOURCE__RTNETLINK;
	c->sections = uevent ? UEVENT_ANY : S(LINKS);
	c->mono_ns = now;
	COPY(c->action, "overflow");
	COPY(c->subsystem, uevent ? "" : "net");
	take(w, 1);
}

static void drain(struct vmc_watch *w, int fd, bool uevent)
{
	for (;;) {
		struct sockaddr_nl sa = { 0 };
		struct iovec iov = { .iov_base = w->buf, .iov_len = sizeof(w->buf) };
		struct msghdr mh = { .msg_name = &sa,
				     .msg_namelen = sizeof(sa),
				     .msg_iov = &iov,
				     .msg_iovlen = 1 };
		ssize_t len = recvmsg(fd, &mh, MSG_DONTWAIT);
		uint64_t now = vmc_mono_ns();
		struct vmc_cause *c = &w->causes[w->n];
		size_t k;

		if (len < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS) {
				take_overflow(w, uevent, now);
				continue;
			}
			if (errno != EAGAIN)
				fprintf(stderr,
					"vmcheck-agent: watch: receiving from netlink: %s\n",
					strerror(errno));
			return;
		}
		/* Only the kernel speaks here; a cut-short datagram cannot be trusted. */
		if (sa.nl_pid != 0 || (mh.msg_flags & MSG_TRUNC))
			continue;
		if (uevent) {
			if (vmc_watch_parse_uevent(w->buf, (size_t)len, now, c) == 0)
				take(w, c->sections ? 1 : 0);
			continue;
		}
		k = vmc_watch_parse_rtnl(w->buf, (size_t)len, now, c, VMC_WATCH_MAX_CAUSES - w->n);
		for (size_t i = 0; i < k; i++) {
			char ifname[IF_NAMESIZE];

			if (c[i].name[0])
				continue;
			/* IPv6 addresses carry no label: name the link as it is now. */
			if (if_indextoname(c[i].ifindex, ifname))
				COPY(c[i].name, ifname);
			else
				snprintf(c[i].name, sizeof(c[i].name), "%u", c[i].ifindex);
		}
		take(w, k);
	}
}

/*
 * A realtime timer far in the future that the kernel cancels when the wall
 * clock jumps: settimeofday, and every resume from suspend (timekeeping
 * resumes with the time slept). So a suspend vmcheck's agent did not do
 * itself (qemu-ga's guest-suspend-ram) still pushes the system section.
 */
static int clock_arm(int fd)
{
	struct itimerspec its = { .it_value = { .tv_sec = (time_t)1 << 40 } };

	return timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL) < 0
		       ? -errno
		       : 0;
}

/* A system-section cause from the clock: "clock-set", or a later "clock-settle". */
static void take_clock(struct vmc_watch *w, const char *action, uint64_t now)
{
	struct vmc_cause *c = &w->causes[w->n];

	memset(c, 0, sizeof(*c));
	c->source = VMCHECK__V1__CAUSE__SOURCE__CLOCK;
	c->sections = S(SYSTEM);
	c->mono_ns = now;
	COPY(c->action, action);
	take(w, 1);
}

/*
 * The kernel counts a suspend as a success only after it has thawed the
 * tasks, so this thread may read the system section before the count
 * moves: two follow-up pushes, 0.1 s and 1 s later, catch it.
 */
#define SETTLE_FIRST_NS 100000000ull
#define SETTLE_NEXT_NS 900000000ull

static void clock_jumped(struct vmc_watch *w)
{
	uint64_t ticks, now;

	/* ECANCELED is the jump; anything else (the far timer firing) re-arms too. */
	if (read(w->clock_fd, &ticks, sizeof(ticks)) < 0 && errno == EAGAIN)
		return;
	if (clock_arm(w->clock_fd) < 0)
		fprintf(stderr, "vmcheck-agent: watch: re-arming the clock timer: %s\n",
			strerror(errno));
	now = vmc_mono_ns();
	take_clock(w, "clock-set", now);
	w->settle_left = 2;
	w->settle_at = now + SETTLE_FIRST_NS;
}

static void clock_settle(struct vmc_watch *w, uint64_t now)
{
	if (!w->settle_left || now < w->settle_at)
		return;
	take_clock(w, "clock-settle", now);
	w->settle_left--;
	w->settle_at = now + SETTLE_NEXT_NS;
}

/* ------------------------------------------------------------ crash dirs */

static struct dir_watch *dir_by_wd(struct vmc_watch *w, int wd)
{
	for (size_t i = 0; i < w->n_dirs; i++)
		if (w->dirs[i].wd == wd)
			return &w->dirs[i];
	return NULL;
}

static void dir_drop(struct vmc_watch *w, struct dir_watch *d)
{
	free(d->path);
	*d = w->dirs[--w->n_dirs];
}

/*
 * Watch the directory @rel (relative to the root). A dump is not followed
 * through a symlink, as the crash section does not list one. Watching the
 * same directory again keeps its watch. Returns 0 or -errno.
 */
static int dir_add(struct vmc_watch *w, const char *rel, bool dump)
{
	_cleanup_close_ int fd = -1;
	struct dir_watch *d;
	char proc[64];
	char *path;
	int wd;

	fd = openat(w->cfg.root_fd, rel,
		    O_PATH | O_DIRECTORY | O_CLOEXEC | (dump ? O_NOFOLLOW : 0));
	if (fd < 0)
		return -errno;
	/* inotify takes a path; this one is the directory just opened, below the root. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	wd = inotify_add_watch(w->file_fd, proc, FILE_EVENTS);
	if (wd < 0)
		return -errno;
	if (dir_by_wd(w, wd))
		return 0;
	if (w->n_dirs == MAX_DIR_WATCHES) {
		inotify_rm_watch(w->file_fd, wd);
		return -ENOSPC;
	}
	if (w->n_dirs == w->cap_dirs) {
		size_t cap = w->cap_dirs ? 2 * w->cap_dirs : 8;
		struct dir_watch *v = realloc(w->dirs, cap * sizeof(*v));

		if (!v) {
			inotify_rm_watch(w->file_fd, wd);
			return -ENOMEM;
		}
		w->dirs = v;
		w->cap_dirs = cap;
	}
	path = strdup(rel);
	if (!path) {
		inotify_rm_watch(w->file_fd, wd);
		return -ENOMEM;
	}
	d = &w->dirs[w->n_dirs++];
	d->wd = wd;
	d->dump = dump;
	d->path = path;
	return 0;
}

/* "DIR/NAME" into @buf; false if it does not fit. */
static bool join(char *buf, size_t size, const char *dir, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	return n > 0 && (size_t)n < size;
}

/* Watch the dumps already in crash dir @rel (those made later announce themselves). */
static void dumps_add(struct vmc_watch *w, const char *rel)
{
	int fd = openat(w->cfg.root_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(dir))) {
		char child[PATH_MAX];

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN))
			continue;
		if (join(child, sizeof(child), rel, e->d_name))
			(void)dir_add(w, child, true); /* not a directory: ENOTDIR */
	}
	closedir(dir);
}

/*
 * Watch every crash dir and the dumps in it: at the start, and again when
 * the mount table changed (a disk mounted over a crash dir hides the
 * directory watched until then) or events were lost. A crash dir that does
 * not exist is no error; another failure is said once, at the start.
 */
static void dirs_scan(struct vmc_watch *w, bool say)
{
	for (size_t i = 0; w->cfg.crash_dirs[i]; i++) {
		const char *rel = w->cfg.crash_dirs[i];
		int r = dir_add(w, rel, false);

		if (r == 0)
			dumps_add(w, rel);
		else if (r != -ENOENT && say)
			fprintf(stderr,
				"vmcheck-agent: watch: /%s: %s: no pushes for dumps there\n", rel,
				strerror(-r));
	}
}

/* A crash-section cause; the same change twice in a burst is kept once. */
static void take_file(struct vmc_watch *w, const char *action, const char *name, const char *dir,
		      uint64_t now, bool write)
{
	struct vmc_cause *c = &w->causes[w->n];
	char devpath[sizeof(c->devpath)];

	snprintf(devpath, sizeof(devpath), "/%s", dir);
	for (size_t i = 0; i < w->n; i++)
		if (w->causes[i].source == VMCHECK__V1__CAUSE__SOURCE__FILE &&
		    !strcmp(w->causes[i].action, action) &&
		    !strncmp(w->causes[i].name, name, sizeof(c->name) - 1) &&
		    !strcmp(w->causes[i].devpath, devpath))
			return;
	memset(c, 0, sizeof(*c));
	c->source = VMCHECK__V1__CAUSE__SOURCE__FILE;
	c->sections = S(CRASH);
	c->mono_ns = now;
	COPY(c->action, action);
	COPY(c->name, name);
	COPY(c->devpath, devpath);
	take_write(w, 1, write);
}

static const struct {
	uint32_t bit;
	const char *action;
} file_actions[] = {
	{ IN_CREATE, "create" },           { IN_MODIFY, "modify" },
	{ IN_CLOSE_WRITE, "close-write" }, { IN_MOVED_TO, "moved-to" },
	{ IN_MOVED_FROM, "moved-from" },   { IN_DELETE, "delete" },
	{ IN_UNMOUNT, "unmount" },
};

/* One inotify event on watch @d; @name is "" for the directory itself. */
static void file_event(struct vmc_watch *w, struct dir_watch *d, uint32_t mask, const char *name,
		       uint64_t now)
{
	char child[PATH_MAX];
	bool follow, forget;

	if (mask & IN_IGNORED) { /* the directory was removed, or its filesystem unmounted */
		dir_drop(w, d);
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(file_actions); i++)
		if (mask & file_actions[i].bit) {
			take_file(w, file_actions[i].action, name, d->path, now,
				  file_actions[i].bit == IN_MODIFY);
			break;
		}
	/* A dump appearing in a crash dir is watched from now on; one renamed away is not. */
	follow = !d->dump && (mask & IN_ISDIR) && (mask & (IN_CREATE | IN_MOVED_TO));
	forget = !d->dump && (mask & IN_ISDIR) && (mask & IN_MOVED_FROM);
	if (!(follow || forget) || !join(child, sizeof(child), d->path, name))
		return;
	if (follow) {
		(void)dir_add(w, child, true); /* d is stale from here on */
		return;
	}
	for (size_t i = 0; i < w->n_dirs; i++)
		if (w->dirs[i].dump && !strcmp(w->dirs[i].path, child)) {
			inotify_rm_watch(w->file_fd, w->dirs[i].wd);
			dir_drop(w, &w->dirs[i]);
			break;
		}
}

static void drain_files(struct vmc_watch *w)
{
	bool rescan = false;

	for (;;) {
		ssize_t len = read(w->file_fd, w->buf, sizeof(w->buf));
		uint64_t now = vmc_mono_ns();
		size_t off = 0;

		if (len < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				fprintf(stderr, "vmcheck-agent: watch: reading inotify: %s\n",
					strerror(errno));
			break;
		}
		while ((size_t)len - off >= sizeof(struct inotify_event)) {
			struct inotify_event ev;
			char name[NAME_MAX + 1] = "";
			struct dir_watch *d;

			memcpy(&ev, w->buf + off, sizeof(ev));
			off += sizeof(ev);
			if (ev.len > (size_t)len - off)
				break;
			/* The name is NUL-padded to its length. */
			copy_field(name, sizeof(name), (const char *)w->buf + off,
				   strnlen((const char *)w->buf + off, ev.len));
			off += ev.len;
			if (ev.mask & IN_Q_OVERFLOW) {
				take_file(w, "overflow", "", "", now, false);
				rescan = true;
			} else if ((d = dir_by_wd(w, ev.wd))) {
				file_event(w, d, ev.mask, name, now);
			}
		}
	}
	if (rescan)
		dirs_scan(w, false);
}

/* The mount table changed: a crash dir may now be another filesystem's. */
static void mounts_changed(struct vmc_watch *w)
{
	take_file(w, "mount", "mountinfo", "proc/self", vmc_mono_ns(), false);
	dirs_scan(w, false);
}

static void files_open(struct vmc_watch *w, const struct vmc_watch_config *cfg)
{
	w->cfg = *cfg;
	w->file_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->file_fd < 0) {
		fprintf(stderr, "vmcheck-agent: watch: inotify: %s: no pushes for dumps\n",
			strerror(errno));
		return;
	}
	dirs_scan(w, true);
	/* procfs flags a change of the mount table with POLLPRI; a fixture's file never does. */
	w->mounts_fd = openat(cfg->root_fd, "proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
}

/* ------------------------------------------------------------ the thread */

static void *watch_main(void *arg)
{
	struct vmc_watch *w = arg;
	struct pollfd pfd[] = {
		{ .fd = w->stop_fd, .events = POLLIN }, { .fd = w->uev_fd, .events = POLLIN },
		{ .fd = w->rtnl_fd, .events = POLLIN }, { .fd = w->clock_fd, .events = POLLIN },
		{ .fd = w->file_fd, .events = POLLIN }, { .fd = w->mounts_fd, .events = POLLPRI },
	};

	for (;;) {
		struct timespec ts, *tp = NULL;

		if (w->n || w->settle_left) {
			uint64_t now = vmc_mono_ns(), until = w->n ? w->deadline : w->settle_at;
			uint64_t left;

			if (w->n && w->settle_left && w->settle_at < until)
				until = w->settle_at;
			left = until > now ? until - now : 0;
			ts.tv_sec = (time_t)(left / 1000000000u);
			ts.tv_nsec = (long)(left % 1000000000u);
			tp = &ts;
		}
		if (ppoll(pfd, ARRAY_SIZE(pfd), tp, NULL) < 0 && errno != EINTR) {
			fprintf(stderr, "vmcheck-agent: watch: poll: %s; pushes stop\n",
				strerror(errno));
			return NULL;
		}
		if (pfd[0].revents)
			return NULL;
		if (pfd[1].revents)
			drain(w, w->uev_fd, true);
		if (pfd[2].revents)
			drain(w, w->rtnl_fd, false);
		if (pfd[3].revents)
			clock_jumped(w);
		if (pfd[4].revents)
			drain_files(w);
		if (pfd[5].revents)
			mounts_changed(w);
		clock_settle(w, vmc_mono_ns());
		if (w->n && vmc_mono_ns() >= w->deadline)
			flush(w);
	}
}

static int nl_open(int type, int proto, uint32_t groups)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = groups };
	int size = RCVBUF;
	int fd = socket(AF_NETLINK, type | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);

	if (fd < 0)
		return -errno;
	/*
	 * A hotplug burst must not overflow the queue while a push reads
	 * state; the FORCE variant (CAP_NET_ADMIN) passes rmem_max.
	 */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static void watch_free(struct vmc_watch *w)
{
	if (w->stop_fd >= 0)
		close(w->stop_fd);
	if (w->uev_fd >= 0)
		close(w->uev_fd);
	if (w->rtnl_fd >= 0)
		close(w->rtnl_fd);
	if (w->clock_fd >= 0)
		close(w->clock_fd);
	if (w->file_fd >= 0)
		close(w->file_fd);
	if (w->mounts_fd >= 0)
		close(w->mounts_fd);
	for (size_t i = 0; i < w->n_dirs; i++)
		free(w->dirs[i].path);
	free(w->dirs);
	free(w);
}

int vmc_watch_start(const struct vmc_watch_ops *ops, void *ctx, const struct vmc_watch_config *cfg,
		    struct vmc_watch **out)
{
	struct vmc_watch *w = calloc(1, sizeof(*w));
	pthread_attr_t attr;
	int r;

	if (!w)
		return -ENOMEM;
	w->ops = ops;
	w->ctx = ctx;
	w->file_fd = w->mounts_fd = -1;
	w->uev_fd = nl_open(SOCK_DGRAM, NETLINK_KOBJECT_UEVENT, 1);
	w->rtnl_fd = nl_open(SOCK_RAW, NETLINK_ROUTE,
			     RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR);
	w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r = w->uev_fd < 0 ? w->uev_fd : w->rtnl_fd < 0 ? w->rtnl_fd : w->stop_fd < 0 ? -errno : 0;
	if (r == 0) {
		w->clock_fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
		r = w->clock_fd < 0 ? -errno : clock_arm(w->clock_fd);
	} else {
		w->clock_fd = -1;
	}
	if (r < 0) {
		watch_free(w);
		return r;
	}
	if (cfg && cfg->crash_dirs)
		files_open(w, cfg);
	pthread_attr_init(&attr);
	/* Bursts are answered on this thread: give the readers room. */
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	r = -pthread_create(&w->thread, &attr, watch_main, w);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		watch_free(w);
		return r;
	}
	*out = w;
	return 0;
}

void vmc_watch_stop(struct vmc_watch *w)
{
	uint64_t one = 1;

	if (!w)
		return;
	if (write(w->stop_fd, &one, sizeof(one)) < 0)
		fprintf(stderr, "vmcheck-agent: watch: stopping: %s\n", strerror(errno));
	pthread_join(w->thread, NULL);
	watch_free(w);
}
