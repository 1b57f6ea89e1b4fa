/* SPDX-License-Identifier: MIT */
/*
 * A virtio-serial port. The port stays open for the agent's lifetime:
 * closing it would discard queued data. While no host is connected the
 * kernel reports POLLHUP continuously, reads see EOF and writes would
 * block; that is "host gone, wait", not an error. The wait is for the
 * kernel's notice: virtio_console sends SIGIO to the owner of a port
 * opened with O_ASYNC whenever the host opens or closes its end (and when
 * data arrives, or the port is unplugged), so an absent host costs no
 * wakeups at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "frame.h"
#include "transport.h"

/*
 * The longest wait for SIGIO while no host is connected. SIGIO is the only
 * notice of a host arriving: were it ever not sent (a virtio_console that
 * does not, the port's owner changed under us), the agent would stay deaf
 * to every host until restarted. One look every 5 s bounds that, and costs
 * nothing worth measuring.
 */
#define HOST_WAIT_MS 5000

struct vport_transport {
	struct vmc_transport t;
	int fd;
	dev_t rdev;
	int cut_fd;      /* eventfd: readable once a frame write timed out */
	atomic_bool cut; /* a frame was cut: nothing goes out until the host reconnects */
	uint8_t buf[65536];
};

/* False once the port was hot-unplugged: its character device is gone. */
static bool port_exists(const struct vport_transport *v)
{
	char p[64];

	snprintf(p, sizeof(p), "/sys/dev/char/%u:%u", major(v->rdev), minor(v->rdev));
	return access(p, F_OK) == 0 || errno != ENOENT;
}

/*
 * SIGIO of the port to this thread alone, read through a signalfd: blocked
 * here (a thread-directed signal no other thread sees), so it never
 * interrupts and never kills. Returns the signalfd or -errno.
 */
static int sigio_fd(int port)
{
	struct f_owner_ex owner = { .type = F_OWNER_TID, .pid = (pid_t)syscall(SYS_gettid) };
	sigset_t set;
	int fl;

	sigemptyset(&set);
	sigaddset(&set, SIGIO);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -EINVAL;
	fl = fcntl(port, F_GETFL);
	if (fl < 0 || fcntl(port, F_SETOWN_EX, &owner) < 0 ||
	    fcntl(port, F_SETFL, fl | O_ASYNC) < 0)
		return -errno;
	fl = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return fl < 0 ? -errno : fl;
}

/* Forget SIGIOs already delivered: what they announced is looked at next. */
static void drain(int fd)
{
	uint8_t buf[sizeof(struct signalfd_siginfo) * 4];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* Is a host connected now? 1 yes, 0 no, -errno. */
static int host_present(const struct vport_transport *v)
{
	struct pollfd pfd = { .fd = v->fd, .events = POLLIN };

	if (poll(&pfd, 1, 0) < 0)
		return errno == EINTR ? 0 : -errno;
	if (pfd.revents & (POLLERR | POLLNVAL))
		return -EIO;
	return !(pfd.revents & POLLHUP);
}

/*
 * Look whether a host is there; if not, sleep until SIGIO says something
 * changed, @stop_fd is readable or HOST_WAIT_MS pass. Returns 1 when a
 * host is there, 0 to look again, 2 on stop, -ENODEV when the port was
 * unplugged (noticed within HOST_WAIT_MS), -errno.
 */
static int wait_for_host(struct vport_transport *v, int sig_fd, int stop_fd)
{
	struct pollfd pfd[] = {
		{ .fd = sig_fd, .events = POLLIN },
		{ .fd = stop_fd, .events = POLLIN },
	};
	int r;

	/* Drain first, look second: a change after the look still wakes the poll. */
	drain(sig_fd);
	if (!port_exists(v))
		return -ENODEV;
	r = host_present(v);
	if (r != 0)
		return r;
	if (poll(pfd, ARRAY_SIZE(pfd), HOST_WAIT_MS) < 0 && errno != EINTR)
		return -errno;
	return pfd[1].revents ? 2 : 0;
}

/*
 * Serve one host session: feed the agent until the host leaves (HUP).
 * Returns 0 when it left, 1 on stop, -errno.
 */
static int serve_host(struct vport_transport *v, struct vmc_agent *ag, int stop_fd)
{
	struct pollfd pfd[] = {
		{ .fd = v->fd, .events = POLLIN },
		{ .fd = stop_fd, .events = POLLIN },
		{ .fd = v->cut_fd, .events = POLLIN },
	};

	for (;;) {
		ssize_t n;
		int r;

		r = vmc_transport_poll(pfd, ARRAY_SIZE(pfd));
		if (r != 0)
			return r;
		if (pfd[0].revents & (POLLERR | POLLNVAL))
			return -EIO;
		if (pfd[2].revents) {
			eventfd_t x;

			/*
			 * A frame went out cut: the stream to this host is
			 * unusable. Drop its subscriptions and what it sends
			 * until it leaves; the next host starts clean.
			 */
			(void)eventfd_read(v->cut_fd, &x);
			vmc_agent_disconnected(ag);
			pfd[2].fd = -1;
		}
		if (pfd[0].revents & POLLIN) {
			n = read(v->fd, v->buf, sizeof(v->buf));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n < 0)
				return -errno;
			if (n > 0 && !atomic_load(&v->cut)) {
				r = vmc_agent_feed(ag, v->buf, (size_t)n);
				if (r < 0)
					return r;
			}
			if (n > 0)
				continue;
		}
		/* EOF or HUP: the host closed its end (data before it was fed above). */
		if (pfd[0].revents & (POLLHUP | POLLIN))
			return 0;
	}
}

/* A new host starts with a stream of its own: forget a cut frame and its notice. */
static void clear_cut(struct vport_transport *v)
{
	eventfd_t x;

	(void)eventfd_read(v->cut_fd, &x);
	atomic_store(&v->cut, false);
}

static int vport_serve(struct vmc_transport *t, struct vmc_agent *ag, int stop_fd)
{
	struct vport_transport *v = (struct vport_transport *)t;
	_cleanup_close_ int sig_fd = sigio_fd(v->fd);
	int r;

	if (sig_fd < 0)
		return sig_fd;
	/*
	 * A new agent (restarted, or a new boot after a reset) says so: the
	 * host may still be connected from before and would not otherwise know
	 * that its subscriptions are gone. Without a host the frame is dropped.
	 */
	vmc_agent_announce(ag);
	for (;;) {
		r = serve_host(v, ag, stop_fd);
		if (r != 0)
			return r < 0 ? r : 0;
		vmc_agent_disconnected(ag);
		do {
			r = wait_for_host(v, sig_fd, stop_fd);
		} while (r == 0);
		if (r < 0)
			return r;
		if (r == 2)
			return 0;
		/* A host again: frames may go out again; it learns our boot first. */
		clear_cut(v);
		vmc_agent_announce(ag);
	}
}

static int vport_send(struct vmc_transport *t, const uint8_t *frame, size_t len)
{
	struct vport_transport *v = (struct vport_transport *)t;
	size_t done = 0;
	int r;

	if (atomic_load(&v->cut))
		return -EPIPE;
	/* No host: HUP without POLLOUT, -EPIPE at once; a host not reading: the deadline. */
	r = vmc_write_all(v->fd, frame, len, t->write_timeout_ms, &done);
	if (r == -ETIMEDOUT && !atomic_exchange(&v->cut, true)) {
		fprintf(stderr,
			"vmcheck-agent: virtio-serial: the host read nothing for %d ms (%zu of %zu "
			"bytes of a frame written); ignoring this host until it reconnects\n",
			t->write_timeout_ms, done, len);
		(void)eventfd_write(v->cut_fd, 1);
	}
	return r;
}

static void vport_close(struct vmc_transport *t)
{
	struct vport_transport *v = (struct vport_transport *)t;

	close(v->fd);
	close(v->cut_fd);
	free(v);
}

static const struct vmc_transport_ops vport_ops = {
	.serve = vport_serve,
	.send = vport_send,
	.close = vport_close,
};

/* Without udev there is no /dev/virtio-ports link: ask sysfs which vportNpM it is. */
static int find_port(int rootfd, const char *name, char *dev, size_t size)
{
	char **ports, pname[256];
	int n, r = -ENOENT;

	n = vmc_sysroot_list_dirf(rootfd, &ports, "sys/class/virtio-ports");
	if (n < 0)
		return n;
	for (int i = 0; i < n && r == -ENOENT; i++) {
		if (vmc_sysroot_read_strf(rootfd, pname, sizeof(pname),
					  "sys/class/virtio-ports/%s/name", ports[i]) >= 0 &&
		    !strcmp(pname, name))
			r = snprintf(dev, size, "/dev/%s", ports[i]) < (int)size ? 0
										 : -ENAMETOOLONG;
	}
	vmc_sysroot_names_free(ports, n);
	return r;
}

static int open_port(const char *path)
{
	int fd = open(path, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int vmc_transport_vport_open(int rootfd, const char *name, struct vmc_transport **out)
{
	struct vport_transport *v;
	char path[PATH_MAX];
	struct stat st;
	int fd, r;

	if (!*name || strchr(name, '/'))
		return -EINVAL;
	snprintf(path, sizeof(path), "/dev/virtio-ports/%s", name);
	fd = open_port(path);
	if (fd == -ENOENT) {
		fd = find_port(rootfd, name, path, sizeof(path));
		if (fd == 0)
			fd = open_port(path);
	}
	if (fd < 0)
		return fd;
	v = calloc(1, sizeof(*v));
	if (!v || fstat(fd, &st) < 0 || (v->cut_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		r = v ? -errno : -ENOMEM;
		free(v);
		close(fd);
		return r;
	}
	v->fd = fd;
	v->rdev = st.st_rdev;
	atomic_init(&v->cut, false);
	v->t.ops = &vport_ops;
	v->t.name = "virtio-serial";
	v->t.write_timeout_ms = VMC_WRITE_TIMEOUT_MS;
	*out = &v->t;
	return 0;
}
