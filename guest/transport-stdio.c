/* SPDX-License-Identifier: MIT */
/* stdin/stdout: the agent as an SSH exec target or a child of the host. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "frame.h"
#include "transport.h"

int vmc_transport_pump(int fd, int stop_fd, struct vmc_agent *ag)
{
	uint8_t buf[65536];
	struct pollfd pfd[] = {
		{ .fd = fd, .events = POLLIN },
		{ .fd = stop_fd, .events = POLLIN },
	};

	for (;;) {
		ssize_t n;
		int r;

		if (poll(pfd, ARRAY_SIZE(pfd), -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pfd[1].revents)
			return 0;
		if (!pfd[0].revents)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (n == 0)
			return 1;
		r = vmc_agent_feed(ag, buf, (size_t)n);
		if (r < 0)
			return r;
	}
}

static int stdio_serve(struct vmc_transport *t, struct vmc_agent *ag, int stop_fd)
{
	int r = vmc_transport_pump(STDIN_FILENO, stop_fd, ag);

	if (r < 0)
		return r;
	/* The host may still read after closing its end of our stdin. */
	vmc_agent_drain(ag);
	return 0;
}

static int stdio_send(struct vmc_transport *t, const uint8_t *frame, size_t len)
{
	return vmc_write_all(STDOUT_FILENO, frame, len);
}

static void stdio_close(struct vmc_transport *t)
{
	free(t);
}

static const struct vmc_transport_ops stdio_ops = {
	.serve = stdio_serve,
	.send = stdio_send,
	.close = stdio_close,
};

int vmc_transport_stdio_open(struct vmc_transport **out)
{
	struct vmc_transport *t = malloc(sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->ops = &stdio_ops;
	t->name = "stdio";
	*out = t;
	return 0;
}
