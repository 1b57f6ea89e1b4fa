/* SPDX-License-Identifier: MIT */
/*
 * The host's connection to one vmcheck-agent, whatever carries it:
 *   unix:PATH      an agent listening on a unix socket (--listen unix:PATH)
 *   vserial:PATH   a QEMU chardev socket wired to the agent's virtio-serial port
 *   exec:COMMAND   spawn COMMAND (via /bin/sh -c) speaking the protocol on its
 *                  stdin/stdout, e.g. "exec:build/vmcheck-agent --stdio"
 * Requests get increasing ids; replies are matched by id; pushes (id 0)
 * arriving meanwhile are queued for vmc_agent_next_event().
 */
#ifndef VMC_AGENT_CLIENT_H
#define VMC_AGENT_CLIENT_H

#include <stdint.h>

#include "error.h"
#include "pb.h"

struct vmc_agent_conn;

/* Returns 0 or a negative code with @err set ("connecting to unix:/x: ..."). */
int vmc_agent_connect(const char *spec, struct vmc_agent_conn **out, struct vmc_error *err);
void vmc_agent_close(struct vmc_agent_conn *c);

/*
 * vmc_agent_call - send @req (its id is assigned here) and wait for the reply
 * @timeout_ms: -1 waits forever
 * @resp: the reply, free with vmc_agent_response_free(); an agent Error reply
 *        is a successful call (check resp->kind_case)
 * Returns 0, -ETIMEDOUT, -EPIPE (agent gone), -EPROTO (undecodable reply).
 */
int vmc_agent_call(struct vmc_agent_conn *c, Vmcheck__V1__Request *req, int timeout_ms,
		   Vmcheck__V1__Response **resp, struct vmc_error *err);

/* The next push (Event or unsolicited Error), queued or read; same returns. */
int vmc_agent_next_event(struct vmc_agent_conn *c, int timeout_ms,
			 Vmcheck__V1__Response **resp, struct vmc_error *err);

void vmc_agent_response_free(struct vmc_agent_conn *c, Vmcheck__V1__Response *resp);

/* The fd to poll for readability (for callers that multiplex). */
int vmc_agent_fd(const struct vmc_agent_conn *c);

#endif
