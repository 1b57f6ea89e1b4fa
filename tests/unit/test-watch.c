/* SPDX-License-Identifier: MIT */
/*
 * Parsing of kernel uevent and rtnetlink datagrams into push causes; the
 * watcher itself on this machine: a real uevent, a clock jump, and a dump
 * written in a crash dir of a scratch tree (real inotify).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "harness.h"
#include "pb.h"
#include "watch.h"

#define S(x) VMCHECK__V1__SECTION__SECTION_##x
#define NIC_PATH "/devices/pci0000:00/0000:00:02.0/0000:01:00.0/virtio1/net/eth1"

/* sizeof() of a literal with embedded NULs, minus the implicit final one. */
#define UEVENT(lit) lit, sizeof(lit) - 1

static void a_nic_uevent_names_the_interface(void)
{
	struct vmc_cause c;

	CU_ASSERT_EQUAL_FATAL(vmc_watch_parse_uevent(UEVENT("add@" NIC_PATH "\0"
							    "ACTION=add\0"
							    "DEVPATH=" NIC_PATH "\0"
							    "SUBSYSTEM=net\0"
							    "INTERFACE=eth1\0"
							    "IFINDEX=3\0"
							    "SEQNUM=2210\0"),
						     77, &c),
			      0);
	CU_ASSERT_EQUAL(c.source, VMCHECK__V1__CAUSE__SOURCE__UEVENT);
	CU_ASSERT_STRING_EQUAL(c.action, "add");
	CU_ASSERT_STRING_EQUAL(c.subsystem, "net");
	CU_ASSERT_STRING_EQUAL(c.name, "eth1");
	CU_ASSERT_STRING_EQUAL(c.devpath, NIC_PATH);
	CU_ASSERT_EQUAL(c.sections, S(LINKS));
	CU_ASSERT_EQUAL(c.mono_ns, 77);
}

static void names_come_from_devname_or_the_devpath(void)
{
	struct vmc_cause c;

	CU_ASSERT_EQUAL_FATAL(vmc_watch_parse_uevent(UEVENT("remove@/devices/virtual/block/loop0\0"
							    "ACTION=remove\0"
							    "DEVPATH=/devices/virtual/block/loop0\0"
							    "SUBSYSTEM=block\0"
							    "DEVNAME=loop0\0"
							    "DEVTYPE=disk\0"),
						     1, &c),
			      0);
	CU_ASSERT_STRING_EQUAL(c.name, "loop0");
	CU_ASSERT_STRING_EQUAL(c.action, "remove");
	CU_ASSERT_EQUAL(c.sections, S(BLOCKS));

	CU_ASSERT_EQUAL_FATAL(vmc_watch_parse_uevent(UEVENT("online@/devices/system/cpu/cpu2\0"
							    "ACTION=online\0"
							    "DEVPATH=/devices/system/cpu/cpu2\0"
							    "SUBSYSTEM=cpu\0"),
						     1, &c),
			      0);
	CU_ASSERT_STRING_EQUAL(c.name, "cpu2");
	CU_ASSERT_EQUAL(c.sections, S(CPUS));
}

static void subsystems_map_to_sections(void)
{
	struct vmc_cause c;

	CU_ASSERT_EQUAL(vmc_watch_subsystem_sections("memory"), S(MEMORY));
	CU_ASSERT_EQUAL(vmc_watch_subsystem_sections("pci"), S(PCI) | S(LINKS) | S(BLOCKS));
	CU_ASSERT_EQUAL(vmc_watch_subsystem_sections("virtio"), S(LINKS) | S(BLOCKS));
	CU_ASSERT_EQUAL(vmc_watch_subsystem_sections("input"), 0);
	CU_ASSERT_EQUAL(vmc_watch_subsystem_sections("netx"), 0);
	/* A subsystem of no interest parses, with no sections. */
	CU_ASSERT_EQUAL_FATAL(vmc_watch_parse_uevent(UEVENT("add@/devices/x/input/input5\0"
							    "ACTION=add\0"
							    "DEVPATH=/devices/x/input/input5\0"
							    "SUBSYSTEM=input\0"),
						     1, &c),
			      0);
	CU_ASSERT_EQUAL(c.sections, 0);
}

static void malformed_uevents_are_refused(void)
{
	struct vmc_cause c;
	char *huge;

	memset(&c, 0x5a, sizeof(c));
	/* Last field without its NUL. */
	CU_ASSERT_EQUAL(vmc_watch_parse_uevent(
				"add@/x\0ACTION=add\0DEVPATH=/x\0SUBSYSTEM=net",
				sizeof("add@/x\0ACTION=add\0DEVPATH=/x\0SUBSYSTEM=net") - 1, 1, &c),
			-EINVAL);
	/* Truncated: the subsystem never came. */
	CU_ASSERT_EQUAL(vmc_watch_parse_uevent(UEVENT("add@/x\0ACTION=add\0DEVPATH=/x\0"), 1, &c),
			-EINVAL);
	/* A header that is not "action@devpath" (libudev's own messages). */
	CU_ASSERT_EQUAL(vmc_watch_parse_uevent(UEVENT("libudev\0ACTION=add\0DEVPATH=/x\0"
						      "SUBSYSTEM=net\0"),
					       1, &c),
			-EINVAL);
	CU_ASSERT_EQUAL(vmc_watch_parse_uevent(UEVENT("add@/x\0ACTION=\0DEVPATH=/x\0"
						      "SUBSYSTEM=net\0"),
					       1, &c),
			-EINVAL);
	CU_ASSERT_EQUAL(vmc_watch_parse_uevent("", 0, 1, &c), -EINVAL);
	CU_ASSERT_EQUAL(vmc_watch_parse_uevent("add@/x", 6, 1, &c), -EINVAL);
	huge = malloc(VMC_UEVENT_MAX + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(huge);
	memset(huge, 'A', VMC_UEVENT_MAX + 1);
	CU_ASSERT_EQUAL(vmc_watch_parse_uevent(huge, VMC_UEVENT_MAX + 1, 1, &c), -EMSGSIZE);
	free(huge);
	/* The output is untouched by every failure. */
	CU_ASSERT_EQUAL(c.action[0], 0x5a);
	CU_ASSERT_EQUAL(c.mono_ns, 0x5a5a5a5a5a5a5a5aull);
}

static void long_fields_are_truncated_not_overrun(void)
{
	char buf[4096], path[1200];
	struct vmc_cause c;
	int n;

	memset(path, 'd', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	n = snprintf(buf, sizeof(buf), "add@%s%cACTION=add%cDEVPATH=%s%cSUBSYSTEM=block%c", path, 0,
		     0, path, 0, 0);
	CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof(buf));
	CU_ASSERT_EQUAL_FATAL(vmc_watch_parse_uevent(buf, (size_t)n, 1, &c), 0);
	CU_ASSERT_EQUAL(strlen(c.devpath), sizeof(c.devpath) - 1);
	CU_ASSERT_EQUAL(strlen(c.name), sizeof(c.name) - 1);
	CU_ASSERT_EQUAL(c.sections, S(BLOCKS));
}

/* A datagram under construction, aligned like the kernel's. */
struct nlbuf {
	uint8_t b[4096] __attribute__((aligned(NLMSG_ALIGNTO)));
	size_t len;
	size_t msg; /* offset of the message being built */
};

static void nl_msg(struct nlbuf *nb, uint16_t type, const void *fam, size_t fam_len)
{
	struct nlmsghdr nh = { .nlmsg_len = NLMSG_LENGTH(fam_len), .nlmsg_type = type };

	nb->msg = nb->len;
	memcpy(nb->b + nb->len, &nh, sizeof(nh));
	memcpy(nb->b + nb->len + NLMSG_HDRLEN, fam, fam_len);
	nb->len += NLMSG_ALIGN(nh.nlmsg_len);
}

static void nl_attr(struct nlbuf *nb, uint16_t type, const void *data, size_t len)
{
	struct rtattr rta = { .rta_len = (unsigned short)RTA_LENGTH(len), .rta_type = type };
	struct nlmsghdr *nh = (struct nlmsghdr *)(nb->b + nb->msg);

	memcpy(nb->b + nb->len, &rta, sizeof(rta));
	memcpy(nb->b + nb->len + RTA_LENGTH(0), data, len);
	nb->len += RTA_ALIGN(rta.rta_len);
	nh->nlmsg_len = (uint32_t)(nb->len - nb->msg);
}

static void link_and_address_messages_become_causes(void)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = 7 };
	struct ifaddrmsg ifa = { .ifa_family = AF_INET, .ifa_prefixlen = 24, .ifa_index = 7 };
	struct ifaddrmsg ifa6 = { .ifa_family = AF_INET6, .ifa_prefixlen = 64, .ifa_index = 9 };
	struct nlbuf nb = { .len = 0 };
	struct vmc_cause c[8];
	uint32_t mtu = 1500;
	uint8_t addr[4] = { 10, 0, 0, 1 };

	nl_msg(&nb, RTM_NEWLINK, &ifi, sizeof(ifi));
	nl_attr(&nb, IFLA_MTU, &mtu, sizeof(mtu));
	nl_attr(&nb, IFLA_IFNAME, "vmct0", 6);
	nl_msg(&nb, NLMSG_DONE, &mtu, sizeof(mtu)); /* not a change: skipped */
	nl_msg(&nb, RTM_NEWADDR, &ifa, sizeof(ifa));
	nl_attr(&nb, IFA_LOCAL, addr, sizeof(addr));
	nl_attr(&nb, IFA_LABEL, "vmct0", 6);
	nl_msg(&nb, RTM_DELADDR, &ifa6, sizeof(ifa6));
	nl_msg(&nb, RTM_DELLINK, &ifi, sizeof(ifi));
	nl_attr(&nb, IFLA_IFNAME, "vmct0", 6);

	CU_ASSERT_EQUAL_FATAL(vmc_watch_parse_rtnl(nb.b, nb.len, 99, c, 8), 4);
	CU_ASSERT_EQUAL(c[0].source, VMCHECK__V1__CAUSE__SOURCE__RTNETLINK);
	CU_ASSERT_STRING_EQUAL(c[0].action, "newlink");
	CU_ASSERT_STRING_EQUAL(c[0].subsystem, "net");
	CU_ASSERT_STRING_EQUAL(c[0].name, "vmct0");
	CU_ASSERT_EQUAL(c[0].ifindex, 7);
	CU_ASSERT_EQUAL(c[0].sections, S(LINKS));
	CU_ASSERT_EQUAL(c[0].mono_ns, 99);
	CU_ASSERT_STRING_EQUAL(c[1].action, "newaddr");
	CU_ASSERT_STRING_EQUAL(c[1].name, "vmct0");
	/* IPv6 addresses carry no label: the ifindex is all there is. */
	CU_ASSERT_STRING_EQUAL(c[2].action, "deladdr");
	CU_ASSERT_STRING_EQUAL(c[2].name, "");
	CU_ASSERT_EQUAL(c[2].ifindex, 9);
	CU_ASSERT_STRING_EQUAL(c[3].action, "dellink");
	CU_ASSERT_EQUAL(c[3].sections, S(LINKS));

	/* No more than the room given. */
	CU_ASSERT_EQUAL(vmc_watch_parse_rtnl(nb.b, nb.len, 99, c, 2), 2);
	CU_ASSERT_STRING_EQUAL(c[1].action, "newaddr");
}

static void malformed_rtnetlink_is_skipped(void)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = 3 };
	struct nlbuf nb = { .len = 0 };
	struct vmc_cause c[4];
	struct rtattr *rta;
	struct nlmsghdr *nh;
	size_t first;

	/* An attribute claiming more than its message holds: that message is skipped. */
	nl_msg(&nb, RTM_NEWLINK, &ifi, sizeof(ifi));
	nl_attr(&nb, IFLA_IFNAME, "bad0", 5);
	rta = (struct rtattr *)(nb.b + NLMSG_LENGTH(NLMSG_ALIGN(sizeof(ifi))));
	rta->rta_len = 200;
	/* A name without its NUL: skipped too. */
	nl_msg(&nb, RTM_NEWLINK, &ifi, sizeof(ifi));
	nl_attr(&nb, IFLA_IFNAME, "bad1!", 5);
	first = nb.len;
	nl_msg(&nb, RTM_DELLINK, &ifi, sizeof(ifi));
	nl_attr(&nb, IFLA_IFNAME, "ok0", 4);
	/* A header shorter than its family header. */
	nl_msg(&nb, RTM_NEWLINK, &ifi, 4);
	CU_ASSERT_EQUAL_FATAL(vmc_watch_parse_rtnl(nb.b, nb.len, 1, c, 4), 1);
	CU_ASSERT_STRING_EQUAL(c[0].name, "ok0");

	/* A message longer than the datagram ends the walk. */
	nh = (struct nlmsghdr *)(nb.b + first);
	nh->nlmsg_len = 4000;
	CU_ASSERT_EQUAL(vmc_watch_parse_rtnl(nb.b, nb.len, 1, c, 4), 0);
	/* Fewer bytes than a header, or none at all. */
	CU_ASSERT_EQUAL(vmc_watch_parse_rtnl(nb.b, NLMSG_HDRLEN - 1, 1, c, 4), 0);
	CU_ASSERT_EQUAL(vmc_watch_parse_rtnl(nb.b, 0, 1, c, 4), 0);
}

struct bursts {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool seen;  /* the cause we are waiting for arrived */
	bool clock; /* waiting for a clock jump, not lo's uevent */
	unsigned windows_asked;
};

static unsigned test_window(void *ctx)
{
	struct bursts *b = ctx;

	pthread_mutex_lock(&b->lock);
	b->windows_asked++;
	pthread_mutex_unlock(&b->lock);
	return 1;
}

static void test_burst(void *ctx, const struct vmc_cause *c, size_t n)
{
	struct bursts *b = ctx;

	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < n; i++) {
		if (!b->clock && !strcmp(c[i].action, "change") && !strcmp(c[i].subsystem, "net") &&
		    !strcmp(c[i].name, "lo") && c[i].sections == S(LINKS) && c[i].mono_ns > 0)
			b->seen = true;
		if (b->clock && !strcmp(c[i].action, "clock-set") &&
		    c[i].source == VMCHECK__V1__CAUSE__SOURCE__CLOCK &&
		    c[i].sections == S(SYSTEM) && c[i].mono_ns > 0)
			b->seen = true;
	}
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

static void the_watcher_delivers_a_real_uevent(void)
{
	static const struct vmc_watch_ops ops = { .window_ms = test_window, .burst = test_burst };
	struct bursts b = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct vmc_watch *w;
	struct timespec deadline;
	int fd, r;

	/* A synthetic "change" uevent for lo needs root; without it there is nothing to see. */
	fd = open("/sys/class/net/lo/uevent", O_WRONLY | O_CLOEXEC);
	if (fd < 0 && geteuid() != 0) {
		fprintf(stderr, "\n  skipped: /sys/class/net/lo/uevent needs root\n");
		return;
	}
	CU_ASSERT_TRUE_FATAL(fd >= 0);
	/* Every Linux has netlink: a watcher that cannot start is a failure, not a skip. */
	r = vmc_watch_start(&ops, &b, NULL, &w);
	if (r < 0)
		fprintf(stderr, "\n  vmc_watch_start: %s\n", strerror(-r));
	if (r < 0)
		close(fd);
	CU_ASSERT_EQUAL_FATAL(r, 0);
	CU_ASSERT_EQUAL(write(fd, "change", 6), 6);
	close(fd);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5;
	pthread_mutex_lock(&b.lock);
	while (!b.seen && pthread_cond_timedwait(&b.cond, &b.lock, &deadline) == 0)
		;
	CU_ASSERT_TRUE(b.seen);
	CU_ASSERT(b.windows_asked > 0);
	pthread_mutex_unlock(&b.lock);
	vmc_watch_stop(w);
}

/*
 * A resume from suspend sets the wall clock; so does clock_settime, which
 * this test does (to the time it reads, a few microseconds back: root only).
 */
static void the_watcher_sees_the_wall_clock_jump(void)
{
	static const struct vmc_watch_ops ops = { .window_ms = test_window, .burst = test_burst };
	struct bursts b = { .lock = PTHREAD_MUTEX_INITIALIZER,
			    .cond = PTHREAD_COND_INITIALIZER,
			    .clock = true };
	struct vmc_watch *w;
	struct timespec now, deadline;

	CU_ASSERT_EQUAL_FATAL(vmc_watch_start(&ops, &b, NULL, &w), 0);
	clock_gettime(CLOCK_REALTIME, &now);
	if (clock_settime(CLOCK_REALTIME, &now) < 0) {
		int e = errno;

		vmc_watch_stop(w);
		if (e == EPERM && geteuid() != 0) {
			fprintf(stderr, "\n  skipped: setting the clock needs root\n");
			return;
		}
		CU_FAIL_FATAL("clock_settime");
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5;
	pthread_mutex_lock(&b.lock);
	while (!b.seen && pthread_cond_timedwait(&b.cond, &b.lock, &deadline) == 0)
		;
	CU_ASSERT_TRUE(b.seen);
	pthread_mutex_unlock(&b.lock);
	vmc_watch_stop(w);
}

/* What a watcher on crash dirs delivered: every FILE cause, burst by burst. */
struct files {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct vmc_cause causes[256];
	size_t n;
	size_t burst_of[256]; /* the burst each cause came in */
	size_t bursts;
	size_t other; /* causes of another source (uevents of this machine) */
	/* Bursts holding a write ("modify"): when delivered, and whether that was all. */
	uint64_t write_ns[256];
	bool writes_only[256];
	size_t n_writes;
};

static unsigned files_window(void *ctx)
{
	return 20;
}

static void files_burst(void *ctx, const struct vmc_cause *c, size_t n)
{
	struct files *f = ctx;

	uint64_t now = vmc_mono_ns();
	size_t writes = 0;

	pthread_mutex_lock(&f->lock);
	f->bursts++;
	for (size_t i = 0; i < n; i++) {
		if (c[i].source != VMCHECK__V1__CAUSE__SOURCE__FILE) {
			f->other++;
		} else if (f->n < ARRAY_SIZE(f->causes)) {
			f->burst_of[f->n] = f->bursts;
			f->causes[f->n++] = c[i];
		}
		writes += c[i].source == VMCHECK__V1__CAUSE__SOURCE__FILE &&
			  !strcmp(c[i].action, "modify");
	}
	if (writes && f->n_writes < ARRAY_SIZE(f->write_ns)) {
		f->write_ns[f->n_writes] = now;
		f->writes_only[f->n_writes++] = writes == n;
	}
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

static ssize_t files_find(struct files *f, const char *action, const char *name,
			  const char *devpath)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->causes[i].action, action) && !strcmp(f->causes[i].name, name) &&
		    !strcmp(f->causes[i].devpath, devpath))
			return (ssize_t)i;
	return -1;
}

/* Wait up to 5 s for the FILE cause @action on @name in @devpath. */
static bool files_wait(struct files *f, const char *action, const char *name, const char *devpath)
{
	struct timespec deadline;
	bool found;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5;
	pthread_mutex_lock(&f->lock);
	while (files_find(f, action, name, devpath) < 0 &&
	       pthread_cond_timedwait(&f->cond, &f->lock, &deadline) == 0)
		;
	found = files_find(f, action, name, devpath) >= 0;
	pthread_mutex_unlock(&f->lock);
	if (!found)
		fprintf(stderr, "\nno FILE cause %s %s in %s\n", action, name, devpath);
	return found;
}

static void write_at(struct fx *fx, const char *rel, int flags, size_t times)
{
	char block[4096];
	int fd = openat(fx->root.fd, rel, O_WRONLY | O_CLOEXEC | flags, 0644);

	CU_ASSERT_FATAL(fd >= 0);
	memset(block, 'x', sizeof(block));
	for (size_t i = 0; i < times; i++)
		CU_ASSERT_EQUAL(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
	close(fd);
}

static void the_watcher_follows_a_dump_being_written(void)
{
	static const struct vmc_watch_ops ops = { .window_ms = files_window, .burst = files_burst };
	static const char *const dirs[] = { "var/crash", "var/oled/crash", NULL };
	struct files f = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct vmc_watch_config cfg = { .crash_dirs = dirs };
	struct vmc_watch *w;
	struct fx fx;
	size_t modifies = 0;

	fx_init(&fx);
	/* A dump from before the start; var/oled/crash does not exist. */
	fx_write(&fx, "var/crash/old/vmcore-dmesg.txt", "");
	fx_write(&fx, "var/crash/README", "");
	cfg.root_fd = fx.root.fd;
	/* Every Linux has netlink and inotify: a watcher that cannot start fails. */
	if (vmc_watch_start(&ops, &f, &cfg, &w) < 0) {
		fx_cleanup(&fx);
		CU_FAIL_FATAL("vmc_watch_start");
	}
	/* A new dump: its directory, then what is written in it, as makedumpfile does. */
	CU_ASSERT_EQUAL_FATAL(mkdirat(fx.root.fd, "var/crash/new", 0755), 0);
	CU_ASSERT_TRUE(files_wait(&f, "create", "new", "/var/crash"));
	write_at(&fx, "var/crash/new/vmcore.incomplete", O_CREAT | O_EXCL, 64);
	CU_ASSERT_TRUE(files_wait(&f, "create", "vmcore.incomplete", "/var/crash/new"));
	CU_ASSERT_TRUE(files_wait(&f, "modify", "vmcore.incomplete", "/var/crash/new"));
	CU_ASSERT_TRUE(files_wait(&f, "close-write", "vmcore.incomplete", "/var/crash/new"));
	CU_ASSERT_EQUAL(renameat(fx.root.fd, "var/crash/new/vmcore.incomplete", fx.root.fd,
				 "var/crash/new/vmcore"),
			0);
	CU_ASSERT_TRUE(files_wait(&f, "moved-from", "vmcore.incomplete", "/var/crash/new"));
	CU_ASSERT_TRUE(files_wait(&f, "moved-to", "vmcore", "/var/crash/new"));
	/* The dump that was there before the start is watched too. */
	write_at(&fx, "var/crash/old/vmcore-dmesg.txt", O_APPEND, 1);
	CU_ASSERT_TRUE(files_wait(&f, "close-write", "vmcore-dmesg.txt", "/var/crash/old"));
	/* Deleting a file is a change of the crash section too. */
	fx_remove(&fx, "var/crash/README");
	CU_ASSERT_TRUE(files_wait(&f, "delete", "README", "/var/crash"));
	vmc_watch_stop(w);

	/* Every cause is for the crash section; a burst says each change once. */
	for (size_t i = 0; i < f.n; i++) {
		const struct vmc_cause *c = &f.causes[i];

		CU_ASSERT_EQUAL(c->sections, S(CRASH));
		CU_ASSERT(c->mono_ns > 0);
		CU_ASSERT_STRING_EQUAL(c->subsystem, "");
		modifies += !strcmp(c->action, "modify");
		for (size_t j = 0; j < i; j++)
			CU_ASSERT_FALSE(f.burst_of[j] == f.burst_of[i] &&
					!strcmp(f.causes[j].action, c->action) &&
					!strcmp(f.causes[j].name, c->name) &&
					!strcmp(f.causes[j].devpath, c->devpath));
	}
	/* 64 writes, coalesced by inotify and the 20 ms burst window. */
	CU_ASSERT(modifies >= 1 && modifies < 64);
	fx_cleanup(&fx);
}

/*
 * A file written to for 0.6 s, a block every 5 ms: its growth is pushed
 * again and again, but a burst of nothing but writes comes at least 100
 * ms after the last burst that held one (other news would not wait).
 */
static void writes_alone_are_pushed_every_100_ms_at_most(void)
{
	static const struct vmc_watch_ops ops = { .window_ms = files_window, .burst = files_burst };
	static const char *const dirs[] = { "var/crash", NULL };
	struct files f = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct vmc_watch_config cfg = { .crash_dirs = dirs };
	struct vmc_watch *w;
	uint64_t t0, took;
	char block[4096];
	struct fx fx;
	int fd;

	fx_init(&fx);
	fx_mkdir(&fx, "var/crash/d");
	cfg.root_fd = fx.root.fd;
	/* Every Linux has netlink and inotify: a watcher that cannot start fails. */
	if (vmc_watch_start(&ops, &f, &cfg, &w) < 0) {
		fx_cleanup(&fx);
		CU_FAIL_FATAL("vmc_watch_start");
	}
	fd = openat(fx.root.fd, "var/crash/d/vmcore.incomplete",
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	CU_ASSERT_FATAL(fd >= 0);
	memset(block, 'x', sizeof(block));
	t0 = vmc_mono_ns();
	for (int i = 0; i < 120; i++) {
		CU_ASSERT_EQUAL(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
		usleep(5000);
	}
	took = vmc_mono_ns() - t0;
	close(fd);
	CU_ASSERT_TRUE(files_wait(&f, "close-write", "vmcore.incomplete", "/var/crash/d"));
	vmc_watch_stop(w);

	/* 120 writes over 0.6 s or more: one push per 100 ms, not one per 20 ms window. */
	CU_ASSERT(f.n_writes >= 2);
	CU_ASSERT(f.n_writes <= took / (100 * 1000000ull) + 2);
	for (size_t i = 1; i < f.n_writes; i++)
		if (f.writes_only[i]) {
			if (f.write_ns[i] - f.write_ns[i - 1] < 100 * 1000000ull)
				fprintf(stderr, "\nwrite bursts %zu, %zu: %.1f ms apart\n", i - 1,
					i, (double)(f.write_ns[i] - f.write_ns[i - 1]) / 1e6);
			CU_ASSERT(f.write_ns[i] - f.write_ns[i - 1] >= 100 * 1000000ull);
		}
	fx_cleanup(&fx);
}

/*
 * A crash disk mounted over a crash dir after the start (a tmpfs here, root
 * only): the mount is said, and what is then written on the new filesystem
 * is seen; its unmount is said too.
 */
static void the_watcher_follows_a_disk_mounted_over_a_crash_dir(void)
{
	static const struct vmc_watch_ops ops = { .window_ms = files_window, .burst = files_burst };
	struct files f = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	char dir[] = "/tmp/vmc-watch-XXXXXX", crash[64], devpath[64], sub[80];
	const char *dirs[] = { crash + 1, NULL }; /* relative to "/" */
	struct vmc_watch_config cfg = { .crash_dirs = dirs };
	struct vmc_sysroot root;
	struct vmc_watch *w;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(crash, sizeof(crash), "%s/crash", dir);
	snprintf(devpath, sizeof(devpath), "%s", crash);
	snprintf(sub, sizeof(sub), "%s/dump", crash);
	CU_ASSERT_EQUAL_FATAL(mkdir(crash, 0755), 0);
	/* The live root: its proc/self/mountinfo is procfs, which flags a change. */
	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&root, "/"), 0);
	cfg.root_fd = root.fd;
	if (vmc_watch_start(&ops, &f, &cfg, &w) < 0) {
		CU_FAIL("vmc_watch_start");
		goto out;
	}
	if (mount("vmc-crash", crash, "tmpfs", 0, "size=1m") < 0) {
		int e = errno;

		vmc_watch_stop(w);
		if (e == EPERM && geteuid() != 0)
			fprintf(stderr, "\n  skipped: mounting a tmpfs needs root\n");
		else
			CU_FAIL("mounting a tmpfs");
		goto out;
	}
	CU_ASSERT_TRUE(files_wait(&f, "mount", "mountinfo", "/proc/self"));
	CU_ASSERT_EQUAL(mkdir(sub, 0755), 0);
	CU_ASSERT_TRUE(files_wait(&f, "create", "dump", devpath));
	CU_ASSERT_EQUAL(umount2(crash, MNT_DETACH), 0);
	CU_ASSERT_TRUE(files_wait(&f, "unmount", "", devpath));
	vmc_watch_stop(w);
out:
	umount2(crash, MNT_DETACH);
	rmdir(crash);
	rmdir(dir);
	vmc_sysroot_close(&root);
}

VMC_SUITE(watch, NULL, NULL, VMC_TEST(a_nic_uevent_names_the_interface),
	  VMC_TEST(names_come_from_devname_or_the_devpath), VMC_TEST(subsystems_map_to_sections),
	  VMC_TEST(malformed_uevents_are_refused), VMC_TEST(long_fields_are_truncated_not_overrun),
	  VMC_TEST(link_and_address_messages_become_causes),
	  VMC_TEST(malformed_rtnetlink_is_skipped), VMC_TEST(the_watcher_delivers_a_real_uevent),
	  VMC_TEST(the_watcher_sees_the_wall_clock_jump),
	  VMC_TEST(the_watcher_follows_a_dump_being_written),
	  VMC_TEST(writes_alone_are_pushed_every_100_ms_at_most),
	  VMC_TEST(the_watcher_follows_a_disk_mounted_over_a_crash_dir))
