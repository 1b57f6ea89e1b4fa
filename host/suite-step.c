/* SPDX-License-Identifier: MIT */
/*
 * A step's life (check.h): begin, the action's reply, the failure message
 * and notes, end, skipped or not run. A guest that went down or rebooted
 * with no step asking for it is caught here, between steps or during one.
 * Every step goes to every report the moment it ends.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "suite-int.h"
#include "escape.h"

/* Fail the step's message with @fmt, keeping the first failure's words after it. */
static void _printf_(2, 0) step_vfail(struct vmc_step *st, const char *fmt, va_list ap)
{
	char *m = NULL, *both = NULL;

	if (vasprintf(&m, fmt, ap) < 0)
		return;
	if (st->message && asprintf(&both, "%s: %s", m, st->message) >= 0) {
		free(m);
		m = both;
	}
	free(st->message);
	st->message = m;
}

int vmc_step_fail(struct vmc_step *st, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	step_vfail(st, fmt, ap);
	va_end(ap);
	return rc;
}

void vmc_step_note(struct vmc_step *st, const char *fmt, ...)
{
	va_list ap;

	if (!st->notes_fp)
		return;
	va_start(ap, fmt);
	vfprintf(st->notes_fp, fmt, ap);
	va_end(ap);
	fputc('\n', st->notes_fp);
}

/* The VM died during @st: fail it with how, once. */
int vmc_step_died(struct vmc_step *st, struct vmc_error *err)
{
	if (!st->died)
		vmc_step_fail(st, -ESRCH, "the VM died: %s", err->msg ? err->msg : "it exited");
	st->died = true;
	vmc_error_clear(err);
	return -ESRCH;
}

static void record(struct vmc_suite *s, const struct vmc_step_record *rec)
{
	s->counts[rec->status]++;
	for (size_t i = 0; i < s->n_reports; i++) {
		struct vmc_report *rep = s->reports[i];
		int r = rep->broken ? 0 : rep->ops->step(rep, rec);

		if (r < 0)
			vmc_suite_report_broken(rep, r, rec);
	}
}

/* "nic plug" from check "nic" and step "plug nic1 (...)". */
static char *operation_of(const char *check, const char *name)
{
	size_t n = strcspn(name, " ");
	char *op = NULL;

	if (asprintf(&op, "%s %.*s", check, (int)n, name) < 0)
		return NULL;
	return op;
}

static void step_free(struct vmc_step *st);

/* A step object for step @name of @check; aborts when out of memory (nothing to fail). */
static struct vmc_step *step_new(struct vmc_suite *s, const char *check, char *name)
{
	struct vmc_step *st = calloc(1, sizeof(*st));

	if (!st || !name)
		abort(); /* no step object to fail: nothing sensible to carry on with */
	st->suite = s;
	st->name = name;
	st->check = strdup(check);
	st->op = operation_of(check, st->name);
	st->notes_fp = open_memstream(&st->notes, &st->notes_len);
	st->evidence_fp = open_memstream(&st->evidence, &st->evidence_len);
	if (!st->check || !st->op || !st->notes_fp || !st->evidence_fp)
		abort();
	st->usable = -1;
	st->t_begin = vmc_mono_ns();
	return st;
}

/* What the hypervisor says when a guest goes down or restarts. */
static const char *const down_events[] = {
	VMC_EV_RESET,
	VMC_EV_GUEST_PANICKED,
	VMC_EV_GUEST_CRASHLOADED,
	VMC_EV_SHUTDOWN,
};

/*
 * Take the queued events of @names that came after @since into @buf (",
 * "-separated, with their reasons). Returns how many there were.
 */
static unsigned take_down_events(struct vmc_hv *hv, uint64_t since, char *buf, size_t size)
{
	size_t len = strlen(buf);
	unsigned n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(down_events); i++) {
		struct vmc_hv_event ev = { 0 };

		while (hv->ops->seen_event(hv, down_events[i], NULL) &&
		       hv->ops->wait_event(hv, down_events[i], NULL, vmc_mono_ns(), &ev, NULL) ==
			       0) {
			if (!ev.synthesized && ev.host_ns > since) {
				n++;
				if (len < size)
					len += (size_t)snprintf(buf + len, size - len, "%s%s%s%s",
								len ? ", " : "", ev.name,
								ev.reason ? " " : "",
								ev.reason ? ev.reason : "");
			}
			vmc_hv_event_free(&ev);
		}
	}
	return n;
}

/*
 * Did the guest go down or reboot since the last step ended, with no step
 * asking for it? The new boot's agent announcing itself (another boot_id)
 * or the hypervisor's RESET/panic/SHUTDOWN after that step's end say so.
 * That is a failed step of its own, "unexpected reboot", in check @check
 * (the one about to run), with the evidence of what came before; the run
 * then goes on with the new boot.
 */
static void between_steps(struct vmc_suite *s, const char *check)
{
	struct vmc_step *g = step_new(s, check, strdup("unexpected reboot"));
	char events[512] = "";

	g->t_action = s->t_last_end ? s->t_last_end : g->t_begin;
	vmc_suite_set_str(&g->old_boot, s->boot_id);
	s->cur = g;
	g->baseline = vmc_view_dup(s->view);
	vmc_wait_take_pushes(g);
	take_down_events(s->hv, g->t_action, events, sizeof(events));
	if (!g->rebooted && !*events) {
		s->cur = NULL;
		step_free(g);
		return;
	}
	vmc_step_note(g, "the last step ended at +%.3f s; since then: %s%s",
		      (double)(g->t_action - s->t_zero) / 1e9,
		      g->rebooted ? "the agent of a new boot announced itself" : "",
		      *events ? (g->rebooted ? "; the hypervisor said " : "the hypervisor said ")
			      : "");
	if (*events)
		vmc_step_note(g, "%s", events);
	/* Down but not back yet: wait for the new boot, so the next step starts on it. */
	if (!g->rebooted && !s->gone)
		vmc_step_wait_new_boot(g, 3 * s->opts->deadline_ms);
	vmc_step_fail(g, -ECONNRESET,
		      "the guest %s between steps and no step asked for it (boot_id %s -> %s%s%s)",
		      g->rebooted ? "rebooted" : "went down",
		      g->old_boot ? VMC_Q(g->old_boot) : "?", s->boot_id ? VMC_Q(s->boot_id) : "?",
		      *events ? "; " : "", events);
	g->reboot_unasked = true;
	vmc_step_end(g, -ECONNRESET, NULL);
}

/*
 * The hypervisor saw the guest reset, panic or shut down during @st, which
 * asked for no new boot: the step fails with what it saw, even if its own
 * expectation held (the new boot's agent may not have spoken yet). It then
 * waits for that new boot, so the next step starts on it.
 */
static bool down_during(struct vmc_step *st)
{
	struct vmc_suite *s = st->suite;
	char events[512] = "";

	if (!take_down_events(s->hv, st->t_begin, events, sizeof(events)))
		return false;
	vmc_step_fail(st, -ECONNRESET,
		      "the guest went down during the step and no step asked for it (%s)", events);
	if (!st->rebooted)
		vmc_step_wait_new_boot(st, 3 * s->opts->deadline_ms);
	st->rebooted = true;
	st->reboot_unasked = true;
	return true;
}

struct vmc_step *vmc_step_begin(struct vmc_ctx *c, const char *check, const char *fmt, ...)
{
	struct vmc_suite *s = c->suite;
	struct vmc_step *st;
	char *name = NULL;
	va_list ap;

	if (s->cur)
		vmc_step_end(s->cur, -EINVAL, "the check did not end this step");
	/* Only a session that knew a boot can tell a reboot. */
	if (!s->gone && s->boot_id)
		between_steps(s, check);
	va_start(ap, fmt);
	if (vasprintf(&name, fmt, ap) < 0)
		name = NULL;
	va_end(ap);
	st = step_new(s, check, name);
	s->cur = st;
	if (s->gone) {
		st->skipped = true;
		return st;
	}
	vmc_suite_set_str(&st->old_boot, s->boot_id);
	st->baseline = vmc_view_dup(s->view);
	s->hv->ops->flush_events(s->hv);
	st->t_action = vmc_mono_ns();
	return st;
}

void vmc_step_act_again(struct vmc_step *st)
{
	st->t_action = vmc_mono_ns();
}

int vmc_step_acted(struct vmc_step *st, int rc, struct vmc_error *err)
{
	struct vmc_error e = VMC_ERROR_INIT;

	st->t_reply = vmc_mono_ns();
	if (st->skipped) {
		vmc_error_clear(err);
		return -ESRCH;
	}
	if (rc >= 0)
		return rc;
	vmc_step_fail(st, rc, "%s", err && err->msg ? err->msg : strerror(-rc));
	if (err)
		vmc_error_clear(err);
	/* A hypervisor that stops answering mid-command has usually died of it. */
	if ((rc == -EPIPE || rc == -ECONNRESET) &&
	    vmc_session_vm_check(st->suite, DEATH_GRACE_MS, &e) == -ESRCH)
		return vmc_step_died(st, &e);
	/*
	 * A backend that says the VM is gone (-ESRCH) has said how, above: mark
	 * the death so that no later step acts on the dead VM.
	 */
	if (rc == -ESRCH && vmc_session_vm_check(st->suite, DEATH_GRACE_MS, &e) == -ESRCH) {
		st->died = true;
		vmc_error_clear(&e);
	}
	return rc;
}

static void step_free(struct vmc_step *st)
{
	if (st->notes_fp)
		fclose(st->notes_fp);
	if (st->evidence_fp)
		fclose(st->evidence_fp);
	vmc_view_free(st->baseline);
	vmc_hv_event_free(&st->ev);
	free(st->usable_text);
	free(st->notes);
	free(st->evidence);
	free(st->check);
	free(st->name);
	free(st->op);
	free(st->message);
	free(st->old_boot);
	free(st);
}

int vmc_step_end(struct vmc_step *st, int rc, const char *fmt, ...)
{
	struct vmc_suite *s = st->suite;
	struct vmc_step_record rec = { 0 };
	bool skipped;
	va_list ap;

	if (!st->skipped && !st->boot_expected && !s->gone && down_during(st) && rc >= 0)
		rc = -ECONNRESET;
	if (!st->skipped && st->rebooted && !st->boot_expected) {
		st->reboot_unasked = true;
		if (rc >= 0) {
			rc = -ECONNRESET;
			vmc_step_fail(st, rc,
				      "the guest rebooted during the step (boot_id %s -> %s)",
				      st->old_boot ? VMC_Q(st->old_boot) : "?", VMC_Q(s->boot_id));
		}
	}
	if (!st->skipped && s->hv && s->hv->ops->take_notice) {
		char *notice = s->hv->ops->take_notice(s->hv);

		if (notice)
			vmc_step_note(st, "%s", notice);
		free(notice);
	}
	if (rc < 0 && fmt && !st->skipped) {
		va_start(ap, fmt);
		step_vfail(st, fmt, ap);
		va_end(ap);
	}
	if (rc < 0 && !st->message && !st->skipped)
		vmc_step_fail(st, rc, "%s", strerror(-rc));
	if (st->skipped)
		rec.status = s->gone_failed ? VMC_STEP_FAILED : VMC_STEP_SKIPPED;
	else
		rec.status = rc < 0 ? VMC_STEP_FAILED : VMC_STEP_PASSED;
	if (rec.status == VMC_STEP_FAILED && !st->skipped)
		vmc_evidence_gather(st);
	if (!st->t_confirm && st->t_event)
		st->t_confirm = st->t_event;
	/* A step the agent's own reply settles (a probe): that reply confirms it. */
	if (!st->t_confirm && st->t_reply && st->t_reply > st->t_action)
		st->t_confirm = st->t_reply;
	fflush(st->notes_fp);
	fflush(st->evidence_fp);
	rec.check = st->check;
	rec.name = st->name;
	rec.operation = st->op;
	rec.message = st->skipped ? s->gone : rec.status == VMC_STEP_FAILED ? st->message : NULL;
	rec.notes = st->notes_len ? st->notes : NULL;
	rec.evidence = st->evidence_len ? st->evidence : NULL;
	rec.t_zero = s->t_zero;
	rec.t_begin = st->t_begin;
	rec.t_action = st->skipped ? 0 : st->t_action;
	rec.t_reply = st->t_reply;
	rec.t_kernel = st->t_kernel;
	rec.t_confirm = st->t_confirm;
	rec.t_event = st->t_event;
	rec.t_end = vmc_mono_ns();
	rec.latency_ns = rec.status == VMC_STEP_PASSED && st->t_confirm
				 ? (int64_t)(st->t_confirm - st->t_action)
				 : -1;
	record(s, &rec);
	s->t_last_end = rec.t_end;
	if (s->cur == st)
		s->cur = NULL;
	skipped = st->skipped;
	step_free(st);
	return skipped && rc >= 0 ? -ESRCH : rc;
}

static void not_run(struct vmc_ctx *c, const char *check, const char *name, bool failed,
		    const char *fmt, va_list ap)
{
	struct vmc_step_record rec = { 0 };
	char *m = NULL, *op = operation_of(check, name);

	if (vasprintf(&m, fmt, ap) < 0)
		m = NULL;
	rec.check = check;
	rec.name = name;
	rec.operation = op ? op : check;
	rec.status = failed ? VMC_STEP_FAILED : VMC_STEP_SKIPPED;
	rec.message = m;
	rec.t_zero = c->suite->t_zero;
	rec.t_begin = rec.t_end = vmc_mono_ns();
	rec.latency_ns = -1;
	record(c->suite, &rec);
	free(m);
	free(op);
}

void vmc_step_record_done(struct vmc_suite *s, const char *check, const char *name, bool passed,
			  const char *message, const char *notes, uint64_t t_begin)
{
	struct vmc_step_record rec = { 0 };
	char *op = operation_of(check, name);

	rec.check = check;
	rec.name = name;
	rec.operation = op ? op : check;
	rec.status = passed ? VMC_STEP_PASSED : VMC_STEP_FAILED;
	rec.message = passed ? NULL : message;
	rec.notes = notes;
	rec.t_zero = s->t_zero;
	rec.t_begin = rec.t_action = t_begin;
	rec.t_end = rec.t_confirm = vmc_mono_ns();
	rec.latency_ns = passed ? (int64_t)(rec.t_end - t_begin) : -1;
	record(s, &rec);
	s->t_last_end = rec.t_end;
	free(op);
}

void vmc_step_skip(struct vmc_ctx *c, const char *check, const char *name, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	not_run(c, check, name, false, fmt, ap);
	va_end(ap);
}

void vmc_step_not_run(struct vmc_ctx *c, const char *check, const char *name, bool failed,
		      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	not_run(c, check, name, failed, fmt, ap);
	va_end(ap);
}
