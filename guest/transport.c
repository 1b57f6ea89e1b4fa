/* SPDX-License-Identifier: MIT */
/* What the transports share: the wait for data or a stop, and a stream's read loop. */
#include "transport.h"

#include <errno.h>
#include <unistd.h>

#include "macro.h"

int vmc_transport_poll(struct pollfd *pfd, nfds_t n)
{
	while (poll(pfd, n, -1) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return pfd[1].revents ? 1 : 0;
}

int vmc_transport_pump(int fd, int stop_fd, int cut_fd, struct vmc_agent *ag)
{
	uint8_t buf[65536];
	struct pollfd pfd[] = {
		{ .fd = fd, .events = POLLIN },
		{ .fd = stop_fd, .events = POLLIN },
		{ .fd = cut_fd, .events = POLLIN },
	};

	for (;;) {
		ssize_t n;
		int r;

		r = vmc_transport_poll(pfd, ARRAY_SIZE(pfd));
		if (r != 0)
			return r < 0 ? r : 0;
		if (pfd[2].revents)
			return -ETIMEDOUT;
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
