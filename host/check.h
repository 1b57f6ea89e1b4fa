/* SPDX-License-Identifier: MIT */
/*
 * Checks and the step machinery they share (implemented in suite-step.c,
 * suite-wait.c and suite-evidence.c).
 *
 * A check is a sequence of steps; a step is action -> expectation ->
 * deadline. The runner keeps a merged view of the guest (each pushed Event
 * replaces the sections it carries), so an expectation is a predicate on
 * the latest State, evaluated each time a push arrives: no sleeps, no
 * polling. Every step records a timeline (host action time, hypervisor
 * reply, guest kernel event time, host time of the confirming snapshot) and
 * a failed step attaches evidence (snapshot diff baseline -> last, guest
 * kernel log since the action, the hypervisor transcript, the detection
 * ladder). Results are written to the reports as each step ends.
 */
#ifndef VMC_CHECK_H
#define VMC_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "agent-client.h"
#include "error.h"
#include "hv.h"
#include "pb.h"

struct vmc_suite;
struct vmc_step;

struct vmc_run_opts {
	unsigned nics, disks, dimms, cpus; /* how many of each to plug per cycle */
	unsigned repeat;                   /* hotplug cycles per check (>= 1) */
	unsigned deadline_ms;              /* per guest-visible change */
	uint64_t dimm_bytes;               /* size of each DIMM */
	uint64_t disk_bytes;               /* size of each hotplugged disk image */
	const char *workdir;               /* disk images and other scratch files */
	uint64_t bigmem_bytes;             /* --bigmem: RAM of the large-memory VM; 0: none */
	const char *vfio;                  /* --vfio: host VF addresses "A,B"; NULL: discover */
	bool verbose;
};

/* What a check works with. */
struct vmc_ctx {
	struct vmc_hv *hv;
	struct vmc_suite *suite;
	const struct vmc_run_opts *opts;
};

/* The guest as last reported: every section, merged from pushes. */
const Vmcheck__V1__State *vmc_view(struct vmc_ctx *c);

/*
 * Why an expectation does not hold yet, for the failure message: the
 * predicate writes a short reason ("vdb: size 0, want 1073741824"). A
 * final reason (vmc_why_final) says it never will: a block online in the
 * wrong zone, a CPU at the wrong place. The wait then ends at once and the
 * step fails with it, instead of waiting out the deadline.
 */
struct vmc_why {
	char text[512];
	bool final;
};
void vmc_why_set(struct vmc_why *w, const char *fmt, ...) _printf_(2, 3);
void vmc_why_final(struct vmc_why *w, const char *fmt, ...) _printf_(2, 3);

typedef bool (*vmc_expect_fn)(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);

/*
 * vmc_step_begin - start step @name of check @check
 * Records the baseline view and host time; flushes stale hypervisor events.
 * Never fails (a step that cannot start fails at its first call). Call it
 * right before the action: its time is the step's action time. The first
 * word of @name is the operation the summary groups latencies by ("plug
 * nic1 (...)" -> "nic plug"). Once the VM is gone (or the run interrupted)
 * a step begun is reported skipped and its calls return -ESRCH.
 */
struct vmc_step *vmc_step_begin(struct vmc_ctx *c, const char *check, const char *fmt, ...)
	_printf_(3, 4);

/*
 * vmc_step_acted - the action was issued; @rc is its result, @err its error
 * Records the hypervisor's reply time. Returns @rc (0 or negative): on
 * failure the step is already failed with @err's message (@err is cleared),
 * or -ESRCH when the VM died of the action (with how it died).
 */
int vmc_step_acted(struct vmc_step *s, int rc, struct vmc_error *err);

/*
 * vmc_step_act_again - the action the step measures starts now: a first way
 * that did not act (a PM suspend with no qemu-guest-agent to take it) was
 * given up for another. Deadlines and latencies count from here, so time
 * spent finding out that the first way does not work is not charged to the
 * guest.
 */
void vmc_step_act_again(struct vmc_step *s);

/*
 * vmc_step_expect - wait until @fn holds on the merged view
 * Evaluated at once, then on every push, until @deadline_ms after the
 * action. Meanwhile hypervisor events are queued and the VM process is
 * watched: a QEMU that dies ends the wait at once with how it died. The
 * confirming snapshot's host arrival time and guest kernel event time go
 * into the timeline. Returns 0, -ETIMEDOUT (step failed, with @fn's last
 * reason; call vmc_step_ladder() for the ladder), -ESRCH (VM gone), -EPIPE
 * (agent gone), -ECONNRESET (the guest rebooted meanwhile), -EINTR (the run
 * was interrupted). The first expectation that holds in a step fixes its
 * confirm time (latency = confirm - action): call it before
 * vmc_step_expect_event() when both apply.
 */
int vmc_step_expect(struct vmc_step *s, vmc_expect_fn fn, void *arg, unsigned deadline_ms);

/*
 * vmc_step_expect_asking - vmc_step_expect for a change no uevent announces
 * (a suspend count after a resume someone else caused): the view is also
 * refreshed with a GetState of @sections every 200 ms until @fn holds
 * (pushes still confirm, and time it, as they arrive).
 */
int vmc_step_expect_asking(struct vmc_step *s, vmc_expect_fn fn, void *arg, uint32_t sections,
			   unsigned deadline_ms);

/*
 * Wait for hypervisor event @name about @device (NULL: any). Same returns,
 * but a guest reboot meanwhile does not end it. A step no agent expectation
 * confirmed is confirmed by its last event.
 */
int vmc_step_expect_event(struct vmc_step *s, const char *name, const char *device,
			  unsigned deadline_ms);

/* Milliseconds since the step's action (for waits in stages within its deadline). */
unsigned vmc_step_elapsed_ms(struct vmc_step *s);

/*
 * vmc_step_await_event - vmc_step_expect_event() for an event that may not
 * come, the caller judging without it: -ETIMEDOUT leaves the step as it was.
 */
int vmc_step_await_event(struct vmc_step *s, const char *name, const char *device,
			 unsigned deadline_ms);

/*
 * Host CLOCK_MONOTONIC time of the last event vmc_step_expect_event() took,
 * or 0 (also when that event was synthesized: no observation, no time).
 */
uint64_t vmc_step_event_ns(struct vmc_step *s);
/* The last event vmc_step_expect_event() took (its reason, detail), or NULL. */
const struct vmc_hv_event *vmc_step_event(struct vmc_step *s);

/*
 * vmc_step_expect_exit - wait until the VM process has ended (after a guest
 * shutdown); how it ended goes into the step's notes. Returns 0, or
 * -ETIMEDOUT / -EINTR. Every later step is skipped: the VM is gone.
 */
int vmc_step_expect_exit(struct vmc_step *s, unsigned deadline_ms);

/*
 * vmc_step_agent - send an Act or Probe to the agent within the step
 * @req: the request (id assigned here); @resp: reply, free with
 *       vmc_agent_response_free(vmc_step_conn(s), resp)
 * An agent Error reply fails the step with the agent's message
 * (-EREMOTEIO). Records the reply time when the step has none yet (an Act
 * as the step's action).
 */
int vmc_step_agent(struct vmc_step *s, Vmcheck__V1__Request *req, unsigned deadline_ms,
		   Vmcheck__V1__Response **resp);
struct vmc_agent_conn *vmc_step_conn(struct vmc_step *s);

/*
 * vmc_step_wait_new_boot - after a reset/reboot/crash: wait until the agent
 * of a new boot (different boot_id) answers, re-subscribe and refresh the
 * view. Same returns as vmc_step_expect. A step that sees a new boot
 * without calling this fails ("the guest rebooted during the step").
 */
int vmc_step_wait_new_boot(struct vmc_step *s, unsigned deadline_ms);

/*
 * Detection ladder for a device that did not show up (or did not go):
 * where the guest stopped noticing it. @hv_id is the hypervisor device id;
 * @pci is the guest PCI address expected, or that of the root port the
 * device sits behind (vmc_hv_slot.address), "" if unknown; @kobj describes
 * the kernel object sought ("link 52:54:00:..", "block serial=d1",
 * "memory blocks 32-39", "cpu3"). Appended to the step's evidence.
 */
void vmc_step_ladder(struct vmc_step *s, const char *hv_id, const char *pci, const char *kobj);
/* The same for a device that did not go: walked guest first, host last. */
void vmc_step_ladder_gone(struct vmc_step *s, const char *hv_id, const char *pci, const char *kobj);

/*
 * vmc_step_fail - set the failure message of step @s (an earlier one stays
 * after it, "new: earlier"). Returns @rc (negative); vmc_step_end(s, rc,
 * NULL) then ends the step with it.
 */
int vmc_step_fail(struct vmc_step *s, int rc, const char *fmt, ...) _printf_(3, 4);

/* Add a line to the step's evidence / a key figure to its record. */
void vmc_step_note(struct vmc_step *s, const char *fmt, ...) _printf_(2, 3);

/*
 * vmc_step_end - finish the step: @rc 0 passes, negative fails with @fmt
 * (ignored on pass; NULL keeps the message already set). The record goes
 * to every report at once. Returns @rc.
 */
int vmc_step_end(struct vmc_step *s, int rc, const char *fmt, ...) _printf_(3, 4);

/*
 * Skip a step or a whole check with a reason visible in the report. Only
 * for what the host or the hypervisor cannot provide (no VF, too few free
 * slots, an operation the hypervisor does not offer) or what the user
 * asked (--nics 0): a step that cannot run because something failed is
 * vmc_step_not_run(..., true, ...).
 */
void vmc_step_skip(struct vmc_ctx *c, const char *check, const char *name, const char *fmt, ...)
	_printf_(4, 5);

/*
 * vmc_step_not_run - record step @name of @check as not run, for the reason
 * @fmt: failed when @failed (an earlier step failed and this one depends on
 * it: the VM died, no agent, the guest did not suspend), else skipped.
 */
void vmc_step_not_run(struct vmc_ctx *c, const char *check, const char *name, bool failed,
		      const char *fmt, ...) _printf_(5, 6);

/*
 * vmc_step_usable - the usage probe's verdict for the detection ladder's
 * top rung: @ok, and what was seen ("token echoed in 1.2 ms over eth1",
 * "no connection reached the host's listener").
 */
void vmc_step_usable(struct vmc_step *s, bool ok, const char *fmt, ...) _printf_(3, 4);

/* The agent's protocol minor version (HelloReply.protocol_minor): which fields it fills. */
unsigned vmc_agent_minor(struct vmc_ctx *c);

/*
 * vmc_suite_taint - what @c's check is about to do leaves this VM unfit for
 * a later check of the run (a vCPU device_del: QEMU 7.2 aborts on the next
 * ACPI event, doc/facts.md, "Defect 1: a vCPU unplug corrupts QEMU's heap").
 * The runner gives such a check a fresh VM, with @fmt as the reason
 * (vmc_suite_tainted()). The first reason is kept until the next VM.
 */
void vmc_suite_taint(struct vmc_ctx *c, const char *fmt, ...) _printf_(2, 3);

/* A check: returns 0 if every step passed, else negative. */
struct vmc_check {
	const char *name; /* "lifecycle", "nic", ... (--only names) */
	int (*run)(struct vmc_ctx *c);
};

int vmc_check_lifecycle_s3(struct vmc_ctx *c); /* stop/cont, S3, then reset */
int vmc_check_lifecycle_reboot(struct vmc_ctx *c);
int vmc_check_lifecycle_powerdown(struct vmc_ctx *c); /* last: the VM is gone after it */
int vmc_check_nic(struct vmc_ctx *c);
int vmc_check_disk(struct vmc_ctx *c);
int vmc_check_memory(struct vmc_ctx *c);
/* unplugs last: doc/facts.md, "Defect 1: a vCPU unplug corrupts QEMU's heap" */
int vmc_check_vcpu(struct vmc_ctx *c);
int vmc_check_kdump(struct vmc_ctx *c);  /* crashes the guest: only when it can dump */
int vmc_check_bigmem(struct vmc_ctx *c); /* on the VM cmd-run.c launched with bigmem_bytes */
int vmc_check_vfio(struct vmc_ctx *c);   /* skipped, with the reason, on hosts without VFs */

#endif
