/* SPDX-License-Identifier: MIT */
/*
 * The agent core: requests decoded and answered (snapshots, probes, actions, kmsg)
 * on worker threads, subscriptions kept and their pushes built and sent.
 */
#include "agent.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "act.h"
#include "clock.h"
#include "frame.h"
#include "kmsg.h"
#include "probe.h"

#define PROTOCOL_VERSION 1u
/* Additions within version 1 this agent has (HelloReply.protocol_minor). */
#define PROTOCOL_MINOR 2u
#define MAX_SUBS 64
#define MAX_COALESCE_MS 10000u
#define DEFAULT_COALESCE_MS 2u
#define DEFAULT_INFLIGHT 16u
/* Answers are read on workers: give the section readers room (musl: 128 KiB). */
#define WORKER_STACK (512u << 10)
/* Room in a Kmsg reply frame for everything but the records' own bytes. */
#define KMSG_FRAME_SLACK 256u

#define S(x) VMCHECK__V1__SECTION__SECTION_##x
#define ECODE(x) VMCHECK__V1__ERROR__CODE__##x
#define RKIND(x) VMCHECK__V1__RESPONSE__KIND_##x

struct sub {
	uint64_t id;
	uint32_t mask;
	unsigned coalesce_ms; /* 0: the agent's default */
};

/* One decoded request waiting for, or being answered by, a worker. */
struct job {
	struct job *next;
	uint64_t epoch;
	struct vmc_pb_budget budget; /* the request's allocator: must not move */
	Vmcheck__V1__Request *req;
};

struct vmc_agent {
	struct vmc_agent_config cfg;
	vmc_agent_send_fn send;
	void *ctx;
	size_t budget;              /* decode budget of one request */
	struct vmc_frame_reader rd; /* the transport thread's */
	struct vmc_watch *watch;    /* NULL: no pushes */
	pthread_t *workers;         /* cfg.max_inflight slots */

	pthread_mutex_t send_lock; /* one frame at a time; taken before lock */
	pthread_mutex_t push_lock; /* a baseline and a push never interleave */
	pthread_mutex_t lock;      /* everything below */
	pthread_cond_t work;       /* a job was queued, or stopping */
	pthread_cond_t done;       /* inflight dropped to 0 */
	uint64_t epoch;            /* connection count; written under both locks */
	/*
	 * Act suspend: the write to sys/power/state runs on its own thread,
	 * which waits at the gate until the worker has sent the reply.
	 */
	pthread_mutex_t suspend_gate;
	pthread_t suspender;
	bool suspending;   /* a suspend is claimed or its thread not yet joined */
	bool suspend_done; /* the thread has finished (joinable) */
	int suspend_fd;
	char suspend_word[8];
	struct sub subs[MAX_SUBS];
	size_t n_subs;
	uint64_t last_sub;
	struct job *head, **tail;
	unsigned queued, inflight; /* inflight: queued + being answered */
	unsigned n_workers, idle;
	bool stopping;
};

/* Every snapshot of the process takes the next number. */
static atomic_uint_fast64_t generation;

static uint64_t next_generation(void)
{
	return atomic_fetch_add(&generation, 1) + 1;
}

static uint64_t current_epoch(struct vmc_agent *ag)
{
	uint64_t e;

	pthread_mutex_lock(&ag->lock);
	e = ag->epoch;
	pthread_mutex_unlock(&ag->lock);
	return e;
}

/* Index of subscription @id, or -1. Called with ag->lock held. */
static int find_sub(const struct vmc_agent *ag, uint64_t id)
{
	for (size_t i = 0; i < ag->n_subs; i++)
		if (ag->subs[i].id == id)
			return (int)i;
	return -1;
}

static void reply_error(struct vmc_agent *ag, uint64_t epoch, uint64_t id,
			Vmcheck__V1__Error__Code code, int err, const char *kind, const char *fmt,
			...) _printf_(7, 8);

/*
 * Pack and send @resp. Frames meant for an older connection (@epoch) are
 * dropped: their ids would collide with the new host's. An Event
 * (@push_sub != 0) is dropped once its subscription has ended, so none
 * follows the Unsubscribed reply.
 */
static void send_response(struct vmc_agent *ag, uint64_t epoch, const Vmcheck__V1__Response *resp,
			  uint64_t push_sub)
{
	uint8_t *f;
	size_t len;
	bool live;
	int r = vmc_pb_frame(&resp->base, ag->cfg.max_frame, &f, &len);

	if (r == -EMSGSIZE && resp->kind_case != RKIND(ERROR)) {
		const ProtobufCFieldDescriptor *fd =
			protobuf_c_message_descriptor_get_field(&vmcheck__v1__response__descriptor,
								resp->kind_case);

		reply_error(ag, epoch, resp->id, ECODE(TOO_LARGE), EMSGSIZE, "",
			    "%s reply of %zu bytes exceeds the maximum frame of %zu bytes",
			    fd ? fd->name : "a", protobuf_c_message_get_packed_size(&resp->base),
			    ag->cfg.max_frame);
		return;
	}
	if (r < 0) {
		fprintf(stderr, "vmcheck-agent: dropping the reply to request %llu: %s\n",
			(unsigned long long)resp->id, strerror(-r));
		return;
	}
	pthread_mutex_lock(&ag->send_lock);
	pthread_mutex_lock(&ag->lock);
	live = epoch == ag->epoch && (!push_sub || find_sub(ag, push_sub) >= 0);
	pthread_mutex_unlock(&ag->lock);
	/* A failed send means the host is gone: the frame is dropped, not queued. */
	if (live)
		ag->send(ag->ctx, f, len);
	pthread_mutex_unlock(&ag->send_lock);
	free(f);
}

static void reply_error(struct vmc_agent *ag, uint64_t epoch, uint64_t id,
			Vmcheck__V1__Error__Code code, int err, const char *kind, const char *fmt,
			...)
{
	Vmcheck__V1__Response resp = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__Error e = VMCHECK__V1__ERROR__INIT;
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e.code = code;
	e.errno_value = err;
	e.message = msg;
	e.request = (char *)kind;
	resp.id = id;
	resp.kind_case = RKIND(ERROR);
	resp.error = &e;
	send_response(ag, epoch, &resp, 0);
}

/* A request's section mask: 0 means all; bits this agent does not know are ignored. */
static int request_mask(uint32_t bits, uint32_t *mask)
{
	if (bits == 0) {
		*mask = VMC_SECTION_ALL;
		return 0;
	}
	*mask = bits & VMC_SECTION_ALL;
	return *mask ? 0 : -EINVAL;
}

/* The HelloReply to request @id (0: the announcement), speaking @version. */
static void send_hello(struct vmc_agent *ag, uint64_t epoch, uint64_t id, uint32_t version)
{
	Vmcheck__V1__Response resp = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__HelloReply hr = VMCHECK__V1__HELLO_REPLY__INIT;
	static const char *const probes[] = { "probe:disk", "probe:cpu", "probe:net",
					      "probe:memory" };
	char sections[7][24], boot_id[64] = "";
	char *caps[7 + ARRAY_SIZE(probes) + ARRAY_SIZE(sections)];
	size_t n = 0;

	caps[n++] = "state";
	caps[n++] = "subscribe";
	if (ag->watch)
		caps[n++] = "push";
	caps[n++] = "act";
	caps[n++] = "probe";
	for (unsigned i = 0; i < ARRAY_SIZE(probes); i++)
		caps[n++] = (char *)probes[i];
	caps[n++] = "kmsg";
	if (ag->cfg.allow_crash)
		caps[n++] = "act:crash";
	for (unsigned i = 0; i < ARRAY_SIZE(sections); i++) {
		snprintf(sections[i], sizeof(sections[i]), "section:%s", vmc_section_name(1u << i));
		caps[n++] = sections[i];
	}
	(void)vmc_sysroot_read_str(ag->cfg.state.root.fd, "proc/sys/kernel/random/boot_id", boot_id,
				   sizeof(boot_id));
	hr.protocol_version = version;
	/* What this agent has, whatever minor the host knows: the host picks. */
	hr.protocol_minor = PROTOCOL_MINOR;
	hr.agent_version = VMC_VERSION;
	hr.capabilities = caps;
	hr.n_capabilities = n;
	hr.max_frame = (uint32_t)ag->cfg.max_frame;
	hr.boot_id = boot_id;
	hr.transport = (char *)(ag->cfg.transport ? ag->cfg.transport : "");
	resp.id = id;
	resp.kind_case = RKIND(HELLO);
	resp.hello = &hr;
	send_response(ag, epoch, &resp, 0);
}

static void answer_hello(struct vmc_agent *ag, uint64_t epoch, const Vmcheck__V1__Request *req)
{
	uint32_t v = req->hello->protocol_version;

	if (v == 0) {
		reply_error(ag, epoch, req->id, ECODE(VERSION), 0, "hello",
			    "protocol version 0 does not exist; this agent speaks %u",
			    PROTOCOL_VERSION);
		return;
	}
	send_hello(ag, epoch, req->id, v < PROTOCOL_VERSION ? v : PROTOCOL_VERSION);
}

void vmc_agent_announce(struct vmc_agent *ag)
{
	send_hello(ag, current_epoch(ag), 0, PROTOCOL_VERSION);
}

/* A snapshot of @mask as the agent sends it: read, then through the state hook. */
static int read_state(struct vmc_agent *ag, uint32_t mask, struct vmc_arena *a,
		      Vmcheck__V1__State **st)
{
	const struct vmc_agent_hooks *h = ag->cfg.hooks;
	int r = vmc_state_read(&ag->cfg.state, mask, next_generation(), a, st);

	if (r == 0 && h && h->state)
		r = h->state(h->ctx, a, *st);
	return r;
}

static void answer_get_state(struct vmc_agent *ag, uint64_t epoch, const Vmcheck__V1__Request *req)
{
	Vmcheck__V1__Response resp = VMCHECK__V1__RESPONSE__INIT;
	struct vmc_arena a = VMC_ARENA_INIT;
	uint32_t mask;

	if (request_mask(req->get_state->sections, &mask) < 0) {
		reply_error(ag, epoch, req->id, ECODE(BAD_ARGUMENT), 0, "get_state",
			    "sections 0x%x name no section this agent knows",
			    req->get_state->sections);
		return;
	}
	if (read_state(ag, mask, &a, &resp.state) < 0) {
		reply_error(ag, epoch, req->id, ECODE(INTERNAL), ENOMEM, "get_state",
			    "reading state: out of memory");
	} else {
		resp.id = req->id;
		resp.kind_case = RKIND(STATE);
		send_response(ag, epoch, &resp, 0);
	}
	vmc_arena_free(&a);
}

/* End subscription @id; false if there is none. */
static bool drop_sub(struct vmc_agent *ag, uint64_t id)
{
	int i;

	pthread_mutex_lock(&ag->lock);
	i = find_sub(ag, id);
	if (i >= 0)
		ag->subs[i] = ag->subs[--ag->n_subs];
	pthread_mutex_unlock(&ag->lock);
	return i >= 0;
}

static void answer_subscribe(struct vmc_agent *ag, uint64_t epoch, const Vmcheck__V1__Request *req)
{
	const Vmcheck__V1__Subscribe *s = req->subscribe;
	Vmcheck__V1__Response resp = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__Subscribed sd = VMCHECK__V1__SUBSCRIBED__INIT;
	struct vmc_arena a = VMC_ARENA_INIT;
	struct sub sub = { 0 };
	bool full, gone;

	if (request_mask(s->sections, &sub.mask) < 0) {
		reply_error(ag, epoch, req->id, ECODE(BAD_ARGUMENT), 0, "subscribe",
			    "sections 0x%x name no section this agent knows", s->sections);
		return;
	}
	if (s->coalesce_ms > MAX_COALESCE_MS) {
		reply_error(ag, epoch, req->id, ECODE(BAD_ARGUMENT), 0, "subscribe",
			    "coalesce_ms %u is over the limit of %u", s->coalesce_ms,
			    MAX_COALESCE_MS);
		return;
	}
	sub.coalesce_ms = s->coalesce_ms;

	/*
	 * Registered before the baseline is read and with pushes held off
	 * until it is sent: a change during the read is pushed right after.
	 */
	pthread_mutex_lock(&ag->push_lock);
	pthread_mutex_lock(&ag->lock);
	gone = epoch != ag->epoch;
	full = ag->n_subs == MAX_SUBS;
	if (!gone && !full) {
		sub.id = ++ag->last_sub;
		ag->subs[ag->n_subs++] = sub;
	}
	pthread_mutex_unlock(&ag->lock);

	if (gone) {
		/* The host that asked has left: nobody to subscribe for. */
		pthread_mutex_unlock(&ag->push_lock);
		return;
	}
	if (full) {
		reply_error(ag, epoch, req->id, ECODE(BUSY), 0, "subscribe",
			    "already %d subscriptions", MAX_SUBS);
	} else if (read_state(ag, sub.mask, &a, &sd.state) < 0) {
		drop_sub(ag, sub.id);
		reply_error(ag, epoch, req->id, ECODE(INTERNAL), ENOMEM, "subscribe",
			    "reading the baseline: out of memory");
	} else {
		sd.subscription_id = sub.id;
		resp.id = req->id;
		resp.kind_case = RKIND(SUBSCRIBED);
		resp.subscribed = &sd;
		send_response(ag, epoch, &resp, 0);
	}
	pthread_mutex_unlock(&ag->push_lock);
	vmc_arena_free(&a);
}

static void answer_unsubscribe(struct vmc_agent *ag, uint64_t epoch,
			       const Vmcheck__V1__Request *req)
{
	Vmcheck__V1__Response resp = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__Unsubscribed us = VMCHECK__V1__UNSUBSCRIBED__INIT;
	uint64_t id = req->unsubscribe->subscription_id;

	if (!drop_sub(ag, id)) {
		reply_error(ag, epoch, req->id, ECODE(NOT_FOUND), 0, "unsubscribe",
			    "no subscription %llu", (unsigned long long)id);
		return;
	}
	us.subscription_id = id;
	resp.id = req->id;
	resp.kind_case = RKIND(UNSUBSCRIBED);
	resp.unsubscribed = &us;
	send_response(ag, epoch, &resp, 0);
}

/* Start @fn on a thread with the workers' stack size. Returns 0 or -errno. */
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	int r;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, WORKER_STACK);
	r = -pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return r;
}

static void reply_failure(struct vmc_agent *ag, uint64_t epoch, uint64_t id, const char *kind,
			  const struct vmc_outcome *o)
{
	reply_error(ag, epoch, id, o->code ? o->code : ECODE(INTERNAL), o->err, kind, "%s", o->msg);
}

static void reply_act(struct vmc_agent *ag, uint64_t epoch, uint64_t id, const char *detail)
{
	Vmcheck__V1__Response resp = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__ActResult ar = VMCHECK__V1__ACT_RESULT__INIT;

	ar.detail = (char *)detail;
	ar.mono_ns = vmc_mono_ns();
	resp.id = id;
	resp.kind_case = RKIND(ACT);
	resp.act = &ar;
	send_response(ag, epoch, &resp, 0);
}

/*
 * The write that suspends returns once the guest woke up: tell every
 * subscriber of the system section, whose suspend count just changed.
 */
static void *suspend_main(void *arg)
{
	struct vmc_agent *ag = arg;
	struct vmc_cause c = { .source = VMCHECK__V1__CAUSE__SOURCE__AGENT, .sections = S(SYSTEM) };
	int r;

	pthread_mutex_lock(&ag->suspend_gate);
	pthread_mutex_unlock(&ag->suspend_gate);
	r = vmc_act_write(ag->suspend_fd, ag->suspend_word);
	c.mono_ns = vmc_mono_ns();
	close(ag->suspend_fd);
	if (r < 0)
		fprintf(stderr, "vmcheck-agent: suspend to %s: %s\n", ag->suspend_word,
			strerror(-r));
	snprintf(c.action, sizeof(c.action), "%s", r < 0 ? "suspend-failed" : "resume");
	snprintf(c.subsystem, sizeof(c.subsystem), "power");
	snprintf(c.name, sizeof(c.name), "%s", ag->suspend_word);
	snprintf(c.devpath, sizeof(c.devpath), "/power/state");
	vmc_agent_push(ag, &c, 1);
	pthread_mutex_lock(&ag->lock);
	ag->suspend_done = true;
	pthread_cond_broadcast(&ag->done);
	pthread_mutex_unlock(&ag->lock);
	return NULL;
}

/* Claim the suspender; false while another suspend is under way. */
static bool claim_suspender(struct vmc_agent *ag)
{
	bool busy;

	pthread_mutex_lock(&ag->lock);
	busy = ag->suspending && !ag->suspend_done;
	if (!busy) {
		/* The last one has finished (or there was none): it exits at once. */
		if (ag->suspending)
			pthread_join(ag->suspender, NULL);
		ag->suspending = true;
		ag->suspend_done = false;
	}
	pthread_mutex_unlock(&ag->lock);
	return !busy;
}

static void release_suspender(struct vmc_agent *ag)
{
	pthread_mutex_lock(&ag->lock);
	ag->suspending = false;
	pthread_mutex_unlock(&ag->lock);
}

/* Reply first, then sleep: once the write starts, nothing gets out until wake-up. */
static void act_suspend(struct vmc_agent *ag, uint64_t epoch, const Vmcheck__V1__Request *req)
{
	struct vmc_outcome o = { 0 };
	const char *word;
	char detail[64];
	int r;

	if (!claim_suspender(ag)) {
		reply_error(ag, epoch, req->id, ECODE(BUSY), 0, "act",
			    "a suspend is already under way");
		return;
	}
	r = vmc_act_suspend_open(ag->cfg.state.root.fd, req->act->suspend->state, &word,
				 &ag->suspend_fd, &o);
	if (r < 0) {
		release_suspender(ag);
		reply_failure(ag, epoch, req->id, "act", &o);
		return;
	}
	snprintf(ag->suspend_word, sizeof(ag->suspend_word), "%s", word);
	pthread_mutex_lock(&ag->suspend_gate);
	r = start_thread(&ag->suspender, suspend_main, ag);
	if (r < 0) {
		pthread_mutex_unlock(&ag->suspend_gate);
		close(ag->suspend_fd);
		release_suspender(ag);
		reply_error(ag, epoch, req->id, ECODE(INTERNAL), -r, "act",
			    "no thread for the suspend: %s", strerror(-r));
		return;
	}
	snprintf(detail, sizeof(detail), "suspending to %s", ag->suspend_word);
	reply_act(ag, epoch, req->id, detail);
	pthread_mutex_unlock(&ag->suspend_gate);
}

static void act_crash(struct vmc_agent *ag, uint64_t epoch, const Vmcheck__V1__Request *req)
{
	struct vmc_outcome o = { 0 };
	int fd, r;

	if (!ag->cfg.allow_crash) {
		reply_error(ag, epoch, req->id, ECODE(NOT_PERMITTED), 0, "act",
			    "crash refused: the agent was not started with --allow-crash");
		return;
	}
	r = vmc_act_crash_open(ag->cfg.state.root.fd, &fd, &o);
	if (r < 0) {
		reply_failure(ag, epoch, req->id, "act", &o);
		return;
	}
	reply_act(ag, epoch, req->id, "crashing the kernel (sysrq c)");
	r = vmc_act_crash(fd);
	close(fd);
	/* Still here: only a fixture root, or a kernel that refused. */
	if (r < 0)
		fprintf(stderr, "vmcheck-agent: crash: writing proc/sysrq-trigger: %s\n",
			strerror(-r));
}

static void answer_act(struct vmc_agent *ag, uint64_t epoch, const Vmcheck__V1__Request *req)
{
	const Vmcheck__V1__Act *act = req->act;
	int rootfd = ag->cfg.state.root.fd;
	struct vmc_outcome o = { 0 };
	int r;

	switch (act->kind_case) {
	case VMCHECK__V1__ACT__KIND_CPU_ONLINE:
		r = vmc_act_cpu_online(rootfd, act->cpu_online->cpu, act->cpu_online->online, &o);
		break;
	case VMCHECK__V1__ACT__KIND_MEMORY_ONLINE:
		r = vmc_act_memory_online(rootfd, act->memory_online->block,
					  act->memory_online->zone, &o);
		break;
	case VMCHECK__V1__ACT__KIND_SUSPEND:
		act_suspend(ag, epoch, req);
		return;
	case VMCHECK__V1__ACT__KIND_CRASH:
		act_crash(ag, epoch, req);
		return;
	default:
		reply_error(ag, epoch, req->id, ECODE(UNSUPPORTED), 0, "act",
			    "act kind %d is not known to this agent version", (int)act->kind_case);
		return;
	}
	if (r < 0)
		reply_failure(ag, epoch, req->id, "act", &o);
	else
		reply_act(ag, epoch, req->id, o.msg);
}

static int run_probe(struct vmc_agent *ag, const Vmcheck__V1__Probe *p, struct vmc_arena *a,
		     Vmcheck__V1__ProbeResult *pr, struct vmc_outcome *o)
{
	switch (p->kind_case) {
	case VMCHECK__V1__PROBE__KIND_DISK:
		return vmc_probe_disk(&ag->cfg.state.root, p->disk, a, pr, o);
	case VMCHECK__V1__PROBE__KIND_CPU:
		return vmc_probe_cpu(ag->cfg.state.root.fd, p->cpu, pr, o);
	case VMCHECK__V1__PROBE__KIND_NET:
		return vmc_probe_net(&ag->cfg.state.root, p->net, a, pr, o);
	case VMCHECK__V1__PROBE__KIND_MEMORY:
		return vmc_probe_memory(&ag->cfg.state.root, p->memory, pr, o);
	default:
		return vmc_outcome_fail(o, ECODE(UNSUPPORTED), 0,
					"probe kind %d is not known to this agent version",
					(int)p->kind_case);
	}
}

static void answer_probe(struct vmc_agent *ag, uint64_t epoch, const Vmcheck__V1__Request *req)
{
	const struct vmc_agent_hooks *h = ag->cfg.hooks;
	const Vmcheck__V1__Probe *p = req->probe;
	Vmcheck__V1__Response resp = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__ProbeResult pr = VMCHECK__V1__PROBE_RESULT__INIT;
	struct vmc_arena a = VMC_ARENA_INIT;
	struct vmc_outcome o = { 0 };
	int r = h && h->probe ? h->probe(h->ctx, p, &a, &pr, &o) : 0;

	if (r == 0)
		r = run_probe(ag, p, &a, &pr, &o);
	if (r < 0) {
		reply_failure(ag, epoch, req->id, "probe", &o);
	} else {
		resp.id = req->id;
		resp.kind_case = RKIND(PROBE);
		resp.probe = &pr;
		send_response(ag, epoch, &resp, 0);
	}
	vmc_arena_free(&a);
	if (h && h->probe_sent)
		h->probe_sent(h->ctx, p);
}

static void answer_read_kmsg(struct vmc_agent *ag, uint64_t epoch, const Vmcheck__V1__Request *req)
{
	Vmcheck__V1__Response resp = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__Kmsg km = VMCHECK__V1__KMSG__INIT;
	struct vmc_arena a = VMC_ARENA_INIT;
	struct vmc_outcome o = { 0 };
	size_t max = ag->cfg.max_frame;
	size_t budget = max > KMSG_FRAME_SLACK ? max - KMSG_FRAME_SLACK : 0;

	if (vmc_kmsg_read(ag->cfg.state.root.fd, req->read_kmsg->since_seq,
			  req->read_kmsg->max_records, budget, &a, &km, &o) < 0) {
		reply_failure(ag, epoch, req->id, "read_kmsg", &o);
	} else {
		resp.id = req->id;
		resp.kind_case = RKIND(KMSG);
		resp.kmsg = &km;
		send_response(ag, epoch, &resp, 0);
	}
	vmc_arena_free(&a);
}

static void answer(struct vmc_agent *ag, uint64_t epoch, const Vmcheck__V1__Request *req)
{
	const char *kind = vmc_pb_request_kind(req);

	switch (req->kind_case) {
	case VMCHECK__V1__REQUEST__KIND_HELLO:
		answer_hello(ag, epoch, req);
		break;
	case VMCHECK__V1__REQUEST__KIND_GET_STATE:
		answer_get_state(ag, epoch, req);
		break;
	case VMCHECK__V1__REQUEST__KIND_SUBSCRIBE:
		answer_subscribe(ag, epoch, req);
		break;
	case VMCHECK__V1__REQUEST__KIND_UNSUBSCRIBE:
		answer_unsubscribe(ag, epoch, req);
		break;
	case VMCHECK__V1__REQUEST__KIND_PROBE:
		answer_probe(ag, epoch, req);
		break;
	case VMCHECK__V1__REQUEST__KIND_ACT:
		answer_act(ag, epoch, req);
		break;
	case VMCHECK__V1__REQUEST__KIND_READ_KMSG:
		answer_read_kmsg(ag, epoch, req);
		break;
	default:
		/* No kind at all, or a oneof member from a newer contract. */
		reply_error(ag, epoch, req->id, ECODE(UNKNOWN_REQUEST), 0, kind,
			    "request %llu has no kind this agent knows",
			    (unsigned long long)req->id);
		break;
	}
}

static void job_free(struct job *j)
{
	vmcheck__v1__request__free_unpacked(j->req, &j->budget.alloc);
	free(j);
}

static void *worker_main(void *arg)
{
	struct vmc_agent *ag = arg;

	pthread_mutex_lock(&ag->lock);
	for (;;) {
		struct job *j;

		while (!ag->head && !ag->stopping) {
			ag->idle++;
			pthread_cond_wait(&ag->work, &ag->lock);
			ag->idle--;
		}
		j = ag->head;
		if (!j)
			break;
		ag->head = j->next;
		if (!ag->head)
			ag->tail = &ag->head;
		ag->queued--;
		pthread_mutex_unlock(&ag->lock);
		answer(ag, j->epoch, j->req);
		job_free(j);
		pthread_mutex_lock(&ag->lock);
		if (--ag->inflight == 0)
			pthread_cond_broadcast(&ag->done);
	}
	pthread_mutex_unlock(&ag->lock);
	return NULL;
}

/* Queue @j for a worker, starting one if none is free. Takes @j. */
static void submit(struct vmc_agent *ag, struct job *j)
{
	int r = 0;

	pthread_mutex_lock(&ag->lock);
	if (ag->inflight >= ag->cfg.max_inflight) {
		pthread_mutex_unlock(&ag->lock);
		reply_error(ag, j->epoch, j->req->id, ECODE(BUSY), 0, vmc_pb_request_kind(j->req),
			    "%u requests in flight already", ag->cfg.max_inflight);
		job_free(j);
		return;
	}
	if (ag->queued >= ag->idle && ag->n_workers < ag->cfg.max_inflight) {
		r = start_thread(&ag->workers[ag->n_workers], worker_main, ag);
		if (r == 0)
			ag->n_workers++;
	}
	if (r < 0 && ag->n_workers == 0) {
		pthread_mutex_unlock(&ag->lock);
		reply_error(ag, j->epoch, j->req->id, ECODE(BUSY), -r, vmc_pb_request_kind(j->req),
			    "no worker thread: %s", strerror(-r));
		job_free(j);
		return;
	}
	j->next = NULL;
	*ag->tail = j;
	ag->tail = &j->next;
	ag->queued++;
	ag->inflight++;
	pthread_cond_signal(&ag->work);
	pthread_mutex_unlock(&ag->lock);
}

/*
 * Decode one payload and answer it, or queue it for a worker unless
 * @synchronous. -EBADMSG: undecodable (and answered so).
 */
static int handle(struct vmc_agent *ag, const uint8_t *payload, size_t len, bool synchronous)
{
	struct job *j = malloc(sizeof(*j));
	Vmcheck__V1__Request__KindCase kind;

	if (!j)
		return -ENOMEM;
	j->epoch = current_epoch(ag);
	vmc_pb_budget_init(&j->budget, ag->budget);
	j->req = vmc_pb_request_unpack(&j->budget, payload, len);
	if (!j->req) {
		reply_error(ag, j->epoch, 0, ECODE(MALFORMED), 0, "",
			    "a request of %zu bytes does not decode (malformed, or over the "
			    "%zu-byte decode budget)",
			    len, ag->budget);
		free(j);
		return -EBADMSG;
	}
	/* Hello, Unsubscribe and refusals of unknown kinds are answered right here. */
	kind = j->req->kind_case;
	if (synchronous || kind == VMCHECK__V1__REQUEST__KIND_HELLO ||
	    kind == VMCHECK__V1__REQUEST__KIND_UNSUBSCRIBE ||
	    kind == VMCHECK__V1__REQUEST__KIND__NOT_SET) {
		answer(ag, j->epoch, j->req);
		job_free(j);
		return 0;
	}
	submit(ag, j);
	return 0;
}

int vmc_agent_handle_payload(struct vmc_agent *ag, const uint8_t *payload, size_t len)
{
	int r = handle(ag, payload, len, true);

	return r == -EBADMSG ? 0 : r;
}

int vmc_agent_feed(struct vmc_agent *ag, const void *data, size_t n)
{
	const uint8_t *payload;
	size_t len;
	int r;

	r = vmc_frame_feed(&ag->rd, data, n);
	if (r < 0)
		return r;
	while ((r = vmc_frame_next(&ag->rd, &payload, &len)) != 0) {
		if (r == -EMSGSIZE) {
			reply_error(
				ag, current_epoch(ag), 0, ECODE(TOO_LARGE), EMSGSIZE, "",
				"a frame header announced a payload over the maximum of %zu bytes",
				ag->cfg.max_frame);
			continue;
		}
		r = handle(ag, payload, len, ag->cfg.synchronous);
		if (r == -EBADMSG)
			vmc_frame_reject(&ag->rd);
		else if (r < 0)
			return r;
	}
	return 0;
}

void vmc_agent_disconnected(struct vmc_agent *ag)
{
	vmc_frame_reader_reset(&ag->rd);
	pthread_mutex_lock(&ag->send_lock);
	pthread_mutex_lock(&ag->lock);
	ag->epoch++;
	ag->n_subs = 0;
	pthread_mutex_unlock(&ag->lock);
	pthread_mutex_unlock(&ag->send_lock);
}

void vmc_agent_drain(struct vmc_agent *ag)
{
	pthread_mutex_lock(&ag->lock);
	while (ag->inflight || (ag->suspending && !ag->suspend_done))
		pthread_cond_wait(&ag->done, &ag->lock);
	pthread_mutex_unlock(&ag->lock);
}

/* @st with only the sections in @mask: a shallow copy sharing @st's data. */
static Vmcheck__V1__State *state_subset(struct vmc_arena *a, const Vmcheck__V1__State *st,
					uint32_t mask)
{
	Vmcheck__V1__State *v = vmc_arena_alloc(a, sizeof(*v));
	struct vmc_ptrvec errs = { 0 };

	if (!v)
		return NULL;
	*v = *st;
	v->sections &= mask;
	if (!(mask & S(SYSTEM)))
		v->system = NULL;
	if (!(mask & S(LINKS))) {
		v->n_links = 0;
		v->links = NULL;
	}
	if (!(mask & S(BLOCKS))) {
		v->n_blocks = 0;
		v->blocks = NULL;
	}
	if (!(mask & S(MEMORY)))
		v->memory = NULL;
	if (!(mask & S(CPUS)))
		v->cpus = NULL;
	if (!(mask & S(PCI)))
		v->pci = NULL;
	if (!(mask & S(CRASH)))
		v->crash = NULL;
	for (size_t i = 0; i < st->n_errors; i++)
		if ((st->errors[i]->section & mask) && vmc_ptrvec_push(a, &errs, st->errors[i]) < 0)
			return NULL;
	v->errors = (Vmcheck__V1__SectionError **)errs.items;
	v->n_errors = errs.n;
	return v;
}

/* The Event for @s: its share of the snapshot @st and of the causes. */
static int build_event(struct vmc_arena *a, const struct sub *s, const Vmcheck__V1__State *st,
		       const struct vmc_cause *causes, size_t n, Vmcheck__V1__Event *ev)
{
	struct vmc_ptrvec cs = { 0 };

	vmcheck__v1__event__init(ev);
	ev->subscription_id = s->id;
	ev->state = state_subset(a, st, s->mask);
	if (!ev->state)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		Vmcheck__V1__Cause *c;

		if (!(causes[i].sections & s->mask))
			continue;
		c = vmc_arena_alloc(a, sizeof(*c));
		if (!c || vmc_ptrvec_push(a, &cs, c) < 0)
			return -ENOMEM;
		vmcheck__v1__cause__init(c);
		c->source = (Vmcheck__V1__Cause__Source)causes[i].source;
		c->action = (char *)causes[i].action;
		c->subsystem = (char *)causes[i].subsystem;
		c->name = (char *)causes[i].name;
		c->devpath = (char *)causes[i].devpath;
		c->mono_ns = causes[i].mono_ns;
		c->sections = causes[i].sections;
		if (cs.n == 1)
			ev->kernel_mono_ns = causes[i].mono_ns;
	}
	ev->causes = (Vmcheck__V1__Cause **)cs.items;
	ev->n_causes = cs.n;
	return 0;
}

void vmc_agent_push(struct vmc_agent *ag, const struct vmc_cause *causes, size_t n)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__State *st;
	struct sub subs[MAX_SUBS];
	uint32_t affected = 0, want = 0;
	size_t ns = 0;
	uint64_t epoch;

	for (size_t i = 0; i < n; i++)
		affected |= causes[i].sections;
	pthread_mutex_lock(&ag->push_lock);
	pthread_mutex_lock(&ag->lock);
	epoch = ag->epoch;
	for (size_t i = 0; i < ag->n_subs; i++) {
		if (!(ag->subs[i].mask & affected))
			continue;
		subs[ns] = ag->subs[i];
		subs[ns++].mask &= affected;
		want |= ag->subs[i].mask & affected;
	}
	pthread_mutex_unlock(&ag->lock);

	/* One read serves every subscriber; each gets its own sections of it. */
	if (ns && read_state(ag, want, &a, &st) < 0)
		ns = 0;
	for (size_t i = 0; i < ns; i++) {
		Vmcheck__V1__Response resp = VMCHECK__V1__RESPONSE__INIT;
		Vmcheck__V1__Event ev;

		if (build_event(&a, &subs[i], st, causes, n, &ev) < 0) {
			reply_error(ag, epoch, 0, ECODE(INTERNAL), ENOMEM, "",
				    "building the event for subscription %llu: out of memory",
				    (unsigned long long)subs[i].id);
			continue;
		}
		resp.kind_case = RKIND(EVENT);
		resp.event = &ev;
		send_response(ag, epoch, &resp, subs[i].id);
	}
	pthread_mutex_unlock(&ag->push_lock);
	vmc_arena_free(&a);
}

/* The watcher's window: the longest any subscription asked for. */
static unsigned window_ms(void *ctx)
{
	struct vmc_agent *ag = ctx;
	unsigned w = ag->cfg.coalesce_ms;

	pthread_mutex_lock(&ag->lock);
	for (size_t i = 0; i < ag->n_subs; i++)
		if (ag->subs[i].coalesce_ms > w)
			w = ag->subs[i].coalesce_ms;
	pthread_mutex_unlock(&ag->lock);
	return w;
}

static void on_burst(void *ctx, const struct vmc_cause *causes, size_t n)
{
	vmc_agent_push(ctx, causes, n);
}

static const struct vmc_watch_ops watch_ops = {
	.window_ms = window_ms,
	.burst = on_burst,
};

int vmc_agent_new(const struct vmc_agent_config *cfg, vmc_agent_send_fn send, void *ctx,
		  struct vmc_agent **out)
{
	struct vmc_agent *ag;
	int r;

	if (cfg->max_frame > UINT32_MAX)
		return -EINVAL;
	ag = calloc(1, sizeof(*ag));
	if (!ag)
		return -ENOMEM;
	ag->cfg = *cfg;
	if (!ag->cfg.max_frame)
		ag->cfg.max_frame = VMC_FRAME_MAX_DEFAULT;
	if (!ag->cfg.coalesce_ms)
		ag->cfg.coalesce_ms = DEFAULT_COALESCE_MS;
	if (!ag->cfg.max_inflight)
		ag->cfg.max_inflight = DEFAULT_INFLIGHT;
	ag->workers = calloc(ag->cfg.max_inflight, sizeof(*ag->workers));
	if (!ag->workers) {
		free(ag);
		return -ENOMEM;
	}
	ag->send = send;
	ag->ctx = ctx;
	/* Decoded messages are bigger than their encoding, but boundedly so. */
	ag->budget = ag->cfg.max_frame > SIZE_MAX / 4 ? SIZE_MAX : 4 * ag->cfg.max_frame;
	vmc_frame_reader_init(&ag->rd, ag->cfg.max_frame);
	pthread_mutex_init(&ag->send_lock, NULL);
	pthread_mutex_init(&ag->push_lock, NULL);
	pthread_mutex_init(&ag->lock, NULL);
	pthread_mutex_init(&ag->suspend_gate, NULL);
	pthread_cond_init(&ag->work, NULL);
	pthread_cond_init(&ag->done, NULL);
	ag->tail = &ag->head;
	if (cfg->watch) {
		struct vmc_watch_config wc = { .root_fd = cfg->state.root.fd,
					       .crash_dirs = cfg->state.crash_dirs };

		r = vmc_watch_start(&watch_ops, ag, &wc, &ag->watch);
		if (r < 0)
			fprintf(stderr,
				"vmcheck-agent: kernel change notifications unavailable (%s): "
				"subscriptions get their baseline but no pushes\n",
				strerror(-r));
	}
	*out = ag;
	return 0;
}

void vmc_agent_free(struct vmc_agent *ag)
{
	if (!ag)
		return;
	vmc_watch_stop(ag->watch);
	pthread_mutex_lock(&ag->lock);
	ag->stopping = true;
	pthread_cond_broadcast(&ag->work);
	pthread_mutex_unlock(&ag->lock);
	/* Workers answer what is queued before they see the stop. */
	for (unsigned i = 0; i < ag->n_workers; i++)
		pthread_join(ag->workers[i], NULL);
	/* Pushes after a wake-up use everything below: let the last one finish. */
	if (ag->suspending)
		pthread_join(ag->suspender, NULL);
	vmc_frame_reader_free(&ag->rd);
	pthread_cond_destroy(&ag->done);
	pthread_cond_destroy(&ag->work);
	pthread_mutex_destroy(&ag->suspend_gate);
	pthread_mutex_destroy(&ag->lock);
	pthread_mutex_destroy(&ag->push_lock);
	pthread_mutex_destroy(&ag->send_lock);
	free(ag->workers);
	free(ag);
}
