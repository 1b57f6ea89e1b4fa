/* SPDX-License-Identifier: MIT */
/*
 * The step machinery of check.h and the runner of suite.h.
 *
 * The suite owns the agent session (connect, Hello, Subscribe to every
 * section) and the merged view. Every wait is one poll(2) loop over the
 * agent's fd and the hypervisor's: each pushed Event is merged into the view
 * as it arrives and the expectation evaluated on it; hypervisor input is
 * pumped into its event queue; the VM process is asked whether it is alive
 * when its fd hangs up or after 200 ms of silence (a liveness guard: results
 * only ever come from pushes and events). Steps go to every report the
 * moment they end.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "suite-int.h"

#define PUMP_BATCH 1024      /* pushes taken per look at the agent */

/* What a wait is for; exactly one of fn, event, new_boot, vm_exit. */
struct wait {
	vmc_expect_fn fn;
	void *arg;
	struct vmc_why why;
	const char *event, *device;
	bool new_boot;
	bool vm_exit;
	uint64_t deadline;
	bool done;
	bool final; /* fn gave a final reason: it will never hold */
};

static void why_say(struct vmc_why *w, bool final, const char *fmt, va_list ap)
{
	vsnprintf(w->text, sizeof(w->text), fmt, ap);
	w->final = final;
}

void vmc_why_set(struct vmc_why *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	why_say(w, false, fmt, ap);
	va_end(ap);
}

void vmc_why_final(struct vmc_why *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	why_say(w, true, fmt, ap);
	va_end(ap);
}

/* Evaluate @w's expectation on the view: true if it holds; a final "no" ends the wait. */
static bool holds(struct vmc_suite *s, struct wait *w)
{
	w->why.final = false;
	if (w->fn(vmc_view_state(s->view), w->arg, &w->why))
		return true;
	w->final = w->why.final;
	return false;
}

unsigned vmc_agent_minor(struct vmc_ctx *c)
{
	return c->suite->agent_minor;
}

const Vmcheck__V1__State *vmc_view(struct vmc_ctx *c)
{
	return vmc_view_state(c->suite->view);
}

void vmc_suite_set_str(char **dst, const char *src)
{
	char *c = src ? strdup(src) : NULL;

	free(*dst);
	*dst = c;
}

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
static int step_died(struct vmc_step *st, struct vmc_error *err)
{
	if (!st->died)
		vmc_step_fail(st, -ESRCH, "the VM died: %s", err->msg ? err->msg : "it exited");
	st->died = true;
	vmc_error_clear(err);
	return -ESRCH;
}

/* ------------------------------------------------------- waiting */

/* The confirming push of @st arrived at @host_ns. */
static void confirm(struct vmc_step *st, const Vmcheck__V1__Event *ev, uint64_t host_ns)
{
	const Vmcheck__V1__State *gs = ev ? ev->state : NULL;
	uint64_t kernel = 0, read_end;

	if (st->t_confirm)
		return;
	st->t_confirm = host_ns;
	if (!gs)
		return;
	kernel = ev->kernel_mono_ns;
	if (!kernel && ev->n_causes && ev->causes[0])
		kernel = ev->causes[0]->mono_ns;
	read_end = gs->mono_ns + gs->read_ns;
	/*
	 * The snapshot's own clock gives the offset: it was read until
	 * read_end (guest) and arrived at host_ns (host), so host_ns - read_end
	 * bounds host - guest from above by the transfer time (~0.1 ms on
	 * virtio-serial). Unlike an offset measured earlier it holds after a
	 * stop or S3, which the guest clock does not see.
	 */
	if (kernel && read_end >= kernel)
		st->t_kernel = host_ns - (read_end - kernel);
}

/*
 * Take every push available now. Events of our subscription are merged and
 * @w's expectation evaluated after each; an announcement of the agent leads
 * to a resync. Returns 0 (nothing more for now, or @w done), -EPIPE (the
 * connection ended), -ECONNRESET (a new boot while @w evaluates a
 * predicate), other negative codes with the step failed.
 */
static int agent_pump(struct vmc_step *st, struct wait *w)
{
	struct vmc_suite *s = st->suite;
	struct vmc_error err = VMC_ERROR_INIT;
	unsigned taken = 0;

	/* A batch at a time: a guest pushing without pause must not hold the wait loop. */
	while (s->conn && !(w && (w->done || w->final)) && taken++ < PUMP_BATCH) {
		Vmcheck__V1__Response *rsp;
		int r = vmc_agent_next_event(s->conn, 0, &rsp, &err);
		uint64_t t = vmc_mono_ns();

		if (r == -ETIMEDOUT) {
			vmc_error_clear(&err);
			return 0;
		}
		if (r == -EPROTO) {
			vmc_step_note(st, "skipped: %s", err.msg);
			vmc_error_clear(&err);
			continue;
		}
		if (r < 0) {
			vmc_session_lost(s, &err);
			return -EPIPE;
		}
		switch (rsp->kind_case) {
		case VMCHECK__V1__RESPONSE__KIND_EVENT:
			if (rsp->event->subscription_id != s->sub_id || !rsp->event->state)
				break;
			r = vmc_view_merge(s->view, rsp->event->state);
			if (r < 0) {
				vmc_step_note(st, "a pushed snapshot was lost: %s", strerror(-r));
				break;
			}
			s->view_ns = t;
			if (w && w->fn && holds(s, w)) {
				confirm(st, rsp->event, t);
				w->done = true;
			}
			break;
		case VMCHECK__V1__RESPONSE__KIND_HELLO:
			r = vmc_session_resync(s, CALL_TIMEOUT_MS, &err);
			if (r < 0) {
				vmc_agent_response_free(s->conn, rsp);
				if (r == -EPIPE) {
					vmc_session_lost(s, &err);
					return -EPIPE;
				}
				vmc_step_fail(st, r,
					      "re-subscribing after the agent announced itself: %s",
					      err.msg);
				vmc_error_clear(&err);
				return r;
			}
			if (r == 0) {
				vmc_step_note(st, "the agent restarted (same boot); subscribed again");
				break;
			}
			st->rebooted = true;
			if (w && w->new_boot) {
				confirm(st, NULL, t);
				w->done = true;
			} else if (w && w->fn) {
				vmc_agent_response_free(s->conn, rsp);
				return -ECONNRESET;
			}
			break;
		case VMCHECK__V1__RESPONSE__KIND_ERROR:
			vmc_step_note(st, "agent error: %s", rsp->error->message);
			break;
		default:
			break;
		}
		vmc_agent_response_free(s->conn, rsp);
	}
	return 0;
}

/* While waiting for a new boot: ask the agent directly now and then. */
static void probe_boot(struct vmc_step *st, struct wait *w, struct vmc_error *err)
{
	int r = vmc_session_resync(st->suite, 300, err);

	if (r == 1) {
		st->rebooted = true;
		confirm(st, NULL, vmc_mono_ns());
		w->done = true;
	}
	if (r == -EPIPE)
		vmc_session_lost(st->suite, err);
	vmc_error_clear(err);
}

/*
 * Take the event @w waits for, if it came; the step keeps it (its reason,
 * its detail). A synthesized event is no observation: it confirms nothing
 * and gives no time, and the notes say so.
 */
static bool take_event(struct vmc_step *st, struct wait *w)
{
	struct vmc_hv *hv = st->suite->hv;
	struct vmc_hv_event ev = { 0 };

	if (!hv->ops->seen_event(hv, w->event, w->device))
		return false;
	if (hv->ops->wait_event(hv, w->event, w->device, vmc_mono_ns() + MS, &ev, NULL) < 0)
		return false;
	if (ev.synthesized)
		vmc_step_note(st, "%s synthesized by the %s backend, not reported by the hypervisor: %s",
			      ev.name, hv->ops->name, ev.detail ? ev.detail : "");
	else
		st->t_event = ev.host_ns ? ev.host_ns : vmc_mono_ns();
	vmc_hv_event_free(&st->ev);
	st->ev = ev;
	w->done = true;
	return true;
}

/*
 * The VM is gone. What it said before going still counts (the SHUTDOWN of a
 * powerdown is read after the socket closed); so does an exit waited for.
 */
static int vm_ended(struct vmc_step *st, struct wait *w, struct vmc_error *err)
{
	struct vmc_hv *hv = st->suite->hv;

	if (w->event) {
		hv->ops->pump(hv, NULL);
		if (take_event(st, w)) {
			vmc_error_clear(err);
			return 0;
		}
	}
	if (w->vm_exit) {
		vmc_error_clear(err);
		return 0;
	}
	return step_died(st, err);
}

/*
 * The one wait loop. Returns 0 when @w is done, else a negative code with
 * the step's message set.
 */
static int wait_for(struct vmc_step *st, struct wait *w)
{
	struct vmc_suite *s = st->suite;
	struct vmc_hv *hv = s->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	uint64_t last_alive = vmc_mono_ns(), last_hello = vmc_mono_ns();
	bool hv_hup = false;
	int r;

	if (st->skipped)
		return -ESRCH;
	for (;;) {
		struct pollfd pfd[3];
		nfds_t n = 0;
		int hv_fd = hv->ops->fd(hv), timeout;
		uint64_t now;

		r = agent_pump(st, w);
		if (w->done)
			return 0;
		if (w->final)
			return -EINVAL;
		if (r == -ECONNRESET)
			return vmc_step_fail(st, r,
					     "the guest rebooted during the step (boot_id %s -> %s)",
					     st->old_boot ? st->old_boot : "?", s->boot_id);
		if (r < 0 && r != -EPIPE)
			return r;
		if (r == -EPIPE) {
			/* Most often the VM itself went away: say that instead. */
			if (vmc_session_vm_check(s, DEATH_GRACE_MS, &err) == -ESRCH)
				return vm_ended(st, w, &err);
		}
		if (w->fn && !s->conn)
			return vmc_step_fail(st, -EPIPE, "the agent is gone: %s", s->agent_err);
		if (w->new_boot && !s->conn) {
			/* A transport that ends with the guest (not vserial): reconnect. */
			if (vmc_session_open(s, vmc_mono_ns() + HELLO_RETRY_MS * MS, &err) == 0 &&
			    strcmp(s->boot_id, st->old_boot ? st->old_boot : "")) {
				st->rebooted = true;
				confirm(st, NULL, vmc_mono_ns());
				return 0;
			}
			vmc_error_clear(&err);
		}
		if (!hv_hup && hv->ops->pump(hv, &err) < 0) {
			hv_hup = true;
			vmc_error_clear(&err);
			if (vmc_session_vm_check(s, DEATH_GRACE_MS, &err) == -ESRCH)
				return vm_ended(st, w, &err);
		}
		if (w->event && take_event(st, w))
			return 0;
		now = vmc_mono_ns();
		if (now >= w->deadline)
			return -ETIMEDOUT;
		if (w->new_boot && s->conn && now - last_hello >= HELLO_RETRY_MS * MS) {
			probe_boot(st, w, &err);
			last_hello = vmc_mono_ns();
			if (w->done)
				return 0;
			continue;
		}
		if (s->conn)
			pfd[n++] = (struct pollfd){ .fd = vmc_agent_fd(s->conn), .events = POLLIN };
		if (hv_fd >= 0 && !hv_hup)
			pfd[n++] = (struct pollfd){ .fd = hv_fd, .events = POLLIN };
		if (s->stop_fd >= 0)
			pfd[n++] = (struct pollfd){ .fd = s->stop_fd, .events = POLLIN };
		timeout = (int)((w->deadline - now + MS - 1) / MS);
		if (timeout > LIVENESS_MS)
			timeout = LIVENESS_MS;
		r = poll(pfd, n, timeout);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (s->stop_fd >= 0 && n && pfd[n - 1].fd == s->stop_fd && pfd[n - 1].revents) {
			vmc_suite_set_str(&s->gone, "not run: the run was interrupted");
			s->gone_failed = false;
			vmc_step_fail(st, -EINTR, "interrupted by a signal");
			st->interrupted = true;
			return -EINTR;
		}
		if (r == 0 || vmc_mono_ns() - last_alive >= LIVENESS_MS * MS) {
			last_alive = vmc_mono_ns();
			if (vmc_session_vm_check(s, 0, &err) == -ESRCH)
				return vm_ended(st, w, &err);
		}
	}
}

static uint64_t deadline_of(struct vmc_step *st, unsigned ms)
{
	return (st->t_action ? st->t_action : vmc_mono_ns()) + ms * MS;
}

/*
 * An agent connection for a call in @st; reconnects once if it was lost.
 * -ESRCH for a step already skipped (the VM is gone).
 */
static int need_conn(struct vmc_step *st, unsigned ms)
{
	struct vmc_suite *s = st->suite;
	struct vmc_error err = VMC_ERROR_INIT;
	uint64_t deadline = vmc_mono_ns() + (ms < 2000 ? ms : 2000) * MS;
	int r;

	if (st->skipped)
		return -ESRCH;
	if (s->conn)
		return 0;
	r = vmc_session_open(s, deadline, &err);
	if (r == -ESRCH)
		return step_died(st, &err);
	if (r < 0) {
		vmc_step_fail(st, -EPIPE, "the agent is gone: %s (reconnecting: %s)",
			      s->agent_err ? s->agent_err : "no connection", err.msg);
		vmc_error_clear(&err);
		return -EPIPE;
	}
	if (st->old_boot && strcmp(st->old_boot, s->boot_id))
		st->rebooted = true;
	return 0;
}

int vmc_step_expect(struct vmc_step *st, vmc_expect_fn fn, void *arg, unsigned deadline_ms)
{
	struct wait w = { .fn = fn, .arg = arg, .deadline = deadline_of(st, deadline_ms) };
	int r;

	r = need_conn(st, deadline_ms);
	if (r < 0)
		return r;
	/* Pushes already queued count: they may be the confirmation. */
	r = agent_pump(st, NULL);
	if (r == 0 && st->rebooted && !st->boot_expected)
		return vmc_step_fail(st, -ECONNRESET,
				     "the guest rebooted during the step (boot_id %s -> %s)",
				     st->old_boot ? st->old_boot : "?", st->suite->boot_id);
	if (holds(st->suite, &w)) {
		uint64_t t = st->suite->view_ns;

		confirm(st, NULL, t > st->t_action ? t : vmc_mono_ns());
		return 0;
	}
	r = w.final ? -EINVAL : wait_for(st, &w);
	if (r == -ETIMEDOUT)
		vmc_step_fail(st, r, "not within %u ms: %s", deadline_ms,
			      w.why.text[0] ? w.why.text : "the expectation did not hold");
	else if (r == -EINVAL && w.final)
		vmc_step_fail(st, r, "%s", w.why.text);
	return r;
}

int vmc_step_expect_asking(struct vmc_step *st, vmc_expect_fn fn, void *arg, uint32_t sections,
			   unsigned deadline_ms)
{
	struct vmc_suite *s = st->suite;
	uint64_t end = deadline_of(st, deadline_ms);
	struct vmc_why why = { .text = "" };
	int r = need_conn(st, deadline_ms);

	while (r == 0 && !fn(vmc_view_state(s->view), arg, &why) && !why.final &&
	       vmc_mono_ns() < end) {
		Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
		Vmcheck__V1__GetState get = VMCHECK__V1__GET_STATE__INIT;
		Vmcheck__V1__Response *rsp;
		uint64_t ask = vmc_mono_ns() + ASK_EVERY_MS * 1000000ull;
		struct wait w = { .fn = fn, .arg = arg, .deadline = ask < end ? ask : end };

		/* Pushes as they come (they confirm, and time it); then ask. */
		r = wait_for(st, &w);
		if (r == -EINVAL && w.final)
			vmc_step_fail(st, r, "%s", w.why.text);
		if (r != -ETIMEDOUT)
			return r;
		r = 0;
		get.sections = sections;
		req.kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
		req.get_state = &get;
		if (vmc_session_call(s, &req, CALL_TIMEOUT_MS, VMCHECK__V1__RESPONSE__KIND_STATE,
				     &rsp, NULL) == 0) {
			if (vmc_view_merge(s->view, rsp->state) == 0)
				s->view_ns = vmc_mono_ns();
			vmc_agent_response_free(s->conn, rsp);
		}
	}
	/* Judged (and timed) as any expectation: at once if it holds now. */
	return r < 0 ? r : vmc_step_expect(st, fn, arg, deadline_ms);
}

unsigned vmc_step_elapsed_ms(struct vmc_step *st)
{
	uint64_t t = st->t_action ? st->t_action : st->t_begin;

	return (unsigned)((vmc_mono_ns() - t) / MS);
}

int vmc_step_await_event(struct vmc_step *st, const char *name, const char *device,
			 unsigned deadline_ms)
{
	struct wait w = { .event = name, .device = device,
			  .deadline = deadline_of(st, deadline_ms) };

	return wait_for(st, &w);
}

int vmc_step_expect_event(struct vmc_step *st, const char *name, const char *device,
			  unsigned deadline_ms)
{
	int r = vmc_step_await_event(st, name, device, deadline_ms);

	if (r == -ETIMEDOUT)
		vmc_step_fail(st, r, "no %s event%s%s within %u ms", name, device ? " for " : "",
			      device ? device : "", deadline_ms);
	return r;
}

uint64_t vmc_step_event_ns(struct vmc_step *st)
{
	return st->t_event;
}

const struct vmc_hv_event *vmc_step_event(struct vmc_step *st)
{
	return st->ev.name ? &st->ev : NULL;
}

int vmc_step_expect_exit(struct vmc_step *st, unsigned deadline_ms)
{
	struct wait w = { .vm_exit = true, .deadline = deadline_of(st, deadline_ms) };
	struct vmc_suite *s = st->suite;
	int r = wait_for(st, &w);

	if (r == -ETIMEDOUT)
		return vmc_step_fail(st, r, "the VM process did not exit within %u ms",
				     deadline_ms);
	if (r == 0) {
		st->t_event = vmc_mono_ns();
		vmc_step_note(st, "the VM process ended: %s", s->death ? s->death : "?");
		/* Later steps are not run, for a plain reason. */
		vmc_suite_set_str(&s->gone, "not run: the VM was powered down");
		s->gone_failed = false;
	}
	return r;
}

int vmc_step_wait_new_boot(struct vmc_step *st, unsigned deadline_ms)
{
	struct wait w = { .new_boot = true, .deadline = deadline_of(st, deadline_ms) };
	int r;

	if (st->skipped)
		return -ESRCH;
	st->boot_expected = true;
	if (!st->rebooted)
		agent_pump(st, &w);
	if (st->rebooted) {
		confirm(st, NULL, st->suite->view_ns);
		return 0;
	}
	r = wait_for(st, &w);
	if (r == -ETIMEDOUT)
		vmc_step_fail(st, r, "no agent of a new boot (boot_id other than %s) within %u ms",
			      st->old_boot ? st->old_boot : "?", deadline_ms);
	return r;
}

/* The reply kind each request kind expects. */
static Vmcheck__V1__Response__KindCase reply_kind(Vmcheck__V1__Request__KindCase k)
{
	switch (k) {
	case VMCHECK__V1__REQUEST__KIND_HELLO:
		return VMCHECK__V1__RESPONSE__KIND_HELLO;
	case VMCHECK__V1__REQUEST__KIND_GET_STATE:
		return VMCHECK__V1__RESPONSE__KIND_STATE;
	case VMCHECK__V1__REQUEST__KIND_SUBSCRIBE:
		return VMCHECK__V1__RESPONSE__KIND_SUBSCRIBED;
	case VMCHECK__V1__REQUEST__KIND_UNSUBSCRIBE:
		return VMCHECK__V1__RESPONSE__KIND_UNSUBSCRIBED;
	case VMCHECK__V1__REQUEST__KIND_PROBE:
		return VMCHECK__V1__RESPONSE__KIND_PROBE;
	case VMCHECK__V1__REQUEST__KIND_ACT:
		return VMCHECK__V1__RESPONSE__KIND_ACT;
	case VMCHECK__V1__REQUEST__KIND_READ_KMSG:
		return VMCHECK__V1__RESPONSE__KIND_KMSG;
	default:
		return VMCHECK__V1__RESPONSE__KIND__NOT_SET;
	}
}

int vmc_step_agent(struct vmc_step *st, Vmcheck__V1__Request *req, unsigned deadline_ms,
		   Vmcheck__V1__Response **resp)
{
	struct vmc_suite *s = st->suite;
	struct vmc_error err = VMC_ERROR_INIT;
	int r;

	*resp = NULL;
	r = need_conn(st, deadline_ms);
	if (r < 0)
		return r;
	r = vmc_session_call(s, req, (int)deadline_ms, reply_kind(req->kind_case), resp, &err);
	if (!st->t_reply)
		st->t_reply = vmc_mono_ns();
	if (r == -EPIPE) {
		vmc_session_lost(s, &err);
		if (vmc_session_vm_check(s, DEATH_GRACE_MS, &err) == -ESRCH)
			return step_died(st, &err);
		return vmc_step_fail(st, r, "the agent is gone: %s", s->agent_err);
	}
	if (r < 0) {
		vmc_step_fail(st, r, "%s", err.msg ? err.msg : strerror(-r));
		vmc_error_clear(&err);
	}
	return r;
}

struct vmc_agent_conn *vmc_step_conn(struct vmc_step *st)
{
	return st->suite->conn;
}

/* ------------------------------------------------------- steps */

static void record(struct vmc_suite *s, const struct vmc_step_record *rec)
{
	s->counts[rec->status]++;
	for (size_t i = 0; i < s->n_reports; i++) {
		int r = s->reports[i]->ops->step(s->reports[i], rec);

		if (r < 0)
			fprintf(stderr, "vmcheck: writing a report: %s\n", strerror(-r));
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
		       hv->ops->wait_event(hv, down_events[i], NULL, vmc_mono_ns(), &ev,
					   NULL) == 0) {
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
	agent_pump(g, NULL);
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
		      g->rebooted ? "rebooted" : "went down", g->old_boot ? g->old_boot : "?",
		      s->boot_id ? s->boot_id : "?", *events ? "; " : "", events);
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
		return step_died(st, &e);
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
				      st->old_boot ? st->old_boot : "?", s->boot_id);
		}
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

/* ------------------------------------------------------- runner */

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
	free(s);
}

void vmc_suite_set_stop_fd(struct vmc_suite *s, int fd)
{
	s->stop_fd = fd;
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
	vmc_suite_set_str(&s->boot_id, NULL);
	vmc_suite_set_str(&s->agent_err, NULL);
	vmc_suite_set_str(&s->death, NULL);
	vmc_suite_set_str(&s->gone, NULL);
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
		step_died(st, &err);
	} else if (r < 0) {
		vmc_step_fail(st, r, "%s", err.msg ? err.msg : strerror(-r));
		vmc_error_clear(&err);
		if (asprintf(&s->gone, "not run: no agent (%s)", st->message) < 0)
			s->gone = NULL;
		s->gone_failed = true;
	} else {
		st->t_confirm = vmc_mono_ns();
		vmc_step_note(st, "agent of boot %s", s->boot_id);
	}
	/* This step's "baseline" is the first view: nothing to diff. */
	vmc_view_free(st->baseline);
	st->baseline = NULL;
	return vmc_step_end(st, r, NULL);
}

int vmc_suite_run(struct vmc_suite *s, const struct vmc_check *checks, size_t n)
{
	for (size_t i = 0; i < n; i++) {
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
		int r = s->reports[i]->ops->finish(s->reports[i]);

		if (r < 0)
			fprintf(stderr, "vmcheck: finishing a report: %s\n", strerror(-r));
	}
}

void vmc_suite_counts(const struct vmc_suite *s, unsigned counts[3])
{
	memcpy(counts, s->counts, sizeof(s->counts));
}
