/* SPDX-License-Identifier: MIT */
/*
 * The runner of suite.h: a suite's life (new, attach to a VM, the setup
 * step, the checks in order, the end of the reports) and the view checks
 * read. The rest of the suite is in its parts: the agent session
 * (suite-session.c), a step's life (suite-step.c), its waits
 * (suite-wait.c), a failed step's evidence (suite-evidence.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "suite-int.h"
#include "escape.h"

unsigned vmc_agent_minor(struct vmc_ctx *c)
{
	return c->suite->agent_minor;
}

const Vmcheck__V1__State *vmc_view(struct vmc_ctx *c)
{
	return vmc_view_state(c->suite->view);
}

void vmc_suite_taint(struct vmc_ctx *c, const char *fmt, ...)
{
	struct vmc_suite *s = c->suite;
	va_list ap;

	if (s->tainted)
		return;
	s->tainted = true;
	va_start(ap, fmt);
	if (vasprintf(&s->taint_why, fmt, ap) < 0)
		s->taint_why = NULL;
	va_end(ap);
}

const char *vmc_suite_tainted(const struct vmc_suite *s)
{
	/* Out of memory the VM is no less unfit. */
	if (!s->tainted)
		return NULL;
	return s->taint_why ? s->taint_why : "a check left the VM unfit (no memory to say why)";
}

void vmc_suite_set_str(char **dst, const char *src)
{
	char *c = src ? strdup(src) : NULL;

	free(*dst);
	*dst = c;
}

int vmc_suite_new(struct vmc_hv *hv, const struct vmc_run_opts *opts,
		  struct vmc_report *const *reports, size_t n_reports, struct vmc_suite **out,
		  struct vmc_error *err)
{
	struct vmc_suite *s = calloc(1, sizeof(*s));

	if (!s || !(s->view = vmc_view_new())) {
		free(s);
		return vmc_error_set(err, -ENOMEM, "suite: out of memory");
	}
	s->hv = hv;
	s->opts = opts;
	s->reports = reports;
	s->n_reports = n_reports;
	s->ctx = (struct vmc_ctx){ .hv = hv, .suite = s, .opts = opts };
	s->stop_fd = -1;
	s->t_zero = vmc_mono_ns();
	*out = s;
	return 0;
}

void vmc_suite_free(struct vmc_suite *s)
{
	if (!s)
		return;
	if (s->cur)
		vmc_step_end(s->cur, -EINVAL, "the check did not end this step");
	vmc_agent_close(s->conn);
	vmc_view_free(s->view);
	free(s->agent_err);
	free(s->boot_id);
	free(s->gone);
	free(s->death);
	free(s->why_attached);
	free(s->taint_why);
	free(s);
}

void vmc_suite_set_stop_fd(struct vmc_suite *s, int fd)
{
	s->stop_fd = fd;
}

void vmc_suite_report_broken(struct vmc_report *rep, int r, const struct vmc_step_record *rec)
{
	rep->broken = true;
	if (rec)
		fprintf(stderr,
			"vmcheck: report %s: %s; it ends before step \"%s %s\" (the run goes on, "
			"every step is on standard output)\n",
			rep->name ? rep->name : "?", strerror(-r), rec->check, rec->name);
	else
		fprintf(stderr, "vmcheck: report %s: %s at the end of the run\n",
			rep->name ? rep->name : "?", strerror(-r));
}

bool vmc_suite_reports_whole(const struct vmc_suite *s)
{
	for (size_t i = 0; i < s->n_reports; i++)
		if (s->reports[i]->broken)
			return false;
	return true;
}

int vmc_suite_take_stop(struct vmc_suite *s)
{
	struct signalfd_siginfo si;
	ssize_t n = TEMP_FAILURE_RETRY(read(s->stop_fd, &si, sizeof(si)));

	/* A stop fd that is not a signalfd (a test's pipe) stops the run all the same. */
	if (!s->stop_signo)
		s->stop_signo = n == (ssize_t)sizeof(si) ? (int)si.ssi_signo : -1;
	vmc_suite_set_str(&s->gone, "not run: the run was interrupted");
	s->gone_failed = false;
	return s->stop_signo;
}

int vmc_suite_poll_stop(struct vmc_suite *s)
{
	struct pollfd p = { .fd = s->stop_fd, .events = POLLIN };

	if (!s->stop_signo && s->stop_fd >= 0 && poll(&p, 1, 0) == 1)
		vmc_suite_take_stop(s);
	return s->stop_signo;
}

/* "device disk2, block node disk2-blk" of the things @c says are @removed, into @buf. */
static void list_of(const struct vmc_hv_cleaned *c, size_t n, bool removed, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && len < size; i++)
		if (c[i].removed == removed)
			len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? ", " : "",
						c[i].what);
}

int vmc_suite_cleanup(struct vmc_suite *s, unsigned ms)
{
	struct vmc_hv *hv = s->hv;
	struct vmc_hv_cleaned *c = NULL;
	struct vmc_error err = VMC_ERROR_INIT;
	uint64_t t0 = vmc_mono_ns();
	char *notes = NULL, *msg = NULL, left[1024], name[96];
	size_t n = 0, len = 0, total;
	bool cut = false;
	FILE *fp;
	int r;

	if (!hv->ops->added || !hv->ops->cleanup || !(total = hv->ops->added(hv)))
		return 0;
	snprintf(name, sizeof(name), "remove what the run added to the VM (%zu)", total);
	/* A VM that is gone took everything with it: nothing to remove, nothing to say. */
	if (vmc_session_vm_check(s, 0, &err) == -ESRCH) {
		vmc_error_clear(&err);
		return 0;
	}
	r = hv->ops->cleanup(hv, s->stop_fd, ms, &c, &n, &cut);
	fp = open_memstream(&notes, &len);
	for (size_t i = 0; fp && i < n; i++)
		fprintf(fp, "%s %s: %s\n", c[i].removed ? "removed" : "LEFT", c[i].what, c[i].how);
	if (fp)
		fclose(fp);
	list_of(c, n, false, left, sizeof(left));
	if (r == -ENOMEM)
		msg = strdup("out of memory: nothing removed");
	else if (r < 0 && asprintf(&msg, "%sleft on the VM: %s",
				   cut ? "second interrupt: cleanup "
					 "cut short; "
				       : "",
				   left) < 0)
		msg = NULL;
	vmc_step_record_done(s, "cleanup", name, r == 0, msg ? msg : "something is left on the VM",
			     notes, t0);
	if (cut)
		fprintf(stderr, "vmcheck: second interrupt: cleanup cut short; left: %s\n",
			*left ? left : "nothing");
	else if (r < 0)
		fprintf(stderr, "vmcheck: cleanup: %s\n",
			msg ? msg : "something is left on the VM");
	free(msg);
	free(notes);
	free(c);
	return r;
}

void vmc_suite_attach(struct vmc_suite *s, struct vmc_hv *hv, const char *why)
{
	vmc_agent_close(s->conn);
	s->conn = NULL;
	s->hv = hv;
	s->ctx.hv = hv;
	s->sub_id = 0;
	s->no_kmsg = false;
	s->kmsg_seq = 0;
	vmc_view_reset(s->view);
	s->view_ns = 0;
	vmc_suite_set_str(&s->boot_id, NULL);
	vmc_suite_set_str(&s->agent_err, NULL);
	vmc_suite_set_str(&s->death, NULL);
	vmc_suite_set_str(&s->gone, NULL);
	s->tainted = false;
	vmc_suite_set_str(&s->taint_why, NULL);
	s->gone_failed = false;
	s->agent_minor = 0;
	s->t_last_end = 0;
	vmc_suite_set_str(&s->why_attached, why);
}

int vmc_suite_connect(struct vmc_suite *s, unsigned deadline_ms)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step *st;
	int r;

	st = vmc_step_begin(&s->ctx, "setup", "connect to the agent (%s)",
			    s->hv->ops->agent_spec(s->hv));
	if (st->skipped)
		return vmc_step_end(st, -ESRCH, NULL);
	if (s->why_attached) {
		vmc_step_note(st, "%s", s->why_attached);
		vmc_suite_set_str(&s->why_attached, NULL);
	}
	r = vmc_session_open(s, st->t_action + deadline_ms * MS, &err);
	if (r == -ESRCH) {
		vmc_step_died(st, &err);
	} else if (r < 0) {
		vmc_step_fail(st, r, "%s", err.msg ? err.msg : strerror(-r));
		vmc_error_clear(&err);
		if (asprintf(&s->gone, "not run: no agent (%s)", st->message) < 0)
			s->gone = NULL;
		s->gone_failed = true;
	} else {
		st->t_confirm = vmc_mono_ns();
		vmc_step_note(st, "agent of boot %s", VMC_Q(s->boot_id));
	}
	/* This step's "baseline" is the first view: nothing to diff. */
	vmc_view_free(st->baseline);
	st->baseline = NULL;
	return vmc_step_end(st, r, NULL);
}

int vmc_suite_run(struct vmc_suite *s, const struct vmc_check *checks, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* A signal that came while no step waited stops the run here. */
		vmc_suite_poll_stop(s);
		if (s->gone) {
			vmc_step_not_run(&s->ctx, checks[i].name, "not run", s->gone_failed, "%s",
					 s->gone);
			continue;
		}
		checks[i].run(&s->ctx);
		if (s->cur)
			vmc_step_end(s->cur, -EINVAL, "the check did not end this step");
	}
	return s->counts[VMC_STEP_FAILED] ? -1 : 0;
}

void vmc_suite_finish(struct vmc_suite *s)
{
	for (size_t i = 0; i < s->n_reports; i++) {
		struct vmc_report *rep = s->reports[i];
		int r = rep->broken ? 0 : rep->ops->finish(rep);

		if (r < 0)
			vmc_suite_report_broken(rep, r, NULL);
	}
}

void vmc_suite_counts(const struct vmc_suite *s, unsigned counts[3])
{
	memcpy(counts, s->counts, sizeof(s->counts));
}
