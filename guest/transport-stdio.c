/* SPDX-License-Identifier: MIT */
/* stdin/stdout: the agent as an SSH exec target or a child of the host. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "frame.h"
#include "transport.h"

struct stdio_transport {
	struct vmc_transport t;
	int in, out;
	int cut_fd;      /* eventfd: readable once a frame write timed out */
	atomic_bool cut; /* and then no frame goes out any more */
};

static int stdio_serve(struct vmc_transport *t, struct vmc_agent *ag, int stop_fd)
{
	struct stdio_transport *s = (struct stdio_transport *)t;
	int r = vmc_transport_pump(s->in, stop_fd, s->cut_fd, ag);

	if (r < 0)
		return r;
	/* The host may still read after closing its end of our stdin. */
	vmc_agent_drain(ag);
	return atomic_load(&s->cut) ? -ETIMEDOUT : 0;
}

static int stdio_send(struct vmc_transport *t, const uint8_t *frame, size_t len)
{
	struct stdio_transport *s = (struct stdio_transport *)t;
	size_t done = 0;
	int r;

	/* After a cut frame the host would read the next one as its rest. */
	if (atomic_load(&s->cut))
		return -EPIPE;
	r = vmc_write_all(s->out, frame, len, t->write_timeout_ms, &done);
	if (r == -ETIMEDOUT) {
		atomic_store(&s->cut, true);
		fprintf(stderr,
			"vmcheck-agent: stdout: the host read nothing for %d ms (%zu of %zu bytes "
			"of a frame written): the stream is unusable; stopping\n",
			t->write_timeout_ms, done, len);
		(void)eventfd_write(s->cut_fd, 1);
	}
	return r;
}

static void stdio_close(struct vmc_transport *t)
{
	struct stdio_transport *s = (struct stdio_transport *)t;

	close(s->cut_fd);
	free(s);
}

static const struct vmc_transport_ops stdio_ops = {
	.serve = stdio_serve,
	.send = stdio_send,
	.close = stdio_close,
};

int vmc_transport_fds_open(int in, int out, struct vmc_transport **t)
{
	struct stdio_transport *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->cut_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->cut_fd < 0) {
		int r = -errno;

		free(s);
		return r;
	}
	s->in = in;
	s->out = out;
	atomic_init(&s->cut, false);
	s->t.ops = &stdio_ops;
	s->t.name = "stdio";
	s->t.write_timeout_ms = VMC_WRITE_TIMEOUT_MS;
	*t = &s->t;
	return 0;
}

int vmc_transport_stdio_open(struct vmc_transport **out)
{
	return vmc_transport_fds_open(STDIN_FILENO, STDOUT_FILENO, out);
}
