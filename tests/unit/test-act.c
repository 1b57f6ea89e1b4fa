/* SPDX-License-Identifier: MIT */
/*
 * Guest actions against fixture trees: what lands in which sysfs file, what
 * is refused, and, through the agent core, that suspend and crash reply
 * before the write that would end the conversation.
 */
#include <pthread.h>
#include <string.h>

#include "act.h"
#include "agent.h"
#include "frame.h"
#include "harness.h"

#define CPU "sys/devices/system/cpu/"
#define MEM "sys/devices/system/memory/"
#define BOOT_ID "0b7d5c2e-9a41-4f3e-8c6d-2e1f0a9b8c7d"
#define MAX_CAPTURED 8
#define S(x) VMCHECK__V1__SECTION__SECTION_##x
#define ECODE(x) VMCHECK__V1__ERROR__CODE__##x
#define RKIND(x) VMCHECK__V1__RESPONSE__KIND_##x

static struct fx fx;

/* The fixture file @rel, newline stripped; "<absent>" if it is not there. */
static const char *file(const char *rel)
{
	static char buf[256];

	if (vmc_sysroot_read_str(fx.root.fd, rel, buf, sizeof(buf)) < 0)
		strcpy(buf, "<absent>");
	return buf;
}

static void setup(void)
{
	fx_init(&fx);
}

static void teardown(void)
{
	fx_cleanup(&fx);
}

static void cpu_online_and_offline_land_in_the_online_file(void)
{
	struct vmc_outcome o;

	setup();
	fx_write(&fx, CPU "cpu3/online", "0\n");
	CU_ASSERT_EQUAL(vmc_act_cpu_online(fx.root.fd, 3, true, &o), 0);
	CU_ASSERT_STRING_EQUAL(file(CPU "cpu3/online"), "1");
	CU_ASSERT_STRING_EQUAL(o.msg, "cpu3 onlined");
	CU_ASSERT_EQUAL(vmc_act_cpu_online(fx.root.fd, 3, false, &o), 0);
	CU_ASSERT_STRING_EQUAL(file(CPU "cpu3/online"), "0");
	CU_ASSERT_STRING_EQUAL(o.msg, "cpu3 offlined");
	teardown();
}

static void a_missing_cpu_or_online_file_is_refused(void)
{
	struct vmc_outcome o;

	setup();
	fx_mkdir(&fx, CPU "cpu0");
	CU_ASSERT_EQUAL(vmc_act_cpu_online(fx.root.fd, 7, true, &o), -ENOENT);
	CU_ASSERT_EQUAL(o.code, ECODE(NOT_FOUND));
	CU_ASSERT_STRING_EQUAL(o.msg, "cpu7: no such CPU (no " CPU "cpu7)");
	CU_ASSERT(vmc_act_cpu_online(fx.root.fd, 0, false, &o) < 0);
	CU_ASSERT_EQUAL(o.code, ECODE(NOT_PERMITTED));
	CU_ASSERT_STRING_EQUAL(o.msg, "cpu0 cannot be offlined: no online file");
	/* Wanting it online is already true. */
	CU_ASSERT_EQUAL(vmc_act_cpu_online(fx.root.fd, 0, true, &o), 0);
	CU_ASSERT_STRING_EQUAL(file(CPU "cpu0/online"), "<absent>");
	teardown();
}

static void a_failed_write_names_the_file_and_errno(void)
{
	struct vmc_outcome o;

	setup();
	/* A directory where the attribute should be: open(O_WRONLY) fails EISDIR. */
	fx_mkdir(&fx, CPU "cpu2/online");
	CU_ASSERT_EQUAL(vmc_act_cpu_online(fx.root.fd, 2, true, &o), -EISDIR);
	CU_ASSERT_EQUAL(o.err, EISDIR);
	CU_ASSERT_EQUAL(o.code, ECODE(INTERNAL));
	CU_ASSERT_STRING_EQUAL(o.msg, "opening " CPU "cpu2/online: Is a directory");
	teardown();
}

static void memory_online_writes_the_zone_word(void)
{
	struct vmc_outcome o;

	setup();
	/*
	 * valid_zones is the one the kernel shows after the write (a fixture
	 * file does not change by itself): an online block's names its zone.
	 */
	fx_write(&fx, MEM "memory40/state", "offline\n");
	fx_write(&fx, MEM "memory40/valid_zones", "Movable\n");
	fx_write(&fx, MEM "memory41/state", "offline\n");
	fx_write(&fx, MEM "memory41/valid_zones", "Normal\n");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 40, "", &o), 0);
	CU_ASSERT_STRING_EQUAL(file(MEM "memory40/state"), "online_movable");
	CU_ASSERT_STRING_EQUAL(o.msg, "memory40: online_movable written, now online_movable "
				      "(valid_zones: Movable)");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 41, "online_kernel", &o), 0);
	CU_ASSERT_STRING_EQUAL(file(MEM "memory41/state"), "online_kernel");
	fx_write(&fx, MEM "memory41/state", "online\n");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 41, "offline", &o), 0);
	CU_ASSERT_STRING_EQUAL(file(MEM "memory41/state"), "offline");

	/* Already online: left alone (the kernel would say EINVAL). */
	fx_write(&fx, MEM "memory42/state", "online\n");
	fx_write(&fx, MEM "memory42/valid_zones", "Movable\n");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 42, "online_movable", &o), 0);
	CU_ASSERT_STRING_EQUAL(o.msg, "memory42 is already online (valid_zones: Movable)");
	CU_ASSERT_STRING_EQUAL(file(MEM "memory42/state"), "online");

	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 43, "online", &o), -ENOENT);
	CU_ASSERT_EQUAL(o.code, ECODE(NOT_FOUND));
	teardown();
}

/*
 * Asked for Movable, a block online in Normal is no success: it could not
 * be unplugged, which is what online_movable is for. Same for a kernel
 * zone. Plain "online" takes what the kernel chose.
 */
static void a_block_online_in_another_zone_is_refused(void)
{
	struct vmc_outcome o;

	setup();
	fx_write(&fx, MEM "memory35/state", "online\n");
	fx_write(&fx, MEM "memory35/valid_zones", "Normal\n");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 35, "online_movable", &o), -EINVAL);
	CU_ASSERT_EQUAL(o.code, ECODE(NOT_PERMITTED));
	CU_ASSERT_EQUAL(o.err, 0);
	CU_ASSERT_STRING_EQUAL(o.msg, "memory35 is already online in zone Normal, not Movable");
	CU_ASSERT_STRING_EQUAL(file(MEM "memory35/state"), "online");
	/* The default word is online_movable. */
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 35, "", &o), -EINVAL);
	CU_ASSERT_EQUAL(o.code, ECODE(NOT_PERMITTED));
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 35, "online_kernel", &o), 0);
	CU_ASSERT_STRING_EQUAL(o.msg, "memory35 is already online (valid_zones: Normal)");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 35, "online", &o), 0);

	fx_write(&fx, MEM "memory36/state", "online\n");
	fx_write(&fx, MEM "memory36/valid_zones", "Movable\n");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 36, "online_kernel", &o), -EINVAL);
	CU_ASSERT_EQUAL(o.code, ECODE(NOT_PERMITTED));
	CU_ASSERT_STRING_EQUAL(
		o.msg, "memory36 is already online in zone Movable, not Normal, DMA32 or DMA");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 36, "online", &o), 0);

	/* DMA32 is a kernel zone; a boot block spanning two zones says "none". */
	fx_write(&fx, MEM "memory1/state", "online\n");
	fx_write(&fx, MEM "memory1/valid_zones", "DMA32\n");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 1, "online_kernel", &o), 0);
	fx_write(&fx, MEM "memory0/state", "online\n");
	fx_write(&fx, MEM "memory0/valid_zones", "none\n");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 0, "online_movable", &o), -EINVAL);
	CU_ASSERT_STRING_EQUAL(o.msg, "memory0 is already online in several zones, not Movable");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 0, "online", &o), 0);

	/* No valid_zones to tell: Movable cannot be confirmed. */
	fx_write(&fx, MEM "memory37/state", "online\n");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 37, "online_movable", &o), -EINVAL);
	CU_ASSERT_STRING_EQUAL(o.msg, "memory37 is already online in a zone it does not tell "
				      "(valid_zones unreadable), not Movable");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 37, "online", &o), 0);
	teardown();
}

/*
 * After the write, valid_zones is read again: a block the kernel put in
 * Normal although online_movable was written is a failure, not a success.
 * (The fixture plays that kernel: its valid_zones says Normal after the write.)
 */
static void a_block_landing_in_another_zone_is_a_failure(void)
{
	struct vmc_outcome o;

	setup();
	fx_write(&fx, MEM "memory50/state", "offline\n");
	fx_write(&fx, MEM "memory50/valid_zones", "Normal\n");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 50, "online_movable", &o), -EINVAL);
	CU_ASSERT_EQUAL(o.code, ECODE(NOT_PERMITTED));
	CU_ASSERT_STRING_EQUAL(
		o.msg, "memory50: online_movable written, but it is in zone Normal, not Movable");
	/* It was written: the failure is where the block went, not the write. */
	CU_ASSERT_STRING_EQUAL(file(MEM "memory50/state"), "online_movable");

	/* An offline block lists every zone it could go to: after the write, only one. */
	fx_write(&fx, MEM "memory51/state", "offline\n");
	fx_write(&fx, MEM "memory51/valid_zones", "Normal Movable\n");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 51, "online_movable", &o), -EINVAL);
	CU_ASSERT_STRING_EQUAL(
		o.msg,
		"memory51: online_movable written, but it is in zones Normal Movable, not Movable");
	fx_write(&fx, MEM "memory52/state", "offline\n");
	fx_write(&fx, MEM "memory52/valid_zones", "Movable\n");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 52, "online_kernel", &o), -EINVAL);
	CU_ASSERT_STRING_EQUAL(o.msg, "memory52: online_kernel written, but it is in zone Movable, "
				      "not Normal, DMA32 or DMA");
	/* Plain online: wherever the kernel put it. */
	fx_write(&fx, MEM "memory53/state", "offline\n");
	fx_write(&fx, MEM "memory53/valid_zones", "Movable\n");
	CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 53, "online", &o), 0);
	teardown();
}

static void an_unknown_zone_is_refused_untouched(void)
{
	static const char *const bad[] = { "movable", "Online", "online_movable\n", "offline " };
	struct vmc_outcome o;

	setup();
	fx_write(&fx, MEM "memory40/state", "offline\n");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CU_ASSERT_EQUAL(vmc_act_memory_online(fx.root.fd, 40, bad[i], &o), -EINVAL);
		CU_ASSERT_EQUAL(o.code, ECODE(BAD_ARGUMENT));
		CU_ASSERT(strstr(o.msg, "unknown zone") != NULL);
	}
	CU_ASSERT_STRING_EQUAL(file(MEM "memory40/state"), "offline");
	teardown();
}

static void suspend_states_are_checked_before_opening(void)
{
	struct vmc_outcome o;
	const char *word;
	int fd = -1;

	setup();
	CU_ASSERT_EQUAL(vmc_act_suspend_open(fx.root.fd, "mem", &word, &fd, &o), -EINVAL);
	CU_ASSERT_EQUAL(o.code, ECODE(UNSUPPORTED));
	fx_write(&fx, "sys/power/state", "freeze memx disk\n");
	CU_ASSERT_EQUAL(vmc_act_suspend_open(fx.root.fd, "", &word, &fd, &o), -EINVAL);
	CU_ASSERT_EQUAL(o.code, ECODE(UNSUPPORTED));
	CU_ASSERT_STRING_EQUAL(o.msg, "suspend to mem: the kernel offers only 'freeze memx disk' "
				      "(sys/power/state)");
	CU_ASSERT_EQUAL(vmc_act_suspend_open(fx.root.fd, "disk", &word, &fd, &o), -EINVAL);
	CU_ASSERT_EQUAL(o.code, ECODE(BAD_ARGUMENT));
	CU_ASSERT_EQUAL(fd, -1);
	CU_ASSERT_EQUAL(vmc_act_suspend_open(fx.root.fd, "freeze", &word, &fd, &o), 0);
	CU_ASSERT_STRING_EQUAL(word, "freeze");
	CU_ASSERT(fd >= 0);
	close(fd);
	teardown();
}

/* ---- through the agent core: replies and their order against the writes */

struct capture {
	pthread_mutex_t lock;
	size_t n;
	Vmcheck__V1__Response *resp[MAX_CAPTURED];
	char file_at_reply[MAX_CAPTURED][64]; /* the watched file when each frame went out */
	const char *watched;
};

static struct capture cap = { .lock = PTHREAD_MUTEX_INITIALIZER };
static struct vmc_agent *ag;

static int capture_send(void *ctx, const uint8_t *f, size_t len)
{
	struct capture *c = ctx;
	Vmcheck__V1__Response *r;

	r = vmcheck__v1__response__unpack(NULL, len - VMC_FRAME_HDR, f + VMC_FRAME_HDR);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	pthread_mutex_lock(&c->lock);
	CU_ASSERT_FATAL(c->n < MAX_CAPTURED);
	snprintf(c->file_at_reply[c->n], sizeof(c->file_at_reply[0]), "%s",
		 c->watched ? file(c->watched) : "");
	c->resp[c->n++] = r;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void start_agent(bool allow_crash, const char *watched)
{
	struct vmc_agent_config cfg = { 0 };

	setup();
	fx_write(&fx, "proc/sys/kernel/random/boot_id", BOOT_ID "\n");
	cfg.state.root = fx.root;
	cfg.synchronous = true;
	cfg.allow_crash = allow_crash;
	cfg.transport = "test";
	cap.watched = watched;
	CU_ASSERT_EQUAL_FATAL(vmc_agent_new(&cfg, capture_send, &cap, &ag), 0);
}

static void stop_agent(void)
{
	vmc_agent_free(ag);
	ag = NULL;
	for (size_t i = 0; i < cap.n; i++)
		vmcheck__v1__response__free_unpacked(cap.resp[i], NULL);
	cap.n = 0;
	teardown();
}

static void feed(Vmcheck__V1__Request *req)
{
	uint8_t *f;
	size_t len;

	CU_ASSERT_EQUAL_FATAL(vmc_pb_frame(&req->base, VMC_FRAME_MAX_DEFAULT, &f, &len), 0);
	CU_ASSERT_EQUAL(vmc_agent_feed(ag, f, len), 0);
	free(f);
}

static void send_act(uint64_t id, Vmcheck__V1__Act *act)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;

	req.id = id;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_ACT;
	req.act = act;
	feed(&req);
}

static void send_crash(uint64_t id)
{
	Vmcheck__V1__Act act = VMCHECK__V1__ACT__INIT;
	Vmcheck__V1__TriggerCrash tc = VMCHECK__V1__TRIGGER_CRASH__INIT;

	act.kind_case = VMCHECK__V1__ACT__KIND_CRASH;
	act.crash = &tc;
	send_act(id, &act);
}

static void send_suspend(uint64_t id, const char *state)
{
	Vmcheck__V1__Act act = VMCHECK__V1__ACT__INIT;
	Vmcheck__V1__Suspend su = VMCHECK__V1__SUSPEND__INIT;

	su.state = (char *)state;
	act.kind_case = VMCHECK__V1__ACT__KIND_SUSPEND;
	act.suspend = &su;
	send_act(id, &act);
}

static Vmcheck__V1__Response *reply(size_t i, Vmcheck__V1__Response__KindCase kind, uint64_t id)
{
	CU_ASSERT_FATAL(i < cap.n);
	CU_ASSERT_EQUAL_FATAL(cap.resp[i]->kind_case, kind);
	CU_ASSERT_EQUAL(cap.resp[i]->id, id);
	return cap.resp[i];
}

static bool has_capability(const Vmcheck__V1__HelloReply *hr, const char *name)
{
	for (size_t i = 0; i < hr->n_capabilities; i++)
		if (!strcmp(hr->capabilities[i], name))
			return true;
	return false;
}

static void crash_is_refused_without_allow_crash(void)
{
	Vmcheck__V1__Error *e;
	Vmcheck__V1__HelloReply *hr;

	start_agent(false, NULL);
	fx_write(&fx, "proc/sysrq-trigger", "");
	send_crash(5);
	vmc_agent_announce(ag);
	vmc_agent_drain(ag);
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	e = reply(0, RKIND(ERROR), 5)->error;
	CU_ASSERT_EQUAL(e->code, ECODE(NOT_PERMITTED));
	CU_ASSERT_STRING_EQUAL(e->message,
			       "crash refused: the agent was not started with --allow-crash");
	CU_ASSERT_STRING_EQUAL(e->request, "act");
	CU_ASSERT_STRING_EQUAL(file("proc/sysrq-trigger"), "");
	/* The announcement: an unsolicited HelloReply, without act:crash. */
	hr = reply(1, RKIND(HELLO), 0)->hello;
	CU_ASSERT_STRING_EQUAL(hr->boot_id, BOOT_ID);
	CU_ASSERT_EQUAL(hr->protocol_version, 1);
	CU_ASSERT(has_capability(hr, "act"));
	CU_ASSERT(has_capability(hr, "probe"));
	CU_ASSERT(has_capability(hr, "kmsg"));
	CU_ASSERT_FALSE(has_capability(hr, "act:crash"));
	stop_agent();
}

static void an_allowed_crash_replies_then_writes_c(void)
{
	start_agent(true, "proc/sysrq-trigger");
	fx_write(&fx, "proc/sysrq-trigger", "");
	send_crash(6);
	vmc_agent_announce(ag);
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	CU_ASSERT_STRING_EQUAL(reply(0, RKIND(ACT), 6)->act->detail,
			       "crashing the kernel (sysrq c)");
	CU_ASSERT(cap.resp[0]->act->mono_ns > 0);
	CU_ASSERT_STRING_EQUAL(cap.file_at_reply[0], "");
	CU_ASSERT_STRING_EQUAL(file("proc/sysrq-trigger"), "c");
	CU_ASSERT(has_capability(reply(1, RKIND(HELLO), 0)->hello, "act:crash"));
	stop_agent();
}

static void suspend_replies_before_the_state_write_then_pushes(void)
{
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Subscribe sub = VMCHECK__V1__SUBSCRIBE__INIT;
	Vmcheck__V1__Event *ev;

	start_agent(false, "sys/power/state");
	/* Fixture files are overwritten from the start, not truncated. */
	fx_write(&fx, "sys/power/state", "freeze mem\n");
	fx_write(&fx, "sys/power/suspend_stats/success", "2\n");
	sub.sections = S(SYSTEM);
	req.id = 1;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_SUBSCRIBE;
	req.subscribe = &sub;
	feed(&req);
	send_suspend(2, "");
	vmc_agent_drain(ag);

	CU_ASSERT_EQUAL_FATAL(cap.n, 3);
	reply(0, RKIND(SUBSCRIBED), 1);
	CU_ASSERT_STRING_EQUAL(reply(1, RKIND(ACT), 2)->act->detail, "suspending to mem");
	/* When the reply went out, nothing had been written yet. */
	CU_ASSERT_STRING_EQUAL(cap.file_at_reply[1], "freeze mem");
	CU_ASSERT_STRING_EQUAL(file("sys/power/state"), "memeze mem");
	/* After the write returned ("woke up"): a system Event caused by the agent. */
	ev = reply(2, RKIND(EVENT), 0)->event;
	CU_ASSERT_EQUAL(ev->subscription_id, cap.resp[0]->subscribed->subscription_id);
	CU_ASSERT_EQUAL_FATAL(ev->n_causes, 1);
	CU_ASSERT_EQUAL(ev->causes[0]->source, VMCHECK__V1__CAUSE__SOURCE__AGENT);
	CU_ASSERT_STRING_EQUAL(ev->causes[0]->action, "resume");
	CU_ASSERT_STRING_EQUAL(ev->causes[0]->name, "mem");
	CU_ASSERT(ev->kernel_mono_ns >= cap.resp[1]->act->mono_ns);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ev->state->system);
	CU_ASSERT_EQUAL(ev->state->system->suspend_success, 2);

	/* A second suspend after the first finished works the same way. */
	fx_write(&fx, "sys/power/state", "mem freeze\n");
	send_suspend(3, "freeze");
	vmc_agent_drain(ag);
	CU_ASSERT_EQUAL_FATAL(cap.n, 5);
	CU_ASSERT_STRING_EQUAL(reply(3, RKIND(ACT), 3)->act->detail, "suspending to freeze");
	CU_ASSERT_STRING_EQUAL(cap.file_at_reply[3], "mem freeze");
	CU_ASSERT_STRING_EQUAL(file("sys/power/state"), "freezeeeze");
	reply(4, RKIND(EVENT), 0);
	stop_agent();
}

static void a_refused_suspend_writes_nothing(void)
{
	start_agent(false, NULL);
	fx_write(&fx, "sys/power/state", "freeze\n");
	send_suspend(4, "mem");
	send_suspend(5, "hibernate");
	vmc_agent_drain(ag);
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	CU_ASSERT_EQUAL(reply(0, RKIND(ERROR), 4)->error->code, ECODE(UNSUPPORTED));
	CU_ASSERT_EQUAL(reply(1, RKIND(ERROR), 5)->error->code, ECODE(BAD_ARGUMENT));
	CU_ASSERT_STRING_EQUAL(file("sys/power/state"), "freeze");
	stop_agent();
}

static void cpu_and_memory_acts_reply_with_the_detail(void)
{
	Vmcheck__V1__Act act = VMCHECK__V1__ACT__INIT;
	Vmcheck__V1__CpuOnline co = VMCHECK__V1__CPU_ONLINE__INIT;
	Vmcheck__V1__MemoryOnline mo = VMCHECK__V1__MEMORY_ONLINE__INIT;
	Vmcheck__V1__Error *e;

	start_agent(false, NULL);
	fx_write(&fx, CPU "cpu1/online", "0\n");
	co.cpu = 1;
	co.online = true;
	act.kind_case = VMCHECK__V1__ACT__KIND_CPU_ONLINE;
	act.cpu_online = &co;
	send_act(7, &act);
	co.cpu = 9;
	send_act(8, &act);
	mo.block = 3;
	mo.zone = "movable";
	act.kind_case = VMCHECK__V1__ACT__KIND_MEMORY_ONLINE;
	act.memory_online = &mo;
	send_act(9, &act);
	act.kind_case = VMCHECK__V1__ACT__KIND__NOT_SET;
	send_act(10, &act);
	CU_ASSERT_EQUAL_FATAL(cap.n, 4);
	CU_ASSERT_STRING_EQUAL(reply(0, RKIND(ACT), 7)->act->detail, "cpu1 onlined");
	CU_ASSERT_STRING_EQUAL(file(CPU "cpu1/online"), "1");
	e = reply(1, RKIND(ERROR), 8)->error;
	CU_ASSERT_EQUAL(e->code, ECODE(NOT_FOUND));
	CU_ASSERT_EQUAL(e->errno_value, 0);
	CU_ASSERT_STRING_EQUAL(e->message, "cpu9: no such CPU (no " CPU "cpu9)");
	CU_ASSERT_EQUAL(reply(2, RKIND(ERROR), 9)->error->code, ECODE(BAD_ARGUMENT));
	CU_ASSERT_EQUAL(reply(3, RKIND(ERROR), 10)->error->code, ECODE(UNSUPPORTED));
	stop_agent();
}

VMC_SUITE(act, NULL, NULL, VMC_TEST(cpu_online_and_offline_land_in_the_online_file),
	  VMC_TEST(a_missing_cpu_or_online_file_is_refused),
	  VMC_TEST(a_failed_write_names_the_file_and_errno),
	  VMC_TEST(memory_online_writes_the_zone_word),
	  VMC_TEST(a_block_online_in_another_zone_is_refused),
	  VMC_TEST(a_block_landing_in_another_zone_is_a_failure),
	  VMC_TEST(an_unknown_zone_is_refused_untouched),
	  VMC_TEST(suspend_states_are_checked_before_opening),
	  VMC_TEST(crash_is_refused_without_allow_crash),
	  VMC_TEST(an_allowed_crash_replies_then_writes_c),
	  VMC_TEST(suspend_replies_before_the_state_write_then_pushes),
	  VMC_TEST(a_refused_suspend_writes_nothing),
	  VMC_TEST(cpu_and_memory_acts_reply_with_the_detail))
