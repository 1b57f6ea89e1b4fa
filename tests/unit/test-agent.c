/* SPDX-License-Identifier: MIT */
/*
 * The agent core, driven through its byte interface with a capturing send
 * callback against a scratch sysroot: negotiation, one reply per request,
 * resynchronisation after bad frames, subscriptions and pushes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "frame.h"
#include "harness.h"

#define BOOT_ID "6f1c3a4e-2b8d-4e57-9a0b-1c2d3e4f5a6b"
#define MAX_CAPTURED 32
#define S(x) VMCHECK__V1__SECTION__SECTION_##x
#define ECODE(x) VMCHECK__V1__ERROR__CODE__##x
#define RKIND(x) VMCHECK__V1__RESPONSE__KIND_##x

struct capture {
	pthread_mutex_t lock;
	size_t n;
	Vmcheck__V1__Response *resp[MAX_CAPTURED];
	size_t bad; /* frames that were not one well-formed Response */
};

static struct fx fx;
static struct capture cap = { .lock = PTHREAD_MUTEX_INITIALIZER };
static struct vmc_agent *ag;
static const char *const crash_dirs[] = { "var/crash", NULL };
static const struct vmc_agent_hooks *start_hooks; /* for the next start() */

/* Each sent frame must be exactly one header plus one Response. */
static int capture_send(void *ctx, const uint8_t *f, size_t len)
{
	struct capture *c = ctx;
	Vmcheck__V1__Response *r = NULL;
	uint8_t hdr[VMC_FRAME_HDR];

	if (len >= VMC_FRAME_HDR) {
		vmc_frame_header(hdr, (uint32_t)(len - VMC_FRAME_HDR));
		if (!memcmp(hdr, f, VMC_FRAME_HDR))
			r = vmcheck__v1__response__unpack(NULL, len - VMC_FRAME_HDR,
							  f + VMC_FRAME_HDR);
	}
	pthread_mutex_lock(&c->lock);
	if (r && c->n < MAX_CAPTURED)
		c->resp[c->n++] = r;
	else {
		c->bad++;
		if (r)
			vmcheck__v1__response__free_unpacked(r, NULL);
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void capture_reset(void)
{
	for (size_t i = 0; i < cap.n; i++)
		vmcheck__v1__response__free_unpacked(cap.resp[i], NULL);
	cap.n = 0;
	cap.bad = 0;
}

static void start(size_t max_frame, bool synchronous, unsigned max_inflight)
{
	struct vmc_agent_config cfg = { 0 };

	fx_init(&fx);
	fx_write(&fx, "proc/sys/kernel/random/boot_id", BOOT_ID "\n");
	cfg.state.root = fx.root;
	cfg.state.crash_dirs = crash_dirs;
	cfg.max_frame = max_frame;
	cfg.synchronous = synchronous;
	cfg.max_inflight = max_inflight;
	cfg.transport = "test";
	cfg.hooks = start_hooks;
	CU_ASSERT_EQUAL_FATAL(vmc_agent_new(&cfg, capture_send, &cap, &ag), 0);
}

static void stop(void)
{
	vmc_agent_free(ag);
	ag = NULL;
	capture_reset();
	fx_cleanup(&fx);
}

/* Frame @req and feed it to the agent in one piece. */
static void feed_request(Vmcheck__V1__Request *req)
{
	uint8_t *f;
	size_t len;

	CU_ASSERT_EQUAL_FATAL(vmc_pb_frame(&req->base, VMC_FRAME_MAX_DEFAULT, &f, &len), 0);
	CU_ASSERT_EQUAL(vmc_agent_feed(ag, f, len), 0);
	free(f);
}

static void feed_bytes(const void *p, size_t n)
{
	CU_ASSERT_EQUAL(vmc_agent_feed(ag, p, n), 0);
}

static void send_hello(uint64_t id, uint32_t version)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Hello h = VMCHECK__V1__HELLO__INIT;

	h.protocol_version = version;
	h.client = "test-agent";
	req.id = id;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_HELLO;
	req.hello = &h;
	feed_request(&req);
}

static void send_get_state(uint64_t id, uint32_t sections)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__GetState g = VMCHECK__V1__GET_STATE__INIT;

	g.sections = sections;
	req.id = id;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
	req.get_state = &g;
	feed_request(&req);
}

static void send_subscribe(uint64_t id, uint32_t sections, uint32_t coalesce_ms)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Subscribe s = VMCHECK__V1__SUBSCRIBE__INIT;

	s.sections = sections;
	s.coalesce_ms = coalesce_ms;
	req.id = id;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_SUBSCRIBE;
	req.subscribe = &s;
	feed_request(&req);
}

static void send_unsubscribe(uint64_t id, uint64_t sub)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Unsubscribe u = VMCHECK__V1__UNSUBSCRIBE__INIT;

	u.subscription_id = sub;
	req.id = id;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_UNSUBSCRIBE;
	req.unsubscribe = &u;
	feed_request(&req);
}

/* The @i-th captured reply, which must be of @kind with @id. */
static Vmcheck__V1__Response *reply(size_t i, Vmcheck__V1__Response__KindCase kind, uint64_t id)
{
	CU_ASSERT_EQUAL_FATAL(cap.bad, 0);
	CU_ASSERT_FATAL(i < cap.n);
	CU_ASSERT_EQUAL_FATAL(cap.resp[i]->kind_case, kind);
	CU_ASSERT_EQUAL(cap.resp[i]->id, id);
	return cap.resp[i];
}

static void expect_error(size_t i, uint64_t id, Vmcheck__V1__Error__Code code)
{
	Vmcheck__V1__Response *r = reply(i, RKIND(ERROR), id);

	CU_ASSERT_EQUAL(r->error->code, code);
	CU_ASSERT(strlen(r->error->message) > 0);
}

static bool has_capability(const Vmcheck__V1__HelloReply *hr, const char *cap_name)
{
	for (size_t i = 0; i < hr->n_capabilities; i++)
		if (!strcmp(hr->capabilities[i], cap_name))
			return true;
	return false;
}

static void hello_negotiates_the_version(void)
{
	Vmcheck__V1__HelloReply *hr;

	start(0, true, 0);
	send_hello(5, 3);
	send_hello(6, 1);
	send_hello(7, 0);
	CU_ASSERT_EQUAL_FATAL(cap.n, 3);
	hr = reply(0, RKIND(HELLO), 5)->hello;
	CU_ASSERT_EQUAL(hr->protocol_version, 1);
	CU_ASSERT_STRING_EQUAL(hr->agent_version, VMC_VERSION);
	CU_ASSERT_STRING_EQUAL(hr->boot_id, BOOT_ID);
	CU_ASSERT_STRING_EQUAL(hr->transport, "test");
	CU_ASSERT_EQUAL(hr->max_frame, VMC_FRAME_MAX_DEFAULT);
	CU_ASSERT(has_capability(hr, "state"));
	CU_ASSERT(has_capability(hr, "subscribe"));
	CU_ASSERT(has_capability(hr, "section:links"));
	CU_ASSERT(has_capability(hr, "section:crash"));
	/* No watcher in this agent: it must not promise pushes. */
	CU_ASSERT_FALSE(has_capability(hr, "push"));
	/* Minor 1: the net and memory probes, next to the first release's. */
	CU_ASSERT_EQUAL(hr->protocol_minor, 2);
	CU_ASSERT(has_capability(hr, "probe"));
	CU_ASSERT(has_capability(hr, "probe:disk"));
	CU_ASSERT(has_capability(hr, "probe:cpu"));
	CU_ASSERT(has_capability(hr, "probe:net"));
	CU_ASSERT(has_capability(hr, "probe:memory"));
	CU_ASSERT_EQUAL(reply(1, RKIND(HELLO), 6)->hello->protocol_version, 1);
	expect_error(2, 7, ECODE(VERSION));
	CU_ASSERT_STRING_EQUAL(cap.resp[2]->error->request, "hello");
	stop();
}

static void get_state_carries_id_generation_and_boot_id(void)
{
	Vmcheck__V1__State *a, *b;

	start(0, true, 0);
	send_get_state(11, S(SYSTEM));
	send_get_state(12, 0);
	send_get_state(13, 0x80); /* only bits this agent does not know */
	CU_ASSERT_EQUAL_FATAL(cap.n, 3);
	a = reply(0, RKIND(STATE), 11)->state;
	b = reply(1, RKIND(STATE), 12)->state;
	CU_ASSERT_STRING_EQUAL(a->boot_id, BOOT_ID);
	CU_ASSERT_STRING_EQUAL(b->boot_id, BOOT_ID);
	CU_ASSERT(a->generation > 0);
	CU_ASSERT(b->generation > a->generation);
	CU_ASSERT(a->mono_ns > 0);
	/* Asked for system only: nothing else read, successfully or not. */
	CU_ASSERT_EQUAL(a->sections & ~S(SYSTEM), 0);
	for (size_t i = 0; i < a->n_errors; i++)
		CU_ASSERT_EQUAL(a->errors[i]->section, S(SYSTEM));
	expect_error(2, 13, ECODE(BAD_ARGUMENT));
	stop();
}

static void unknown_request_kinds_get_an_error_with_the_id(void)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	/* id 22, then field 99 (a oneof member from some future contract). */
	static const uint8_t future[] = { 'V', 'M',  'C', '1',  0,    0,    0,
					  6,   0x08, 22,  0x9a, 0x06, 0x01, 0x00 };

	start(0, true, 0);
	req.id = 21;
	feed_request(&req);
	feed_bytes(future, sizeof(future));
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	expect_error(0, 21, ECODE(UNKNOWN_REQUEST));
	expect_error(1, 22, ECODE(UNKNOWN_REQUEST));
	stop();
}

static void probe_and_act_kinds_unknown_here_are_unsupported(void)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Probe probe = VMCHECK__V1__PROBE__INIT;
	Vmcheck__V1__Act act = VMCHECK__V1__ACT__INIT;
	Vmcheck__V1__ReadKmsg kmsg = VMCHECK__V1__READ_KMSG__INIT;

	start(0, true, 0);
	req.id = 31;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_PROBE;
	req.probe = &probe;
	feed_request(&req);
	req.id = 32;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_ACT;
	req.act = &act;
	feed_request(&req);
	req.id = 33;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_READ_KMSG;
	req.read_kmsg = &kmsg;
	feed_request(&req);
	CU_ASSERT_EQUAL_FATAL(cap.n, 3);
	expect_error(0, 31, ECODE(UNSUPPORTED));
	CU_ASSERT_STRING_EQUAL(cap.resp[0]->error->message,
			       "probe kind 0 is not known to this agent version");
	CU_ASSERT_STRING_EQUAL(cap.resp[0]->error->request, "probe");
	expect_error(1, 32, ECODE(UNSUPPORTED));
	/* The scratch root has no dev/kmsg. */
	expect_error(2, 33, ECODE(NOT_FOUND));
	CU_ASSERT_STRING_EQUAL(cap.resp[2]->error->request, "read_kmsg");
	stop();
}

/* Minor 1's probes reach their code: the fixture root makes both refuse. */
static void net_and_memory_probes_are_answered(void)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Probe probe = VMCHECK__V1__PROBE__INIT;
	Vmcheck__V1__NetProbe net = VMCHECK__V1__NET_PROBE__INIT;
	Vmcheck__V1__MemoryProbe mem = VMCHECK__V1__MEMORY_PROBE__INIT;

	start(0, true, 0);
	net.mac = "02:00:00:00:0a:01";
	net.address = "192.0.2.1";
	net.prefixlen = 24;
	net.peer = "192.0.2.2";
	net.port = 40000;
	net.token.data = (uint8_t *)"t";
	net.token.len = 1;
	req.id = 34;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_PROBE;
	req.probe = &probe;
	probe.kind_case = VMCHECK__V1__PROBE__KIND_NET;
	probe.net = &net;
	feed_request(&req);
	req.id = 35;
	probe.kind_case = VMCHECK__V1__PROBE__KIND_MEMORY;
	probe.memory = &mem;
	feed_request(&req);
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	expect_error(0, 34, ECODE(UNSUPPORTED));
	CU_ASSERT_PTR_NOT_NULL(strstr(cap.resp[0]->error->message, "the net probe acts on the "
								   "running kernel"));
	expect_error(1, 35, ECODE(BAD_ARGUMENT));
	CU_ASSERT_PTR_NOT_NULL(strstr(cap.resp[1]->error->message, "want a size > 0"));
	stop();
}

static void garbage_before_a_frame_is_skipped(void)
{
	static const char junk[] = "\x01\x02VMCjunkVMVVMC";
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Hello h = VMCHECK__V1__HELLO__INIT;
	uint8_t *f;
	size_t len;

	start(0, true, 0);
	feed_bytes(junk, sizeof(junk) - 1);
	send_hello(41, 1);
	/* The next frame arrives one byte at a time. */
	h.protocol_version = 1;
	req.id = 42;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_HELLO;
	req.hello = &h;
	CU_ASSERT_EQUAL_FATAL(vmc_pb_frame(&req.base, VMC_FRAME_MAX_DEFAULT, &f, &len), 0);
	for (size_t i = 0; i < len; i++)
		feed_bytes(f + i, 1);
	free(f);
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	reply(0, RKIND(HELLO), 41);
	reply(1, RKIND(HELLO), 42);
	stop();
}

static void a_truncated_frame_does_not_swallow_the_next(void)
{
	/*
	 * A frame cut short after three payload bytes (the start of a request
	 * with id 41): its announced 20 bytes run into the next frame and
	 * cannot decode, and the good frame must still be answered.
	 */
	static const uint8_t cut[] = { 'V', 'M', 'C', '1', 0, 0, 0, 20, 0x08, 41, 0x52 };

	start(0, true, 0);
	feed_bytes(cut, sizeof(cut));
	send_hello(43, 1);
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	expect_error(0, 0, ECODE(MALFORMED));
	reply(1, RKIND(HELLO), 43);
	stop();
}

static void an_oversize_header_is_refused_then_reading_recovers(void)
{
	static const uint8_t huge[] = { 'V', 'M', 'C', '1', 0x00, 0x10, 0x00, 0x00 };

	start(4096, true, 0);
	feed_bytes(huge, sizeof(huge));
	send_hello(51, 1);
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	expect_error(0, 0, ECODE(TOO_LARGE));
	CU_ASSERT_EQUAL(reply(1, RKIND(HELLO), 51)->hello->max_frame, 4096);
	stop();
}

static void a_payload_that_is_not_protobuf_is_malformed(void)
{
	static const uint8_t bad[] = { 'V', 'M', 'C', '1', 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff };

	start(0, true, 0);
	feed_bytes(bad, sizeof(bad));
	send_hello(61, 1);
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	expect_error(0, 0, ECODE(MALFORMED));
	reply(1, RKIND(HELLO), 61);
	/* The direct entry point answers the same way. */
	CU_ASSERT_EQUAL(vmc_agent_handle_payload(ag, bad + VMC_FRAME_HDR, 4), 0);
	CU_ASSERT_EQUAL_FATAL(cap.n, 3);
	expect_error(2, 0, ECODE(MALFORMED));
	stop();
}

static void subscriptions_get_ids_and_end_once(void)
{
	Vmcheck__V1__Subscribed *s1, *s2;

	start(0, true, 0);
	send_subscribe(71, S(LINKS), 0);
	send_subscribe(72, 0, 5);
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	s1 = reply(0, RKIND(SUBSCRIBED), 71)->subscribed;
	s2 = reply(1, RKIND(SUBSCRIBED), 72)->subscribed;
	CU_ASSERT(s1->subscription_id != 0);
	CU_ASSERT(s2->subscription_id != s1->subscription_id);
	/* The baseline is a State of the subscribed sections. */
	CU_ASSERT_PTR_NOT_NULL_FATAL(s1->state);
	CU_ASSERT_STRING_EQUAL(s1->state->boot_id, BOOT_ID);
	CU_ASSERT_EQUAL(s1->state->sections & ~S(LINKS), 0);
	CU_ASSERT(s2->state->generation > s1->state->generation);

	send_unsubscribe(73, s1->subscription_id);
	send_unsubscribe(74, s1->subscription_id);
	send_unsubscribe(75, 9999);
	send_subscribe(76, 0, 10001);
	CU_ASSERT_EQUAL_FATAL(cap.n, 6);
	CU_ASSERT_EQUAL(reply(2, RKIND(UNSUBSCRIBED), 73)->unsubscribed->subscription_id,
			s1->subscription_id);
	expect_error(3, 74, ECODE(NOT_FOUND));
	expect_error(4, 75, ECODE(NOT_FOUND));
	expect_error(5, 76, ECODE(BAD_ARGUMENT));
	stop();
}

static void make_cause(struct vmc_cause *c, const char *subsystem, const char *name, uint64_t mono)
{
	memset(c, 0, sizeof(*c));
	c->source = VMCHECK__V1__CAUSE__SOURCE__UEVENT;
	c->sections = vmc_watch_subsystem_sections(subsystem);
	c->mono_ns = mono;
	strcpy(c->action, "add");
	strcpy(c->subsystem, subsystem);
	strcpy(c->name, name);
	snprintf(c->devpath, sizeof(c->devpath), "/devices/x/%s", name);
}

static void pushes_reach_matching_subscriptions_only(void)
{
	struct vmc_cause c[2];
	Vmcheck__V1__Event *ev;
	uint64_t links_sub, mem_sub;

	start(0, true, 0);
	send_subscribe(81, S(LINKS) | S(BLOCKS), 0);
	send_subscribe(82, S(MEMORY), 0);
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	links_sub = reply(0, RKIND(SUBSCRIBED), 81)->subscribed->subscription_id;
	mem_sub = reply(1, RKIND(SUBSCRIBED), 82)->subscribed->subscription_id;

	make_cause(&c[0], "memory", "memory40", 1000);
	make_cause(&c[1], "net", "eth1", 2000);
	vmc_agent_push(ag, c, 2);
	CU_ASSERT_EQUAL_FATAL(cap.n, 4);
	for (size_t i = 2; i < 4; i++) {
		ev = reply(i, RKIND(EVENT), 0)->event;
		CU_ASSERT_PTR_NOT_NULL_FATAL(ev->state);
		CU_ASSERT_EQUAL_FATAL(ev->n_causes, 1);
		if (ev->subscription_id == links_sub) {
			/* Only its own cause, and only the sections the burst touched. */
			CU_ASSERT_STRING_EQUAL(ev->causes[0]->name, "eth1");
			CU_ASSERT_STRING_EQUAL(ev->causes[0]->subsystem, "net");
			CU_ASSERT_EQUAL(ev->causes[0]->sections, S(LINKS));
			CU_ASSERT_EQUAL(ev->kernel_mono_ns, 2000);
			CU_ASSERT_EQUAL(ev->state->sections & ~S(LINKS), 0);
			CU_ASSERT_EQUAL(ev->state->n_blocks, 0);
			CU_ASSERT_PTR_NULL(ev->state->memory);
		} else {
			CU_ASSERT_EQUAL(ev->subscription_id, mem_sub);
			CU_ASSERT_STRING_EQUAL(ev->causes[0]->name, "memory40");
			CU_ASSERT_EQUAL(ev->kernel_mono_ns, 1000);
			CU_ASSERT_EQUAL(ev->state->sections & ~S(MEMORY), 0);
			CU_ASSERT_EQUAL(ev->state->n_links, 0);
		}
	}
	/* Both Events come from one snapshot. */
	CU_ASSERT_EQUAL(cap.resp[2]->event->state->generation,
			cap.resp[3]->event->state->generation);

	/* A cpu change concerns neither subscription. */
	make_cause(&c[0], "cpu", "cpu3", 3000);
	vmc_agent_push(ag, c, 1);
	CU_ASSERT_EQUAL(cap.n, 4);

	/* Unsubscribed or disconnected: no more Events. */
	send_unsubscribe(83, mem_sub);
	CU_ASSERT_EQUAL_FATAL(cap.n, 5);
	make_cause(&c[0], "memory", "memory41", 4000);
	vmc_agent_push(ag, c, 2);
	CU_ASSERT_EQUAL_FATAL(cap.n, 6);
	CU_ASSERT_EQUAL(reply(5, RKIND(EVENT), 0)->event->subscription_id, links_sub);
	vmc_agent_disconnected(ag);
	vmc_agent_push(ag, c, 2);
	CU_ASSERT_EQUAL(cap.n, 6);
	stop();
}

/* The last pushed Event of subscription @sub whose crash section has dump @name whole, or NULL. */
static const Vmcheck__V1__Event *whole_dump_event(uint64_t sub, const char *name)
{
	for (size_t i = cap.n; i-- > 0;) {
		const Vmcheck__V1__Event *ev = cap.resp[i]->event;
		const Vmcheck__V1__Crash *c;

		if (cap.resp[i]->kind_case != RKIND(EVENT) || ev->subscription_id != sub ||
		    !ev->state || !(c = ev->state->crash))
			continue;
		for (size_t j = 0; j < c->n_dirs; j++)
			for (size_t k = 0; k < c->dirs[j]->n_dumps; k++)
				if (!strcmp(c->dirs[j]->dumps[k]->name, name) &&
				    c->dirs[j]->dumps[k]->has_vmcore &&
				    !c->dirs[j]->dumps[k]->incomplete)
					return ev;
	}
	return NULL;
}

/*
 * A dump written in a crash dir is pushed to a crash subscription: the
 * watcher follows the scratch root's var/crash with real inotify, and the
 * Event's crash section lists the dump, its cause a FILE one.
 */
static void a_dump_in_a_crash_dir_is_pushed(void)
{
	struct vmc_agent_config cfg = { 0 };
	const Vmcheck__V1__Event *ev = NULL;
	uint64_t sub;

	fx_init(&fx);
	fx_write(&fx, "proc/sys/kernel/random/boot_id", BOOT_ID "\n");
	fx_mkdir(&fx, "var/crash");
	cfg.state.root = fx.root;
	cfg.state.crash_dirs = crash_dirs;
	cfg.synchronous = true;
	cfg.transport = "test";
	cfg.watch = true;
	CU_ASSERT_EQUAL_FATAL(vmc_agent_new(&cfg, capture_send, &cap, &ag), 0);
	send_hello(1, 1);
	CU_ASSERT_EQUAL_FATAL(cap.n, 1);
	/* Every Linux has netlink and inotify: an agent without pushes fails here. */
	if (!has_capability(reply(0, RKIND(HELLO), 1)->hello, "push")) {
		stop();
		CU_FAIL_FATAL("the agent has no pushes (its watch did not start)");
	}
	send_subscribe(2, S(CRASH), 0);
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	sub = reply(1, RKIND(SUBSCRIBED), 2)->subscribed->subscription_id;
	CU_ASSERT_EQUAL_FATAL(cap.resp[1]->subscribed->state->crash->n_dirs, 1);
	CU_ASSERT_EQUAL(cap.resp[1]->subscribed->state->crash->dirs[0]->n_dumps, 0);

	fx_write(&fx, "var/crash/2026-12-07-05:41:52/vmcore", "KDUMP   and the rest");
	for (int i = 0; i < 500 && !ev; i++) {
		pthread_mutex_lock(&cap.lock);
		ev = whole_dump_event(sub, "2026-12-07-05:41:52");
		pthread_mutex_unlock(&cap.lock);
		if (!ev)
			usleep(10000);
	}
	if (!ev) {
		CU_FAIL("no Event listing the dump within 5 s");
		stop();
		return;
	}
	CU_ASSERT(ev->n_causes >= 1);
	for (size_t i = 0; i < ev->n_causes; i++) {
		CU_ASSERT_EQUAL(ev->causes[i]->source, VMCHECK__V1__CAUSE__SOURCE__FILE);
		CU_ASSERT_EQUAL(ev->causes[i]->sections, S(CRASH));
	}
	CU_ASSERT(ev->kernel_mono_ns > 0);
	CU_ASSERT_EQUAL(ev->state->sections & ~S(CRASH), 0);
	CU_ASSERT_EQUAL(cap.bad, 0);
	stop();
}

static void disconnect_drops_buffered_bytes(void)
{
	static const uint8_t half[] = { 'V', 'M', 'C', '1', 0, 0, 0, 4, 0x08, 0x01 };

	start(0, true, 0);
	feed_bytes(half, sizeof(half));
	vmc_agent_disconnected(ag);
	/* Had the half frame survived, it would swallow this one. */
	send_hello(91, 1);
	CU_ASSERT_EQUAL_FATAL(cap.n, 1);
	reply(0, RKIND(HELLO), 91);
	stop();
}

static void workers_answer_every_request(void)
{
	bool seen[8] = { false };

	start(0, false, 2);
	for (uint64_t id = 1; id <= 6; id++) {
		if (id % 2)
			send_get_state(id, S(SYSTEM));
		else
			send_hello(id, 1);
	}
	vmc_agent_drain(ag);
	pthread_mutex_lock(&cap.lock);
	CU_ASSERT_EQUAL(cap.bad, 0);
	/* Six replies, one per id, each of the right kind (or BUSY beyond 2 reads). */
	CU_ASSERT_EQUAL_FATAL(cap.n, 6);
	for (size_t i = 0; i < cap.n; i++) {
		Vmcheck__V1__Response *r = cap.resp[i];

		CU_ASSERT_FATAL(r->id >= 1 && r->id <= 6);
		CU_ASSERT_FALSE(seen[r->id]);
		seen[r->id] = true;
		if (r->id % 2 == 0) {
			CU_ASSERT_EQUAL(r->kind_case, RKIND(HELLO));
		} else if (r->kind_case == RKIND(ERROR)) {
			CU_ASSERT_EQUAL(r->error->code, ECODE(BUSY));
		} else {
			CU_ASSERT_EQUAL(r->kind_case, RKIND(STATE));
		}
	}
	pthread_mutex_unlock(&cap.lock);
	stop();
}

/* What the hooks of hooks_see_every_state_and_probe saw. */
static struct {
	unsigned states, sent;
	Vmcheck__V1__Probe__KindCase last_sent;
} hooked;

static int mark_state(void *ctx, struct vmc_arena *a, Vmcheck__V1__State *st)
{
	(void)ctx;
	hooked.states++;
	st->boot_id = vmc_arena_strdup(a, "hooked");
	return st->boot_id ? 0 : -ENOMEM;
}

/* Answers net probes itself, refuses memory probes, lets the rest run. */
static int take_probe(void *ctx, const Vmcheck__V1__Probe *p, struct vmc_arena *a,
		      Vmcheck__V1__ProbeResult *res, struct vmc_outcome *o)
{
	(void)ctx;
	if (p->kind_case == VMCHECK__V1__PROBE__KIND_MEMORY)
		return vmc_outcome_fail(o, ECODE(NOT_PERMITTED), 0, "the hook says no");
	if (p->kind_case != VMCHECK__V1__PROBE__KIND_NET)
		return 0;
	res->link = vmc_arena_strdup(a, "hooked0");
	return 1;
}

static void count_sent(void *ctx, const Vmcheck__V1__Probe *p)
{
	(void)ctx;
	hooked.sent++;
	hooked.last_sent = p->kind_case;
}

static void send_probe(uint64_t id, Vmcheck__V1__Probe *probe)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;

	req.id = id;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_PROBE;
	req.probe = probe;
	feed_request(&req);
}

/* A reply, a baseline and a push all pass the state hook; probes the probe hooks. */
static void hooks_see_every_state_and_probe(void)
{
	static const struct vmc_agent_hooks hooks = { .state = mark_state,
						      .probe = take_probe,
						      .probe_sent = count_sent };
	Vmcheck__V1__Probe probe = VMCHECK__V1__PROBE__INIT;
	Vmcheck__V1__NetProbe net = VMCHECK__V1__NET_PROBE__INIT;
	Vmcheck__V1__MemoryProbe mem = VMCHECK__V1__MEMORY_PROBE__INIT;
	Vmcheck__V1__CpuProbe cpu = VMCHECK__V1__CPU_PROBE__INIT;
	struct vmc_cause c;

	memset(&hooked, 0, sizeof(hooked));
	start_hooks = &hooks;
	start(0, true, 0);
	start_hooks = NULL;
	send_get_state(91, S(SYSTEM));
	send_subscribe(92, S(MEMORY), 0);
	make_cause(&c, "memory", "memory40", 1000);
	vmc_agent_push(ag, &c, 1);
	CU_ASSERT_EQUAL_FATAL(cap.n, 3);
	CU_ASSERT_STRING_EQUAL(reply(0, RKIND(STATE), 91)->state->boot_id, "hooked");
	CU_ASSERT_STRING_EQUAL(reply(1, RKIND(SUBSCRIBED), 92)->subscribed->state->boot_id,
			       "hooked");
	CU_ASSERT_STRING_EQUAL(reply(2, RKIND(EVENT), 0)->event->state->boot_id, "hooked");
	CU_ASSERT_EQUAL(hooked.states, 3);

	probe.kind_case = VMCHECK__V1__PROBE__KIND_NET;
	probe.net = &net; /* empty: the agent's own probe would refuse it */
	send_probe(93, &probe);
	CU_ASSERT_STRING_EQUAL(reply(3, RKIND(PROBE), 93)->probe->link, "hooked0");
	probe.kind_case = VMCHECK__V1__PROBE__KIND_MEMORY;
	probe.memory = &mem;
	send_probe(94, &probe);
	expect_error(4, 94, ECODE(NOT_PERMITTED));
	CU_ASSERT_STRING_EQUAL(cap.resp[4]->error->message, "the hook says no");
	/* Let through: the agent's CPU probe refuses the duration itself. */
	probe.kind_case = VMCHECK__V1__PROBE__KIND_CPU;
	cpu.duration_ms = 60000;
	probe.cpu = &cpu;
	send_probe(95, &probe);
	expect_error(5, 95, ECODE(BAD_ARGUMENT));
	CU_ASSERT_EQUAL(hooked.sent, 3);
	CU_ASSERT_EQUAL(hooked.last_sent, VMCHECK__V1__PROBE__KIND_CPU);
	stop();
}

VMC_SUITE(agent, NULL, NULL, VMC_TEST(hello_negotiates_the_version),
	  VMC_TEST(get_state_carries_id_generation_and_boot_id),
	  VMC_TEST(unknown_request_kinds_get_an_error_with_the_id),
	  VMC_TEST(probe_and_act_kinds_unknown_here_are_unsupported),
	  VMC_TEST(net_and_memory_probes_are_answered), VMC_TEST(garbage_before_a_frame_is_skipped),
	  VMC_TEST(a_truncated_frame_does_not_swallow_the_next),
	  VMC_TEST(an_oversize_header_is_refused_then_reading_recovers),
	  VMC_TEST(a_payload_that_is_not_protobuf_is_malformed),
	  VMC_TEST(subscriptions_get_ids_and_end_once),
	  VMC_TEST(pushes_reach_matching_subscriptions_only),
	  VMC_TEST(a_dump_in_a_crash_dir_is_pushed), VMC_TEST(disconnect_drops_buffered_bytes),
	  VMC_TEST(workers_answer_every_request), VMC_TEST(hooks_see_every_state_and_probe))
