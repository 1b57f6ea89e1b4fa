/* SPDX-License-Identifier: MIT */
/*
 * The agent connection: requests framed over any transport, replies matched by id,
 * pushes queued meanwhile within bounds (host/bounds.h), an agent over a bound cut off.
 */
#include "agent-client.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "bounds.h"
#include "clock.h"
#include "escape.h"
#include "frame.h"

/*
 * A Hello pushed while a reply is awaited is a new agent announcing itself
 * (restarted, or a new boot): the old one took the request with it. A new
 * one that got the request's bytes answers well within this; after it the
 * request counts as lost, and the caller hears so at once rather than at
 * its own deadline.
 */
#define RESTART_GRACE_MS 1000

/* A decoded Response with the budget its memory was counted against. */
struct reply {
	struct reply *next;
	struct vmc_pb_budget budget;
	Vmcheck__V1__Response *msg;
};

struct vmc_agent_conn {
	struct vmc_agent_transport t;
	char *spec;
	struct vmc_frame_reader rd;
	uint64_t next_id;
	struct reply *events;          /* queued pushes, oldest first */
	struct reply **events_end;     /* where the next push is linked */
	size_t n_events, events_bytes; /* what the queue holds (decoded bytes) */
	char *cut_off;                 /* why the agent was cut off (it flooded), or NULL */
	struct reply *lent;            /* handed to the caller, not yet freed */
	bool eof;
	int write_timeout_ms; /* longest wait for the agent to take a request */
	char cut[128];        /* why the stream is unusable (a request was cut), or "" */
};

static const struct vmc_agent_transport_ops *const transports[] = {
	&vmc_agent_unix_ops, &vmc_agent_vserial_ops, &vmc_agent_exec_ops,
	&vmc_agent_ssh_ops,  &vmc_agent_libvirt_ops,
};

static void reply_free(struct reply *r)
{
	if (r->msg)
		vmcheck__v1__response__free_unpacked(r->msg, &r->budget.alloc);
	free(r);
}

static void reply_list_free(struct reply *r)
{
	while (r) {
		struct reply *next = r->next;

		reply_free(r);
		r = next;
	}
}

static struct vmc_agent_conn *conn_new(const char *spec)
{
	struct vmc_agent_conn *c = calloc(1, sizeof(*c));
	uint32_t seed;

	if (!c)
		return NULL;
	c->spec = strdup(spec);
	if (!c->spec) {
		free(c);
		return NULL;
	}
	c->t.fd = -1;
	c->t.pidfd = -1;
	c->t.status = -1;
	c->write_timeout_ms = VMC_WRITE_TIMEOUT_MS;
	c->events_end = &c->events;
	vmc_frame_reader_init(&c->rd, 0);
	/*
	 * A random first id: a virtio-serial port keeps bytes across host
	 * sessions, and a stale reply must not match a new request.
	 */
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = (uint32_t)vmc_mono_ns();
	c->next_id = (uint64_t)seed + 1;
	return c;
}

int vmc_agent_connect(const char *spec, struct vmc_agent_conn **out, struct vmc_error *err)
{
	const char *colon = strchr(spec, ':');
	struct vmc_agent_conn *c;
	int r;

	for (size_t i = 0; colon && i < ARRAY_SIZE(transports); i++) {
		const struct vmc_agent_transport_ops *ops = transports[i];

		if (strlen(ops->scheme) != (size_t)(colon - spec) ||
		    strncmp(spec, ops->scheme, (size_t)(colon - spec)))
			continue;
		if (!colon[1])
			return vmc_error_set(err, -EINVAL,
					     "agent spec \"%s\": nothing after \"%s:\"", spec,
					     ops->scheme);
		c = conn_new(spec);
		if (!c)
			return vmc_error_set(err, -ENOMEM, "connecting to %s: out of memory", spec);
		c->t.ops = ops;
		r = ops->open(&c->t, colon + 1, err);
		if (r < 0) {
			c->t.ops = NULL;
			vmc_agent_close(c);
			return r;
		}
		*out = c;
		return 0;
	}
	return vmc_error_set(err, -EINVAL,
			     "agent spec \"%s\": expected unix:PATH, vserial:PATH, exec:COMMAND, "
			     "ssh://USER@HOST[:PORT][/PATH] or libvirt-channel:DOMAIN/URI",
			     spec);
}

int vmc_agent_connect_fd(int fd, const char *name, struct vmc_agent_conn **out,
			 struct vmc_error *err)
{
	struct vmc_agent_conn *c = conn_new(name);

	if (!c) {
		close(fd);
		return vmc_error_set(err, -ENOMEM, "connecting to %s: out of memory", name);
	}
	c->t.fd = fd;
	*out = c;
	return 0;
}

void vmc_agent_close(struct vmc_agent_conn *c)
{
	if (!c)
		return;
	if (c->t.ops)
		c->t.ops->close(&c->t);
	else if (c->t.fd >= 0)
		close(c->t.fd);
	reply_list_free(c->events);
	reply_list_free(c->lent);
	vmc_frame_reader_free(&c->rd);
	free(c->cut_off);
	free(c->spec);
	free(c);
}

void vmc_agent_set_write_timeout(struct vmc_agent_conn *c, int timeout_ms)
{
	c->write_timeout_ms = timeout_ms;
}

int vmc_agent_fd(const struct vmc_agent_conn *c)
{
	return c->t.fd;
}

const char *vmc_agent_spec(const struct vmc_agent_conn *c)
{
	return c->spec;
}

/*
 * Set @err for the end of the stream while waiting for the reply to @kind
 * (NULL: for an event).
 */
static int gone(struct vmc_agent_conn *c, const char *kind, struct vmc_error *err)
{
	char why[256] = "the connection was closed";
	char mid[64] = "";
	size_t buffered = c->rd.end - c->rd.start;

	if (c->cut_off)
		return vmc_error_set(err, -EPIPE, "%s: %s", c->spec, c->cut_off);
	if (c->t.ops)
		c->t.ops->describe_eof(&c->t, why, sizeof(why));
	if (buffered)
		snprintf(mid, sizeof(mid), " in the middle of a frame (%zu bytes received)",
			 buffered);
	if (kind)
		return vmc_error_set(err, -EPIPE, "%s: %s%s before replying to %s", c->spec, why,
				     mid, kind);
	return vmc_error_set(err, -EPIPE, "%s: %s%s while waiting for an event", c->spec, why, mid);
}

/*
 * Send the frame of @kind before @deadline or the write timeout, whichever
 * comes first. A frame cut part way leaves the stream unusable: the agent
 * would read our next request as the rest of this one.
 */
static int send_frame(struct vmc_agent_conn *c, const char *kind, const uint8_t *p, size_t n,
		      uint64_t deadline, struct vmc_error *err)
{
	uint64_t now = vmc_mono_ns(), limit = deadline;
	size_t done = 0;
	int ms = -1, r;

	if (c->write_timeout_ms >= 0 && now + (uint64_t)c->write_timeout_ms * 1000000 < limit)
		limit = now + (uint64_t)c->write_timeout_ms * 1000000;
	if (limit != UINT64_MAX)
		ms = limit <= now ? 0 : (int)((limit - now + 999999) / 1000000);
	r = vmc_write_all(c->t.fd, p, n, ms, &done);
	if (r == -EPIPE)
		return gone(c, kind, err);
	if (r == -ETIMEDOUT && done == 0)
		return vmc_error_set(err, r, "%s: sending %s: the agent took nothing in %d ms",
				     c->spec, kind, ms);
	if (r == -ETIMEDOUT) {
		snprintf(c->cut, sizeof(c->cut), "sending %s timed out after %zu of %zu bytes",
			 kind, done, n);
		return vmc_error_set(err, r,
				     "%s: sending %s: the agent took %zu of %zu bytes in %d ms; "
				     "the connection is unusable (a partial frame was written)",
				     c->spec, kind, done, n, ms);
	}
	if (r < 0)
		return vmc_error_set(err, r, "%s: sending %s: %s", c->spec, kind, strerror(-r));
	return 0;
}

/* Wait for bytes until @deadline and feed them to the frame reader. */
static int fill(struct vmc_agent_conn *c, uint64_t deadline)
{
	struct pollfd pfd = { .fd = c->t.fd, .events = POLLIN };
	uint8_t buf[65536];
	ssize_t n;
	int r;

	r = poll(&pfd, 1, vmc_clock_remaining_ms(deadline));
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	n = read(c->t.fd, buf, sizeof(buf));
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		if (errno == ECONNRESET)
			n = 0;
		else
			return -errno;
	}
	if (n == 0) {
		c->eof = true;
		return -EPIPE;
	}
	return vmc_frame_feed(&c->rd, buf, (size_t)n);
}

/*
 * The agent broke a bound while @what was awaited: forget what it queued and
 * take nothing more from it, so that no guest can make the host hold ever
 * more. @why says which bound; every later call says it again.
 */
static int cut_off(struct vmc_agent_conn *c, int code, const char *why, const char *what,
		   struct vmc_error *err)
{
	free(c->cut_off);
	if (asprintf(&c->cut_off, "%s while waiting for %s: connection cut off", why, what) < 0)
		c->cut_off = NULL;
	c->eof = true;
	reply_list_free(c->events);
	c->events = NULL;
	c->events_end = &c->events;
	c->n_events = c->events_bytes = 0;
	if (!c->cut_off)
		return vmc_error_set(err, code, "%s: %s", c->spec, why);
	return vmc_error_set(err, code, "%s: %s", c->spec, c->cut_off);
}

/*
 * Decode the next complete frame buffered. Returns 1 with *@out, 0 when no
 * complete frame is buffered, -EPROTO for a frame that does not decode (it
 * is skipped), -EMSGSIZE for one over a bound (@why says which), -ENOMEM.
 */
static int next_buffered(struct vmc_agent_conn *c, struct reply **out, size_t *bad_len, char *why,
			 size_t why_size)
{
	const uint8_t *p;
	struct reply *rep;
	size_t n;
	int r;

	/* Headers over the limit are skipped by the reader (counted in rd.oversize). */
	while ((r = vmc_frame_next(&c->rd, &p, &n)) == -EMSGSIZE)
		;
	if (r <= 0)
		return r;
	rep = calloc(1, sizeof(*rep));
	if (!rep)
		return -ENOMEM;
	vmc_pb_budget_init(&rep->budget, VMC_BOUND_DECODED);
	rep->msg = vmc_pb_response_unpack(&rep->budget, p, n);
	if (!rep->msg && rep->budget.over) {
		free(rep);
		snprintf(why, why_size,
			 "the agent sent a frame of %zu bytes that decodes to more than %zu MiB, "
			 "over the bound of one reply",
			 n, VMC_BOUND_DECODED >> 20);
		return -EMSGSIZE;
	}
	if (!rep->msg) {
		free(rep);
		vmc_frame_reject(&c->rd);
		*bad_len = n;
		return -EPROTO;
	}
	r = vmc_bounds_check(rep->msg, why, why_size);
	if (r < 0) {
		reply_free(rep);
		return r;
	}
	*out = rep;
	return 1;
}

/* The agent pushed more than the queue may hold while @what was awaited. */
static int flooded(struct vmc_agent_conn *c, const char *what, struct vmc_error *err)
{
	char why[256];

	snprintf(why, sizeof(why),
		 "the agent flooded the host with pushes: %zu (%zu bytes decoded), over the bound "
		 "of %d pushes or %zu MiB queued",
		 c->n_events, c->events_bytes, VMC_BOUND_QUEUE_PUSHES, VMC_BOUND_QUEUE_BYTES >> 20);
	return cut_off(c, -EPIPE, why, what, err);
}

/*
 * Read until the Response with @id, the reply to @kind, arrives (id 0, kind
 * NULL: the next push). Pushes met on the way are queued; replies with
 * another id are stale (a request given up on, or a previous host session
 * on the same port) and dropped. A Hello pushed while a reply is awaited
 * leaves it RESTART_GRACE_MS at most, then -ECONNRESET. @timeout_ms led to
 * @deadline (for messages).
 */
static int wait_for(struct vmc_agent_conn *c, uint64_t id, const char *kind, uint64_t deadline,
		    int timeout_ms, struct reply **out, struct vmc_error *err)
{
	char what[80] = "an event", skipped[96] = "", stale_note[64] = "", why[384];
	unsigned stale = 0;
	bool restarted = false; /* a new agent announced itself meanwhile */

	if (kind)
		snprintf(what, sizeof(what), "the reply to %s", kind);
	for (;;) {
		struct reply *rep = NULL;
		size_t bad_len = 0;
		int r = next_buffered(c, &rep, &bad_len, why, sizeof(why));

		if (r == 1) {
			if (rep->msg->id == id) {
				*out = rep;
				return 0;
			}
			if (rep->msg->id == 0) {
				/* Counted before it is queued: the queue never holds more. */
				if (c->n_events + 1 > VMC_BOUND_QUEUE_PUSHES ||
				    c->events_bytes + rep->budget.used > VMC_BOUND_QUEUE_BYTES) {
					c->n_events++;
					c->events_bytes += rep->budget.used;
					reply_free(rep);
					return flooded(c, what, err);
				}
				if (id && !restarted &&
				    rep->msg->kind_case == VMCHECK__V1__RESPONSE__KIND_HELLO) {
					uint64_t grace = vmc_clock_deadline(RESTART_GRACE_MS);

					restarted = true;
					if (deadline > grace)
						deadline = grace;
				}
				*c->events_end = rep;
				c->events_end = &rep->next;
				c->n_events++;
				c->events_bytes += rep->budget.used;
			} else {
				reply_free(rep);
				if (++stale > VMC_BOUND_STALE_REPLIES) {
					snprintf(why, sizeof(why),
						 "the agent sent %u replies to no request (wrong "
						 "ids), over the bound of %d",
						 stale, VMC_BOUND_STALE_REPLIES);
					return cut_off(c, -EPROTO, why, what, err);
				}
			}
			continue;
		}
		if (r == -EMSGSIZE)
			return cut_off(c, r, why, what, err);
		if (r == -EPROTO)
			return vmc_error_set(err, r,
					     "%s: undecodable frame (%zu bytes) while waiting for %s",
					     c->spec, bad_len, what);
		if (r == 0)
			r = c->eof ? -EPIPE : fill(c, deadline);
		switch (r) {
		case 0:
			continue;
		case -EPIPE:
			return gone(c, kind, err);
		case -ETIMEDOUT:
			/* An agent sending frames over our limit looks silent: say so. */
			if (stale)
				snprintf(stale_note, sizeof(stale_note),
					 " (%u replies with another id dropped)", stale);
			if (c->rd.oversize)
				snprintf(skipped, sizeof(skipped),
					 " (%llu frame headers over the %zu-byte limit skipped)",
					 (unsigned long long)c->rd.oversize, c->rd.max);
			if (restarted)
				return vmc_error_set(
					err, -ECONNRESET,
					"%s: the agent restarted while waiting for the "
					"reply to %s (it announced itself again), and no "
					"reply came within %d ms after that: the request "
					"was lost",
					c->spec, kind ? kind : "a request", RESTART_GRACE_MS);
			if (kind)
				return vmc_error_set(err, r, "%s: no reply to %s within %d ms%s%s",
						     c->spec, kind, timeout_ms, stale_note,
						     skipped);
			return vmc_error_set(err, r, "%s: no event within %d ms%s", c->spec,
					     timeout_ms, skipped);
		case -EINTR:
			return vmc_error_set(err, r, "%s: interrupted while waiting for %s",
					     c->spec, what);
		default:
			return vmc_error_set(err, r, "%s: reading while waiting for %s: %s",
					     c->spec, what, strerror(-r));
		}
	}
}

static void lend(struct vmc_agent_conn *c, struct reply *rep, Vmcheck__V1__Response **resp)
{
	rep->next = c->lent;
	c->lent = rep;
	*resp = rep->msg;
}

int vmc_agent_call(struct vmc_agent_conn *c, Vmcheck__V1__Request *req, int timeout_ms,
		   Vmcheck__V1__Response **resp, struct vmc_error *err)
{
	const char *kind = vmc_pb_request_kind(req);
	uint64_t deadline = vmc_clock_deadline(timeout_ms);
	_cleanup_free_ uint8_t *frame = NULL;
	struct reply *rep;
	size_t len;
	int r;

	if (c->cut[0])
		return vmc_error_set(err, -EPIPE, "%s: %s: the connection is unusable since %s",
				     c->spec, kind, c->cut);
	if (c->eof)
		return gone(c, kind, err);
	req->id = c->next_id++;
	r = vmc_pb_frame(&req->base, VMC_FRAME_MAX_DEFAULT, &frame, &len);
	if (r < 0)
		return vmc_error_set(err, r, "%s: encoding %s: %s", c->spec, kind, strerror(-r));
	r = send_frame(c, kind, frame, len, deadline, err);
	if (r < 0)
		return r;
	r = wait_for(c, req->id, kind, deadline, timeout_ms, &rep, err);
	if (r < 0)
		return r;
	lend(c, rep, resp);
	return 0;
}

int vmc_agent_next_event(struct vmc_agent_conn *c, int timeout_ms, Vmcheck__V1__Response **resp,
			 struct vmc_error *err)
{
	struct reply *rep = c->events;
	int r;

	if (rep) {
		c->events = rep->next;
		if (!c->events)
			c->events_end = &c->events;
		c->n_events--;
		c->events_bytes -= rep->budget.used;
	} else {
		r = wait_for(c, 0, NULL, vmc_clock_deadline(timeout_ms), timeout_ms, &rep, err);
		if (r < 0)
			return r;
	}
	lend(c, rep, resp);
	return 0;
}

void vmc_agent_response_free(struct vmc_agent_conn *c, Vmcheck__V1__Response *resp)
{
	for (struct reply **p = &c->lent; *p; p = &(*p)->next) {
		struct reply *rep = *p;

		if (rep->msg == resp) {
			*p = rep->next;
			reply_free(rep);
			return;
		}
	}
}

static const char *error_code_name(const Vmcheck__V1__Error *e)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&vmcheck__v1__error__code__descriptor,
						     e->code);

	return v ? v->name : "?";
}

int vmc_agent_expect(const struct vmc_agent_conn *c, const Vmcheck__V1__Response *resp,
		     Vmcheck__V1__Response__KindCase kind, const char *what, struct vmc_error *err)
{
	const ProtobufCFieldDescriptor *f;

	if (resp->kind_case == kind)
		return 0;
	if (resp->kind_case == VMCHECK__V1__RESPONSE__KIND_ERROR) {
		const Vmcheck__V1__Error *e = resp->error;

		if (e->errno_value > 0)
			return vmc_error_set(err, -EREMOTEIO, "%s: %s: agent error %s: %s (%s)",
					     c->spec, what, error_code_name(e), VMC_Q(e->message),
					     strerror(e->errno_value));
		return vmc_error_set(err, -EREMOTEIO, "%s: %s: agent error %s: %s", c->spec, what,
				     error_code_name(e), VMC_Q(e->message));
	}
	f = protobuf_c_message_descriptor_get_field(&vmcheck__v1__response__descriptor,
						    resp->kind_case);
	return vmc_error_set(err, -EPROTO, "%s: %s: unexpected reply \"%s\"", c->spec, what,
			     f ? f->name : "none");
}

int vmc_agent_hello(struct vmc_agent_conn *c, int timeout_ms, Vmcheck__V1__Response **resp,
		    struct vmc_error *err)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Hello hello = VMCHECK__V1__HELLO__INIT;
	Vmcheck__V1__Response *rsp;
	int r;

	hello.protocol_version = 1;
	hello.protocol_minor = 2;
	hello.client = "vmcheck " VMC_VERSION;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_HELLO;
	req.hello = &hello;
	r = vmc_agent_call(c, &req, timeout_ms, &rsp, err);
	if (r < 0)
		return r;
	r = vmc_agent_expect(c, rsp, VMCHECK__V1__RESPONSE__KIND_HELLO, "hello", err);
	if (r == 0 && rsp->hello->protocol_version != 1)
		r = vmc_error_set(err, -EPROTONOSUPPORT,
				  "%s: hello: agent speaks protocol %u, not 1", c->spec,
				  rsp->hello->protocol_version);
	if (r < 0) {
		vmc_agent_response_free(c, rsp);
		if (err)
			err->code = -EPROTONOSUPPORT;
		return -EPROTONOSUPPORT;
	}
	*resp = rsp;
	return 0;
}
