/* SPDX-License-Identifier: MIT */
/*
 * A QMP client on json-c: capabilities negotiation, commands with ids and
 * per-command timeouts, asynchronous events queued while waiting, and a
 * transcript of everything sent and received, kept for evidence.
 */
#ifndef VMC_HV_QMP_CLIENT_H
#define VMC_HV_QMP_CLIENT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

struct vmc_qmp;

/* Error codes beyond -errno: QEMU answered the command with an error. */
#define VMC_QMP_ECOMMAND (-1000)

/*
 * vmc_qmp_connect - connect to a QMP unix socket, read the greeting and
 * negotiate capabilities
 * @timeout_ms: for the connect and the greeting; -1 forever
 * Returns 0 or -errno with @err set ("qmp /x/qmp.sock: connect: ...").
 */
int vmc_qmp_connect(const char *path, int timeout_ms, struct vmc_qmp **out, struct vmc_error *err);

/* Same, on an already connected fd (taken over; used by tests). */
int vmc_qmp_open_fd(int fd, const char *name, int timeout_ms, struct vmc_qmp **out,
		    struct vmc_error *err);

void vmc_qmp_close(struct vmc_qmp *q);

/*
 * vmc_qmp_command - run @cmd with @args (taken over, may be NULL)
 * @ret: if non-NULL, the "return" value (caller puts it)
 * Returns 0; VMC_QMP_ECOMMAND with @err = "CMD: CLASS: desc" when QEMU
 * refused; -ETIMEDOUT; -EPIPE when QEMU closed the socket (exited).
 * Events received meanwhile are queued.
 */
int vmc_qmp_command(struct vmc_qmp *q, const char *cmd, json_object *args, int timeout_ms,
		    json_object **ret, struct vmc_error *err);

/* printf-style args: vmc_qmp_commandf(q, &ret, err, 5000, "device_del", "{\"id\":\"%s\"}", id) */
int vmc_qmp_commandf(struct vmc_qmp *q, json_object **ret, struct vmc_error *err, int timeout_ms,
		     const char *cmd, const char *args_fmt, ...) _printf_(6, 7);

/* One received event. */
struct vmc_qmp_event {
	char *name;
	json_object *data; /* owned; may be NULL */
	uint64_t host_ns;  /* host CLOCK_MONOTONIC when received */
	int64_t qemu_us;   /* QEMU's timestamp, microseconds since the epoch */
};

void vmc_qmp_event_free(struct vmc_qmp_event *ev);

/* Matcher for vmc_qmp_wait_event: true to take the event. */
typedef bool (*vmc_qmp_match_fn)(const struct vmc_qmp_event *ev, void *ctx);

/*
 * vmc_qmp_wait_event - the first queued or arriving event named @name for
 * which @match (may be NULL) returns true; events before it stay queued.
 * @deadline_ns: absolute CLOCK_MONOTONIC deadline
 * @out: filled on success; release with vmc_qmp_event_free()
 * Returns 0, -ETIMEDOUT, -EPIPE.
 */
int vmc_qmp_wait_event(struct vmc_qmp *q, const char *name, vmc_qmp_match_fn match, void *ctx,
		       uint64_t deadline_ns, struct vmc_qmp_event *out, struct vmc_error *err);

/* True if an event named @name (and matching) is queued; it stays queued. */
bool vmc_qmp_has_event(struct vmc_qmp *q, const char *name, vmc_qmp_match_fn match, void *ctx);

/*
 * vmc_qmp_on_event - call @fn for each event as it is received and queued
 * (before anyone waits for it), e.g. to release what a deleted device held.
 * @fn must not issue commands: it runs while a reply is being read.
 */
typedef void (*vmc_qmp_event_fn)(const struct vmc_qmp_event *ev, void *ctx);
void vmc_qmp_on_event(struct vmc_qmp *q, vmc_qmp_event_fn fn, void *ctx);

/* Drop every queued event (start of a step). */
void vmc_qmp_flush_events(struct vmc_qmp *q);

/*
 * vmc_qmp_pump - read what is available without blocking (queue events)
 * Returns 0, or -EPIPE when QEMU is gone. For callers that poll vmc_qmp_fd().
 */
int vmc_qmp_pump(struct vmc_qmp *q, struct vmc_error *err);
int vmc_qmp_fd(const struct vmc_qmp *q);

/*
 * The transcript: every line sent ("->") and received ("<-"), with the host
 * monotonic time. vmc_qmp_transcript_since() writes lines from @since_ns on.
 */
void vmc_qmp_transcript_since(const struct vmc_qmp *q, uint64_t since_ns, FILE *out);
/* The last command sent, for failure reports ("device_del {\"id\":\"cpu3\"}"). */
const char *vmc_qmp_last_command(const struct vmc_qmp *q);
/*
 * After VMC_QMP_ECOMMAND: QEMU's error class ("DeviceNotFound") and its own
 * words ("Bus 'pciroot3' does not support hotplugging"); "" before any.
 */
const char *vmc_qmp_error_class(const struct vmc_qmp *q);
const char *vmc_qmp_error_desc(const struct vmc_qmp *q);

/*
 * Is QEMU's error @cls/@desc to query-hotpluggable-cpus its way of saying
 * the machine has no CPU hotplug (arm virt; doc/facts.md, "aarch64
 * guests")? QEMU 7.2 says the feature is not enabled, QEMU 8.0 on that the
 * machine does not support it. Any other refusal is a failure.
 */
bool vmc_qmp_no_cpu_hotplug(const char *cls, const char *desc);

#endif
