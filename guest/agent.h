/* SPDX-License-Identifier: MIT */
/*
 * The agent core: decodes requests, answers them, keeps subscriptions and
 * pushes Events. It knows nothing of transports: bytes come in through
 * vmc_agent_feed() and frames go out through the send callback, which the
 * core serialises (one frame at a time, from any thread).
 */
#ifndef VMC_AGENT_H
#define VMC_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "outcome.h"
#include "state.h"
#include "watch.h"

struct vmc_agent;

/*
 * Hooks for test agents (tests/liar), which change what the agent says.
 * The production agent has none: vmc_agent_config.hooks is NULL there.
 * Any hook may be NULL; those called per request may run on several
 * worker threads at once.
 */
struct vmc_agent_hooks {
	void *ctx;
	/*
	 * Once, from vmc_agent_main(), with the sysroot open and before any
	 * request is read. Returns 0, or -errno to stop (having said why on
	 * stderr).
	 */
	int (*start)(void *ctx, const struct vmc_sysroot *root);
	/*
	 * Every State before it is sent: a GetState reply, a Subscribe
	 * baseline, the snapshot every pushed Event is cut from. Allocates from
	 * @a only. Returns 0 or -ENOMEM (the request fails as a failed read).
	 */
	int (*state)(void *ctx, struct vmc_arena *a, Vmcheck__V1__State *st);
	/*
	 * A Probe before the agent runs it. Returns 0 to let the agent run it,
	 * 1 when the hook answered it itself (@res filled, strings from @a),
	 * or -errno for an Error reply made from @o.
	 */
	int (*probe)(void *ctx, const Vmcheck__V1__Probe *p, struct vmc_arena *a,
		     Vmcheck__V1__ProbeResult *res, struct vmc_outcome *o);
	/* After the reply to @p was sent, or dropped because its host had left. */
	void (*probe_sent)(void *ctx, const Vmcheck__V1__Probe *p);
};

/*
 * Called with one complete frame (header + payload). Returns 0, or -errno
 * when the peer is gone (the frame is then dropped; pushes are not queued
 * for an absent host).
 */
typedef int (*vmc_agent_send_fn)(void *ctx, const uint8_t *frame, size_t len);

/* Every pointer in the config must outlive the agent. */
struct vmc_agent_config {
	struct vmc_state_opts state;
	size_t max_frame;                    /* 0: VMC_FRAME_MAX_DEFAULT */
	bool allow_crash;                    /* Act: crash is refused unless set */
	unsigned coalesce_ms;                /* default burst window for pushes; 0: 2 ms */
	unsigned max_inflight;               /* requests answered concurrently; 0: 16 */
	bool synchronous;                    /* answer on the caller's thread (tests, fuzzing) */
	const char *transport;               /* reported in HelloReply */
	bool watch;                          /* listen for kernel changes and push Events */
	const struct vmc_agent_hooks *hooks; /* NULL but in test agents */
};

/*
 * Returns 0 or -errno; *out owned by the caller, free with vmc_agent_free().
 * When cfg->watch is set but the kernel's notifications cannot be opened,
 * the agent still starts: it logs why to stderr, answers Subscribe with
 * its baseline, and leaves "push" out of its capabilities.
 */
int vmc_agent_new(const struct vmc_agent_config *cfg, vmc_agent_send_fn send, void *ctx,
		  struct vmc_agent **out);
/* Stops the watcher, answers every request in flight, then frees @ag. */
void vmc_agent_free(struct vmc_agent *ag);

/*
 * vmc_agent_feed - bytes read from the transport
 *
 * Complete frames are decoded and answered (on worker threads unless the
 * config says synchronous). Garbage is skipped; an undecodable frame gets an
 * Error MALFORMED reply with id 0. Returns 0 or -ENOMEM.
 */
int vmc_agent_feed(struct vmc_agent *ag, const void *data, size_t n);

/*
 * The host went away (HUP): drop buffered bytes and all subscriptions.
 * Replies still being prepared for the old host are dropped, so they never
 * reach the next one. Call it from the thread that calls vmc_agent_feed().
 */
void vmc_agent_disconnected(struct vmc_agent *ag);

/*
 * vmc_agent_push - one burst of kernel messages (the watcher's callback)
 *
 * Reads the sections the burst affects that anyone subscribed to, once,
 * and sends an Event (id 0) to every subscription whose sections
 * intersect, carrying the causes relevant to it; its kernel_mono_ns is
 * when the first of those was received. Blocks while a Subscribe
 * reads its baseline, so no change falls between a baseline and the pushes.
 */
void vmc_agent_push(struct vmc_agent *ag, const struct vmc_cause *causes, size_t n);

/*
 * vmc_agent_announce - an unsolicited HelloReply with id 0
 *
 * For transports that outlive their hosts (virtio-serial): sent when the
 * agent starts and whenever a host (re)connects, so the host notices a new
 * agent or a new boot (boot_id) and subscribes again.
 */
void vmc_agent_announce(struct vmc_agent *ag);

/*
 * vmc_agent_handle_payload - decode and answer one payload synchronously
 * The reply goes out through the send callback. Returns 0 or -ENOMEM.
 */
int vmc_agent_handle_payload(struct vmc_agent *ag, const uint8_t *payload, size_t len);

/* Wait until every request in flight has been answered. */
void vmc_agent_drain(struct vmc_agent *ag);

/*
 * vmc_agent_main - the vmcheck-agent command: options, transport, serving
 * @hooks: NULL for the agent as shipped; a test agent's hooks otherwise
 *
 * Parses the command line (--help describes it), opens the sysroot, calls
 * hooks->start, opens the transport and serves until stopped. Returns the
 * exit status: 0 stopped, 1 runtime failure, 2 usage error.
 */
int vmc_agent_main(int argc, char **argv, const struct vmc_agent_hooks *hooks);

#endif
