/* SPDX-License-Identifier: MIT */
/* A unix stream socket: one client at a time, the next once it leaves. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "transport.h"

struct unix_transport {
	struct vmc_transport t;
	int listen_fd;
	atomic_int client_fd; /* -1 between clients; read by senders */
	struct sockaddr_un sa;
};

static int unix_serve(struct vmc_transport *t, struct vmc_agent *ag, int stop_fd)
{
	struct unix_transport *u = (struct unix_transport *)t;
	struct pollfd pfd[] = {
		{ .fd = u->listen_fd, .events = POLLIN },
		{ .fd = stop_fd, .events = POLLIN },
	};

	for (;;) {
		int fd, r;

		r = vmc_transport_poll(pfd, ARRAY_SIZE(pfd));
		if (r != 0)
			return r < 0 ? r : 0;
		if (!pfd[0].revents)
			continue;
		fd = accept4(u->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
				continue;
			return -errno;
		}
		atomic_store(&u->client_fd, fd);
		r = vmc_transport_pump(fd, stop_fd, -1, ag);
		/* Wake a sender blocked on a client that stopped reading. */
		shutdown(fd, SHUT_RDWR);
		vmc_agent_disconnected(ag);
		atomic_store(&u->client_fd, -1);
		close(fd);
		/* A client's read error (reset) only ends that client. */
		if (r == 0 || r == -ENOMEM)
			return r;
	}
}

static int unix_send(struct vmc_transport *t, const uint8_t *frame, size_t len)
{
	struct unix_transport *u = (struct unix_transport *)t;
	int fd = atomic_load(&u->client_fd);
	size_t done = 0;
	int r;

	if (fd < 0)
		return -ENOTCONN;
	r = vmc_write_all(fd, frame, len, t->write_timeout_ms, &done);
	if (r == -ETIMEDOUT) {
		/* Its stream now ends mid-frame: drop the client (serve sees EOF). */
		fprintf(stderr,
			"vmcheck-agent: unix:%s: the client read nothing for %d ms (%zu of %zu "
			"bytes of a frame written); dropping the client\n",
			u->sa.sun_path, t->write_timeout_ms, done, len);
		shutdown(fd, SHUT_RDWR);
	}
	return r;
}

static void unix_close(struct vmc_transport *t)
{
	struct unix_transport *u = (struct unix_transport *)t;

	unlink(u->sa.sun_path);
	close(u->listen_fd);
	free(u);
}

static const struct vmc_transport_ops unix_ops = {
	.serve = unix_serve,
	.send = unix_send,
	.close = unix_close,
};

/* Remove a socket left by an agent that died; never a live one or a file. */
static int remove_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int probe, r;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return -errno;
	r = connect(probe, (const struct sockaddr *)sa, sizeof(*sa));
	close(probe);
	if (r == 0)
		return -EADDRINUSE;
	if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int vmc_transport_unix_open(const char *path, struct vmc_transport **out)
{
	struct unix_transport *u;
	int r;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(u->sa.sun_path)) {
		free(u);
		return -ENAMETOOLONG;
	}
	strcpy(u->sa.sun_path, path);
	r = remove_stale(&u->sa);
	if (r < 0) {
		free(u);
		return r;
	}
	u->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (u->listen_fd < 0) {
		r = -errno;
		free(u);
		return r;
	}
	if (bind(u->listen_fd, (struct sockaddr *)&u->sa, sizeof(u->sa)) < 0) {
		r = -errno;
		close(u->listen_fd);
		free(u);
		return r;
	}
	if (listen(u->listen_fd, 4) < 0) {
		r = -errno;
		unix_close(&u->t);
		return r;
	}
	atomic_init(&u->client_fd, -1);
	u->t.ops = &unix_ops;
	u->t.name = "unix";
	u->t.write_timeout_ms = VMC_WRITE_TIMEOUT_MS;
	*out = &u->t;
	return 0;
}
