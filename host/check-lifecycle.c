/* SPDX-License-Identifier: MIT */
/*
 * Lifecycle: stop/cont (the guest is frozen: its agent stays silent and its
 * clock does not run), S3 suspend through the agent and system_wakeup (same
 * boot, suspend count +1), reset, guest reboot, and powerdown (a clean guest
 * shutdown after which QEMU exits). S3 runs where the machine offers it:
 * where the hypervisor or the guest says it does not (arm virt), its steps
 * are skipped in their words.
 *
 * Order (doc/facts.md, "Defect 2: S3 on q35 breaks ACPI until a reset"):
 * S3 on q35 leaves ACPI broken until the next reset, so the S3 check always
 * ends with a reset, even when a step before it failed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check-lifecycle.h"

#include "agent-client.h"
#include "check-util.h"
#include "clock.h"
#include "escape.h"

#define CHECK "lifecycle"

/*
 * How long the VM stays stopped: the agent must stay silent that long. A
 * timer by nature: silence is the absence of an event, and half a second
 * of it is what proves the vCPUs stood still.
 */
#define QUIET_MS 500
/* Slack for the clock comparison beyond the two round trips' uncertainty. */
#define CLOCK_SLACK_MS 20
/*
 * A boot is not one guest-visible change but a whole sequence (firmware,
 * kernel, init, agent; a guest reboot adds busybox's shutdown pauses):
 * it gets a multiple of the per-change deadline.
 */
#define BOOT_DEADLINE_MS(c) (3 * (c)->opts->deadline_ms)

#define STEP_WAKEUP "wakeup (system_wakeup, suspend count +1)"

/* One reading of the guest's monotonic clock against the host's. */
struct clock_sample {
	uint64_t host_ns;  /* host time at the middle of the round trip */
	uint64_t guest_ns; /* guest CLOCK_MONOTONIC in the middle of its read */
	uint64_t rtt_ns;   /* the round trip: the reading's uncertainty */
	char boot_id[40];  /* the boot it was read in: another boot's clock is another clock */
};

static void get_state_request(Vmcheck__V1__Request *req, Vmcheck__V1__GetState *get)
{
	vmcheck__v1__request__init(req);
	vmcheck__v1__get_state__init(get);
	get->sections = VMCHECK__V1__SECTION__SECTION_SYSTEM;
	req->kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
	req->get_state = get;
}

static int sample_clock(struct vmc_step *s, unsigned deadline_ms, struct clock_sample *out)
{
	Vmcheck__V1__Request req;
	Vmcheck__V1__GetState get;
	Vmcheck__V1__Response *rsp;
	uint64_t t0 = vmc_mono_ns(), t1;
	int r;

	get_state_request(&req, &get);
	r = vmc_step_agent(s, &req, deadline_ms, &rsp);
	if (r < 0)
		return r;
	t1 = vmc_mono_ns();
	out->host_ns = t0 + (t1 - t0) / 2;
	out->guest_ns = rsp->state->mono_ns + rsp->state->read_ns / 2;
	out->rtt_ns = t1 - t0;
	snprintf(out->boot_id, sizeof(out->boot_id), "%s",
		 rsp->state->boot_id ? rsp->state->boot_id : "");
	vmc_agent_response_free(vmc_step_conn(s), rsp);
	return 0;
}

/*
 * While the VM is stopped the agent cannot answer: a GetState must go
 * unanswered for QUIET_MS (its late reply, after cont, is dropped as stale).
 */
static int agent_quiet(struct vmc_step *s)
{
	struct vmc_agent_conn *conn = vmc_step_conn(s);
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Request req;
	Vmcheck__V1__GetState get;
	Vmcheck__V1__Response *rsp;
	int r;

	if (!conn)
		return vmc_step_end(s, -EPIPE, "no agent connection to watch");
	get_state_request(&req, &get);
	r = vmc_agent_call(conn, &req, QUIET_MS, &rsp, &err);
	vmc_error_clear(&err);
	if (r == 0) {
		vmc_agent_response_free(conn, rsp);
		return vmc_step_end(s, -EBUSY, "the agent answered while the VM was stopped");
	}
	if (r != -ETIMEDOUT)
		return vmc_step_end(s, r, "watching the agent while stopped");
	vmc_step_note(s, "no answer from the agent for %d ms while stopped", QUIET_MS);
	return vmc_step_end(s, 0, NULL);
}

static double ms_of(int64_t ns)
{
	return (double)ns / 1e6;
}

/*
 * The guest's clock must not have run while the VM was stopped: between
 * the two readings it advanced less than the host's clock by at least the
 * stopped time, within the readings' uncertainty.
 */
static int judge_clock(struct vmc_step *s, const struct clock_sample *a,
		       const struct clock_sample *b, uint64_t stopped_ns)
{
	int64_t host = (int64_t)(b->host_ns - a->host_ns);
	int64_t guest = (int64_t)(b->guest_ns - a->guest_ns);
	int64_t lag = host - guest;
	int64_t tol = (int64_t)(a->rtt_ns / 2 + b->rtt_ns / 2) + CLOCK_SLACK_MS * 1000000ll;
	int64_t want = (int64_t)stopped_ns - tol;

	if (strcmp(a->boot_id, b->boot_id))
		return vmc_step_end(s, -ECONNRESET,
				    "the guest rebooted while it was stopped or resumed: boot_id %s "
				    "before stop, %s after cont",
				    VMC_Q(a->boot_id), VMC_Q(b->boot_id));
	/* A monotonic clock never goes back: if it did, the guest lost its state. */
	if (guest < 0)
		return vmc_step_end(
			s, -EINVAL,
			"the guest's monotonic clock went backwards by %.1f ms over %.1f ms "
			"of host time across stop/cont",
			ms_of(-guest), ms_of(host));
	if (lag >= want) {
		vmc_step_note(s,
			      "guest clock advanced %.1f ms over %.1f ms of host time: it lags by "
			      "%.1f ms, the VM was stopped for %.1f ms (tolerance %.1f ms)",
			      ms_of(guest), ms_of(host), ms_of(lag), ms_of((int64_t)stopped_ns),
			      ms_of(tol));
		return 0;
	}
	return vmc_step_end(
		s, -EINVAL,
		"the guest clock ran while the VM was stopped: it advanced %.1f ms over "
		"%.1f ms of host time, lagging by %.1f ms; stopped for %.1f ms, it should "
		"lag by at least %.1f ms (stopped time - %.1f ms tolerance)",
		ms_of(guest), ms_of(host), ms_of(lag), ms_of((int64_t)stopped_ns), ms_of(want),
		ms_of(tol));
}

static bool suspend_counted(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	const uint64_t *want = arg;

	if (!st->system) {
		vmc_why_set(why, "no system section");
		return false;
	}
	if (!st->system->has_suspend_stats) {
		vmc_why_set(why, "the guest has no /sys/power/suspend_stats");
		return false;
	}
	if (st->system->suspend_success != *want) {
		vmc_why_set(why, "suspend_success %llu, want %llu",
			    (unsigned long long)st->system->suspend_success,
			    (unsigned long long)*want);
		return false;
	}
	return true;
}

/* Step "stop": STOP seen, then the agent silent; @before is read first. */
static int stop(struct vmc_ctx *c, struct clock_sample *before, uint64_t *t_stop)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step *s = vmc_step_begin(c, CHECK, "stop (guest frozen, agent silent)");
	unsigned dl = c->opts->deadline_ms;
	int r;

	r = sample_clock(s, dl, before);
	if (r < 0)
		return vmc_step_end(s, r, "reading the guest clock before stop");
	r = vmc_step_acted(s, c->hv->ops->stop(c->hv, &err), &err);
	if (r == 0)
		r = vmc_step_expect_event(s, "STOP", NULL, dl);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	*t_stop = vmc_step_event_ns(s);
	return agent_quiet(s);
}

/*
 * Step "cont": RESUME seen (*@resumed: the VM runs again, whatever the
 * verdict), same boot, and the clock judged against @before.
 */
static int cont(struct vmc_ctx *c, const struct clock_sample *before, uint64_t t_stop,
		bool *resumed)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step *s = vmc_step_begin(c, CHECK, "cont (guest clock stood still)");
	unsigned dl = c->opts->deadline_ms;
	struct clock_sample after;
	int r;

	r = vmc_step_acted(s, c->hv->ops->cont(c->hv, &err), &err);
	if (r == 0)
		r = vmc_step_expect_event(s, "RESUME", NULL, dl);
	*resumed = r == 0;
	if (r == 0)
		r = sample_clock(s, dl, &after);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	if (!t_stop) {
		vmc_step_note(s, "the stop step failed: guest clock not judged");
		return vmc_step_end(s, 0, NULL);
	}
	r = judge_clock(s, before, &after, vmc_step_event_ns(s) - t_stop);
	return r < 0 ? r : vmc_step_end(s, 0, NULL);
}

/*
 * Step "suspend": the hypervisor's own PM suspend where it has one (libvirt,
 * through qemu-guest-agent), else vmcheck's agent's Act suspend (it replies
 * before the guest sleeps); then SUSPEND seen.
 */
static void suspend_name(const struct vmc_hv_ops *ops, char *name, size_t size)
{
	if (ops->pm_suspend)
		snprintf(name, size, "suspend to RAM (%s PM suspend, qemu-guest-agent)", ops->name);
	else
		snprintf(name, size, "suspend to RAM (agent Act suspend)");
}

static bool lists(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list ? list : ""; *p;) {
		size_t len;

		p += strspn(p, " \t\n");
		len = strcspn(p, " \t\n");
		/* The kernel brackets the current choice: "s2idle [deep]". */
		if ((len == n && !strncmp(p, word, n)) ||
		    (len == n + 2 && p[0] == '[' && !strncmp(p + 1, word, n) && p[n + 1] == ']'))
			return true;
		p += len;
	}
	return false;
}

void vmc_lifecycle_s3_guest(const Vmcheck__V1__System *sys, struct vmc_lifecycle_s3 *out)
{
	const char *states = sys ? sys->power_states : NULL, *ms = sys ? sys->mem_sleep : NULL;
	char cut[65]; /* the guest's word, cut short, then quoted */

	out->offered = -1;
	if (!sys) {
		snprintf(out->says, sizeof(out->says), "the guest does not say: no system section");
	} else if (states && *states && !lists(states, "mem")) {
		out->offered = 0;
		snprintf(cut, sizeof(cut), "%s", states);
		snprintf(out->says, sizeof(out->says),
			 "the guest: /sys/power/state is \"%s\", no mem", VMC_Q(cut));
	} else if (!ms || !*ms) {
		snprintf(out->says, sizeof(out->says),
			 "the guest does not say: its system section has no /sys/power/mem_sleep");
	} else {
		out->offered = lists(ms, "deep");
		snprintf(cut, sizeof(cut), "%s", ms);
		snprintf(out->says, sizeof(out->says),
			 "the guest: /sys/power/mem_sleep is \"%s\"%s", VMC_Q(cut),
			 out->offered ? "" : ", no deep (S3)");
	}
}

bool vmc_lifecycle_s3_skip(const struct vmc_lifecycle_s3 *hv, const struct vmc_lifecycle_s3 *guest,
			   char *why, size_t size)
{
	const struct vmc_lifecycle_s3 *no = !hv->offered ? hv : !guest->offered ? guest : NULL;

	if (!no)
		return false;
	snprintf(why, size, "no suspend to RAM on this machine: %s; %s", no->says,
		 (no == hv ? guest : hv)->says);
	return true;
}

/* The hypervisor's word on suspend to RAM; -1 with why when it cannot be asked. */
static void s3_hv(struct vmc_ctx *c, struct vmc_lifecycle_s3 *out)
{
	const struct vmc_hv_ops *ops = c->hv->ops;
	struct vmc_error err = VMC_ERROR_INIT;

	out->says[0] = '\0';
	out->offered = ops->suspend_support
			       ? ops->suspend_support(c->hv, out->says, sizeof(out->says), &err)
			       : -ENOTSUP;
	if (out->offered < 0) {
		snprintf(out->says, sizeof(out->says), "the hypervisor could not be asked: %s",
			 err.msg ? err.msg : "the backend has no way to");
		out->offered = -1;
	}
	vmc_error_clear(&err);
}

static int suspend(struct vmc_ctx *c, uint64_t *count, const char *offered)
{
	Vmcheck__V1__Act act = VMCHECK__V1__ACT__INIT;
	Vmcheck__V1__Suspend sus = VMCHECK__V1__SUSPEND__INIT;
	const struct vmc_hv_ops *ops = c->hv->ops;
	const Vmcheck__V1__State *st = vmc_view(c);
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step *s;
	char name[128];
	int r = -ENOTSUP;

	suspend_name(ops, name, sizeof(name));
	s = vmc_step_begin(c, CHECK, "%s", name);
	vmc_step_note(s, "%s", offered);
	*count = st->system ? st->system->suspend_success : 0;
	if (ops->pm_suspend) {
		r = ops->pm_suspend(c->hv, &err);
		if (r == -ENOTSUP) {
			vmc_step_note(s,
				      "%s: no qemu-guest-agent answers; suspending through "
				      "vmcheck's agent instead",
				      err.msg ? err.msg : "PM suspend not supported");
			/* The wait for qemu-guest-agent is not the guest's suspend time. */
			vmc_step_act_again(s);
		} else
			r = vmc_step_acted(s, r, &err);
		vmc_error_clear(&err);
	}
	if (r == -ENOTSUP) {
		sus.state = "mem";
		act.kind_case = VMCHECK__V1__ACT__KIND_SUSPEND;
		act.suspend = &sus;
		r = vmc_chk_act(s, &act, c->opts->deadline_ms);
	}
	if (r == 0)
		r = vmc_step_expect_event(s, "SUSPEND", NULL, c->opts->deadline_ms);
	return vmc_step_end(s, r, NULL);
}

/* Step "wakeup": the guest's own snapshot shows one more suspend, same boot; WAKEUP seen. */
static int wakeup(struct vmc_ctx *c, uint64_t count)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step *s = vmc_step_begin(c, CHECK, STEP_WAKEUP);
	uint64_t want = count + 1;
	int r;

	r = vmc_step_acted(s, c->hv->ops->wakeup(c->hv, &err), &err);
	/* After qemu-ga's suspend no uevent says the count moved: ask, too. */
	if (r == 0)
		r = vmc_step_expect_asking(s, suspend_counted, &want,
					   VMCHECK__V1__SECTION__SECTION_SYSTEM,
					   c->opts->deadline_ms);
	if (r == 0)
		r = vmc_step_expect_event(s, "WAKEUP", NULL, c->opts->deadline_ms);
	return vmc_step_end(s, r, NULL);
}

/* Step "reset": RESET seen and the agent of a new boot answers. */
static int reset(struct vmc_ctx *c, const char *why)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step *s = vmc_step_begin(c, CHECK, "reset (system_reset%s)", why);
	int r;

	r = vmc_step_acted(s, c->hv->ops->reset(c->hv, &err), &err);
	if (r == 0)
		r = vmc_step_expect_event(s, "RESET", NULL, c->opts->deadline_ms);
	if (r == 0)
		r = vmc_step_wait_new_boot(s, BOOT_DEADLINE_MS(c));
	return vmc_step_end(s, r, NULL);
}

/*
 * S3 where the machine offers it: the hypervisor and the guest are both
 * asked, and either one's no skips the S3 steps in its words (doc/facts.md,
 * "aarch64 guests": neither alone tells). Returns the check's code; *@tried
 * when the guest was asked to suspend.
 */
static int s3(struct vmc_ctx *c, bool *tried)
{
	struct vmc_lifecycle_s3 hv, guest;
	struct vmc_why w;
	uint64_t count = 0;
	char why[720], name[128];
	int r;

	s3_hv(c, &hv);
	if (vmc_chk_section(vmc_view(c), VMCHECK__V1__SECTION__SECTION_SYSTEM, &w)) {
		vmc_lifecycle_s3_guest(vmc_view(c)->system, &guest);
	} else {
		/* Stale or missing data proves nothing either way: no skip on it. */
		guest.offered = -1;
		snprintf(guest.says, sizeof(guest.says), "the guest cannot say: %.280s", w.text);
	}
	if (vmc_lifecycle_s3_skip(&hv, &guest, why, sizeof(why))) {
		suspend_name(c->hv->ops, name, sizeof(name));
		vmc_step_skip(c, CHECK, name, "%s", why);
		vmc_step_skip(c, CHECK, STEP_WAKEUP, "%s", why);
		return 0;
	}
	*tried = true;
	snprintf(why, sizeof(why), "suspend to RAM: %s; %s", hv.says, guest.says);
	r = suspend(c, &count, why);
	if (r < 0) {
		vmc_step_not_run(c, CHECK, STEP_WAKEUP, true, "not run: the guest did not suspend");
		return r;
	}
	return wakeup(c, count);
}

int vmc_check_lifecycle_s3(struct vmc_ctx *c)
{
	struct clock_sample before = { 0 };
	uint64_t t_stop = 0;
	bool resumed = false, tried = false;
	int rc, r;

	rc = stop(c, &before, &t_stop);
	/* Whatever stop did, the VM must run again. */
	r = cont(c, &before, rc == 0 ? t_stop : 0, &resumed);
	rc = rc ? rc : r;
	if (resumed) {
		r = s3(c, &tried);
		rc = rc ? rc : r;
	}
	/*
	 * After S3, ACPI works again only after a reset (doc/facts.md, "Defect 2:
	 * S3 on q35 breaks ACPI until a reset"): always reset.
	 */
	r = reset(c, tried ? ", required after S3" : "");
	return rc ? rc : r;
}

int vmc_check_lifecycle_reboot(struct vmc_ctx *c)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step *s = vmc_step_begin(c, CHECK, "reboot (guest reboot, new boot_id)");
	int r;

	r = vmc_step_acted(s, c->hv->ops->reboot(c->hv, &err), &err);
	if (r == 0)
		r = vmc_step_wait_new_boot(s, BOOT_DEADLINE_MS(c));
	/* QEMU reports the guest's reset as it happens; libvirt has no such event here. */
	if (r == 0 && !strcmp(c->hv->ops->name, "qmp"))
		r = vmc_step_expect_event(s, "RESET", NULL, c->opts->deadline_ms);
	return vmc_step_end(s, r, NULL);
}

/*
 * A clean shutdown and nothing else: SHUTDOWN with reason guest-shutdown
 * (a panic also ends in SHUTDOWN, reason guest-panic, and QEMU still exits
 * 0), no GUEST_PANICKED, and the VM ending cleanly (QEMU's exit status 0;
 * libvirt: shut off with reason shutdown). A POWERDOWN the backend made up
 * is noted as such and proves nothing.
 */
int vmc_check_lifecycle_powerdown(struct vmc_ctx *c)
{
	struct vmc_hv *hv = c->hv;
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step *s = vmc_step_begin(c, CHECK, "powerdown (ACPI button, clean shutdown)");
	const struct vmc_hv_event *ev;
	unsigned dl = c->opts->deadline_ms;
	int r;

	r = vmc_step_acted(s, hv->ops->powerdown(hv, &err), &err);
	if (r == 0)
		r = vmc_step_expect_event(s, "POWERDOWN", NULL, dl);
	if (r == 0)
		r = vmc_step_expect_event(s, "SHUTDOWN", NULL, dl);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	ev = vmc_step_event(s);
	if (hv->ops->seen_event(hv, VMC_EV_GUEST_PANICKED, NULL))
		return vmc_step_end(s, -EIO,
				    "the guest panicked on its way down (%s seen; SHUTDOWN "
				    "reason %s)",
				    VMC_EV_GUEST_PANICKED,
				    ev && ev->reason ? ev->reason : "not given");
	if (ev && ev->reason && strcmp(ev->reason, "guest-shutdown"))
		return vmc_step_end(s, -EIO, "SHUTDOWN with reason %s, want guest-shutdown: %s",
				    ev->reason, ev->detail ? ev->detail : "");
	if (!ev || !ev->reason)
		return vmc_step_end(s, -EIO,
				    "the %s backend gives no reason for the SHUTDOWN: a "
				    "clean guest shutdown is not proven (%s)",
				    hv->ops->name, ev && ev->detail ? ev->detail : "no detail");
	r = vmc_step_expect_exit(s, dl);
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	r = hv->ops->ended ? hv->ops->ended(hv, &err) : -ENOTSUP;
	if (r == -ENOTSUP)
		vmc_step_note(s, "how the VM ended is unknown: %s",
			      err.msg ? err.msg : "the backend cannot tell");
	else if (r < 0)
		r = vmc_step_end(s, r, "the VM did not end cleanly: %s",
				 err.msg ? err.msg : strerror(-r));
	vmc_error_clear(&err);
	return r < 0 && r != -ENOTSUP ? r : vmc_step_end(s, 0, NULL);
}
