/* SPDX-License-Identifier: MIT */
/*
 * The host's connection to one vmcheck-agent, whatever carries it:
 *   unix:PATH      an agent listening on a unix socket (--listen unix:PATH)
 *   vserial:PATH   a QEMU chardev socket wired to the agent's virtio-serial port
 *   exec:COMMAND   spawn COMMAND (via /bin/sh -c) speaking the protocol on its
 *                  stdin/stdout, e.g. "exec:build/vmcheck-agent --stdio"
 *   ssh://USER@HOST[:PORT][/PATH]
 *                  "PATH --stdio" on an SSH exec channel (libssh; PATH
 *                  defaults to vmcheck-agent in the guest's PATH), with the
 *                  settings in vmc_agent_ssh_opts
 *   libvirt-channel:DOMAIN/URI
 *                  DOMAIN's org.vmcheck.agent.0 channel through the libvirt
 *                  connection to URI (virDomainOpenChannel): wherever
 *                  libvirt reaches, not only on the daemon's host
 * Requests get increasing ids; replies are matched by id; pushes (id 0)
 * arriving meanwhile are queued for vmc_agent_next_event().
 */
#ifndef VMC_AGENT_CLIENT_H
#define VMC_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "pb.h"

struct vmc_agent_conn;

/* Returns 0 or a negative code with @err set ("connecting to unix:/x: ..."). */
int vmc_agent_connect(const char *spec, struct vmc_agent_conn **out, struct vmc_error *err);
/* Close the transport; responses not yet freed are freed with it. NULL is a no-op. */
void vmc_agent_close(struct vmc_agent_conn *c);

/*
 * vmc_agent_call - send @req (its id is assigned here) and wait for the reply
 * @timeout_ms: -1 waits forever for the reply; sending it still has the
 *              write timeout (vmc_agent_set_write_timeout())
 * @resp: the reply, free with vmc_agent_response_free(); an agent Error reply
 *        is a successful call (check resp->kind_case)
 * Returns 0, -ETIMEDOUT, -EPIPE (agent gone), -EPROTO (undecodable reply),
 * -EINTR (a signal interrupted the wait; a late reply is then discarded),
 * -ECONNRESET (a new agent announced itself meanwhile and no reply came
 * within a second after that: the request went with the old one).
 * A request cut by a timeout while being sent leaves the connection
 * unusable: every later call fails with -EPIPE and says why.
 */
int vmc_agent_call(struct vmc_agent_conn *c, Vmcheck__V1__Request *req, int timeout_ms,
		   Vmcheck__V1__Response **resp, struct vmc_error *err);

/*
 * How long sending a request may wait for an agent that reads nothing
 * (VMC_WRITE_TIMEOUT_MS unless set; -1: only the call's own timeout).
 */
void vmc_agent_set_write_timeout(struct vmc_agent_conn *c, int timeout_ms);

/* The next push (Event or unsolicited Error), queued or read; same returns. */
int vmc_agent_next_event(struct vmc_agent_conn *c, int timeout_ms, Vmcheck__V1__Response **resp,
			 struct vmc_error *err);

void vmc_agent_response_free(struct vmc_agent_conn *c, Vmcheck__V1__Response *resp);

/*
 * The fd to poll for readability (for callers that multiplex). Frames may
 * already be buffered: call vmc_agent_next_event() with timeout 0 until it
 * returns -ETIMEDOUT before waiting on the fd.
 */
int vmc_agent_fd(const struct vmc_agent_conn *c);

/* The spec the connection was opened with, for messages. */
const char *vmc_agent_spec(const struct vmc_agent_conn *c);

/*
 * vmc_agent_connect_fd - speak the protocol over an already connected
 * stream socket @fd (taken over, closed by vmc_agent_close()); @name stands
 * for the peer in messages. Returns 0 or -ENOMEM.
 */
int vmc_agent_connect_fd(int fd, const char *name, struct vmc_agent_conn **out,
			 struct vmc_error *err);

/*
 * vmc_agent_hello - the Hello round trip every session starts with
 * @resp: the reply (resp->hello), free with vmc_agent_response_free()
 *
 * Returns 0; the codes of vmc_agent_call(); -EPROTONOSUPPORT when the
 * agent answers with an Error or a protocol version other than 1.
 */
int vmc_agent_hello(struct vmc_agent_conn *c, int timeout_ms, Vmcheck__V1__Response **resp,
		    struct vmc_error *err);

/*
 * vmc_agent_expect - check that @resp, the reply to @what, is of @kind
 *
 * Returns 0; -EREMOTEIO with @err set to the agent's Error ("unix:/x:
 * get_state: agent error NOT_FOUND: ..."); -EPROTO for another kind.
 */
int vmc_agent_expect(const struct vmc_agent_conn *c, const Vmcheck__V1__Response *resp,
		     Vmcheck__V1__Response__KindCase kind, const char *what, struct vmc_error *err);

/*
 * Transports, for agent-unix.c, agent-exec.c, agent-ssh.c and
 * agent-libvirt.c: each opens one connected stream socket and knows how the
 * peer ends.
 */
struct vmc_agent_transport {
	const struct vmc_agent_transport_ops *ops;
	int fd;     /* owned; -1 once closed */
	pid_t pid;  /* exec: the child, leader of its own process group; 0 if none or reaped */
	int pidfd;  /* exec: a pidfd of the child (readable once it exited), else -1 */
	int status; /* exec: wait status once reaped, else -1 */
	void *priv; /* ssh: the session and the thread pumping it; libvirt: the stream's pump */
};

struct vmc_agent_transport_ops {
	const char *scheme; /* the spec's prefix, without the colon */
	/* Open @arg (the spec after "scheme:"); 0 or -errno with @err set. */
	int (*open)(struct vmc_agent_transport *t, const char *arg, struct vmc_error *err);
	/* Why the stream ended ("agent exited (status 1)"), for messages. */
	void (*describe_eof)(struct vmc_agent_transport *t, char *buf, size_t size);
	/* Close the fd and release what the transport holds (reaps a child). */
	void (*close)(struct vmc_agent_transport *t);
};

extern const struct vmc_agent_transport_ops vmc_agent_unix_ops;
extern const struct vmc_agent_transport_ops vmc_agent_vserial_ops;
extern const struct vmc_agent_transport_ops vmc_agent_exec_ops;
extern const struct vmc_agent_transport_ops vmc_agent_ssh_ops;
extern const struct vmc_agent_transport_ops vmc_agent_libvirt_ops;

/*
 * How ssh:// connections authenticate and check the host, process-wide: a
 * command fills it from its options before connecting. Key authentication
 * only: @key first, then the keys of the ssh-agent at SSH_AUTH_SOCK. A host
 * key that differs from the one in known_hosts is always refused.
 */
struct vmc_agent_ssh_opts {
	const char *key;         /* a private key file (--ssh-key); NULL: none */
	const char *known_hosts; /* NULL: libssh's default, ~/.ssh/known_hosts */
	bool accept_new;         /* record the key of a host known_hosts lacks */
};

extern struct vmc_agent_ssh_opts vmc_agent_ssh_opts;

/* An ssh:// agent spec, taken apart. */
struct vmc_agent_ssh_target {
	char *user, *host; /* host without the brackets of an IPv6 literal */
	unsigned port;     /* 22 unless given */
	char *path;        /* the agent on the guest; "vmcheck-agent" unless given */
};

/*
 * vmc_agent_ssh_parse - take "ssh://USER@HOST[:PORT][/PATH]" apart
 * HOST may be an IPv6 literal in brackets ("[::1]:2222"); PATH is kept with
 * its leading slash. Returns 0 with @out filled (free it with
 * vmc_agent_ssh_target_free()), or -EINVAL with @err saying what is wrong.
 */
int vmc_agent_ssh_parse(const char *spec, struct vmc_agent_ssh_target *out, struct vmc_error *err);
void vmc_agent_ssh_target_free(struct vmc_agent_ssh_target *t);

#endif
