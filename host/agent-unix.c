/* SPDX-License-Identifier: MIT */
/*
 * unix:PATH and vserial:PATH: one stream connect. A QEMU chardev socket
 * (vserial) may hold bytes a previous host session left in the port; the
 * frame reader's resynchronisation and the client's random first id deal
 * with them, so both schemes connect the same way. Retrying while QEMU has
 * not created the socket yet is the caller's business.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "agent-client.h"

static int unix_open(struct vmc_agent_transport *t, const char *path, struct vmc_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return vmc_error_set(err, -ENAMETOOLONG, "connecting to %s:%s: path too long",
				     t->ops->scheme, path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vmc_error_set(err, -errno, "connecting to %s:%s: socket: %s", t->ops->scheme,
				     path, strerror(errno));
	if (TEMP_FAILURE_RETRY(connect(fd, (struct sockaddr *)&sa, sizeof(sa))) < 0)
		return vmc_error_set(err, -errno, "connecting to %s:%s: %s", t->ops->scheme, path,
				     strerror(errno));
	t->fd = TAKE_FD(fd);
	return 0;
}

static void unix_describe_eof(struct vmc_agent_transport *t, char *buf, size_t size)
{
	snprintf(buf, size, "the agent closed the connection");
}

static void vserial_describe_eof(struct vmc_agent_transport *t, char *buf, size_t size)
{
	snprintf(buf, size, "the chardev socket was closed (QEMU gone or port unplugged)");
}

static void unix_close(struct vmc_agent_transport *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}

const struct vmc_agent_transport_ops vmc_agent_unix_ops = {
	.scheme = "unix",
	.open = unix_open,
	.describe_eof = unix_describe_eof,
	.close = unix_close,
};

const struct vmc_agent_transport_ops vmc_agent_vserial_ops = {
	.scheme = "vserial",
	.open = unix_open,
	.describe_eof = vserial_describe_eof,
	.close = unix_close,
};
