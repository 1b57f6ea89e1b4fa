/* SPDX-License-Identifier: MIT */
/*
 * Internal to the suite-* files (suite.c and its parts): the runner's state
 * and the functions its files share. Nothing else includes this header:
 * checks see check.h, main and the commands suite.h.
 */
#ifndef VMC_SUITE_INT_H
#define VMC_SUITE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "suite.h"
#include "suite-view.h"

/*
 * The timers that remain, each where no event exists: a hypervisor that
 * has not closed its socket says nothing when its process dies stuck
 * (LIVENESS_MS); a process is reaped a moment after its socket closes
 * (DEATH_GRACE_MS); an agent that has not opened its port yet hears no
 * Hello, and the guest tells nobody when it does (HELLO_RETRY_MS); and the
 * kernel announces neither the suspend count after a resume someone else
 * caused nor a CPU leaving cpu/present (ASK_EVERY_MS).
 */
#define MS 1000000ull
#define LIVENESS_MS 200      /* silence after which the VM process is asked */
#define DEATH_GRACE_MS 2000  /* a closed socket before the process is reaped */
#define HELLO_RETRY_MS 2000  /* re-Hello while waiting for an agent */
#define CALL_TIMEOUT_MS 5000 /* Hello and Subscribe of a live agent */
#define ASK_EVERY_MS 200     /* vmc_step_expect_asking: a GetState this often */

struct vmc_suite {
	struct vmc_hv *hv;
	const struct vmc_run_opts *opts;
	struct vmc_report *const *reports;
	size_t n_reports;
	struct vmc_ctx ctx;
	int stop_fd;
	int stop_signo; /* the signal that stopped the run (0: none yet) */

	struct vmc_agent_conn *conn; /* NULL while there is none */
	char *agent_err;             /* why the connection ended */
	uint64_t sub_id;
	char *boot_id;
	struct vmc_view *view;
	uint64_t view_ns; /* host time the newest snapshot was merged; 0: none from this VM */
	bool no_kmsg;     /* the agent refused ReadKmsg */
	uint64_t kmsg_seq;

	unsigned agent_minor; /* HelloReply.protocol_minor of the agent */

	char *why_attached; /* a note for the next connect step */
	bool tainted;       /* this VM is unfit for a later check (vmc_suite_taint()) */
	char *taint_why;    /* why (NULL: no memory to say it) */
	char *gone;         /* why no step can run any more (VM gone, interrupted) */
	/*
	 * The steps @gone stops failed, not skipped: something failed first
	 * (the VM died, no agent answered). An interruption or a powerdown
	 * that passed only skips them.
	 */
	bool gone_failed;
	char *death; /* how the VM process ended, as the hypervisor tells */
	struct vmc_step *cur;
	unsigned counts[3];
	uint64_t t_zero;
	uint64_t t_last_end; /* host time the last step ended (0: none yet) */
};

struct vmc_step {
	struct vmc_suite *suite;
	char *check, *name, *op;
	struct vmc_view *baseline;
	uint64_t t_begin, t_action, t_reply, t_kernel, t_confirm, t_event;
	char *message;
	char *notes, *evidence;
	size_t notes_len, evidence_len;
	FILE *notes_fp, *evidence_fp;
	bool skipped;           /* begun after the VM was gone */
	bool died;              /* the VM died during this step */
	bool interrupted;       /* a signal stopped the run during this step */
	char *old_boot;         /* boot_id at the start */
	bool rebooted;          /* a new boot was seen */
	bool boot_expected;     /* vmc_step_wait_new_boot() was called */
	bool refreshed;         /* the view was read afresh for the evidence */
	bool reboot_unasked;    /* the guest rebooted and no step asked for it */
	struct vmc_hv_event ev; /* the last event vmc_step_expect_event() took */
	int usable;             /* the usage rung: 1 ok, 0 failed, -1 not judged */
	char *usable_text;
};

/* ------------------------------------------------------- suite.c */

/* Replace *@dst with a copy of @src (NULL: none); on ENOMEM *@dst becomes NULL. */
void vmc_suite_set_str(char **dst, const char *src);

/*
 * vmc_suite_take_stop - @stop_fd is readable: take the signal off it (so
 * that a second one makes it readable again) and stop the run: every later
 * step is skipped as interrupted. Returns the signal's number.
 */
int vmc_suite_take_stop(struct vmc_suite *s);

/*
 * vmc_suite_report_broken - writing report @rep failed with @r at step
 * @rec (NULL: its end): say so on stderr, naming the file and the error,
 * once, and write no more to it. The run goes on.
 */
void vmc_suite_report_broken(struct vmc_report *rep, int r, const struct vmc_step_record *rec);

/* ------------------------------------------------------- suite-session.c */

/*
 * vmc_session_vm_check - ask the hypervisor whether the VM still runs. A
 * closed socket can come a moment before the process is reaped: with
 * @grace_ms, keep asking that long. Returns -ESRCH (the suite is marked
 * gone with how it died) or 0.
 */
int vmc_session_vm_check(struct vmc_suite *s, unsigned grace_ms, struct vmc_error *err);

/* The agent connection ended (@err says why, and is cleared): close it. */
void vmc_session_lost(struct vmc_suite *s, struct vmc_error *err);

/*
 * vmc_session_call - @req to the agent, its reply of @kind in *@out (free
 * with vmc_agent_response_free()). Returns 0 or negative with @err set
 * (@err may be NULL); -EPIPE when the connection ended.
 */
int vmc_session_call(struct vmc_suite *s, Vmcheck__V1__Request *req, int timeout_ms,
		     Vmcheck__V1__Response__KindCase kind, Vmcheck__V1__Response **out,
		     struct vmc_error *err);

/*
 * vmc_session_resync - the agent (re)announced itself, or a new boot is
 * suspected: Hello to learn its boot_id, then subscribe again. Returns 1
 * for a new boot, 0 for the same one, negative with @err set.
 */
int vmc_session_resync(struct vmc_suite *s, int hello_ms, struct vmc_error *err);

/*
 * vmc_session_open - connect (or reconnect) and Hello until the agent
 * answers, then subscribe; gives up at @deadline (host monotonic ns).
 * Returns 0, -ESRCH (the VM is gone) or another negative code with @err.
 */
int vmc_session_open(struct vmc_suite *s, uint64_t deadline, struct vmc_error *err);

/* host - guest monotonic clock, from one GetState round trip: 0 or negative. */
int vmc_session_clock_offset(struct vmc_suite *s, int64_t *offset);

/* ------------------------------------------------------- suite-step.c */

/* The VM died during @st: fail it with how (@err, cleared), once. Returns -ESRCH. */
int vmc_step_died(struct vmc_step *st, struct vmc_error *err);

/*
 * vmc_step_record_done - report a step that was run outside a check's
 * begin/end (the cleanup at the end of a run, which runs after an
 * interruption too): @check, @name, passed or failed with @message, @notes
 * (may be NULL), begun at @t_begin.
 */
void vmc_step_record_done(struct vmc_suite *s, const char *check, const char *name, bool passed,
			  const char *message, const char *notes, uint64_t t_begin);

/* ------------------------------------------------------- suite-wait.c */

/*
 * vmc_wait_take_pushes - merge the pushes queued now into the view, with
 * nothing to wait for: a new boot's announcement resyncs the session and
 * marks @st rebooted. Returns 0, -EPIPE (the agent connection ended) or
 * another negative code with @st failed.
 */
int vmc_wait_take_pushes(struct vmc_step *st);

/* ------------------------------------------------------- suite-evidence.c */

/*
 * vmc_evidence_gather - write the evidence of failed step @st to its
 * evidence stream: the view read afresh, the changes since its baseline,
 * the guest kernel log, the console after an unasked reboot, the
 * hypervisor transcript. Best effort: what cannot be had is said so.
 */
void vmc_evidence_gather(struct vmc_step *st);

#endif
