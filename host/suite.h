/* SPDX-License-Identifier: MIT */
/*
 * The runner's side of the suite (suite.c): own the agent session, run
 * checks in order, hand every finished step to the reports. Checks see
 * only check.h.
 */
#ifndef VMC_SUITE_H
#define VMC_SUITE_H

#include <stdbool.h>
#include <stdio.h>

#include "check.h"
#include "report.h"

/*
 * vmc_suite_new - a suite acting on @hv with @opts, reporting to @reports
 * @hv, @opts, @reports: borrowed; they must outlive the suite
 * Returns 0 or -ENOMEM with @err set.
 */
int vmc_suite_new(struct vmc_hv *hv, const struct vmc_run_opts *opts,
		  struct vmc_report *const *reports, size_t n_reports, struct vmc_suite **out,
		  struct vmc_error *err);

/* Closes the agent session. NULL is a no-op. The hypervisor is left alone. */
void vmc_suite_free(struct vmc_suite *s);

/*
 * vmc_suite_set_stop_fd - a fd that becomes readable when the run must stop
 * (a signalfd for SIGINT/SIGTERM): the step waiting fails as interrupted
 * and every later step is skipped. -1: none.
 */
void vmc_suite_set_stop_fd(struct vmc_suite *s, int fd);

/*
 * vmc_suite_connect - the "setup" step: connect to the agent at
 * hv->ops->agent_spec(), repeat Hello until the guest's agent answers
 * (within @deadline_ms: the guest may still be booting), subscribe to every
 * section and take the first view. Returns 0 or the step's negative code
 * (the step is reported failed; later checks will be skipped).
 */
int vmc_suite_connect(struct vmc_suite *s, unsigned deadline_ms);

/*
 * vmc_suite_attach - carry on with another VM @hv (borrowed, like the
 * first): the agent session and the view of the old one are dropped, and
 * a VM that was gone no longer stops the run. @why (may be NULL) becomes a
 * note of the next vmc_suite_connect() step. Call vmc_suite_connect() next.
 */
void vmc_suite_attach(struct vmc_suite *s, struct vmc_hv *hv, const char *why);

/*
 * vmc_suite_tainted - why the VM is unfit for a later check (the first
 * vmc_suite_taint() since it was attached), or NULL when nothing done to it
 * says so. Valid until the next vmc_suite_attach() or vmc_suite_free().
 */
const char *vmc_suite_tainted(const struct vmc_suite *s);

/*
 * vmc_suite_run - run @checks in order. A check that starts after the VM
 * died, or after an interruption, is reported skipped with the reason.
 * Returns 0 if every step so far passed, -1 otherwise.
 */
int vmc_suite_run(struct vmc_suite *s, const struct vmc_check *checks, size_t n);

/*
 * vmc_suite_poll_stop - has a signal stopped the run? Takes a pending one
 * off the stop fd (then later steps are skipped as interrupted). Returns
 * its number, -1 for a stop fd that is not a signalfd, 0 when none came.
 */
int vmc_suite_poll_stop(struct vmc_suite *s);

/*
 * vmc_suite_cleanup - remove what the run added to a VM that outlives it
 * (attach mode), waiting at most @ms for the guest to let the devices go;
 * a second signal on the stop fd cuts it short. Reported as a step of its
 * own, "cleanup", whose notes list what was removed and what is left and
 * why; no step when nothing was left to remove or the VM is gone. Returns
 * 0, or -EBUSY when something is left (also said on stderr).
 */
int vmc_suite_cleanup(struct vmc_suite *s, unsigned ms);

/* Did every report take every step? False when one could not be written. */
bool vmc_suite_reports_whole(const struct vmc_suite *s);

/* Tell every report the run is over (the text report prints its summary). */
void vmc_suite_finish(struct vmc_suite *s);

/* Steps reported so far, by enum vmc_step_status. */
void vmc_suite_counts(const struct vmc_suite *s, unsigned counts[3]);

/*
 * vmc_ladder_write - the detection ladder for hypervisor device @hv_id on
 * @fp, one line per rung (host, pci, driver, kernel, online, usable) with
 * ok/MISSING; @gone walks a removal instead, guest first (online, kernel,
 * driver, pci, host) with present/gone. @pci: the device's guest PCI address,
 * or of the root port it sits behind, or "". @kobj: "link MAC", "block
 * serial=S", "memory blocks A-B", "cpuN". @usable: the usage probe's
 * verdict for the top rung (1 used, 0 not usable, -1 no probe ran) and
 * @usable_text what it saw (NULL: a default). The first rung that stops
 * the device is marked "<- stopped here"; returns its index, -1 if none.
 */
int vmc_ladder_write(FILE *fp, struct vmc_hv *hv, const Vmcheck__V1__State *st, const char *hv_id,
		     const char *pci, const char *kobj, bool gone, int usable,
		     const char *usable_text);

#endif
