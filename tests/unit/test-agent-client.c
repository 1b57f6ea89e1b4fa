/* SPDX-License-Identifier: MIT */
/*
 * Tests of the host's agent client against a fake agent: a thread on the
 * other end of a socketpair that answers (or misbehaves) as each test says.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "agent-client.h"
#include "bounds.h"
#include "clock.h"
#include "frame.h"
#include "harness.h"

enum fake_mode {
	FAKE_PUSH_THEN_REPLY, /* a stale reply, a push, then the reply */
	FAKE_SILENT,          /* read the request, never answer */
	FAKE_HALF_REPLY,      /* half a reply frame, then close */
	FAKE_GARBAGE_FIRST,   /* junk, a bogus oversize header, then the reply */
	FAKE_UNDECODABLE,     /* a frame that is no Response */
	FAKE_FLOOD,           /* pushes without end, never the reply */
	FAKE_LINKS,           /* a State of links_n links */
	FAKE_LONG_HOSTNAME,   /* a State whose hostname is one byte over the bound */
	FAKE_BLOAT,           /* a State of empty links that decodes over the budget */
	FAKE_WRONG_IDS,       /* wrong_n replies with ids never asked for, then silence */
	FAKE_RESTARTED,       /* a new agent's announcement, never the reply */
	FAKE_RESTARTED_REPLY, /* a new agent's announcement, then the reply */
};

struct fake {
	int fd;
	enum fake_mode mode;
	unsigned requests; /* how many to read (and answer, by the mode) */
	size_t links_n;    /* FAKE_LINKS */
	unsigned wrong_n;  /* FAKE_WRONG_IDS */
	pthread_t thread;
};

/* Read one Request; NULL at EOF. Free with vmcheck__v1__request__free_unpacked(r, NULL). */
static Vmcheck__V1__Request *fake_read(int fd, struct vmc_frame_reader *rd)
{
	for (;;) {
		const uint8_t *p;
		uint8_t buf[4096];
		size_t n;
		ssize_t got;

		if (vmc_frame_next(rd, &p, &n) == 1)
			return vmcheck__v1__request__unpack(NULL, n, p);
		got = read(fd, buf, sizeof(buf));
		if (got <= 0)
			return NULL;
		vmc_frame_feed(rd, buf, (size_t)got);
	}
}

static void fake_send_frame(int fd, const Vmcheck__V1__Response *r, size_t cut)
{
	uint8_t *frame;
	size_t len;

	if (vmc_pb_frame(&r->base, VMC_FRAME_MAX_DEFAULT, &frame, &len) < 0)
		return;
	vmc_write_all(fd, frame, cut ? cut : len, VMC_WRITE_TIMEOUT_MS, NULL);
	free(frame);
}

static void fake_send_hello(int fd, uint64_t id, const char *version, size_t cut)
{
	Vmcheck__V1__Response r = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__HelloReply h = VMCHECK__V1__HELLO_REPLY__INIT;

	h.protocol_version = 1;
	h.agent_version = (char *)version;
	h.transport = "fake";
	r.id = id;
	r.kind_case = VMCHECK__V1__RESPONSE__KIND_HELLO;
	r.hello = &h;
	fake_send_frame(fd, &r, cut);
}

static void fake_send_push(int fd, uint64_t sub)
{
	Vmcheck__V1__Response r = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__Event ev = VMCHECK__V1__EVENT__INIT;

	ev.subscription_id = sub;
	r.kind_case = VMCHECK__V1__RESPONSE__KIND_EVENT;
	r.event = &ev;
	fake_send_frame(fd, &r, 0);
}

/* A State reply to @id: @n_links links named l0, l1, ..., a hostname of @host_len 'h's. */
static void fake_send_state(int fd, uint64_t id, size_t n_links, size_t host_len)
{
	Vmcheck__V1__Response r = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__State st = VMCHECK__V1__STATE__INIT;
	Vmcheck__V1__System sys = VMCHECK__V1__SYSTEM__INIT;
	Vmcheck__V1__Link *links = calloc(n_links ? n_links : 1, sizeof(*links));
	Vmcheck__V1__Link **lp = calloc(n_links ? n_links : 1, sizeof(*lp));
	char *host = malloc(host_len + 1);

	if (!links || !lp || !host)
		goto out;
	memset(host, 'h', host_len);
	host[host_len] = '\0';
	for (size_t i = 0; i < n_links; i++) {
		vmcheck__v1__link__init(&links[i]);
		links[i].ifindex = (uint32_t)i + 1;
		lp[i] = &links[i];
	}
	sys.hostname = host;
	st.system = &sys;
	st.links = lp;
	st.n_links = n_links;
	st.sections = VMCHECK__V1__SECTION__SECTION_SYSTEM | VMCHECK__V1__SECTION__SECTION_LINKS;
	r.id = id;
	r.kind_case = VMCHECK__V1__RESPONSE__KIND_STATE;
	r.state = &st;
	fake_send_frame(fd, &r, 0);
out:
	free(links);
	free(lp);
	free(host);
}

/*
 * A State of @n empty links, written by hand: 2 bytes each on the wire, a
 * struct of ~100 bytes each once decoded.
 */
static void fake_send_bloat(int fd, uint64_t id, size_t n)
{
	size_t inner = 2 * n, len = 0;
	uint8_t *buf = malloc(inner + 32), hdr[VMC_FRAME_HDR];

	if (!buf)
		return;
	buf[len++] = 0x08; /* id */
	for (uint64_t v = id;; v >>= 7) {
		buf[len++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
		if (v < 0x80)
			break;
	}
	buf[len++] = 0x5a; /* Response.state, field 11 */
	for (size_t v = inner;; v >>= 7) {
		buf[len++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
		if (v < 0x80)
			break;
	}
	for (size_t i = 0; i < n; i++) {
		buf[len++] = 0x5a; /* State.links, field 11, empty */
		buf[len++] = 0x00;
	}
	vmc_frame_header(hdr, (uint32_t)len);
	vmc_write_all(fd, hdr, sizeof(hdr), VMC_WRITE_TIMEOUT_MS, NULL);
	vmc_write_all(fd, buf, len, VMC_WRITE_TIMEOUT_MS, NULL);
	free(buf);
}

static void *fake_run(void *arg)
{
	struct fake *f = arg;
	struct vmc_frame_reader rd;
	static const uint8_t junk[] = "stale bytes VMC VM\0\1\2VMC1\xff\xff\xff\xff more junk";
	static const uint8_t bad[] = { 'V', 'M', 'C', '1', 0, 0, 0, 2, 0xff, 0xff };

	vmc_frame_reader_init(&rd, 0);
	for (unsigned i = 0; i < f->requests; i++) {
		Vmcheck__V1__Request *req = fake_read(f->fd, &rd);
		uint64_t id;

		if (!req)
			break;
		id = req->id;
		vmcheck__v1__request__free_unpacked(req, NULL);
		switch (f->mode) {
		case FAKE_PUSH_THEN_REPLY:
			fake_send_hello(f->fd, id + 1000, "stale", 0);
			fake_send_push(f->fd, 7);
			fake_send_hello(f->fd, id, "fake 1.0", 0);
			break;
		case FAKE_SILENT:
			break;
		case FAKE_RESTARTED:
			fake_send_hello(f->fd, 0, "fake 2.0", 0);
			break;
		case FAKE_RESTARTED_REPLY:
			fake_send_hello(f->fd, 0, "fake 2.0", 0);
			fake_send_hello(f->fd, id, "fake 2.0", 0);
			break;
		case FAKE_HALF_REPLY:
			fake_send_hello(f->fd, id, "fake 1.0", 12);
			shutdown(f->fd, SHUT_RDWR);
			break;
		case FAKE_GARBAGE_FIRST:
			vmc_write_all(f->fd, junk, sizeof(junk) - 1, VMC_WRITE_TIMEOUT_MS, NULL);
			fake_send_hello(f->fd, id, "fake 1.0", 0);
			break;
		case FAKE_UNDECODABLE:
			vmc_write_all(f->fd, bad, sizeof(bad), VMC_WRITE_TIMEOUT_MS, NULL);
			break;
		case FAKE_LINKS:
			fake_send_state(f->fd, id, f->links_n, 8);
			break;
		case FAKE_LONG_HOSTNAME:
			fake_send_state(f->fd, id, 1, VMC_BOUND_STRING + 1);
			break;
		case FAKE_BLOAT:
			fake_send_bloat(f->fd, id, (VMC_BOUND_FRAME - 64) / 2);
			break;
		case FAKE_WRONG_IDS:
			for (unsigned n = 0; n < f->wrong_n; n++)
				fake_send_hello(f->fd, id + 1 + n, "wrong id", 0);
			break;
		case FAKE_FLOOD:
			/* Until the host hangs up: a write that fails ends it. */
			for (unsigned n = 0; n < 100000; n++) {
				uint8_t *frame;
				size_t len;
				Vmcheck__V1__Response r = VMCHECK__V1__RESPONSE__INIT;
				Vmcheck__V1__Event ev = VMCHECK__V1__EVENT__INIT;
				int w;

				ev.subscription_id = 7;
				r.kind_case = VMCHECK__V1__RESPONSE__KIND_EVENT;
				r.event = &ev;
				if (vmc_pb_frame(&r.base, VMC_FRAME_MAX_DEFAULT, &frame, &len) < 0)
					break;
				w = vmc_write_all(f->fd, frame, len, 2000, NULL);
				free(frame);
				if (w < 0)
					break;
			}
			break;
		}
	}
	vmc_frame_reader_free(&rd);
	return NULL;
}

/* Start a fake agent answering @requests requests; *@c is the client's connection. */
static void fake_start(struct fake *f, enum fake_mode mode, unsigned requests,
		       struct vmc_agent_conn **c)
{
	int sv[2];

	memset(f, 0, sizeof(*f));
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->fd = sv[1];
	f->mode = mode;
	f->requests = requests;
	CU_ASSERT_EQUAL_FATAL(vmc_agent_connect_fd(sv[0], "fake:agent", c, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&f->thread, NULL, fake_run, f), 0);
}

/* Close the client first: a silent fake is still blocked reading. */
static void fake_stop(struct fake *f, struct vmc_agent_conn *c)
{
	vmc_agent_close(c);
	pthread_join(f->thread, NULL);
	close(f->fd);
}

static void hello_request(Vmcheck__V1__Request *req, Vmcheck__V1__Hello *h)
{
	vmcheck__v1__request__init(req);
	vmcheck__v1__hello__init(h);
	h->protocol_version = 1;
	req->kind_case = VMCHECK__V1__REQUEST__KIND_HELLO;
	req->hello = h;
}

static void reply_matched_by_id_and_push_queued(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp, *ev;
	Vmcheck__V1__Request req;
	Vmcheck__V1__Hello h;
	struct vmc_agent_conn *c;
	struct fake f;
	uint64_t first;

	fake_start(&f, FAKE_PUSH_THEN_REPLY, 2, &c);
	hello_request(&req, &h);
	CU_ASSERT_EQUAL_FATAL(vmc_agent_call(c, &req, 5000, &rsp, &err), 0);
	first = req.id;
	CU_ASSERT_EQUAL(rsp->id, req.id);
	CU_ASSERT_NOT_EQUAL(rsp->id, 0);
	CU_ASSERT_EQUAL_FATAL(rsp->kind_case, VMCHECK__V1__RESPONSE__KIND_HELLO);
	CU_ASSERT_STRING_EQUAL(rsp->hello->agent_version, "fake 1.0");
	vmc_agent_response_free(c, rsp);

	/* The push that came before the reply waits in the queue: no read needed. */
	CU_ASSERT_EQUAL_FATAL(vmc_agent_next_event(c, 0, &ev, &err), 0);
	CU_ASSERT_EQUAL(ev->id, 0);
	CU_ASSERT_EQUAL_FATAL(ev->kind_case, VMCHECK__V1__RESPONSE__KIND_EVENT);
	CU_ASSERT_EQUAL(ev->event->subscription_id, 7);

	/* Ids increase; a response may outlive the next call. */
	CU_ASSERT_EQUAL_FATAL(vmc_agent_call(c, &req, 5000, &rsp, &err), 0);
	CU_ASSERT_EQUAL(rsp->id, first + 1);
	CU_ASSERT_STRING_EQUAL(rsp->hello->agent_version, "fake 1.0");
	vmc_agent_response_free(c, ev);
	vmc_agent_response_free(c, rsp);
	CU_ASSERT_EQUAL_FATAL(vmc_agent_next_event(c, 0, &ev, &err), 0);
	CU_ASSERT_EQUAL(ev->event->subscription_id, 7);
	vmc_agent_response_free(c, ev);
	CU_ASSERT_EQUAL(vmc_agent_next_event(c, 20, &ev, &err), -ETIMEDOUT);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "no event within 20 ms"));
	vmc_error_clear(&err);
	fake_stop(&f, c);
}

/*
 * A guest pushing without end while a reply is awaited: the host holds no
 * more than its bound, cuts the agent off and says why, here and after.
 */
static void a_flood_of_pushes_is_cut_off(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp = NULL;
	Vmcheck__V1__Request req;
	Vmcheck__V1__Hello h;
	struct vmc_agent_conn *c;
	struct fake f;

	fake_start(&f, FAKE_FLOOD, 1, &c);
	hello_request(&req, &h);
	CU_ASSERT_EQUAL(vmc_agent_call(c, &req, 20000, &rsp, &err), -EPIPE);
	CU_ASSERT_PTR_NULL(rsp);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "the agent flooded the host with pushes: 4097"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "waiting for the reply to hello"));
	vmc_error_clear(&err);
	/* Cut off for good: the next call says the same at once. */
	CU_ASSERT_EQUAL(vmc_agent_call(c, &req, 5000, &rsp, &err), -EPIPE);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "flooded"));
	vmc_error_clear(&err);
	fake_stop(&f, c);
}

/* A GetState call on @c: its return, and the error message in @err. */
static int get_state(struct vmc_agent_conn *c, struct vmc_error *err)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__GetState get = VMCHECK__V1__GET_STATE__INIT;
	Vmcheck__V1__Response *rsp = NULL;
	int r;

	req.kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
	req.get_state = &get;
	r = vmc_agent_call(c, &req, 20000, &rsp, err);
	if (r == 0) {
		CU_ASSERT_EQUAL(rsp->kind_case, VMCHECK__V1__RESPONSE__KIND_STATE);
		vmc_agent_response_free(c, rsp);
	}
	return r;
}

/*
 * Entries per section: as many links as the bound allows pass, one more
 * cuts the agent off with the bound named, now and for every later call.
 */
static void links_over_the_bound_cut_the_agent_off(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_agent_conn *c;
	struct fake f;

	fake_start(&f, FAKE_LINKS, 1, &c);
	f.links_n = VMC_BOUND_LINKS;
	CU_ASSERT_EQUAL(get_state(c, &err), 0);
	fake_stop(&f, c);

	fake_start(&f, FAKE_LINKS, 1, &c);
	f.links_n = VMC_BOUND_LINKS + 1;
	CU_ASSERT_EQUAL(get_state(c, &err), -EMSGSIZE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg,
				      "fake:agent: the agent sent 65537 links (state.links), "
				      "over the bound of 65536 links while waiting for the reply "
				      "to get_state: connection cut off"));
	CU_ASSERT_PTR_NULL(strchr(err.msg, '\n'));
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(get_state(c, &err), -EPIPE);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "65537 links"));
	vmc_error_clear(&err);
	fake_stop(&f, c);
}

/* Bytes per string: the field is named by its path. */
static void a_string_over_the_bound_cuts_the_agent_off(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_agent_conn *c;
	struct fake f;

	fake_start(&f, FAKE_LONG_HOSTNAME, 1, &c);
	CU_ASSERT_EQUAL(get_state(c, &err), -EMSGSIZE);
	CU_ASSERT_PTR_NOT_NULL(err.msg &&
			       strstr(err.msg, "a string of 65537 bytes (state.system.hostname), "
					       "over the bound of 65536 bytes"));
	vmc_error_clear(&err);
	fake_stop(&f, c);
}

/* A frame that would decode to more than the budget is refused while decoding. */
static void a_frame_decoding_over_the_budget_cuts_the_agent_off(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_agent_conn *c;
	struct fake f;

	fake_start(&f, FAKE_BLOAT, 1, &c);
	CU_ASSERT_EQUAL(get_state(c, &err), -EMSGSIZE);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "decodes to more than 64 MiB, over the "
							  "bound of one reply"));
	vmc_error_clear(&err);
	fake_stop(&f, c);
}

/*
 * Replies with ids no request has: a few are dropped and counted in the
 * timeout's message; more than the bound cut the agent off.
 */
static void replies_to_nothing_are_bounded(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp = NULL;
	Vmcheck__V1__Request req;
	Vmcheck__V1__Hello h;
	struct vmc_agent_conn *c;
	struct fake f;

	fake_start(&f, FAKE_WRONG_IDS, 1, &c);
	f.wrong_n = 3;
	hello_request(&req, &h);
	CU_ASSERT_EQUAL(vmc_agent_call(c, &req, 300, &rsp, &err), -ETIMEDOUT);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "no reply to hello within 300 ms "
							  "(3 replies with another id dropped)"));
	vmc_error_clear(&err);
	fake_stop(&f, c);

	fake_start(&f, FAKE_WRONG_IDS, 1, &c);
	f.wrong_n = VMC_BOUND_STALE_REPLIES + 1;
	CU_ASSERT_EQUAL(vmc_agent_call(c, &req, 20000, &rsp, &err), -EPROTO);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "the agent sent 4097 replies to no "
							  "request (wrong ids), over the bound of "
							  "4096"));
	vmc_error_clear(&err);
	fake_stop(&f, c);
}

static void silent_agent_times_out(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__GetState get = VMCHECK__V1__GET_STATE__INIT;
	Vmcheck__V1__Response *rsp = NULL;
	struct vmc_agent_conn *c;
	struct fake f;
	uint64_t t0, ms;

	fake_start(&f, FAKE_SILENT, 1, &c);
	req.kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
	req.get_state = &get;
	t0 = vmc_mono_ns();
	CU_ASSERT_EQUAL(vmc_agent_call(c, &req, 100, &rsp, &err), -ETIMEDOUT);
	ms = (vmc_mono_ns() - t0) / 1000000;
	CU_ASSERT(ms >= 99 && ms < 2000);
	CU_ASSERT_PTR_NULL(rsp);
	CU_ASSERT_EQUAL(err.code, -ETIMEDOUT);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
	CU_ASSERT_STRING_EQUAL(err.msg, "fake:agent: no reply to get_state within 100 ms");
	vmc_error_clear(&err);
	fake_stop(&f, c);
}

/*
 * A Hello pushed while a reply is awaited is a new agent: the request went
 * with the old one. The call ends a second later saying so, not at its own
 * deadline; the announcement stays queued for the session to resync on. A
 * new agent that did get the request still answers it.
 */
static void a_restarted_agent_ends_the_wait(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__GetState get = VMCHECK__V1__GET_STATE__INIT;
	Vmcheck__V1__Response *rsp = NULL, *ev = NULL;
	Vmcheck__V1__Hello h;
	struct vmc_agent_conn *c;
	struct fake f;
	uint64_t t0, ms;

	fake_start(&f, FAKE_RESTARTED, 1, &c);
	req.kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
	req.get_state = &get;
	t0 = vmc_mono_ns();
	CU_ASSERT_EQUAL(vmc_agent_call(c, &req, 30000, &rsp, &err), -ECONNRESET);
	ms = (vmc_mono_ns() - t0) / 1000000;
	CU_ASSERT(ms >= 900 && ms < 5000);
	CU_ASSERT_PTR_NULL(rsp);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
	CU_ASSERT_STRING_EQUAL(err.msg,
			       "fake:agent: the agent restarted while waiting for the reply to "
			       "get_state (it announced itself again), and no reply came within "
			       "1000 ms after that: the request was lost");
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL_FATAL(vmc_agent_next_event(c, 0, &ev, &err), 0);
	CU_ASSERT_EQUAL(ev->kind_case, VMCHECK__V1__RESPONSE__KIND_HELLO);
	vmc_agent_response_free(c, ev);
	fake_stop(&f, c);

	fake_start(&f, FAKE_RESTARTED_REPLY, 1, &c);
	hello_request(&req, &h);
	CU_ASSERT_EQUAL_FATAL(vmc_agent_call(c, &req, 30000, &rsp, &err), 0);
	CU_ASSERT_STRING_EQUAL(rsp->hello->agent_version, "fake 2.0");
	vmc_agent_response_free(c, rsp);
	fake_stop(&f, c);
}

/*
 * An agent that reads nothing: a request too big for the socket buffer is
 * cut at the write timeout, even with a call that would wait forever, and
 * the connection refuses every call after it with the reason.
 */
static void a_request_cut_by_the_write_timeout_leaves_the_connection_unusable(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp = NULL;
	Vmcheck__V1__Request req;
	Vmcheck__V1__Hello h;
	struct vmc_agent_conn *c;
	char *big = malloc(1 << 20);
	uint64_t t0, ms;
	int sv[2];

	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, 'x', (1 << 20) - 1);
	big[(1 << 20) - 1] = '\0';
	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_agent_connect_fd(sv[0], "deaf:agent", &c, NULL), 0);
	vmc_agent_set_write_timeout(c, 200);
	hello_request(&req, &h);
	h.client = big;
	t0 = vmc_mono_ns();
	CU_ASSERT_EQUAL(vmc_agent_call(c, &req, -1, &rsp, &err), -ETIMEDOUT);
	ms = (vmc_mono_ns() - t0) / 1000000;
	CU_ASSERT(ms >= 199 && ms < 2000);
	CU_ASSERT_PTR_NULL(rsp);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "deaf:agent: sending hello: the agent took "));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, " bytes in 200 ms; the connection is unusable "
					       "(a partial frame was written)"));
	vmc_error_clear(&err);

	/* A small request now would be read as the rest of the big one: refused at once. */
	h.client = "small";
	t0 = vmc_mono_ns();
	CU_ASSERT_EQUAL(vmc_agent_call(c, &req, 5000, &rsp, &err), -EPIPE);
	CU_ASSERT((vmc_mono_ns() - t0) / 1000000 < 100);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "deaf:agent: hello: the connection is unusable "
					       "since sending hello timed out after "));
	vmc_error_clear(&err);
	vmc_agent_close(c);
	close(sv[1]);
	free(big);
}

/*
 * Nothing written by the call's deadline: no frame was cut, so the
 * connection works again once the agent reads (the fake skips the filler
 * as garbage before a magic).
 */
static void a_request_not_started_by_the_deadline_leaves_the_connection_usable(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp = NULL;
	Vmcheck__V1__Request req;
	Vmcheck__V1__Hello h;
	struct vmc_agent_conn *c;
	uint8_t fill[4096] = { 0 };
	struct fake f;
	int sv[2];

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_agent_connect_fd(sv[0], "slow:agent", &c, NULL), 0);
	/* The agent has read nothing yet: the socket is full to the last byte. */
	while (send(sv[0], fill, sizeof(fill), MSG_DONTWAIT) > 0)
		;
	while (send(sv[0], fill, 1, MSG_DONTWAIT) > 0)
		;
	hello_request(&req, &h);
	CU_ASSERT_EQUAL(vmc_agent_call(c, &req, 100, &rsp, &err), -ETIMEDOUT);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
	CU_ASSERT_STRING_EQUAL(err.msg,
			       "slow:agent: sending hello: the agent took nothing in 100 ms");
	vmc_error_clear(&err);

	memset(&f, 0, sizeof(f));
	f.fd = sv[1];
	f.mode = FAKE_PUSH_THEN_REPLY;
	f.requests = 1;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&f.thread, NULL, fake_run, &f), 0);
	CU_ASSERT_EQUAL(vmc_agent_call(c, &req, 5000, &rsp, &err), 0);
	if (rsp) {
		CU_ASSERT_EQUAL(rsp->id, req.id);
		vmc_agent_response_free(c, rsp);
	}
	vmc_error_clear(&err);
	fake_stop(&f, c);
}

static void agent_closing_mid_reply_is_epipe(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp = NULL;
	Vmcheck__V1__Request req;
	Vmcheck__V1__Hello h;
	struct vmc_agent_conn *c;
	struct fake f;

	fake_start(&f, FAKE_HALF_REPLY, 1, &c);
	hello_request(&req, &h);
	CU_ASSERT_EQUAL(vmc_agent_call(c, &req, 5000, &rsp, &err), -EPIPE);
	CU_ASSERT_PTR_NULL(rsp);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
	CU_ASSERT_STRING_EQUAL(err.msg,
			       "fake:agent: the connection was closed in the middle of a frame "
			       "(12 bytes received) before replying to hello");
	/* The connection stays dead, without waiting. */
	CU_ASSERT_EQUAL(vmc_agent_call(c, &req, -1, &rsp, &err), -EPIPE);
	CU_ASSERT_EQUAL(vmc_agent_next_event(c, -1, &rsp, &err), -EPIPE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "while waiting for an event"));
	vmc_error_clear(&err);
	fake_stop(&f, c);
}

static void garbage_before_a_reply_is_skipped(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp;
	Vmcheck__V1__Request req;
	Vmcheck__V1__Hello h;
	struct vmc_agent_conn *c;
	struct fake f;

	fake_start(&f, FAKE_GARBAGE_FIRST, 2, &c);
	hello_request(&req, &h);
	for (int i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL_FATAL(vmc_agent_call(c, &req, 5000, &rsp, &err), 0);
		CU_ASSERT_EQUAL(rsp->id, req.id);
		CU_ASSERT_STRING_EQUAL(rsp->hello->agent_version, "fake 1.0");
		vmc_agent_response_free(c, rsp);
	}
	CU_ASSERT_PTR_NULL(err.msg);
	fake_stop(&f, c);
}

static void undecodable_frame_is_eproto(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp = NULL;
	Vmcheck__V1__Request req;
	Vmcheck__V1__Hello h;
	struct vmc_agent_conn *c;
	struct fake f;

	fake_start(&f, FAKE_UNDECODABLE, 1, &c);
	hello_request(&req, &h);
	CU_ASSERT_EQUAL(vmc_agent_call(c, &req, 5000, &rsp, &err), -EPROTO);
	CU_ASSERT_PTR_NULL(rsp);
	CU_ASSERT_PTR_NOT_NULL(err.msg && strstr(err.msg, "undecodable frame (2 bytes) while "
							  "waiting for the reply to hello"));
	vmc_error_clear(&err);
	fake_stop(&f, c);
}

static void agent_error_reply_is_reported(void)
{
	Vmcheck__V1__Response rsp = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__Error e = VMCHECK__V1__ERROR__INIT;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_agent_conn *c;
	int sv[2];

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_agent_connect_fd(sv[0], "fake:agent", &c, NULL), 0);
	e.code = VMCHECK__V1__ERROR__CODE__NOT_FOUND;
	e.errno_value = ENOENT;
	e.message = "reading memory";
	rsp.kind_case = VMCHECK__V1__RESPONSE__KIND_ERROR;
	rsp.error = &e;
	CU_ASSERT_EQUAL(vmc_agent_expect(c, &rsp, VMCHECK__V1__RESPONSE__KIND_STATE, "get_state",
					 &err),
			-EREMOTEIO);
	CU_ASSERT_STRING_EQUAL(err.msg, "fake:agent: get_state: agent error NOT_FOUND: "
					"reading memory (No such file or directory)");
	rsp.kind_case = VMCHECK__V1__RESPONSE__KIND_SUBSCRIBED;
	CU_ASSERT_EQUAL(vmc_agent_expect(c, &rsp, VMCHECK__V1__RESPONSE__KIND_STATE, "get_state",
					 &err),
			-EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unexpected reply \"subscribed\""));
	CU_ASSERT_EQUAL(vmc_agent_expect(c, &rsp, VMCHECK__V1__RESPONSE__KIND_SUBSCRIBED, "x",
					 &err),
			0);
	vmc_error_clear(&err);
	vmc_agent_close(c);
	close(sv[1]);
}

/*
 * The agent chooses its error text: quoted into the host's error, a
 * newline cannot start a line of the text report (a forged "disk plug ...
 * ok"), an escape sequence cannot reach the terminal, and a backslash is
 * doubled so the text says what the agent sent.
 */
static void agent_error_text_is_quoted(void)
{
	Vmcheck__V1__Response rsp = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__Error e = VMCHECK__V1__ERROR__INIT;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_agent_conn *c;
	int sv[2];

	CU_ASSERT_EQUAL_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_agent_connect_fd(sv[0], "fake:agent", &c, NULL), 0);
	e.code = VMCHECK__V1__ERROR__CODE__INTERNAL;
	e.message = "a\\e\n  disk       plug disk1 (serial x) on port1   ok\x1b[2J";
	rsp.kind_case = VMCHECK__V1__RESPONSE__KIND_ERROR;
	rsp.error = &e;
	CU_ASSERT_EQUAL(vmc_agent_expect(c, &rsp, VMCHECK__V1__RESPONSE__KIND_STATE, "get_state",
					 &err),
			-EREMOTEIO);
	CU_ASSERT_STRING_EQUAL(err.msg,
			       "fake:agent: get_state: agent error INTERNAL: a\\\\e\\n  disk  "
			       "     plug disk1 (serial x) on port1   ok\\e[2J");
	vmc_error_clear(&err);
	vmc_agent_close(c);
	close(sv[1]);
}

static void bad_specs_and_missing_sockets(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_agent_conn *c = NULL;

	CU_ASSERT_EQUAL(vmc_agent_connect("tcp:1.2.3.4", &c, &err), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "expected unix:PATH, vserial:PATH, exec:COMMAND, "
					       "ssh://USER@HOST[:PORT][/PATH] or "
					       "libvirt-channel:DOMAIN/URI"));
	CU_ASSERT_EQUAL(vmc_agent_connect("exec:", &c, &err), -EINVAL);
	CU_ASSERT_EQUAL(vmc_agent_connect("unix:/nonexistent/vmcheck.sock", &c, &err), -ENOENT);
	CU_ASSERT_STRING_EQUAL(err.msg, "connecting to unix:/nonexistent/vmcheck.sock: "
					"No such file or directory");
	CU_ASSERT_EQUAL(vmc_agent_connect("vserial:/nonexistent/agent.sock", &c, &err), -ENOENT);
	CU_ASSERT_PTR_NULL(c);
	vmc_error_clear(&err);
}

static void *accept_and_answer(void *arg)
{
	struct fake *f = arg;
	int lfd = f->fd;

	f->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	close(lfd);
	if (f->fd >= 0)
		fake_run(f);
	return NULL;
}

static void unix_transport_round_trip(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp;
	struct vmc_agent_conn *c;
	char dir[] = "/tmp/vmc-client-XXXXXX", spec[128];
	struct fake f = { .mode = FAKE_PUSH_THEN_REPLY, .requests = 1 };

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/agent.sock", dir);
	f.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_EQUAL_FATAL(bind(f.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CU_ASSERT_EQUAL_FATAL(listen(f.fd, 1), 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&f.thread, NULL, accept_and_answer, &f), 0);
	snprintf(spec, sizeof(spec), "unix:%s", sa.sun_path);
	CU_ASSERT_EQUAL_FATAL(vmc_agent_connect(spec, &c, &err), 0);
	CU_ASSERT_STRING_EQUAL(vmc_agent_spec(c), spec);
	CU_ASSERT_EQUAL_FATAL(vmc_agent_hello(c, 5000, &rsp, &err), 0);
	CU_ASSERT_STRING_EQUAL(rsp->hello->agent_version, "fake 1.0");
	vmc_agent_response_free(c, rsp);
	vmc_agent_close(c);
	pthread_join(f.thread, NULL);
	close(f.fd);
	unlink(sa.sun_path);
	rmdir(dir);
}

/*
 * Connect to "exec:echo $$ >PIDFILE; @cmd" and return the shell's pid, so a
 * test can check that closing reaped it (a zombie still answers kill(0)).
 */
static pid_t exec_with_pid(const char *cmd, struct vmc_agent_conn **c)
{
	char dir[] = "/tmp/vmc-exec-XXXXXX", spec[256], pidfile[64];
	struct vmc_error err = VMC_ERROR_INIT;
	long pid = -1;
	FILE *fp;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(pidfile, sizeof(pidfile), "%s/pid", dir);
	snprintf(spec, sizeof(spec), "exec:echo $$ >%s; %s", pidfile, cmd);
	CU_ASSERT_EQUAL_FATAL(vmc_agent_connect(spec, c, &err), 0);
	for (int i = 0; i < 500 && pid < 0; i++) {
		fp = fopen(pidfile, "r");
		if (!fp || fscanf(fp, "%ld", &pid) != 1)
			usleep(10000);
		if (fp)
			fclose(fp);
	}
	unlink(pidfile);
	rmdir(dir);
	CU_ASSERT_FATAL(pid > 0);
	return (pid_t)pid;
}

static bool reaped(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

static void exec_agent_exit_status_is_reported(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp = NULL;
	struct vmc_agent_conn *c;
	pid_t pid = exec_with_pid("exit 3", &c);

	CU_ASSERT_EQUAL(vmc_agent_hello(c, 5000, &rsp, &err), -EPIPE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
	CU_ASSERT_PTR_NOT_NULL(
		strstr(err.msg, ": agent exited (status 3) before replying to hello"));
	CU_ASSERT_EQUAL(strncmp(err.msg, "exec:echo $$ >", 14), 0);
	vmc_error_clear(&err);
	vmc_agent_close(c);
	CU_ASSERT(reaped(pid));
}

/*
 * cat echoes the Hello request back, and a Request { id, hello } decodes as
 * a Response { id, HelloReply }: a real round trip through a child process.
 */
static void exec_round_trip_and_reap(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp;
	struct vmc_agent_conn *c;
	pid_t pid = exec_with_pid("exec cat", &c);

	CU_ASSERT_EQUAL_FATAL(vmc_agent_hello(c, 5000, &rsp, &err), 0);
	CU_ASSERT_EQUAL(rsp->hello->protocol_version, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(rsp->hello->agent_version, "vmcheck"));
	vmc_agent_close(c); /* frees rsp too */
	CU_ASSERT(reaped(pid));
}

static void exec_child_ignoring_eof_is_terminated(void)
{
	struct vmc_agent_conn *c;
	pid_t pid = exec_with_pid("exec sleep 30", &c);
	uint64_t t0 = vmc_mono_ns(), ms;

	vmc_agent_close(c);
	ms = (vmc_mono_ns() - t0) / 1000000;
	CU_ASSERT(ms >= 900 && ms < 3000);
	CU_ASSERT(reaped(pid));
}

VMC_SUITE(agent_client, NULL, NULL, VMC_TEST(reply_matched_by_id_and_push_queued),
	  VMC_TEST(a_flood_of_pushes_is_cut_off), VMC_TEST(links_over_the_bound_cut_the_agent_off),
	  VMC_TEST(a_string_over_the_bound_cuts_the_agent_off),
	  VMC_TEST(a_frame_decoding_over_the_budget_cuts_the_agent_off),
	  VMC_TEST(replies_to_nothing_are_bounded),
	  VMC_TEST(a_request_cut_by_the_write_timeout_leaves_the_connection_unusable),
	  VMC_TEST(a_request_not_started_by_the_deadline_leaves_the_connection_usable),
	  VMC_TEST(silent_agent_times_out), VMC_TEST(a_restarted_agent_ends_the_wait),
	  VMC_TEST(agent_closing_mid_reply_is_epipe), VMC_TEST(garbage_before_a_reply_is_skipped),
	  VMC_TEST(undecodable_frame_is_eproto), VMC_TEST(agent_error_reply_is_reported),
	  VMC_TEST(agent_error_text_is_quoted), VMC_TEST(bad_specs_and_missing_sockets),
	  VMC_TEST(unix_transport_round_trip), VMC_TEST(exec_agent_exit_status_is_reported),
	  VMC_TEST(exec_round_trip_and_reap), VMC_TEST(exec_child_ignoring_eof_is_terminated))
