/* SPDX-License-Identifier: MIT */
/*
 * The waits of check.h: expectations on the merged view, hypervisor events,
 * the VM's exit, a new boot, and agent calls within a step.
 *
 * Every wait is one poll(2) loop over the agent's fd and the hypervisor's:
 * each pushed Event is merged into the view as it arrives and the
 * expectation evaluated on it; hypervisor input is pumped into its event
 * queue; the VM process is asked whether it is alive when its fd hangs up
 * or after 200 ms of silence (a liveness guard: results only ever come from
 * pushes and events). The first push that confirms a step times it.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "suite-int.h"
#include "escape.h"

#define PUMP_BATCH 1024 /* pushes taken per look at the agent */

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
	 * stop or S3, which the guest clock does not see. The guest's times are
	 * its word: one that would put the kernel before the host's clock began
	 * (a guest clock far ahead, or made up) is not recorded, never wrapped.
	 */
	if (kernel && read_end >= kernel && read_end - kernel < host_ns)
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
				vmc_step_note(st,
					      "the agent restarted (same boot); subscribed again");
				/*
				 * The new baseline replaced the view: what the old
				 * agent never pushed (it died first) may hold now.
				 */
				if (w && w->fn && holds(s, w)) {
					confirm(st, NULL, s->view_ns);
					w->done = true;
				}
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
			vmc_step_note(st, "agent error: %s", VMC_Q(rsp->error->message));
			break;
		default:
			break;
		}
		vmc_agent_response_free(s->conn, rsp);
	}
	return 0;
}

int vmc_wait_take_pushes(struct vmc_step *st)
{
	return agent_pump(st, NULL);
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
		vmc_step_note(st,
			      "%s synthesized by the %s backend, not reported by the hypervisor: %s",
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
	return vmc_step_died(st, err);
}

/* A signal stopped the run: @st fails saying which. */
static int interrupted(struct vmc_step *st)
{
	int sig = vmc_suite_take_stop(st->suite);

	if (sig > 0 && sigabbrev_np(sig))
		vmc_step_fail(st, -EINTR, "interrupted by SIG%s", sigabbrev_np(sig));
	else
		vmc_step_fail(st, -EINTR, "interrupted by a signal");
	st->interrupted = true;
	return -EINTR;
}

/* Is a signal waiting on the stop fd? */
static bool stop_pending(struct vmc_suite *s)
{
	struct pollfd p = { .fd = s->stop_fd, .events = POLLIN };

	return s->stop_fd >= 0 && poll(&p, 1, 0) == 1;
}

/*
 * The one wait loop. Returns 0 when @w is done, else a negative code with
 * the step's message set. A signal that came before the wait fails the
 * step too: a synchronous hypervisor call (libvirt's attach) may have done
 * what the step waits for before the loop first polls.
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
	if (stop_pending(s))
		return interrupted(st);
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
					     st->old_boot ? VMC_Q(st->old_boot) : "?",
					     VMC_Q(s->boot_id));
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
		if (s->stop_fd >= 0 && n && pfd[n - 1].fd == s->stop_fd && pfd[n - 1].revents)
			return interrupted(st);
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
		return vmc_step_died(st, &err);
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
				     st->old_boot ? VMC_Q(st->old_boot) : "?",
				     VMC_Q(st->suite->boot_id));
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
	struct wait w = { .event = name,
			  .device = device,
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
			      st->old_boot ? VMC_Q(st->old_boot) : "?", deadline_ms);
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
			return vmc_step_died(st, &err);
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
