/* SPDX-License-Identifier: MIT */
/*
 * A virtio-serial port. The port stays open for the agent's lifetime:
 * closing it would discard queued data. While no host is connected the
 * kernel reports POLLHUP continuously, reads see EOF and writes would
 * block; that is "host gone, wait", not an error.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "frame.h"
#include "transport.h"

#define HUP_POLL_MS 10
/* While the host is away, check this often that the port still exists. */
#define EXISTS_EVERY 100

struct vport_transport {
	struct vmc_transport t;
	int fd;
	dev_t rdev;
	uint8_t buf[65536];
};

/* False once the port was hot-unplugged: its character device is gone. */
static bool port_exists(const struct vport_transport *v)
{
	char p[64];

	snprintf(p, sizeof(p), "/sys/dev/char/%u:%u", major(v->rdev), minor(v->rdev));
	return access(p, F_OK) == 0 || errno != ENOENT;
}

static int vport_serve(struct vmc_transport *t, struct vmc_agent *ag, int stop_fd)
{
	struct vport_transport *v = (struct vport_transport *)t;
	bool gone = false, present;
	unsigned idle = 0;

	/*
	 * A new agent (restarted, or a new boot after a reset) says so: the
	 * host may still be connected from before and would not otherwise know
	 * that its subscriptions are gone. Without a host the frame is dropped.
	 */
	vmc_agent_announce(ag);
	for (;;) {
		struct pollfd pfd[] = {
			{ .fd = v->fd, .events = POLLIN },
			{ .fd = stop_fd, .events = POLLIN },
		};
		ssize_t n = 0;
		int r;

		if (poll(pfd, ARRAY_SIZE(pfd), gone ? HUP_POLL_MS : -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pfd[1].revents)
			return 0;
		if (pfd[0].revents & (POLLERR | POLLNVAL))
			return -EIO;
		if (pfd[0].revents & POLLIN) {
			n = read(v->fd, v->buf, sizeof(v->buf));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n < 0)
				return -errno;
		}
		/* Data, or a quiet poll without HUP: a host is there. */
		present = !(pfd[0].revents & POLLHUP) && (n > 0 || !(pfd[0].revents & POLLIN));
		if (present && gone) {
			/* Before its first request is answered: it learns our boot first. */
			gone = false;
			vmc_agent_announce(ag);
		}
		if (n > 0) {
			r = vmc_agent_feed(ag, v->buf, (size_t)n);
			if (r < 0)
				return r;
		}
		if (present)
			continue;
		if (!gone) {
			gone = true;
			idle = 0;
			vmc_agent_disconnected(ag);
		}
		if (++idle % EXISTS_EVERY == 0 && !port_exists(v))
			return -ENODEV;
		/* HUP stays set while nobody is there: wait instead of spinning. */
		if (poll(&pfd[1], 1, HUP_POLL_MS) > 0)
			return 0;
	}
}

/*
 * A port without a host reports HUP instead of POLLOUT (-EPIPE at once); a
 * host that stops reading must not hold the agent forever.
 */
static int vport_send(struct vmc_transport *t, const uint8_t *frame, size_t len)
{
	struct vport_transport *v = (struct vport_transport *)t;
	size_t done = 0;
	int r = vmc_write_all(v->fd, frame, len, t->write_timeout_ms, &done);

	if (r == -ETIMEDOUT)
		fprintf(stderr,
			"vmcheck-agent: virtio-serial: the host read nothing for %d ms (%zu of %zu "
			"bytes of a frame written)\n",
			t->write_timeout_ms, done, len);
	return r;
}

static void vport_close(struct vmc_transport *t)
{
	struct vport_transport *v = (struct vport_transport *)t;

	close(v->fd);
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

	n = vmc_list_dirf(rootfd, &ports, "sys/class/virtio-ports");
	if (n < 0)
		return n;
	for (int i = 0; i < n && r == -ENOENT; i++) {
		if (vmc_read_strf(rootfd, pname, sizeof(pname), "sys/class/virtio-ports/%s/name",
				  ports[i]) >= 0 &&
		    !strcmp(pname, name))
			r = snprintf(dev, size, "/dev/%s", ports[i]) < (int)size ? 0 : -ENAMETOOLONG;
	}
	vmc_names_free(ports, n);
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
	int fd;

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
	if (!v || fstat(fd, &st) < 0) {
		int r = v ? -errno : -ENOMEM;

		free(v);
		close(fd);
		return r;
	}
	v->fd = fd;
	v->rdev = st.st_rdev;
	v->t.ops = &vport_ops;
	v->t.name = "virtio-serial";
	v->t.write_timeout_ms = VMC_WRITE_TIMEOUT_MS;
	*out = &v->t;
	return 0;
}
