/* SPDX-License-Identifier: MIT */
/*
 * The suite's session with the VM: the agent connection (connect, Hello,
 * Subscribe to every section, resync after a restart or a new boot, the
 * guest's clock) and whether the VM process still lives.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "suite-int.h"

/* ------------------------------------------------------- liveness */

/*
 * Ask the hypervisor whether the VM still runs. A closed socket can come a
 * moment before the process is reaped: with @grace_ms, keep asking that
 * long. Returns -ESRCH (the suite is marked gone with how it died) or 0.
 */
int vmc_session_vm_check(struct vmc_suite *s, unsigned grace_ms, struct vmc_error *err)
{
	uint64_t until = vmc_mono_ns() + grace_ms * MS;

	for (;;) {
		int r = s->hv->ops->alive(s->hv, err);

		if (r == -ESRCH) {
			if (!s->death)
				vmc_suite_set_str(&s->death, err->msg ? err->msg : "it exited");
			/* How it died, without the details the failed step already gives. */
			if (!s->gone && asprintf(&s->gone, "not run: the VM is gone (%.*s)",
						 (int)strcspn(s->death, ";\n"), s->death) < 0)
				s->gone = NULL;
			s->gone_failed = true;
			return -ESRCH;
		}
		vmc_error_clear(err);
		if (vmc_mono_ns() >= until)
			return 0;
		poll(NULL, 0, 20);
	}
}

/* ------------------------------------------------------- agent session */

void vmc_session_lost(struct vmc_suite *s, struct vmc_error *err)
{
	vmc_suite_set_str(&s->agent_err, err->msg ? err->msg : "the agent connection ended");
	vmc_error_clear(err);
	vmc_agent_close(s->conn);
	s->conn = NULL;
}

int vmc_session_call(struct vmc_suite *s, Vmcheck__V1__Request *req, int timeout_ms,
		     Vmcheck__V1__Response__KindCase kind, Vmcheck__V1__Response **out,
		     struct vmc_error *err)
{
	Vmcheck__V1__Response *rsp;
	int r = vmc_agent_call(s->conn, req, timeout_ms, &rsp, err);

	if (r < 0)
		return r;
	r = vmc_agent_expect(s->conn, rsp, kind, vmc_pb_request_kind(req), err);
	if (r < 0) {
		vmc_agent_response_free(s->conn, rsp);
		return r;
	}
	*out = rsp;
	return 0;
}

/* Hello; on success *@boot_id is the agent's (malloc'd). */
static int hello(struct vmc_suite *s, int timeout_ms, char **boot_id, struct vmc_error *err)
{
	Vmcheck__V1__Response *rsp;
	int r = vmc_agent_hello(s->conn, timeout_ms, &rsp, err);

	if (r < 0)
		return r;
	*boot_id = strdup(rsp->hello->boot_id ? rsp->hello->boot_id : "");
	s->agent_minor = rsp->hello->protocol_minor;
	vmc_agent_response_free(s->conn, rsp);
	return *boot_id ? 0 : vmc_error_set(err, -ENOMEM, "hello: out of memory");
}

/* Subscribe to every section; the baseline replaces the whole view. */
static int subscribe(struct vmc_suite *s, struct vmc_error *err)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Subscribe sub = VMCHECK__V1__SUBSCRIBE__INIT;
	Vmcheck__V1__Response *rsp;
	int r;

	req.kind_case = VMCHECK__V1__REQUEST__KIND_SUBSCRIBE;
	req.subscribe = &sub;
	r = vmc_session_call(s, &req, CALL_TIMEOUT_MS, VMCHECK__V1__RESPONSE__KIND_SUBSCRIBED, &rsp,
			     err);
	if (r < 0)
		return r;
	s->sub_id = rsp->subscribed->subscription_id;
	vmc_view_reset(s->view);
	if (rsp->subscribed->state)
		r = vmc_view_merge(s->view, rsp->subscribed->state);
	s->view_ns = vmc_mono_ns();
	vmc_agent_response_free(s->conn, rsp);
	return r < 0 ? vmc_error_set(err, r, "subscribe: keeping the baseline: %s", strerror(-r))
		     : 0;
}

/* Forget an old subscription of the same agent instance, if it is one. */
static void unsubscribe_old(struct vmc_suite *s, uint64_t id)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Unsubscribe u = VMCHECK__V1__UNSUBSCRIBE__INIT;
	Vmcheck__V1__Response *rsp;

	u.subscription_id = id;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_UNSUBSCRIBE;
	req.unsubscribe = &u;
	if (vmc_agent_call(s->conn, &req, 1000, &rsp, NULL) == 0)
		vmc_agent_response_free(s->conn, rsp);
}

/*
 * The agent (re)announced itself, or a new boot is suspected: Hello to
 * learn its boot_id, then subscribe again. Returns 1 for a new boot, 0 for
 * the same one, negative with @err set.
 */
int vmc_session_resync(struct vmc_suite *s, int hello_ms, struct vmc_error *err)
{
	_cleanup_free_ char *boot = NULL;
	uint64_t old_sub = s->sub_id;
	bool new_boot;
	int r = hello(s, hello_ms, &boot, err);

	if (r < 0)
		return r;
	new_boot = !s->boot_id || strcmp(boot, s->boot_id);
	if (!new_boot)
		unsubscribe_old(s, old_sub);
	r = subscribe(s, err);
	if (r < 0)
		return r;
	free(s->boot_id);
	s->boot_id = TAKE_PTR(boot);
	if (new_boot)
		s->kmsg_seq = 0;
	return new_boot;
}

/*
 * Connect (or reconnect) and Hello until the agent answers, then subscribe.
 * Hello is repeated: the guest may still be booting, and an agent that has
 * not opened its port yet hears nothing. Returns 0 or negative with @err.
 */
int vmc_session_open(struct vmc_suite *s, uint64_t deadline, struct vmc_error *err)
{
	const char *spec = s->hv->ops->agent_spec(s->hv);
	Vmcheck__V1__Response *rsp;
	char last[512] = ""; /* why the last connect failed, for the deadline's message */
	int r;

	for (;;) {
		uint64_t now = vmc_mono_ns();
		int left = now < deadline ? (int)((deadline - now) / MS) : 0;

		if (!s->conn) {
			r = vmc_agent_connect(spec, &s->conn, err);
			if (r < 0) {
				s->conn = NULL;
				/* A spec that cannot work (unknown scheme, bad syntax) never will. */
				if (r == -EINVAL)
					return r;
				snprintf(last, sizeof(last), "%s", err->msg ? err->msg : "");
			}
		}
		if (s->conn) {
			_cleanup_free_ char *boot = NULL;

			r = hello(s, left < HELLO_RETRY_MS ? left : HELLO_RETRY_MS, &boot, err);
			if (r == 0) {
				/* Announcements queued before this reply are answered by it. */
				while (vmc_agent_next_event(s->conn, 0, &rsp, NULL) == 0)
					vmc_agent_response_free(s->conn, rsp);
				r = subscribe(s, err);
				if (r == 0) {
					if (!s->boot_id || strcmp(s->boot_id, boot))
						s->kmsg_seq = 0;
					free(s->boot_id);
					s->boot_id = TAKE_PTR(boot);
					return 0;
				}
			}
			/* -ECONNRESET: the agent restarted under our Hello: ask the new one. */
			if (r != -EPIPE && r != -ETIMEDOUT && r != -ECONNRESET)
				return r;
			/* Kept for the deadline's message: replies with wrong ids say so there. */
			snprintf(last, sizeof(last), "%s", err->msg ? err->msg : "");
			if (r == -EPIPE)
				vmc_session_lost(s, err);
		}
		if (vmc_session_vm_check(s, 0, err) == -ESRCH)
			return -ESRCH;
		if (vmc_mono_ns() >= deadline)
			return vmc_error_set(err, -ETIMEDOUT,
					     "the agent at %s did not answer within the deadline%s%s",
					     spec, *last ? ": " : "", last);
		vmc_error_clear(err);
		if (!s->conn)
			poll(NULL, 0, 100); /* the socket is not there yet */
	}
}

/* host - guest monotonic clock, from one GetState round trip. */
int vmc_session_clock_offset(struct vmc_suite *s, int64_t *offset)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__GetState get = VMCHECK__V1__GET_STATE__INIT;
	Vmcheck__V1__Response *rsp;
	uint64_t t0 = vmc_mono_ns(), t1;
	int r;

	get.sections = VMCHECK__V1__SECTION__SECTION_SYSTEM;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
	req.get_state = &get;
	r = vmc_session_call(s, &req, 1000, VMCHECK__V1__RESPONSE__KIND_STATE, &rsp, NULL);
	if (r < 0)
		return r;
	t1 = vmc_mono_ns();
	*offset = (int64_t)(t0 + (t1 - t0) / 2) -
		  (int64_t)(rsp->state->mono_ns + rsp->state->read_ns / 2);
	vmc_agent_response_free(s->conn, rsp);
	return 0;
}
