/* SPDX-License-Identifier: MIT */
/*
 * The step machinery (suite*.c) against a fake VM that misbehaves: a fake
 * hypervisor (struct vmc_hv_ops here) and a fake guest whose agent, a
 * thread behind a unix socket, speaks the real protocol. The fake guest has
 * a clock that stops while the VM is stopped, an agent that is silent then,
 * reboots that change its boot_id and announce the new agent with an
 * unsolicited HelloReply (id 0), and device changes scheduled by the test.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "clock.h"
#include "frame.h"
#include "harness.h"
#include "bounds.h"
#include "check-util.h"
#include "hv-qmp-client.h"
#include "suite.h"
#include "suite-view.h"

#define MS 1000000ull
#define GUEST_OFFSET (5000 * MS) /* the fake guest's clock runs 5 s ahead of the host's */
#define MAX_CHANGES 16

/* ------------------------------------------------------------ fake guest */

enum change_kind {
	CH_LINK_ON,  /* links[idx] appears */
	CH_LINK_OFF, /* links[idx] goes */
	CH_BLOCK_ON, /* blocks[idx] appears */
	CH_REBOOT,   /* new boot_id, subscriptions lost, announced */
	CH_RESTART,  /* same boot, the agent restarts: subscriptions lost, announced */
	CH_WAKE,     /* the guest resumes from S3: suspend count +1 */
	CH_SHUTDOWN, /* the guest powers off: QEMU exits */
	CH_RESET_EV, /* QEMU reports RESET (guest-reset); the new boot comes 100 ms later */
	CH_DELETED,  /* QEMU reports DEVICE_DELETED */
};

struct change {
	uint64_t due;
	enum change_kind kind;
	unsigned idx;
};

struct fdev {
	bool on;
	char key[24]; /* MAC or serial */
	char name[16];
	char pci[16];
	uint64_t size;
};

struct fake_hv;

struct fguest {
	pthread_mutex_t mu;
	struct fake_hv *hv;
	char path[108];
	int listen_fd, conn, wake[2];
	pthread_t thread;
	bool quit;
	unsigned boot_no;
	char boot_id[40];
	uint64_t sub_id, next_sub, generation;
	bool stopped;       /* the VM is paused: no CPU, no agent */
	bool clock_leaks;   /* ...but the guest clock runs on (a broken pause) */
	bool clock_back;    /* after cont the guest clock is a second behind */
	bool panics;        /* the power button panics the guest */
	uint64_t kernel_ns; /* the kernel time pushes carry (0: the guest's clock) */
	uint64_t stopped_at, paused_ns;
	uint64_t suspend_success;
	unsigned suspends;  /* Act suspend requests answered */
	char mem_sleep[32]; /* System.mem_sleep; "" not said */
	struct fdev links[4], blocks[4];
	bool cpus;    /* shows a Cpus section: cpu0, which never changes */
	char *driver; /* links[0]'s driver when not NULL (one over the string bound) */
	struct change changes[MAX_CHANGES];
	size_t n_changes;
	unsigned requests; /* answered so far */
};

static uint64_t guest_now(struct fguest *g)
{
	uint64_t t = vmc_mono_ns() + GUEST_OFFSET;

	if (g->clock_leaks)
		return t;
	if (g->clock_back && !g->stopped && g->paused_ns)
		t -= 1000 * MS + g->paused_ns;
	t -= g->paused_ns;
	return g->stopped ? t - (vmc_mono_ns() - g->stopped_at) : t;
}

static void wake(struct fguest *g)
{
	char c = 1;

	if (write(g->wake[1], &c, 1) < 0)
		CU_FAIL("waking the fake agent");
}

/* Schedule a change of the fake guest @delay_ms from now. */
static void schedule(struct fguest *g, enum change_kind kind, unsigned idx, unsigned delay_ms)
{
	pthread_mutex_lock(&g->mu);
	CU_ASSERT_FATAL(g->n_changes < MAX_CHANGES);
	g->changes[g->n_changes++] = (struct change){ vmc_mono_ns() + delay_ms * MS, kind, idx };
	pthread_mutex_unlock(&g->mu);
	wake(g);
}

/* A State of the fake guest's model; strings point into it (hold g->mu). */
struct built {
	Vmcheck__V1__State st;
	Vmcheck__V1__System sys;
	Vmcheck__V1__Link links[4], *lp[4];
	Vmcheck__V1__Block blocks[4], *bp[4];
	Vmcheck__V1__Pci pci;
	Vmcheck__V1__PciFunction fn[8], *fp[8];
	Vmcheck__V1__Cpus cpus;
	Vmcheck__V1__Cpu cpu0, *cpup[1];
};

static void build(struct fguest *g, uint32_t sections, struct built *b)
{
	vmcheck__v1__state__init(&b->st);
	b->st.generation = ++g->generation;
	b->st.boot_id = g->boot_id;
	b->st.mono_ns = guest_now(g);
	b->st.read_ns = 1000;
	b->st.sections = sections ? sections
				  : VMCHECK__V1__SECTION__SECTION_SYSTEM |
					    VMCHECK__V1__SECTION__SECTION_LINKS |
					    VMCHECK__V1__SECTION__SECTION_BLOCKS |
					    VMCHECK__V1__SECTION__SECTION_PCI |
					    (g->cpus ? VMCHECK__V1__SECTION__SECTION_CPUS : 0);
	if (g->cpus && (b->st.sections & VMCHECK__V1__SECTION__SECTION_CPUS)) {
		vmcheck__v1__cpus__init(&b->cpus);
		vmcheck__v1__cpu__init(&b->cpu0);
		b->cpu0.present = b->cpu0.online = true;
		b->cpus.possible = "0-3";
		b->cpus.present = b->cpus.online = "0";
		b->cpus.offline = "1-3";
		b->cpup[0] = &b->cpu0;
		b->cpus.cpus = b->cpup;
		b->cpus.n_cpus = 1;
		b->st.cpus = &b->cpus;
	}
	if (b->st.sections & VMCHECK__V1__SECTION__SECTION_SYSTEM) {
		vmcheck__v1__system__init(&b->sys);
		b->sys.boot_id = g->boot_id;
		b->sys.has_suspend_stats = true;
		b->sys.suspend_success = g->suspend_success;
		b->sys.mem_sleep = g->mem_sleep;
		b->st.system = &b->sys;
	}
	if (b->st.sections & VMCHECK__V1__SECTION__SECTION_LINKS) {
		b->st.links = b->lp;
		for (unsigned i = 0; i < 4; i++) {
			if (!g->links[i].on)
				continue;
			vmcheck__v1__link__init(&b->links[i]);
			b->links[i].name = g->links[i].name;
			b->links[i].mac = g->links[i].key;
			b->links[i].pci_address = g->links[i].pci;
			b->links[i].driver = i == 0 && g->driver ? g->driver : "virtio_net";
			b->lp[b->st.n_links++] = &b->links[i];
		}
	}
	if (b->st.sections & VMCHECK__V1__SECTION__SECTION_BLOCKS) {
		b->st.blocks = b->bp;
		for (unsigned i = 0; i < 4; i++) {
			if (!g->blocks[i].on)
				continue;
			vmcheck__v1__block__init(&b->blocks[i]);
			b->blocks[i].name = g->blocks[i].name;
			b->blocks[i].serial = g->blocks[i].key;
			b->blocks[i].size_bytes = g->blocks[i].size;
			b->bp[b->st.n_blocks++] = &b->blocks[i];
		}
	}
	if (b->st.sections & VMCHECK__V1__SECTION__SECTION_PCI) {
		/* Root ports 0000:00:02.0 on; link i behind port i. */
		static const char *const ports[4] = { "0000:00:02.0", "0000:00:03.0",
						      "0000:00:04.0", "0000:00:05.0" };

		vmcheck__v1__pci__init(&b->pci);
		b->pci.functions = b->fp;
		for (unsigned i = 0; i < 4; i++) {
			vmcheck__v1__pci_function__init(&b->fn[4 + i]);
			b->fn[4 + i].address = (char *)ports[i];
			b->fn[4 + i].class_code = 0x060400;
			b->fn[4 + i].driver = "pcieport";
			b->fp[b->pci.n_functions++] = &b->fn[4 + i];
			if (!g->links[i].on)
				continue;
			vmcheck__v1__pci_function__init(&b->fn[i]);
			b->fn[i].address = g->links[i].pci;
			b->fn[i].parent = (char *)ports[i];
			b->fn[i].driver = "virtio-pci";
			b->fp[b->pci.n_functions++] = &b->fn[i];
		}
		b->st.pci = &b->pci;
	}
}

static void send_response(struct fguest *g, Vmcheck__V1__Response *r)
{
	uint8_t *frame;
	size_t len;

	if (g->conn < 0 || vmc_pb_frame(&r->base, VMC_FRAME_MAX_DEFAULT, &frame, &len) < 0)
		return;
	vmc_write_all(g->conn, frame, len, VMC_WRITE_TIMEOUT_MS, NULL);
	free(frame);
}

static void send_hello(struct fguest *g, uint64_t id)
{
	Vmcheck__V1__Response r = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__HelloReply h = VMCHECK__V1__HELLO_REPLY__INIT;

	h.protocol_version = 1;
	h.agent_version = "fake";
	h.boot_id = g->boot_id;
	r.id = id;
	r.kind_case = VMCHECK__V1__RESPONSE__KIND_HELLO;
	r.hello = &h;
	send_response(g, &r);
}

static void push(struct fguest *g, uint32_t sections, uint64_t kernel_ns)
{
	Vmcheck__V1__Response r = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__Event ev = VMCHECK__V1__EVENT__INIT;
	struct built b;

	if (!g->sub_id)
		return;
	build(g, sections, &b);
	ev.subscription_id = g->sub_id;
	ev.state = &b.st;
	ev.kernel_mono_ns = kernel_ns;
	r.kind_case = VMCHECK__V1__RESPONSE__KIND_EVENT;
	r.event = &ev;
	send_response(g, &r);
}

static void hv_queue_event(struct fake_hv *h, const char *name);
static void hv_queue_event_why(struct fake_hv *h, const char *name, const char *reason);
static void hv_exit(struct fake_hv *h, const char *how);

static void apply(struct fguest *g, const struct change *c)
{
	uint64_t k = g->kernel_ns ? g->kernel_ns : guest_now(g);

	switch (c->kind) {
	case CH_LINK_ON:
	case CH_LINK_OFF:
		g->links[c->idx].on = c->kind == CH_LINK_ON;
		push(g, VMCHECK__V1__SECTION__SECTION_LINKS | VMCHECK__V1__SECTION__SECTION_PCI, k);
		break;
	case CH_BLOCK_ON:
		g->blocks[c->idx].on = true;
		push(g, VMCHECK__V1__SECTION__SECTION_BLOCKS, k);
		break;
	case CH_REBOOT:
		snprintf(g->boot_id, sizeof(g->boot_id), "boot-%u", ++g->boot_no);
		/* the new agent knows no subscription */
		__attribute__((fallthrough));
	case CH_RESTART:
		g->sub_id = 0;
		send_hello(g, 0);
		break;
	case CH_RESET_EV:
		hv_queue_event_why(g->hv, "RESET", "guest-reset");
		if (g->n_changes < MAX_CHANGES)
			g->changes[g->n_changes++] =
				(struct change){ vmc_mono_ns() + 100 * MS, CH_REBOOT, 0 };
		break;
	case CH_WAKE:
		g->suspend_success++;
		hv_queue_event(g->hv, "WAKEUP");
		push(g, VMCHECK__V1__SECTION__SECTION_SYSTEM, k);
		break;
	case CH_SHUTDOWN:
		if (g->panics)
			hv_queue_event(g->hv, "GUEST_PANICKED");
		hv_queue_event_why(g->hv, "SHUTDOWN", g->panics ? "guest-panic" : "guest-shutdown");
		hv_exit(g->hv, "QEMU exited with status 0");
		if (g->conn >= 0)
			close(g->conn);
		g->conn = -1;
		break;
	case CH_DELETED:
		hv_queue_event(g->hv, VMC_EV_DEVICE_DELETED);
		break;
	}
}

static void answer(struct fguest *g, const Vmcheck__V1__Request *req)
{
	Vmcheck__V1__Response r = VMCHECK__V1__RESPONSE__INIT;
	Vmcheck__V1__Subscribed sd = VMCHECK__V1__SUBSCRIBED__INIT;
	Vmcheck__V1__Unsubscribed ud = VMCHECK__V1__UNSUBSCRIBED__INIT;
	Vmcheck__V1__ActResult act = VMCHECK__V1__ACT_RESULT__INIT;
	Vmcheck__V1__Kmsg km = VMCHECK__V1__KMSG__INIT;
	Vmcheck__V1__KmsgRecord rec[2] = { VMCHECK__V1__KMSG_RECORD__INIT,
					   VMCHECK__V1__KMSG_RECORD__INIT };
	Vmcheck__V1__KmsgRecord *recp[2] = { &rec[0], &rec[1] };
	Vmcheck__V1__Error er = VMCHECK__V1__ERROR__INIT;
	struct built b;

	g->requests++;
	r.id = req->id;
	switch (req->kind_case) {
	case VMCHECK__V1__REQUEST__KIND_HELLO:
		send_hello(g, req->id);
		return;
	case VMCHECK__V1__REQUEST__KIND_SUBSCRIBE:
		g->sub_id = ++g->next_sub;
		build(g, 0, &b);
		sd.subscription_id = g->sub_id;
		sd.state = &b.st;
		r.kind_case = VMCHECK__V1__RESPONSE__KIND_SUBSCRIBED;
		r.subscribed = &sd;
		break;
	case VMCHECK__V1__REQUEST__KIND_UNSUBSCRIBE:
		if (req->unsubscribe->subscription_id == g->sub_id)
			g->sub_id = 0;
		ud.subscription_id = req->unsubscribe->subscription_id;
		r.kind_case = VMCHECK__V1__RESPONSE__KIND_UNSUBSCRIBED;
		r.unsubscribed = &ud;
		break;
	case VMCHECK__V1__REQUEST__KIND_GET_STATE:
		build(g, req->get_state->sections, &b);
		r.kind_case = VMCHECK__V1__RESPONSE__KIND_STATE;
		r.state = &b.st;
		break;
	case VMCHECK__V1__REQUEST__KIND_READ_KMSG:
		/* One record from boot, one from just now: only the latter is "since the action". */
		rec[0].seq = 0;
		rec[0].ts_us = 1000000;
		rec[0].message = "fake: booting";
		rec[1].seq = 1;
		rec[1].ts_us = guest_now(g) / 1000;
		rec[1].message = "fake: pciehp: Slot(2): Card not present";
		km.records = recp + req->read_kmsg->since_seq;
		km.n_records = req->read_kmsg->since_seq < 2 ? 2 - req->read_kmsg->since_seq : 0;
		km.next_seq = 2;
		r.kind_case = VMCHECK__V1__RESPONSE__KIND_KMSG;
		r.kmsg = &km;
		break;
	case VMCHECK__V1__REQUEST__KIND_ACT:
		r.kind_case = VMCHECK__V1__RESPONSE__KIND_ACT;
		r.act = &act;
		if (req->act->kind_case == VMCHECK__V1__ACT__KIND_SUSPEND) {
			/* Reply first, then sleep: the guest is gone until system_wakeup. */
			g->suspends++;
			send_response(g, &r);
			hv_queue_event(g->hv, "SUSPEND");
			return;
		}
		break;
	default:
		er.code = VMCHECK__V1__ERROR__CODE__UNSUPPORTED;
		er.message = "not in the fake";
		r.kind_case = VMCHECK__V1__RESPONSE__KIND_ERROR;
		r.error = &er;
		break;
	}
	send_response(g, &r);
}

static void *guest_run(void *arg)
{
	struct fguest *g = arg;
	struct vmc_frame_reader rd;

	vmc_frame_reader_init(&rd, 0);
	for (;;) {
		struct pollfd pfd[3] = {
			{ .fd = g->wake[0], .events = POLLIN },
			{ .fd = g->listen_fd, .events = POLLIN },
			{ .fd = -1, .events = POLLIN },
		};
		int timeout = -1;

		pthread_mutex_lock(&g->mu);
		if (g->quit) {
			pthread_mutex_unlock(&g->mu);
			break;
		}
		/* Due changes; a stopped VM changes nothing and answers nothing. */
		for (size_t i = 0; !g->stopped && i < g->n_changes;) {
			uint64_t now = vmc_mono_ns();
			struct change c = g->changes[i];

			if (c.due > now) {
				int ms = (int)((c.due - now) / MS) + 1;

				timeout = timeout < 0 || ms < timeout ? ms : timeout;
				i++;
				continue;
			}
			g->changes[i] = g->changes[--g->n_changes];
			apply(g, &c);
		}
		if (!g->stopped)
			pfd[2].fd = g->conn;
		pthread_mutex_unlock(&g->mu);

		if (poll(pfd, 3, timeout) < 0)
			break;
		if (pfd[0].revents) {
			char buf[64];

			if (read(g->wake[0], buf, sizeof(buf)) < 0)
				break;
		}
		if (pfd[1].revents) {
			int fd = accept4(g->listen_fd, NULL, NULL, SOCK_CLOEXEC);

			pthread_mutex_lock(&g->mu);
			if (g->conn >= 0)
				close(g->conn);
			g->conn = fd;
			g->sub_id = 0;
			vmc_frame_reader_reset(&rd);
			pthread_mutex_unlock(&g->mu);
			continue;
		}
		if (pfd[2].revents) {
			uint8_t buf[4096];
			const uint8_t *p;
			size_t len;
			ssize_t n;

			pthread_mutex_lock(&g->mu);
			/* Stopped while polling: the request waits for cont. */
			if (g->stopped || g->conn != pfd[2].fd) {
				pthread_mutex_unlock(&g->mu);
				continue;
			}
			n = read(pfd[2].fd, buf, sizeof(buf));
			if (n <= 0) {
				close(g->conn);
				g->conn = -1;
			} else {
				vmc_frame_feed(&rd, buf, (size_t)n);
				while (vmc_frame_next(&rd, &p, &len) == 1) {
					Vmcheck__V1__Request *req =
						vmcheck__v1__request__unpack(NULL, len, p);

					if (req)
						answer(g, req);
					vmcheck__v1__request__free_unpacked(req, NULL);
				}
			}
			pthread_mutex_unlock(&g->mu);
		}
	}
	vmc_frame_reader_free(&rd);
	return NULL;
}

/* ------------------------------------------------------------ fake hv */

struct fake_hv {
	struct vmc_hv hv;
	pthread_mutex_t mu;
	struct fguest *g;
	int pipe[2];
	char spec[128];
	struct {
		char name[32];
		char reason[32]; /* SHUTDOWN, RESET: QMP's reason */
		bool synthesized;
		uint64_t ns;
	} ev[32];
	size_t n_ev;
	bool dead;
	bool gone_esrch;             /* actions on a dead VM: -ESRCH, as the QMP backend */
	bool unclean;                /* QEMU's exit was not clean (ended() says so) */
	bool give_up;                /* device_del returns -EINPROGRESS, as libvirt after 5 s */
	bool made_up;                /* POWERDOWN is made up from the call's return, as libvirt's */
	struct vmc_hv_removal views; /* what removal_views() says */
	const struct vmc_arch *arch; /* what arch() says (NULL: nothing, x86_64) */
	bool plugs;                  /* nic_add and device_del drive links[0] themselves... */
	unsigned unplug_ms;          /* ...the guest letting go this long after device_del */
	bool unseen;                 /* ...except that the guest never shows the NIC */
	enum {
		S3_YES,
		S3_NO,
		S3_UNASKED
	} s3;                /* what suspend_support() says */
	int cpus_rc;         /* what cpus() returns... */
	char cpus_says[128]; /* ...and says */
	bool cpu_free;       /* ...and a free position it knows (else none) */
	int cpu_add_rc;      /* what cpu_add() returns (the CPU never shows in the guest) */
	char death[128];
	char present[4][16]; /* device ids the "hypervisor" has */
	char transcript[4096];
	size_t tlen;
};

#define FH(hv) ((struct fake_hv *)(hv))

static void _printf_(2, 3) hv_log(struct fake_hv *h, const char *fmt, ...)
{
	va_list ap;
	int n;

	pthread_mutex_lock(&h->mu);
	va_start(ap, fmt);
	n = vsnprintf(h->transcript + h->tlen, sizeof(h->transcript) - h->tlen, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(h->transcript) - h->tlen)
		h->tlen += (size_t)n;
	pthread_mutex_unlock(&h->mu);
}

static void hv_queue_event_why(struct fake_hv *h, const char *name, const char *reason)
{
	char c = 1;

	pthread_mutex_lock(&h->mu);
	if (h->n_ev < ARRAY_SIZE(h->ev)) {
		snprintf(h->ev[h->n_ev].name, sizeof(h->ev[0].name), "%s", name);
		snprintf(h->ev[h->n_ev].reason, sizeof(h->ev[0].reason), "%s",
			 reason ? reason : "");
		h->ev[h->n_ev++].ns = vmc_mono_ns();
	}
	pthread_mutex_unlock(&h->mu);
	if (write(h->pipe[1], &c, 1) < 0)
		CU_FAIL("fake hv pipe");
	hv_log(h, "<- event %s\n", name);
}

static void hv_queue_event(struct fake_hv *h, const char *name)
{
	hv_queue_event_why(h, name, NULL);
}

static void hv_exit(struct fake_hv *h, const char *how)
{
	pthread_mutex_lock(&h->mu);
	h->dead = true;
	snprintf(h->death, sizeof(h->death), "%s", how);
	pthread_mutex_unlock(&h->mu);
}

static int fake_action(struct vmc_hv *hv, const char *what, const char *event,
		       struct vmc_error *err)
{
	struct fake_hv *h = FH(hv);

	hv_log(h, "-> %s\n", what);
	if (h->dead)
		return vmc_error_set(err, h->gone_esrch ? -ESRCH : -EPIPE, "%s: QEMU is gone",
				     what);
	if (event)
		hv_queue_event(h, event);
	return 0;
}

static int f_reboot(struct vmc_hv *hv, struct vmc_error *err)
{
	schedule(FH(hv)->g, CH_REBOOT, 0, 50);
	return fake_action(hv, "reboot", NULL, err);
}

static int f_reset(struct vmc_hv *hv, struct vmc_error *err)
{
	struct fguest *g = FH(hv)->g;

	pthread_mutex_lock(&g->mu);
	g->stopped = false; /* a reset also ends S3 */
	pthread_mutex_unlock(&g->mu);
	schedule(g, CH_REBOOT, 0, 50);
	return fake_action(hv, "reset", "RESET", err);
}

static int f_stop(struct vmc_hv *hv, struct vmc_error *err)
{
	struct fguest *g = FH(hv)->g;

	pthread_mutex_lock(&g->mu);
	g->stopped = true;
	g->stopped_at = vmc_mono_ns();
	pthread_mutex_unlock(&g->mu);
	return fake_action(hv, "stop", "STOP", err);
}

static int f_cont(struct vmc_hv *hv, struct vmc_error *err)
{
	struct fguest *g = FH(hv)->g;

	pthread_mutex_lock(&g->mu);
	if (g->stopped)
		g->paused_ns += vmc_mono_ns() - g->stopped_at;
	g->stopped = false;
	pthread_mutex_unlock(&g->mu);
	wake(g);
	return fake_action(hv, "cont", "RESUME", err);
}

static int f_wakeup(struct vmc_hv *hv, struct vmc_error *err)
{
	schedule(FH(hv)->g, CH_WAKE, 0, 20);
	return fake_action(hv, "system_wakeup", NULL, err);
}

static int f_powerdown(struct vmc_hv *hv, struct vmc_error *err)
{
	struct fake_hv *h = FH(hv);
	int r;

	schedule(h->g, CH_SHUTDOWN, 0, 50);
	r = fake_action(hv, "system_powerdown", "POWERDOWN", err);
	pthread_mutex_lock(&h->mu);
	if (h->n_ev && h->made_up)
		h->ev[h->n_ev - 1].synthesized = true;
	pthread_mutex_unlock(&h->mu);
	return r;
}

static void set_present(struct fake_hv *h, const char *id, bool on)
{
	for (size_t i = 0; i < ARRAY_SIZE(h->present); i++) {
		if (on && !h->present[i][0]) {
			snprintf(h->present[i], sizeof(h->present[i]), "%s", id);
			return;
		}
		if (!on && !strcmp(h->present[i], id))
			h->present[i][0] = '\0';
	}
}

static int f_nic_add(struct vmc_hv *hv, const struct vmc_hv_nic *nic, struct vmc_error *err)
{
	char what[96];

	snprintf(what, sizeof(what), "device_add %s mac=%s bus=%s", nic->id, nic->mac, nic->slot);
	set_present(FH(hv), nic->id, true);
	if (FH(hv)->plugs && !FH(hv)->unseen) {
		pthread_mutex_lock(&FH(hv)->g->mu);
		snprintf(FH(hv)->g->links[0].key, sizeof(FH(hv)->g->links[0].key), "%s", nic->mac);
		pthread_mutex_unlock(&FH(hv)->g->mu);
		schedule(FH(hv)->g, CH_LINK_ON, 0, 20);
	}
	return fake_action(hv, what, NULL, err);
}

static int f_del(struct vmc_hv *hv, const char *id, struct vmc_error *err)
{
	char what[64];
	int r;

	snprintf(what, sizeof(what), "device_del %s", id);
	r = fake_action(hv, what, NULL, err);
	if (r == 0 && FH(hv)->plugs) {
		schedule(FH(hv)->g, CH_LINK_OFF, 0, FH(hv)->unplug_ms);
		schedule(FH(hv)->g, CH_DELETED, 0, FH(hv)->unplug_ms + 50);
	}
	if (r == 0 && FH(hv)->give_up)
		r = vmc_error_set(err, -EINPROGRESS, "fake: unplug request timed out");
	return r;
}

/* One free root port, the one links[0] sits behind. */
static int f_free_slots(struct vmc_hv *hv, struct vmc_hv_slot **out, size_t *n,
			struct vmc_error *err)
{
	struct vmc_hv_slot *s = calloc(1, sizeof(*s));

	if (!s || !(s->id = strdup("pciroot2")) || !(s->address = strdup("0000:00:02.0"))) {
		vmc_hv_slots_free(s, s ? 1 : 0);
		return vmc_error_set(err, -ENOMEM, "free_slots: out of memory");
	}
	*out = s;
	*n = 1;
	return 0;
}

static int f_suspend_support(struct vmc_hv *hv, char *says, size_t size, struct vmc_error *err)
{
	if (FH(hv)->s3 == S3_UNASKED)
		return vmc_error_set(err, -EIO,
				     "query-current-machine: monitor passthrough refused");
	snprintf(says, size, "QEMU: query-current-machine says wakeup-suspend-support %s",
		 FH(hv)->s3 == S3_YES ? "true" : "false");
	return FH(hv)->s3 == S3_YES;
}

static int f_cpus(struct vmc_hv *hv, struct vmc_hv_cpu **out, size_t *n, struct vmc_error *err)
{
	*out = NULL;
	*n = 0;
	if (FH(hv)->cpus_rc)
		return vmc_error_set(err, FH(hv)->cpus_rc, "%s", FH(hv)->cpus_says);
	if (!FH(hv)->cpu_free)
		return 0;
	*out = calloc(1, sizeof(**out));
	if (!*out || !((*out)->type = strdup("qemu64-x86_64-cpu"))) {
		vmc_hv_cpus_free(*out, *out ? 1 : 0);
		*out = NULL;
		return vmc_error_set(err, -ENOMEM, "cpus: out of memory");
	}
	**out = (struct vmc_hv_cpu){ (*out)->type, 1, 0, 0, 0, NULL, -1 };
	*n = 1;
	return 0;
}

static int f_cpu_add(struct vmc_hv *hv, const struct vmc_hv_vcpu *c, struct vmc_error *err)
{
	char what[64];
	int r;

	snprintf(what, sizeof(what), "device_add %s socket-id=%d", c->id, c->where->socket_id);
	r = fake_action(hv, what, NULL, err);
	if (r == 0 && FH(hv)->cpu_add_rc)
		r = vmc_error_set(err, FH(hv)->cpu_add_rc, "%s: CPU hotplug refused", what);
	return r;
}

static int f_cpu_del(struct vmc_hv *hv, const char *id, struct vmc_error *err)
{
	char what[64];

	snprintf(what, sizeof(what), "device_del %s", id);
	return fake_action(hv, what, NULL, err);
}

static const struct vmc_arch *f_arch(struct vmc_hv *hv)
{
	return FH(hv)->arch;
}

static int f_removal_views(struct vmc_hv *hv, const char *id, struct vmc_hv_removal *out,
			   struct vmc_error *err)
{
	*out = FH(hv)->views;
	return 0;
}

static int f_disk_add(struct vmc_hv *hv, const struct vmc_hv_disk *d, struct vmc_error *err)
{
	char what[96];

	snprintf(what, sizeof(what), "device_add %s serial=%s", d->id, d->serial);
	set_present(FH(hv), d->id, true);
	return fake_action(hv, what, NULL, err);
}

static int f_device_present(struct vmc_hv *hv, const char *id, char **where, struct vmc_error *err)
{
	struct fake_hv *h = FH(hv);

	for (size_t i = 0; i < ARRAY_SIZE(h->present); i++)
		if (!strcmp(h->present[i], id)) {
			*where = strdup("virtio-net-pci at pciroot2");
			return 1;
		}
	return 0;
}

static ssize_t find_event(struct fake_hv *h, const char *name)
{
	for (size_t i = 0; i < h->n_ev; i++)
		if (!strcmp(h->ev[i].name, name))
			return (ssize_t)i;
	return -1;
}

static int f_wait_event(struct vmc_hv *hv, const char *name, const char *device,
			uint64_t deadline_ns, struct vmc_hv_event *out, struct vmc_error *err)
{
	struct fake_hv *h = FH(hv);
	ssize_t i;

	pthread_mutex_lock(&h->mu);
	i = find_event(h, name);
	if (i >= 0) {
		memset(out, 0, sizeof(*out));
		out->name = strdup(name);
		out->reason = h->ev[i].reason[0] ? strdup(h->ev[i].reason) : NULL;
		out->synthesized = h->ev[i].synthesized;
		out->detail = strdup(out->synthesized ? "{\"made\":\"up\"}" : "{}");
		out->host_ns = h->ev[i].ns;
		memmove(&h->ev[i], &h->ev[i + 1], (h->n_ev - (size_t)i - 1) * sizeof(h->ev[0]));
		h->n_ev--;
	}
	pthread_mutex_unlock(&h->mu);
	return i >= 0 ? 0 : vmc_error_set(err, -ETIMEDOUT, "no %s", name);
}

static bool f_seen_event(struct vmc_hv *hv, const char *name, const char *device)
{
	struct fake_hv *h = FH(hv);
	bool seen;

	pthread_mutex_lock(&h->mu);
	seen = find_event(h, name) >= 0;
	pthread_mutex_unlock(&h->mu);
	return seen;
}

static void f_flush_events(struct vmc_hv *hv)
{
	pthread_mutex_lock(&FH(hv)->mu);
	FH(hv)->n_ev = 0;
	pthread_mutex_unlock(&FH(hv)->mu);
}

static int f_fd(struct vmc_hv *hv)
{
	return FH(hv)->pipe[0];
}

static int f_pump(struct vmc_hv *hv, struct vmc_error *err)
{
	char buf[64];

	while (read(FH(hv)->pipe[0], buf, sizeof(buf)) > 0)
		;
	return 0;
}

static int f_alive(struct vmc_hv *hv, struct vmc_error *err)
{
	struct fake_hv *h = FH(hv);
	int r = 0;

	pthread_mutex_lock(&h->mu);
	if (h->dead)
		r = vmc_error_set(err, -ESRCH, "%s", h->death);
	pthread_mutex_unlock(&h->mu);
	return r;
}

static int f_ended(struct vmc_hv *hv, struct vmc_error *err)
{
	struct fake_hv *h = FH(hv);

	return h->unclean ? vmc_error_set(err, -EIO, "%s", h->death) : 0;
}

static void f_transcript(struct vmc_hv *hv, uint64_t since_ns, FILE *out)
{
	pthread_mutex_lock(&FH(hv)->mu);
	fputs(FH(hv)->transcript, out);
	pthread_mutex_unlock(&FH(hv)->mu);
}

static const char *f_agent_spec(struct vmc_hv *hv)
{
	return FH(hv)->spec;
}

/* The serial console's log, when a test keeps one ("": none). */
static char fake_console[PATH_MAX];

static const char *f_console_log(struct vmc_hv *hv)
{
	return *fake_console ? fake_console : NULL;
}

static const struct vmc_hv_ops fake_ops = {
	.name = "fake",
	.console_log = f_console_log,
	.reboot = f_reboot,
	.reset = f_reset,
	.stop = f_stop,
	.cont = f_cont,
	.wakeup = f_wakeup,
	.suspend_support = f_suspend_support,
	.powerdown = f_powerdown,
	.nic_add = f_nic_add,
	.nic_del = f_del,
	.disk_add = f_disk_add,
	.free_slots = f_free_slots,
	.cpus = f_cpus,
	.cpu_add = f_cpu_add,
	.cpu_del = f_cpu_del,
	.device_present = f_device_present,
	.removal_views = f_removal_views,
	.wait_event = f_wait_event,
	.seen_event = f_seen_event,
	.flush_events = f_flush_events,
	.fd = f_fd,
	.pump = f_pump,
	.alive = f_alive,
	.ended = f_ended,
	.transcript = f_transcript,
	.agent_spec = f_agent_spec,
	.arch = f_arch,
};

/* ------------------------------------------------------------ capture report */

/* ------------------------------------------------------------ fixture */

static struct fixture {
	struct fguest g;
	struct fake_hv h;
	struct fx_capture cap;
	struct vmc_report *reps[1];
	struct vmc_run_opts opts;
	struct vmc_suite *s;
	char dir[64];
} T;

/* The next fake guest's System.mem_sleep (start() takes it): "" not said. */
static char next_mem_sleep[32];

/* A unix socket listening at @path: the fake agent's, or one that never answers. */
static int listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CU_ASSERT_EQUAL_FATAL(listen(fd, 4), 0);
	return fd;
}

static void start(void)
{
	struct vmc_error err = VMC_ERROR_INIT;

	memset(&T, 0, sizeof(T));
	snprintf(T.dir, sizeof(T.dir), "/tmp/vmc-suite-XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(T.dir));
	/* The fake guest: two NICs and a disk it may show, boot-0. */
	pthread_mutex_init(&T.g.mu, NULL);
	T.g.hv = &T.h;
	T.g.conn = -1;
	snprintf(T.g.boot_id, sizeof(T.g.boot_id), "boot-0");
	snprintf(T.g.mem_sleep, sizeof(T.g.mem_sleep), "%s", next_mem_sleep);
	next_mem_sleep[0] = '\0';
	T.g.links[0] = (struct fdev){ false, "52:54:00:76:00:01", "eth1", "0000:01:00.0", 0 };
	T.g.links[1] = (struct fdev){ true, "52:54:00:76:00:02", "eth2", "0000:02:00.0", 0 };
	T.g.blocks[0] = (struct fdev){ false, "d1", "vdb", "0000:03:00.0", 0 };
	snprintf(T.g.path, sizeof(T.g.path), "%s/agent.sock", T.dir);
	T.g.listen_fd = listen_at(T.g.path);
	CU_ASSERT_EQUAL_FATAL(pipe2(T.g.wake, O_CLOEXEC | O_NONBLOCK), 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&T.g.thread, NULL, guest_run, &T.g), 0);

	T.h.hv.ops = &fake_ops;
	T.h.g = &T.g;
	pthread_mutex_init(&T.h.mu, NULL);
	CU_ASSERT_EQUAL_FATAL(pipe2(T.h.pipe, O_CLOEXEC | O_NONBLOCK), 0);
	snprintf(T.h.spec, sizeof(T.h.spec), "vserial:%s", T.g.path);

	fx_capture_init(&T.cap);
	T.reps[0] = &T.cap.base;
	T.opts = (struct vmc_run_opts){ .repeat = 1, .deadline_ms = 300 };
	CU_ASSERT_EQUAL_FATAL(vmc_suite_new(&T.h.hv, &T.opts, T.reps, 1, &T.s, &err), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_suite_connect(T.s, 2000), 0);
	CU_ASSERT_EQUAL_FATAL(T.cap.n, 1);
	CU_ASSERT_EQUAL(T.cap.r[0].status, VMC_STEP_PASSED);
}

static void stop(void)
{
	vmc_suite_free(T.s);
	pthread_mutex_lock(&T.g.mu);
	T.g.quit = true;
	pthread_mutex_unlock(&T.g.mu);
	wake(&T.g);
	pthread_join(T.g.thread, NULL);
	if (T.g.conn >= 0)
		close(T.g.conn);
	close(T.g.listen_fd);
	close(T.g.wake[0]);
	close(T.g.wake[1]);
	close(T.h.pipe[0]);
	close(T.h.pipe[1]);
	unlink(T.g.path);
	rmdir(T.dir);
	fx_capture_free(&T.cap);
	pthread_mutex_destroy(&T.g.mu);
	pthread_mutex_destroy(&T.h.mu);
}

static const struct fx_cap_rec *last(void)
{
	return &T.cap.r[T.cap.n - 1];
}

static bool has(const char *hay, const char *needle)
{
	return hay && strstr(hay, needle);
}

/* ------------------------------------------------------------ predicates */

static bool link_up(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	for (size_t i = 0; i < st->n_links; i++)
		if (!strcmp(st->links[i]->mac, arg))
			return true;
	vmc_why_set(why, "no link with MAC %s", (const char *)arg);
	return false;
}

static bool link_gone(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	for (size_t i = 0; i < st->n_links; i++)
		if (!strcmp(st->links[i]->mac, arg)) {
			vmc_why_set(why, "%s still has MAC %s", st->links[i]->name,
				    (const char *)arg);
			return false;
		}
	return true;
}

static bool disk_1g(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	for (size_t i = 0; i < st->n_blocks; i++)
		if (!strcmp(st->blocks[i]->serial, arg)) {
			if (st->blocks[i]->size_bytes == 1ull << 30)
				return true;
			vmc_why_set(why, "%s: size %llu, want %llu", st->blocks[i]->name,
				    (unsigned long long)st->blocks[i]->size_bytes, 1ull << 30);
			return false;
		}
	vmc_why_set(why, "no block device with serial %s", (const char *)arg);
	return false;
}

static struct vmc_ctx *ctx(void)
{
	static struct vmc_ctx c;

	c = (struct vmc_ctx){ .hv = &T.h.hv, .suite = T.s, .opts = &T.opts };
	return &c;
}

/* Plug links[0] (made to appear after @delay_ms, or never) and expect it. */
static int plug_nic(int delay_ms, unsigned deadline_ms)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_nic nic = { "nic1", "52:54:00:76:00:01", "pciroot2" };
	struct vmc_step *s = vmc_step_begin(ctx(), "nic", "plug nic1 (%s)", nic.mac);
	int r;

	if (delay_ms >= 0)
		schedule(&T.g, CH_LINK_ON, 0, (unsigned)delay_ms);
	r = vmc_step_acted(s, T.h.hv.ops->nic_add(&T.h.hv, &nic, &err), &err);
	if (r == 0)
		r = vmc_step_expect(s, link_up, (void *)nic.mac, deadline_ms);
	if (r == -ETIMEDOUT)
		vmc_step_ladder(s, "nic1", "0000:00:02.0", "link 52:54:00:76:00:01");
	return vmc_step_end(s, r, NULL);
}

/* ------------------------------------------------------------ tests */

static void device_never_appears(void)
{
	uint64_t t0;
	int r;

	start();
	t0 = vmc_mono_ns();
	r = plug_nic(-1, 150);
	CU_ASSERT_EQUAL(r, -ETIMEDOUT);
	CU_ASSERT((vmc_mono_ns() - t0) / MS >= 150);
	CU_ASSERT_EQUAL(last()->status, VMC_STEP_FAILED);
	CU_ASSERT_STRING_EQUAL(last()->message,
			       "not within 150 ms: no link with MAC 52:54:00:76:00:01");
	CU_ASSERT_EQUAL(last()->latency_ns, -1);
	/* The hypervisor has it, the guest has no function behind the port. */
	CU_ASSERT(has(last()->evidence, "host    ok       nic1 on virtio-net-pci at pciroot2"));
	CU_ASSERT(has(
		last()->evidence,
		"pci     MISSING  no function behind the port at 0000:00:02.0   <- stopped here"));
	CU_ASSERT(has(last()->evidence, "kernel  MISSING  no link with MAC 52:54:00:76:00:01\n"));
	/* A snapshot asked for after the verdict, the diff to it, kernel log since the action
	 * (not the boot record), transcript. */
	CU_ASSERT(has(last()->evidence, "guest snapshot read for this evidence at +"));
	CU_ASSERT(has(last()->evidence, "baseline -> now):\n  (none)"));
	CU_ASSERT(has(last()->evidence, "since the action (1 records):\n"));
	CU_ASSERT(has(last()->evidence, "Card not present"));
	CU_ASSERT(!has(last()->evidence, "fake: booting"));
	CU_ASSERT(has(last()->evidence, "-> device_add nic1 mac=52:54:00:76:00:01 bus=pciroot2"));
	stop();
}

static void device_appears_with_timeline(void)
{
	const struct fx_cap_rec *x;

	start();
	CU_ASSERT_EQUAL(plug_nic(30, 2000), 0);
	x = last();
	CU_ASSERT_EQUAL(x->status, VMC_STEP_PASSED);
	CU_ASSERT_PTR_NULL(x->message);
	/* Latency from the action to the push; the kernel time falls in between. */
	CU_ASSERT(x->latency_ns >= 30 * (int64_t)MS && x->latency_ns < 1000 * (int64_t)MS);
	CU_ASSERT(x->t_kernel >= x->t_action && x->t_kernel <= x->t_confirm);
	CU_ASSERT(x->t_confirm - x->t_kernel < 20 * MS);
	stop();
}

/*
 * A guest over a bound (a link's driver one byte over the string bound)
 * fails the step with the bound named, and the results so far stand.
 */
static void a_guest_over_a_bound_fails_the_step_naming_it(void)
{
	char *driver = malloc(VMC_BOUND_STRING + 2);

	CU_ASSERT_PTR_NOT_NULL_FATAL(driver);
	memset(driver, 'd', VMC_BOUND_STRING + 1);
	driver[VMC_BOUND_STRING + 1] = '\0';
	start();
	pthread_mutex_lock(&T.g.mu);
	T.g.driver = driver;
	pthread_mutex_unlock(&T.g.mu);
	CU_ASSERT_NOT_EQUAL(plug_nic(30, 2000), 0);
	CU_ASSERT_EQUAL(T.cap.n, 2);
	CU_ASSERT_EQUAL(T.cap.r[0].status, VMC_STEP_PASSED);
	CU_ASSERT_EQUAL(last()->status, VMC_STEP_FAILED);
	CU_ASSERT(has(last()->message,
		      "the agent sent a string of 65537 bytes "
		      "(event.state.links[0].driver), over the bound of 65536 bytes"));
	stop();
	free(driver);
}

/*
 * The guest's kernel time is its word: one from before the host's clock
 * began (this guest's clock runs 5 s ahead) is not recorded, where the
 * unsigned subtraction wrapped to a time 584 years after the action.
 */
static void kernel_time_before_the_host_clock_is_dropped(void)
{
	const struct fx_cap_rec *x;

	start();
	pthread_mutex_lock(&T.g.mu);
	T.g.kernel_ns = 1;
	pthread_mutex_unlock(&T.g.mu);
	CU_ASSERT_EQUAL(plug_nic(30, 2000), 0);
	x = last();
	CU_ASSERT_EQUAL(x->status, VMC_STEP_PASSED);
	CU_ASSERT(x->latency_ns >= 30 * (int64_t)MS && x->latency_ns < 1000 * (int64_t)MS);
	CU_ASSERT_EQUAL(x->t_kernel, 0);
	stop();
}

static void wrong_size_says_why(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv_disk d = { .id = "disk1", .serial = "d1", .slot = "pciroot3" };
	struct vmc_step *s;
	int r;

	start();
	s = vmc_step_begin(ctx(), "disk", "plug disk1 (serial d1)");
	schedule(&T.g, CH_BLOCK_ON, 0, 20); /* arrives, but with size 0 */
	r = vmc_step_acted(s, T.h.hv.ops->disk_add(&T.h.hv, &d, &err), &err);
	CU_ASSERT_EQUAL(r, 0);
	r = vmc_step_expect(s, disk_1g, "d1", 200);
	CU_ASSERT_EQUAL(r, -ETIMEDOUT);
	vmc_step_ladder(s, "disk1", "", "block serial=d1");
	CU_ASSERT_EQUAL(vmc_step_end(s, r, "disk d1 on %s", "pciroot3"), -ETIMEDOUT);
	CU_ASSERT_STRING_EQUAL(
		last()->message,
		"disk d1 on pciroot3: not within 200 ms: vdb: size 0, want 1073741824");
	CU_ASSERT(has(last()->evidence, "+ block vdb"));
	CU_ASSERT(has(last()->evidence, "kernel  ok       vdb\n"));
	CU_ASSERT(has(last()->evidence, "online  MISSING  size 0 bytes   <- stopped here"));
	stop();
}

static int unplug_nic2(unsigned delay_ms, unsigned deadline_ms)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step *s = vmc_step_begin(ctx(), "nic", "unplug nic2");
	int r;

	schedule(&T.g, CH_LINK_OFF, 1, delay_ms);
	r = vmc_step_acted(s, T.h.hv.ops->nic_del(&T.h.hv, "nic2", &err), &err);
	if (r == 0)
		r = vmc_step_expect(s, link_gone, "52:54:00:76:00:02", deadline_ms);
	if (r == -ETIMEDOUT)
		vmc_step_ladder_gone(s, "nic2", "0000:02:00.0", "link 52:54:00:76:00:02");
	return vmc_step_end(s, r, NULL);
}

static void disappears_late(void)
{
	start();
	/* Gone only after 300 ms: a 100 ms deadline fails, naming the link... */
	CU_ASSERT_EQUAL(unplug_nic2(300, 100), -ETIMEDOUT);
	CU_ASSERT_STRING_EQUAL(last()->message,
			       "not within 100 ms: eth2 still has MAC 52:54:00:76:00:02");
	/* ...and the removal ladder stops at the guest's kernel object. */
	CU_ASSERT(has(last()->evidence,
		      "kernel  present  eth2 (ifindex 0)   <- stopped here (still present)"));
	stop();
	/* A deadline that allows it: passes, the latency at least the delay. */
	start();
	CU_ASSERT_EQUAL(unplug_nic2(300, 2000), 0);
	CU_ASSERT(last()->latency_ns >= 300 * (int64_t)MS);
	stop();
}

static void agent_restarts_mid_step(void)
{
	start();
	/* A new boot while waiting for a device: the step fails at once, saying so. */
	schedule(&T.g, CH_REBOOT, 0, 30);
	CU_ASSERT_EQUAL(plug_nic(-1, 2000), -ECONNRESET);
	CU_ASSERT(last()->latency_ns == -1);
	CU_ASSERT_STRING_EQUAL(last()->message,
			       "the guest rebooted during the step (boot_id boot-0 -> boot-1)");
	/* The suite subscribed again: the next step sees pushes of the new agent. */
	CU_ASSERT_EQUAL(plug_nic(30, 2000), 0);
	/* Same boot, agent restarted: subscribed again, the step goes on and passes. */
	schedule(&T.g, CH_RESTART, 0, 10);
	CU_ASSERT_EQUAL(unplug_nic2(80, 2000), 0);
	CU_ASSERT(has(last()->notes, "the agent restarted (same boot); subscribed again"));
	stop();
}

static int dies_check(struct vmc_ctx *c)
{
	hv_exit(&T.h, "QEMU exited on signal 6 (Aborted); last QMP command: device_del cpu3");
	return plug_nic(-1, 5000);
}

static int never_run_check(struct vmc_ctx *c)
{
	CU_FAIL("a check ran after the VM died");
	return 0;
}

static void hv_dies_mid_step(void)
{
	const struct vmc_check checks[] = { { "vcpu", dies_check }, { "nic", never_run_check } };
	uint64_t t0 = vmc_mono_ns();

	start();
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 2), -1);
	/* Noticed by the liveness guard long before the 5 s deadline. */
	CU_ASSERT((vmc_mono_ns() - t0) / MS < 2000);
	CU_ASSERT_EQUAL_FATAL(T.cap.n, 3);
	CU_ASSERT_EQUAL(T.cap.r[1].status, VMC_STEP_FAILED);
	/* How it died first, then what the action met. */
	CU_ASSERT_STRING_EQUAL(T.cap.r[1].message,
			       "the VM died: QEMU exited on signal 6 (Aborted); last QMP command: "
			       "device_del cpu3: device_add nic1 mac=52:54:00:76:00:01 "
			       "bus=pciroot2: QEMU is gone");
	CU_ASSERT(has(T.cap.r[1].evidence, "the guest's last snapshot:"));
	CU_ASSERT(has(T.cap.r[1].evidence, "eth2"));
	/* Not run because the VM died: failed, not skipped. */
	CU_ASSERT_EQUAL(T.cap.r[2].status, VMC_STEP_FAILED);
	CU_ASSERT_STRING_EQUAL(T.cap.r[2].check, "nic");
	CU_ASSERT_STRING_EQUAL(T.cap.r[2].message,
			       "not run: the VM is gone (QEMU exited on signal 6 (Aborted))");
	stop();
}

/* The QMP backend answers an action on a dead QEMU with -ESRCH: the same end. */
static void hv_reports_the_vm_gone(void)
{
	const struct vmc_check checks[] = { { "vcpu", dies_check }, { "nic", never_run_check } };

	start();
	T.h.gone_esrch = true;
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 2), -1);
	CU_ASSERT_EQUAL_FATAL(T.cap.n, 3);
	CU_ASSERT_EQUAL(T.cap.r[1].status, VMC_STEP_FAILED);
	CU_ASSERT_STRING_EQUAL(T.cap.r[1].message,
			       "device_add nic1 mac=52:54:00:76:00:01 bus=pciroot2: QEMU is gone");
	CU_ASSERT(has(T.cap.r[1].evidence, "the guest's last snapshot:"));
	CU_ASSERT_EQUAL(T.cap.r[2].status, VMC_STEP_FAILED);
	CU_ASSERT_STRING_EQUAL(T.cap.r[2].message,
			       "not run: the VM is gone (QEMU exited on signal 6 (Aborted))");
	stop();
}

static void lifecycle_against_fake(void)
{
	const struct vmc_check checks[] = {
		{ "lifecycle", vmc_check_lifecycle_s3 },
		{ "lifecycle", vmc_check_lifecycle_reboot },
		{ "lifecycle", vmc_check_lifecycle_powerdown },
		{ "nic", never_run_check },
	};
	unsigned counts[3];

	start();
	T.opts.deadline_ms = 2000;
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, ARRAY_SIZE(checks)), 0);
	for (size_t i = 0; i < T.cap.n; i++)
		if (T.cap.r[i].status == VMC_STEP_FAILED)
			fprintf(stderr, "%s: %s\n%s", T.cap.r[i].name, T.cap.r[i].message,
				T.cap.r[i].evidence ? T.cap.r[i].evidence : "");
	vmc_suite_counts(T.s, counts);
	/* setup, stop, cont, suspend, wakeup, reset, reboot, powerdown; nic skipped. */
	CU_ASSERT_EQUAL(counts[VMC_STEP_PASSED], 8);
	CU_ASSERT_EQUAL(counts[VMC_STEP_FAILED], 0);
	CU_ASSERT_EQUAL(counts[VMC_STEP_SKIPPED], 1);
	CU_ASSERT_EQUAL_FATAL(T.cap.n, 9);
	/* The stopped fake's clock did not run: judged and said. */
	CU_ASSERT(has(T.cap.r[2].notes, "guest clock advanced"));
	CU_ASSERT(has(T.cap.r[2].notes, "the VM was stopped for"));
	CU_ASSERT(has(T.cap.r[7].notes, "the VM process ended: QEMU exited with status 0"));
	CU_ASSERT(has(T.cap.r[8].message, "not run: the VM was powered down"));
	stop();
}

static void clock_running_while_stopped_fails(void)
{
	const struct vmc_check checks[] = { { "lifecycle", vmc_check_lifecycle_s3 } };

	start();
	T.opts.deadline_ms = 2000;
	/* A broken pause: the agent hushes but the guest's clock runs on. */
	pthread_mutex_lock(&T.g.mu);
	T.g.clock_leaks = true;
	pthread_mutex_unlock(&T.g.mu);
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), -1);
	CU_ASSERT_EQUAL_FATAL(T.cap.n, 6);
	CU_ASSERT_EQUAL(T.cap.r[1].status, VMC_STEP_PASSED);
	CU_ASSERT_EQUAL(T.cap.r[2].status, VMC_STEP_FAILED);
	CU_ASSERT(has(T.cap.r[2].message, "the guest clock ran while the VM was stopped: it "
					  "advanced"));
	/* The rest of the check still runs, and ends with the reset S3 needs. */
	CU_ASSERT(has(T.cap.r[3].name, "suspend"));
	CU_ASSERT_EQUAL(T.cap.r[4].status, VMC_STEP_PASSED);
	CU_ASSERT(has(T.cap.r[5].name, "reset"));
	CU_ASSERT_EQUAL(T.cap.r[5].status, VMC_STEP_PASSED);
	stop();
}

/*
 * The console's last lines in the evidence of an unasked reboot are the
 * guest's: quoted, a carriage return at a line's end dropped, no ESC.
 */
static void console_tail_is_quoted(void)
{
	static const char text[] = "[    1.0] booting\r\n"
				   "kernel: a\\b \x1b[2J caf\xc3\xa9 \xff\r\n"
				   "ok\tdone\r\n";
	FILE *f;

	start();
	snprintf(fake_console, sizeof(fake_console), "%s/console.log", T.dir);
	f = fopen(fake_console, "we");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
	CU_ASSERT_EQUAL(plug_nic(20, 2000), 0);
	schedule(&T.g, CH_REBOOT, 0, 10);
	usleep(150 * 1000);
	CU_ASSERT_EQUAL(unplug_nic2(30, 2000), 0);
	CU_ASSERT_EQUAL_FATAL(T.cap.n, 4);
	CU_ASSERT_STRING_EQUAL(T.cap.r[2].name, "unexpected reboot");
	CU_ASSERT(has(T.cap.r[2].evidence, "serial console, its last lines"));
	CU_ASSERT(has(T.cap.r[2].evidence, "\n  [    1.0] booting\n"
					   "  kernel: a\\\\b \\e[2J caf\xc3\xa9 \\xff\n"
					   "  ok\\tdone\n"));
	CU_ASSERT(!has(T.cap.r[2].evidence, "\r"));
	CU_ASSERT(!has(T.cap.r[2].evidence, "\x1b"));
	unlink(fake_console);
	*fake_console = '\0';
	stop();
}

/* A reboot nobody asked for between two steps fails a step of its own. */
static void reboot_between_steps_fails(void)
{
	int r;

	start();
	CU_ASSERT_EQUAL(plug_nic(20, 2000), 0);
	schedule(&T.g, CH_REBOOT, 0, 10);
	usleep(150 * 1000); /* the new agent has announced itself: no step was running */
	CU_ASSERT_EQUAL(unplug_nic2(30, 2000), 0);
	CU_ASSERT_EQUAL_FATAL(T.cap.n, 4);
	CU_ASSERT_STRING_EQUAL(T.cap.r[2].name, "unexpected reboot");
	CU_ASSERT_STRING_EQUAL(T.cap.r[2].check, "nic");
	CU_ASSERT_EQUAL(T.cap.r[2].status, VMC_STEP_FAILED);
	CU_ASSERT(has(T.cap.r[2].message, "the guest rebooted between steps and no step asked "
					  "for it (boot_id boot-0 -> boot-1"));
	CU_ASSERT(has(T.cap.r[2].evidence, "serial console: not kept by this backend"));
	CU_ASSERT_EQUAL(T.cap.r[3].status, VMC_STEP_PASSED);

	/* The hypervisor's RESET came first: the step waits for the new boot, then fails. */
	hv_queue_event_why(&T.h, "RESET", "guest-reset");
	schedule(&T.g, CH_REBOOT, 0, 100);
	CU_ASSERT_EQUAL(plug_nic(20, 2000), 0);
	CU_ASSERT_EQUAL_FATAL(T.cap.n, 6);
	CU_ASSERT_EQUAL(T.cap.r[4].status, VMC_STEP_FAILED);
	CU_ASSERT(has(T.cap.r[4].message, "boot-1 -> boot-2; RESET guest-reset"));
	CU_ASSERT_EQUAL(T.cap.r[5].status, VMC_STEP_PASSED);

	stop();

	/* A RESET while a step ran: that step fails, though its own expectation held. */
	start();
	schedule(&T.g, CH_RESET_EV, 0, 50);
	r = unplug_nic2(200, 2000);
	if (r != -ECONNRESET)
		fprintf(stderr, "\nunplug: %d %s\n", r, last()->message);
	CU_ASSERT_EQUAL(r, -ECONNRESET);
	CU_ASSERT_EQUAL_FATAL(T.cap.n, 2);
	CU_ASSERT(has(T.cap.r[1].message, "the guest went down during the step and no step asked "
					  "for it (RESET guest-reset)"));
	stop();
}

static void powerdown_is_clean_or_fails(void)
{
	const struct vmc_check checks[] = { { "lifecycle", vmc_check_lifecycle_powerdown } };

	/* The guest panics on the power button: QEMU still exits 0, the reason tells. */
	start();
	T.g.panics = true;
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), -1);
	CU_ASSERT_EQUAL(last()->status, VMC_STEP_FAILED);
	CU_ASSERT(has(last()->message, "the guest panicked on its way down (GUEST_PANICKED seen; "
				       "SHUTDOWN reason guest-panic)"));
	stop();

	/* A clean SHUTDOWN but an unclean end of the process. */
	start();
	T.h.unclean = true;
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), -1);
	CU_ASSERT(has(last()->message, "the VM did not end cleanly: QEMU exited with status 0"));
	stop();

	start();
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), 0);
	stop();

	/* A POWERDOWN the backend made up is said so, and times nothing. */
	start();
	T.h.made_up = true;
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), 0);
	CU_ASSERT(has(last()->notes, "POWERDOWN synthesized by the fake backend, not reported by "
				     "the hypervisor: {\"made\":\"up\"}"));
	/* Confirmed by the SHUTDOWN 50 ms later, not by the made-up event at once. */
	CU_ASSERT(last()->latency_ns >= 40 * (int64_t)MS);
	stop();
}

static void clock_going_back_fails_cont(void)
{
	const struct vmc_check checks[] = { { "lifecycle", vmc_check_lifecycle_s3 } };

	start();
	T.opts.deadline_ms = 2000;
	pthread_mutex_lock(&T.g.mu);
	T.g.clock_back = true;
	pthread_mutex_unlock(&T.g.mu);
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), -1);
	CU_ASSERT_EQUAL_FATAL(T.cap.n, 6);
	CU_ASSERT_EQUAL(T.cap.r[2].status, VMC_STEP_FAILED);
	CU_ASSERT(has(T.cap.r[2].message, "the guest's monotonic clock went backwards"));
	stop();
}

/* Never true, and says so for good: the wait ends at once. */
static bool never(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	vmc_why_final(why, "cpu2 is in socket 3, QEMU put it in socket 2");
	return false;
}

static void a_final_reason_ends_the_wait(void)
{
	struct vmc_step *s;
	uint64_t t0;

	start();
	t0 = vmc_mono_ns();
	s = vmc_step_begin(ctx(), "vcpu", "online cpu2");
	CU_ASSERT_EQUAL(vmc_step_expect(s, never, NULL, 5000), -EINVAL);
	CU_ASSERT_EQUAL(vmc_step_end(s, -EINVAL, NULL), -EINVAL);
	CU_ASSERT((vmc_mono_ns() - t0) / MS < 1000);
	CU_ASSERT_STRING_EQUAL(last()->message, "cpu2 is in socket 3, QEMU put it in socket 2");
	stop();
}

/* No agent: what could not run failed, it was not skipped. */
static void no_agent_fails_what_follows(void)
{
	const struct vmc_check checks[] = { { "nic", never_run_check } };

	start();
	/* Point the "hypervisor" at a socket where no agent listens. */
	snprintf(T.h.spec, sizeof(T.h.spec), "vserial:%s/none.sock", T.dir);
	vmc_suite_attach(T.s, &T.h.hv, NULL);
	CU_ASSERT(vmc_suite_connect(T.s, 300) < 0);
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), -1);
	CU_ASSERT_EQUAL(last()->status, VMC_STEP_FAILED);
	CU_ASSERT(has(last()->message, "not run: no agent"));
	stop();
}

/*
 * The agent never answered: the failure says why the last connect or
 * Hello failed (it once said only "did not answer within the deadline",
 * also for an agent that answered with wrong ids); a spec that
 * can never connect fails at once instead of waiting out the deadline.
 */
static void no_agent_says_why_and_a_bad_spec_fails_at_once(void)
{
	char path[sizeof(T.dir) + 16];
	uint64_t t0;
	int mute;

	start();
	snprintf(T.h.spec, sizeof(T.h.spec), "vserial:%s/none.sock", T.dir);
	vmc_suite_attach(T.s, &T.h.hv, NULL);
	CU_ASSERT(vmc_suite_connect(T.s, 300) < 0);
	if (!has(last()->message, "No such file or directory"))
		fprintf(stderr, "no agent: %s\n", last()->message);
	CU_ASSERT(has(last()->message, "did not answer within the deadline"));
	CU_ASSERT(has(last()->message, "No such file or directory"));
	/* An agent that takes the connection and never answers: the last Hello says so. */
	snprintf(path, sizeof(path), "%s/mute.sock", T.dir);
	mute = listen_at(path);
	snprintf(T.h.spec, sizeof(T.h.spec), "vserial:%s", path);
	vmc_suite_attach(T.s, &T.h.hv, NULL);
	CU_ASSERT(vmc_suite_connect(T.s, 300) < 0);
	if (!has(last()->message, "no reply to hello within"))
		fprintf(stderr, "mute agent: %s\n", last()->message);
	CU_ASSERT(has(last()->message, "did not answer within the deadline: "));
	CU_ASSERT(has(last()->message, "no reply to hello within"));
	close(mute);
	unlink(path);
	snprintf(T.h.spec, sizeof(T.h.spec), "nosuch:%s", T.dir);
	vmc_suite_attach(T.s, &T.h.hv, NULL);
	t0 = vmc_mono_ns();
	CU_ASSERT(vmc_suite_connect(T.s, 5000) < 0);
	CU_ASSERT(vmc_mono_ns() - t0 < 2000000000ull);
	CU_ASSERT(has(last()->message, "nosuch"));
	stop();
}

/* A failed setup step's evidence, checked for what it says of the last snapshot. */
static void no_snapshot_says_so(const char *what)
{
	const char *ev = last()->evidence;

	CU_ASSERT_EQUAL(last()->status, VMC_STEP_FAILED);
	if (!has(ev, "the agent of this VM never sent one"))
		fprintf(stderr, "%s: evidence: %s\n", what, ev ? ev : "(none)");
	CU_ASSERT(has(ev, "no fresh guest snapshot for this evidence (no agent connection)"));
	CU_ASSERT(has(ev, "the agent of this VM never sent one\n"));
	CU_ASSERT(!has(ev, "the last one the agent pushed"));
	CU_ASSERT(!has(ev, " at +"));
}

/*
 * No agent ever answered: the evidence says there is no snapshot, never an
 * age (the time of a snapshot that was never taken once read +18446743079 s),
 * nor that of the previous VM's last snapshot.
 */
static void evidence_without_a_snapshot_gives_no_age(void)
{
	struct vmc_error err = VMC_ERROR_INIT;

	start();
	snprintf(T.h.spec, sizeof(T.h.spec), "vserial:%s/none.sock", T.dir);
	vmc_suite_attach(T.s, &T.h.hv, NULL);
	CU_ASSERT(vmc_suite_connect(T.s, 300) < 0);
	no_snapshot_says_so("after another VM");
	/* The run's first VM, its agent silent from the start. */
	vmc_suite_free(T.s);
	CU_ASSERT_EQUAL_FATAL(vmc_suite_new(&T.h.hv, &T.opts, T.reps, 1, &T.s, &err), 0);
	CU_ASSERT(vmc_suite_connect(T.s, 300) < 0);
	no_snapshot_says_so("first VM");
	stop();
}

/* Unplug nic2 the way the checks do: the hypervisor may give up before the removal is done. */
static int unplug_nic2_judged(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step *s = vmc_step_begin(ctx(), "nic", "unplug nic2");
	bool pending = false;
	int r;

	schedule(&T.g, CH_LINK_OFF, 1, 20);
	r = vmc_chk_del(s, T.h.hv.ops->nic_del(&T.h.hv, "nic2", &err), &err, &pending);
	if (r == 0)
		r = vmc_step_expect(s, link_gone, "52:54:00:76:00:02", 2000);
	if (r == 0)
		r = vmc_chk_removed(ctx(), s, "nic2", pending, 300);
	return vmc_step_end(s, r, NULL);
}

static void a_removal_is_judged_in_every_layer(void)
{
	start();
	T.h.give_up = true;
	/* Guest and QEMU let go, the management layer still lists it: its failure. */
	T.h.views = (struct vmc_hv_removal){ .vmm = 0, .mgmt = 1 };
	snprintf(T.h.views.vmm_says, sizeof(T.h.views.vmm_says), "qom-get: DeviceNotFound");
	snprintf(T.h.views.mgmt_says, sizeof(T.h.views.mgmt_says), "live XML has nic2");
	CU_ASSERT_EQUAL(unplug_nic2_judged(), -EBUSY);
	CU_ASSERT(has(last()->message, "the fake layer still lists nic2 although the guest and "
				       "QEMU removed it (a failure of fake, not of the guest)"));
	CU_ASSERT(has(last()->message, "guest: gone; QEMU: gone (qom-get: DeviceNotFound); fake: "
				       "still has it (live XML has nic2)"));
	CU_ASSERT(has(last()->notes, "fake: unplug request timed out"));
	stop();

	/* Every layer agrees, though no DEVICE_DELETED came: a pass, saying so. */
	start();
	T.h.give_up = true;
	T.h.views = (struct vmc_hv_removal){ .vmm = 0, .mgmt = 0 };
	CU_ASSERT_EQUAL(unplug_nic2_judged(), 0);
	CU_ASSERT(has(last()->notes, "no DEVICE_DELETED event; guest: gone; QEMU: gone"));
	stop();

	/* QEMU still has it. */
	start();
	T.h.views = (struct vmc_hv_removal){ .vmm = 1, .mgmt = -1 };
	CU_ASSERT_EQUAL(unplug_nic2_judged(), -EBUSY);
	CU_ASSERT(has(last()->message, "QEMU still has nic2 after the guest let go of it"));
	stop();
}

/*
 * The NIC check waits for an unplug as long as the guest's architecture
 * needs: a guest that lets go 800 ms after device_del fails a 300 ms
 * deadline on x86_64, and passes on aarch64, whose native PCIe hotplug
 * gets the attention button's 5 s on top.
 */
static void nic_unplug_waits_as_the_arch_needs(void)
{
	const struct vmc_check checks[] = { { "nic", vmc_check_nic } };

	for (int arm = 0; arm < 2; arm++) {
		start();
		T.opts.nics = 1;
		T.h.plugs = true;
		T.h.unplug_ms = 800;
		T.h.arch = arm ? &vmc_arch_aarch64 : NULL;
		CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), arm ? 0 : -1);
		/* setup, plug, use (skipped: the fake speaks minor 0), unplug */
		CU_ASSERT_EQUAL_FATAL(T.cap.n, 4);
		CU_ASSERT_EQUAL(T.cap.r[1].status, VMC_STEP_PASSED);
		CU_ASSERT(has(T.cap.r[3].name, "unplug nic1"));
		if (arm) {
			CU_ASSERT_EQUAL(T.cap.r[3].status, VMC_STEP_PASSED);
			CU_ASSERT(T.cap.r[3].latency_ns >= 800 * (int64_t)MS);
		} else {
			CU_ASSERT_EQUAL(T.cap.r[3].status, VMC_STEP_FAILED);
			CU_ASSERT(has(T.cap.r[3].message, "not within 300 ms: link eth1 with MAC"));
		}
		stop();
	}
}

/*
 * A NIC the guest never showed cannot pass its unplug on the guest's
 * silence: its plug fails, and so does its unplug, saying so, though QEMU
 * removed it (DEVICE_DELETED came).
 */
static void an_unplug_the_guest_never_saw_fails(void)
{
	const struct vmc_check checks[] = { { "nic", vmc_check_nic } };

	start();
	T.opts.nics = 1;
	T.h.plugs = true;
	T.h.unseen = true;
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), -1);
	/* setup, plug (failed: no use), unplug */
	CU_ASSERT_EQUAL_FATAL(T.cap.n, 3);
	CU_ASSERT_EQUAL(T.cap.r[1].status, VMC_STEP_FAILED);
	CU_ASSERT(has(T.cap.r[2].name, "unplug nic1"));
	CU_ASSERT_EQUAL(T.cap.r[2].status, VMC_STEP_FAILED);
	CU_ASSERT(has(T.cap.r[2].message, "the guest never showed nic1 before its unplug"));
	CU_ASSERT(has(T.cap.r[2].message, "the hypervisor did remove it"));
	stop();
}

/*
 * A machine without vCPU hotplug is a skip in the hypervisor's words; any
 * other failure to list the positions fails the check.
 */
static void vcpu_check_skips_only_what_is_not_offered(void)
{
	const struct vmc_check checks[] = { { "vcpu", vmc_check_vcpu } };

	start();
	T.opts.cpus = 2;
	T.h.cpus_rc = -ENOTSUP;
	snprintf(T.h.cpus_says, sizeof(T.h.cpus_says),
		 "query-hotpluggable-cpus: The feature 'query-hotpluggable-cpus' is not enabled");
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), 0);
	CU_ASSERT_EQUAL_FATAL(T.cap.n, 2);
	CU_ASSERT_EQUAL(T.cap.r[1].status, VMC_STEP_SKIPPED);
	CU_ASSERT_STRING_EQUAL(T.cap.r[1].message,
			       "the fake backend offers no vCPU hotplug on this VM: "
			       "query-hotpluggable-cpus: The feature 'query-hotpluggable-cpus' is not "
			       "enabled");
	stop();

	start();
	T.opts.cpus = 2;
	T.h.cpus_rc = VMC_QMP_ECOMMAND;
	snprintf(T.h.cpus_says, sizeof(T.h.cpus_says),
		 "query-hotpluggable-cpus: Invalid CPU topology");
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), -1);
	CU_ASSERT_EQUAL_FATAL(T.cap.n, 2);
	CU_ASSERT_EQUAL(T.cap.r[1].status, VMC_STEP_FAILED);
	CU_ASSERT(has(T.cap.r[1].message, "query-hotpluggable-cpus: Invalid CPU topology"));
	stop();
}

/* start(), then a guest that shows its CPUs and a hypervisor with one free vCPU position. */
static void start_with_cpus(void)
{
	start();
	pthread_mutex_lock(&T.g.mu);
	T.g.cpus = true;
	pthread_mutex_unlock(&T.g.mu);
	T.h.cpu_free = true;
	T.opts.cpus = 1;
	/* Connect anew: the first view must have the CPUs, the plug's baseline. */
	vmc_suite_attach(T.s, &T.h.hv, NULL);
	CU_ASSERT_EQUAL_FATAL(vmc_suite_connect(T.s, 2000), 0);
}

/*
 * Only a vCPU device_del leaves the VM unfit for a later check (QEMU 7.2
 * aborts on the next ACPI event: the runner powers down a fresh VM then). A
 * machine without vCPU hotplug, or a plug QEMU refused, leaves the VM fit;
 * the taint goes with the VM.
 */
static void only_a_vcpu_unplug_taints_the_vm(void)
{
	const struct vmc_check checks[] = { { "vcpu", vmc_check_vcpu } };

	start();
	T.opts.cpus = 1;
	T.h.cpus_rc = -ENOTSUP;
	snprintf(T.h.cpus_says, sizeof(T.h.cpus_says),
		 "query-hotpluggable-cpus: The feature 'query-hotpluggable-cpus' is not enabled");
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), 0);
	CU_ASSERT_EQUAL(last()->status, VMC_STEP_SKIPPED);
	CU_ASSERT_PTR_NULL(vmc_suite_tainted(T.s));
	stop();

	start_with_cpus();
	T.h.cpu_add_rc = VMC_QMP_ECOMMAND;
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), -1);
	CU_ASSERT(has(T.h.transcript, "-> device_add vcpu1"));
	CU_ASSERT(has(last()->message, "CPU hotplug refused"));
	CU_ASSERT(!has(T.h.transcript, "device_del"));
	CU_ASSERT_PTR_NULL(vmc_suite_tainted(T.s));
	stop();

	/* Plugged (the guest never shows it: the plug fails), then unplugged all the same. */
	start_with_cpus();
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), -1);
	CU_ASSERT(has(T.h.transcript, "-> device_del vcpu1"));
	CU_ASSERT(has(last()->name, "unplug vcpu1"));
	CU_ASSERT_STRING_EQUAL(vmc_suite_tainted(T.s) ? vmc_suite_tainted(T.s) : "(not tainted)",
			       "vcpu1 was unplugged, and QEMU 7.2 aborts on the first ACPI event "
			       "after a vCPU unplug");
	vmc_suite_attach(T.s, &T.h.hv, NULL);
	CU_ASSERT_PTR_NULL(vmc_suite_tainted(T.s));
	stop();
}

/* Run the S3 part of the lifecycle check with QEMU saying @s3 and the guest @mem_sleep. */
static void run_s3(int s3, const char *mem_sleep, int want_rc)
{
	const struct vmc_check checks[] = { { "lifecycle", vmc_check_lifecycle_s3 } };

	snprintf(next_mem_sleep, sizeof(next_mem_sleep), "%s", mem_sleep);
	start();
	T.opts.deadline_ms = 2000;
	T.h.s3 = s3;
	CU_ASSERT_EQUAL(vmc_suite_run(T.s, checks, 1), want_rc);
	/* setup, stop, cont, suspend, wakeup, reset */
	CU_ASSERT_EQUAL_FATAL(T.cap.n, 6);
}

/*
 * S3 runs where the machine offers it. Where QEMU or the guest says it does
 * not, the S3 steps are skipped in their words, nothing is suspended, and
 * the reset still runs; where neither says no, the full check as ever.
 */
static void s3_only_where_the_machine_offers_it(void)
{
	/* arm virt: both say no. */
	run_s3(S3_NO, "[s2idle]", 0);
	for (int i = 3; i <= 4; i++) {
		CU_ASSERT_EQUAL(T.cap.r[i].status, VMC_STEP_SKIPPED);
		CU_ASSERT_STRING_EQUAL(
			T.cap.r[i].message,
			"no suspend to RAM on this machine: QEMU: query-current-machine "
			"says wakeup-suspend-support false; the guest: "
			"/sys/power/mem_sleep is \"[s2idle]\", no deep (S3)");
	}
	CU_ASSERT_STRING_EQUAL(T.cap.r[3].name, "suspend to RAM (agent Act suspend)");
	CU_ASSERT_STRING_EQUAL(T.cap.r[4].name, "wakeup (system_wakeup, suspend count +1)");
	CU_ASSERT_STRING_EQUAL(T.cap.r[5].name, "reset (system_reset)");
	CU_ASSERT_EQUAL(T.cap.r[5].status, VMC_STEP_PASSED);
	CU_ASSERT_EQUAL(T.g.suspends, 0);
	stop();

	/* q35 with disable_s3=1: QEMU says yes, the guest's "mem" is s2idle. */
	run_s3(S3_YES, "[s2idle]", 0);
	CU_ASSERT_EQUAL(T.cap.r[3].status, VMC_STEP_SKIPPED);
	CU_ASSERT(has(T.cap.r[3].message,
		      "no suspend to RAM on this machine: the guest: "
		      "/sys/power/mem_sleep is \"[s2idle]\", no deep (S3); QEMU: "
		      "query-current-machine says wakeup-suspend-support true"));
	CU_ASSERT_EQUAL(T.g.suspends, 0);
	stop();

	/* q35 with S3: both yes, the full check, their words in the notes. */
	run_s3(S3_YES, "s2idle [deep]", 0);
	CU_ASSERT_EQUAL(T.cap.r[3].status, VMC_STEP_PASSED);
	CU_ASSERT_EQUAL(T.cap.r[4].status, VMC_STEP_PASSED);
	CU_ASSERT(has(T.cap.r[3].notes,
		      "suspend to RAM: QEMU: query-current-machine says "
		      "wakeup-suspend-support true; the guest: /sys/power/mem_sleep "
		      "is \"s2idle [deep]\""));
	CU_ASSERT_STRING_EQUAL(T.cap.r[5].name, "reset (system_reset, required after S3)");
	CU_ASSERT_EQUAL(T.g.suspends, 1);
	stop();

	/* Neither can say (an older agent, no way to ask QEMU): the full check, as before. */
	run_s3(S3_UNASKED, "", 0);
	CU_ASSERT_EQUAL(T.cap.r[3].status, VMC_STEP_PASSED);
	CU_ASSERT(has(T.cap.r[3].notes, "the hypervisor could not be asked: query-current-machine: "
					"monitor passthrough refused; the guest does not say"));
	CU_ASSERT_EQUAL(T.g.suspends, 1);
	stop();
}

/* A virtio NIC whose virtio device has no driver stops the ladder at the driver rung. */
static void ladder_names_the_virtio_driver(void)
{
	Vmcheck__V1__State st = VMCHECK__V1__STATE__INIT;
	Vmcheck__V1__Pci pci = VMCHECK__V1__PCI__INIT;
	Vmcheck__V1__PciFunction port = VMCHECK__V1__PCI_FUNCTION__INIT,
				 fn = VMCHECK__V1__PCI_FUNCTION__INIT, *fns[2] = { &port, &fn };
	char *out = NULL;
	size_t len = 0;
	FILE *fp;

	start();
	port.address = "0000:00:02.0";
	port.class_code = 0x060400;
	port.parent = port.driver = port.slot = "";
	fn.address = "0000:01:00.0";
	fn.parent = "0000:00:02.0";
	fn.vendor = 0x1af4;
	fn.device = 0x1041;
	fn.driver = "virtio-pci"; /* the transport is bound ... */
	fn.slot = "";
	fn.virtio_device = "virtio3";
	fn.virtio_type = 1;
	fn.virtio_driver = ""; /* ... the NIC driver is not */
	pci.functions = fns;
	pci.n_functions = 2;
	st.pci = &pci;
	st.sections = VMCHECK__V1__SECTION__SECTION_PCI | VMCHECK__V1__SECTION__SECTION_LINKS;
	set_present(&T.h, "nic1", true);
	fp = open_memstream(&out, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	vmc_ladder_write(fp, &T.h.hv, &st, "nic1", "0000:00:02.0", "link 52:54:00:76:00:01", false,
			 0, "no connection reached the host");
	fclose(fp);
	CU_ASSERT(has(out, "driver  MISSING  virtio device virtio3 (type net) has no driver (PCI "
			   "transport virtio-pci)   <- stopped here"));
	CU_ASSERT(has(out, "usable  MISSING  no connection reached the host"));
	free(out);
	/* Bound on the virtio bus: that driver is the one named. */
	fn.virtio_driver = "virtio_net";
	fp = open_memstream(&out, &len);
	vmc_ladder_write(fp, &T.h.hv, &st, "nic1", "0000:00:02.0", "link 52:54:00:76:00:01", false,
			 -1, NULL);
	fclose(fp);
	CU_ASSERT(has(out, "driver  ok       virtio_net on virtio3 (type net; PCI transport "
			   "virtio-pci)"));
	CU_ASSERT(
		has(out, "kernel  MISSING  no link with MAC 52:54:00:76:00:01   <- stopped here"));
	free(out);
	/*
	 * A guest's driver name quoted once, on its line; the usable text is the
	 * check's message, quoted already (VMC_Q), and is not quoted again.
	 */
	fn.virtio_driver = "virtio\\net\n  usable  ok       used\x1b[2J";
	fp = open_memstream(&out, &len);
	vmc_ladder_write(fp, &T.h.hv, &st, "nic1", "0000:00:02.0", "link 52:54:00:76:00:01", false,
			 0, "probe on vd\\\\a: region 0 differs");
	fclose(fp);
	CU_ASSERT(has(out, "driver  ok       virtio\\\\net\\n  usable  ok       used\\e[2J on "
			   "virtio3"));
	CU_ASSERT(has(out, "usable  MISSING  probe on vd\\\\a: region 0 differs\n"));
	CU_ASSERT(!has(out, "\n  usable  ok"));
	CU_ASSERT_PTR_NULL(memchr(out, '\x1b', len));
	free(out);
	stop();
}

/* ------------------------------------------------------------ the view */

static void view_merges_only_the_sections_carried(void)
{
	Vmcheck__V1__State a = VMCHECK__V1__STATE__INIT, b = VMCHECK__V1__STATE__INIT;
	Vmcheck__V1__System sys = VMCHECK__V1__SYSTEM__INIT;
	Vmcheck__V1__Link l1 = VMCHECK__V1__LINK__INIT, l2 = VMCHECK__V1__LINK__INIT;
	Vmcheck__V1__Link *la[1] = { &l1 }, *lb[1] = { &l2 };
	Vmcheck__V1__SectionError e = VMCHECK__V1__SECTION_ERROR__INIT, *ea[1] = { &e };
	struct vmc_view *v = vmc_view_new(), *old;
	const Vmcheck__V1__State *m;

	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	sys.boot_id = "b0";
	l1.name = "eth0";
	a.generation = 1;
	a.boot_id = "b0";
	a.sections = VMCHECK__V1__SECTION__SECTION_SYSTEM | VMCHECK__V1__SECTION__SECTION_LINKS;
	a.system = &sys;
	a.links = la;
	a.n_links = 1;
	CU_ASSERT_EQUAL(vmc_view_merge(v, &a), 0);
	old = vmc_view_dup(v);
	/* A push with links only (and blocks it could not read, as the agent says it): system stays. */
	l2.name = "eth1";
	e.section = VMCHECK__V1__SECTION__SECTION_BLOCKS;
	e.message = "reading blocks: EIO";
	b.generation = 2;
	b.boot_id = "b0";
	b.sections = VMCHECK__V1__SECTION__SECTION_LINKS;
	b.links = lb;
	b.n_links = 1;
	b.errors = ea;
	b.n_errors = 1;
	CU_ASSERT_EQUAL(vmc_view_merge(v, &b), 0);
	m = vmc_view_state(v);
	CU_ASSERT_EQUAL(m->generation, 2);
	CU_ASSERT_EQUAL(m->sections,
			VMCHECK__V1__SECTION__SECTION_SYSTEM | VMCHECK__V1__SECTION__SECTION_LINKS);
	CU_ASSERT_STRING_EQUAL(m->system->boot_id, "b0");
	CU_ASSERT_EQUAL(m->n_links, 1);
	if (m->n_links == 1)
		CU_ASSERT_STRING_EQUAL(m->links[0]->name, "eth1");
	CU_ASSERT_EQUAL(m->n_errors, 1);
	if (m->n_errors == 1)
		CU_ASSERT_STRING_EQUAL(m->errors[0]->message, "reading blocks: EIO");
	/* The copy is frozen, and independent of what it was copied from. */
	l1.name = "changed";
	CU_ASSERT_STRING_EQUAL(vmc_view_state(old)->links[0]->name, "eth0");
	CU_ASSERT_EQUAL(vmc_view_state(old)->generation, 1);
	vmc_view_reset(v);
	CU_ASSERT_EQUAL(vmc_view_state(v)->sections, 0);
	CU_ASSERT_EQUAL(vmc_view_state(v)->n_errors, 0);
	CU_ASSERT_STRING_EQUAL(vmc_view_state(old)->system->boot_id, "b0");
	vmc_view_free(v);
	vmc_view_free(old);
}

/*
 * A section the agent failed to read arrives as an error without its bit:
 * the older data stays, and the error stays next to it until a State
 * carries the section again. Today's predicates then see why it is stale.
 */
static void a_section_error_stays_next_to_the_stale_section(void)
{
	Vmcheck__V1__State a = VMCHECK__V1__STATE__INIT, b = VMCHECK__V1__STATE__INIT,
			   c = VMCHECK__V1__STATE__INIT;
	Vmcheck__V1__Link l1 = VMCHECK__V1__LINK__INIT, *la[1] = { &l1 };
	Vmcheck__V1__SectionError e = VMCHECK__V1__SECTION_ERROR__INIT, *ea[1] = { &e };
	Vmcheck__V1__System sys = VMCHECK__V1__SYSTEM__INIT;
	struct vmc_view *v = vmc_view_new(), *frozen;
	const Vmcheck__V1__State *m;

	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	l1.name = "eth0";
	a.sections = VMCHECK__V1__SECTION__SECTION_LINKS;
	a.links = la;
	a.n_links = 1;
	CU_ASSERT_EQUAL(vmc_view_merge(v, &a), 0);
	e.section = VMCHECK__V1__SECTION__SECTION_LINKS;
	e.errno_value = EIO;
	e.message = "reading links: Input/output error";
	b.sections = VMCHECK__V1__SECTION__SECTION_SYSTEM;
	b.system = &sys;
	b.errors = ea;
	b.n_errors = 1;
	CU_ASSERT_EQUAL(vmc_view_merge(v, &b), 0);
	m = vmc_view_state(v);
	CU_ASSERT_EQUAL(m->n_links, 1);
	CU_ASSERT_EQUAL(m->n_errors, 1);
	CU_ASSERT(m->sections & VMCHECK__V1__SECTION__SECTION_LINKS);
	frozen = vmc_view_dup(v);
	/* A push of another section keeps the error; one that carries links clears it. */
	c.sections = VMCHECK__V1__SECTION__SECTION_SYSTEM;
	c.system = &sys;
	CU_ASSERT_EQUAL(vmc_view_merge(v, &c), 0);
	CU_ASSERT_EQUAL(vmc_view_state(v)->n_errors, 1);
	CU_ASSERT_EQUAL(vmc_view_merge(v, &a), 0);
	CU_ASSERT_EQUAL(vmc_view_state(v)->n_errors, 0);
	/* A baseline copied while it was stale stays so. */
	CU_ASSERT_EQUAL(vmc_view_state(frozen)->n_errors, 1);
	vmc_view_free(frozen);
	vmc_view_free(v);
}

VMC_SUITE(suite, NULL, NULL, VMC_TEST(device_never_appears), VMC_TEST(device_appears_with_timeline),
	  VMC_TEST(a_guest_over_a_bound_fails_the_step_naming_it),
	  VMC_TEST(kernel_time_before_the_host_clock_is_dropped), VMC_TEST(wrong_size_says_why),
	  VMC_TEST(disappears_late), VMC_TEST(agent_restarts_mid_step), VMC_TEST(hv_dies_mid_step),
	  VMC_TEST(hv_reports_the_vm_gone), VMC_TEST(lifecycle_against_fake),
	  VMC_TEST(a_section_error_stays_next_to_the_stale_section),
	  VMC_TEST(reboot_between_steps_fails), VMC_TEST(console_tail_is_quoted),
	  VMC_TEST(powerdown_is_clean_or_fails), VMC_TEST(clock_going_back_fails_cont),
	  VMC_TEST(a_final_reason_ends_the_wait), VMC_TEST(no_agent_fails_what_follows),
	  VMC_TEST(evidence_without_a_snapshot_gives_no_age),
	  VMC_TEST(a_removal_is_judged_in_every_layer), VMC_TEST(ladder_names_the_virtio_driver),
	  VMC_TEST(clock_running_while_stopped_fails),
	  VMC_TEST(view_merges_only_the_sections_carried),
	  VMC_TEST(nic_unplug_waits_as_the_arch_needs),
	  VMC_TEST(an_unplug_the_guest_never_saw_fails),
	  VMC_TEST(vcpu_check_skips_only_what_is_not_offered),
	  VMC_TEST(only_a_vcpu_unplug_taints_the_vm), VMC_TEST(s3_only_where_the_machine_offers_it),
	  VMC_TEST(no_agent_says_why_and_a_bad_spec_fails_at_once))
