/* SPDX-License-Identifier: MIT */
/*
 * How bytes reach the agent core: stdin/stdout (an SSH exec), a unix socket
 * (one client at a time) or a virtio-serial port found by name. A transport
 * owns its file descriptors; the core owns the protocol.
 */
#ifndef VMC_TRANSPORT_H
#define VMC_TRANSPORT_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"

struct vmc_transport;

struct vmc_transport_ops {
	/*
	 * Read from the peer and feed @ag until the transport ends (stdio:
	 * EOF, after every request has been answered) or @stop_fd (-1: none)
	 * becomes readable. Returns 0, or -errno on a failure that ends the
	 * agent.
	 */
	int (*serve)(struct vmc_transport *t, struct vmc_agent *ag, int stop_fd);
	/* One frame to the current peer; -errno if there is none or it left. */
	int (*send)(struct vmc_transport *t, const uint8_t *frame, size_t len);
	/* Release everything (the unix transport removes its socket). */
	void (*close)(struct vmc_transport *t);
};

struct vmc_transport {
	const struct vmc_transport_ops *ops;
	const char *name; /* reported in HelloReply: "stdio", "unix", "virtio-serial" */
	/*
	 * How long send() waits for a peer that reads nothing before it gives
	 * the stream up (a frame was cut); VMC_WRITE_TIMEOUT_MS unless changed
	 * before serve().
	 */
	int write_timeout_ms;
};

/* Matches vmc_agent_send_fn with the transport as context. */
static inline int vmc_transport_send(void *ctx, const uint8_t *frame, size_t len)
{
	struct vmc_transport *t = ctx;

	return t->ops->send(t, frame, len);
}

/*
 * vmc_transport_poll - wait for an event on @pfd, past signals
 * @pfd: @n entries; pfd[1] is the stop fd (-1: none), the others are the
 *       caller's, their events in revents on return
 * Waits without a timeout and polls again when a signal interrupts.
 * Returns 1 when the stop fd is readable (or failed), whatever the others
 * say; 0 when only other fds have events; -errno when poll() fails.
 */
int vmc_transport_poll(struct pollfd *pfd, nfds_t n);

/*
 * vmc_transport_pump - feed @ag from the stream @fd until EOF or @stop_fd
 * @cut_fd: -1, or an fd that becomes readable once a write to the peer
 *          timed out half way through a frame
 * The read loop the stream transports share. Returns 1 at EOF, 0 when
 * @stop_fd became readable, -ETIMEDOUT when @cut_fd did, -errno when
 * reading (or -ENOMEM when feeding) failed.
 */
int vmc_transport_pump(int fd, int stop_fd, int cut_fd, struct vmc_agent *ag);

/*
 * Requests on stdin, replies on stdout. A reply that stdout does not take
 * within the write timeout ends the transport: serve() returns -ETIMEDOUT.
 * Returns 0 or -errno.
 */
int vmc_transport_stdio_open(struct vmc_transport **out);

/* The same on any pair of fds (tests): @in and @out stay the caller's. */
int vmc_transport_fds_open(int in, int out, struct vmc_transport **t);

/*
 * vmc_transport_unix_open - listen on the unix socket @path
 * A stale socket there is removed; -EADDRINUSE if an agent still answers
 * on it, -EEXIST if @path is not a socket. Clients are served one at a
 * time; one that reads nothing within the write timeout is dropped.
 */
int vmc_transport_unix_open(const char *path, struct vmc_transport **out);

/*
 * vmc_transport_vport_open - open the virtio-serial port called @name
 * @rootfd: sysroot for sys/class/virtio-ports/<port>/name, consulted when
 *          /dev/virtio-ports/@name does not exist (no udev in the guest)
 * Returns 0, -ENOENT if no port has that name, or -errno from open(). A
 * host that reads nothing within the write timeout is treated as gone
 * until it reconnects. serve() must run on the thread that waits: the
 * port's SIGIO goes to that thread alone, blocked there and read through
 * a signalfd.
 */
int vmc_transport_vport_open(int rootfd, const char *name, struct vmc_transport **out);

#endif
