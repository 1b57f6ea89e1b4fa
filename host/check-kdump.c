/* SPDX-License-Identifier: MIT */
/*
 * kdump: crash the guest through its agent and prove that the capture
 * kernel saved a dump that is there after the reboot.
 *
 * What the host sees (measured: QEMU 7.2, the kit's 6.1 kernel, pvpanic).
 * With a crash kernel loaded, panic() jumps into it before the panic
 * notifiers run: a jump, not a reset, and QEMU reports nothing. pvpanic
 * speaks only from the notifiers: GUEST_PANICKED when no crash kernel is
 * loaded (QEMU then powers the VM off), GUEST_CRASHLOADED when the jump
 * into a loaded one failed; either means kdump did not take over. The
 * capture kernel's reboot once it saved the dump is a guest reset: RESET.
 *
 * Steps:
 *   armed  a fresh crash reading: a crash kernel loaded, memory reserved
 *          for it, a crash dir that is writable and survives a reboot.
 *          Without it nothing is crashed.
 *   crash  Act crash; a new boot answers: the capture kernel's agent (the
 *          embedded guest runs one while it saves), or the next normal
 *          boot when the capture boot ended before its agent was heard.
 *   save   the capture kernel writes the dump, followed on its agent's
 *          pushes while it grows: vmcore.incomplete, then vmcore (the
 *          step's confirmation); RESET; a normal boot answers.
 *   found  that boot lists the new dump: whole, an ELF or makedumpfile
 *          header, not empty.
 * Deadlines scale with the guest's memory (check-kdump.h).
 */
#include "check-kdump.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent-client.h"
#include "check-util.h"
#include "clock.h"
#include "escape.h"

#define CHECK "kdump"
#define MS 1000000ull
#define GIB (1ull << 30)
/*
 * How often a guest reserving crash memory is asked whether its crash
 * kernel is loaded yet: kexec_crash_loaded is a sysfs attribute the
 * kexec_load syscall changes without a uevent or any other notification.
 */
#define ARMING_ASK_MS 250

#define STEP_ARMED "armed (crash kernel loaded, memory reserved, a dump dir that survives a reboot)"
#define STEP_CRASH "crash (agent Act crash, sysrq c: into the capture kernel)"
#define STEP_SAVE "save (the capture kernel writes the dump, resets, the guest boots)"
#define STEP_FOUND "found (the new boot lists the dump: whole, ELF or KDUMP header, not empty)"

#define FMT(x) VMCHECK__V1__CRASH_DUMP__FORMAT__FORMAT_##x

static unsigned add_ms(unsigned ms, uint64_t more)
{
	return more > UINT32_MAX - ms ? UINT32_MAX : ms + (unsigned)more;
}

void vmc_kdump_deadlines(uint64_t mem_bytes, unsigned boot_ms, struct vmc_kdump_deadlines *out)
{
	uint64_t gib = mem_bytes ? (mem_bytes + GIB - 1) / GIB : 1;

	out->capture_ms = boot_ms;
	out->save_ms = add_ms(VMC_KDUMP_SAVE_BASE_MS, gib > UINT32_MAX / VMC_KDUMP_SAVE_MS_PER_GIB
							      ? UINT32_MAX
							      : gib * VMC_KDUMP_SAVE_MS_PER_GIB);
	out->reboot_ms = add_ms(boot_ms, gib > UINT32_MAX / VMC_KDUMP_BOOT_MS_PER_GIB
						 ? UINT32_MAX
						 : gib * VMC_KDUMP_BOOT_MS_PER_GIB);
}

uint64_t vmc_kdump_guest_bytes(const Vmcheck__V1__State *st, uint64_t ram_base)
{
	const Vmcheck__V1__Memory *m = st ? st->memory : NULL;
	uint64_t all, below = 0;

	if (!m)
		return 0;
	all = m->online_bytes + m->offline_bytes;
	for (size_t i = 0; m->block_size && i < m->n_blocks; i++)
		if (m->blocks[i]->index < ram_base / m->block_size)
			below += m->block_size;
	if (all > below)
		return all - below;
	return m->mem_total_kb << 10;
}

void vmc_kdump_ready_free(struct vmc_kdump_ready *r)
{
	for (size_t i = 0; i < r->n_before; i++)
		free(r->before[i]);
	free(r->before);
	r->before = NULL;
	r->n_before = 0;
}

/* Filesystems held in RAM: whatever is written there is gone after a reboot. */
static bool in_ram(const char *fs)
{
	return !strcmp(fs, "rootfs") || !strcmp(fs, "ramfs") || !strcmp(fs, "tmpfs");
}

static const char *str(const char *s)
{
	return s ? s : "";
}

/* The crashkernel= word of @cmdline, or "no crashkernel= on the command line". */
static void crashkernel_of(const char *cmdline, char *buf, size_t n)
{
	const char *p = strstr(str(cmdline), "crashkernel=");

	if (p && (p == cmdline || p[-1] == ' ')) {
		char word[VMC_Q_SIZE];

		snprintf(word, sizeof(word), "%.*s", (int)strcspn(p, " \n"), p);
		vmc_esc_buf(buf, n, word, VMC_ESC_QUOTE);
	} else
		snprintf(buf, n, "no crashkernel= on the command line");
}

/* Record "DIR/NAME" of every dump in @c. -ENOMEM only. */
static int keep_names(const Vmcheck__V1__Crash *c, struct vmc_kdump_ready *r)
{
	for (size_t i = 0; i < c->n_dirs; i++) {
		const Vmcheck__V1__CrashDir *d = c->dirs[i];

		for (size_t j = 0; d && j < d->n_dumps; j++) {
			char **v = realloc(r->before, (r->n_before + 1) * sizeof(*v));

			if (!v)
				return -ENOMEM;
			r->before = v;
			if (asprintf(&v[r->n_before], "%s/%s", str(d->path),
				     str(d->dumps[j]->name)) < 0)
				return -ENOMEM;
			r->n_before++;
		}
	}
	return 0;
}

static bool fs_known(const Vmcheck__V1__CrashDir *d)
{
	return d->fs_type && *d->fs_type;
}

/* Where dumps in @d land, for messages: "/var/crash, on /dev/vda (ext4) mounted on /var/crash". */
static void where_of(const Vmcheck__V1__CrashDir *d, char *buf, size_t n)
{
	if (!fs_known(d))
		vmc_esc_buf(buf, n, str(d->path), VMC_ESC_QUOTE);
	else
		snprintf(buf, n, "%s, on %s (%s) mounted on %s", VMC_Q(str(d->path)),
			 VMC_Q(str(d->mount_source)), VMC_Q(d->fs_type),
			 VMC_Q(str(d->mount_point)));
}

bool vmc_kdump_ready(const Vmcheck__V1__Crash *c, struct vmc_kdump_ready *r, struct vmc_why *why)
{
	char ck[128], dirs[512] = "";
	size_t used = 0;

	memset(r, 0, sizeof(*r));
	if (!c) {
		vmc_why_set(why, "the agent reported no crash section");
		return false;
	}
	r->crash_size = c->crash_size;
	crashkernel_of(c->cmdline, ck, sizeof(ck));
	if (keep_names(c, r) < 0) {
		vmc_why_set(why, "out of memory");
		return false;
	}
	if (!c->kexec_crash_loaded) {
		vmc_why_set(why,
			    "kdump not armed: /sys/kernel/kexec_crash_loaded is 0 (no crash kernel "
			    "loaded; %llu bytes reserved for one; %s)",
			    (unsigned long long)c->crash_size, ck);
		return false;
	}
	if (!c->crash_size) {
		vmc_why_set(why,
			    "a crash kernel is loaded but no memory is reserved for it "
			    "(/sys/kernel/kexec_crash_size 0; %s)",
			    ck);
		return false;
	}
	for (size_t i = 0; i < c->n_dirs; i++) {
		const Vmcheck__V1__CrashDir *d = c->dirs[i];
		const char *no = NULL;
		char where[512];

		if (!d)
			continue;
		where_of(d, where, sizeof(where));
		if (!d->exists)
			no = "missing";
		else if (!d->writable)
			no = "not writable";
		else if (!fs_known(d))
			/* The agent finds it in mountinfo; an agent that cannot proves nothing. */
			no = "filesystem unknown (no mountinfo entry): a dump there is not proven "
			     "to survive the reboot";
		else if (in_ram(d->fs_type))
			no = "in RAM: a dump there is gone after the reboot";
		if (!no) {
			snprintf(r->dir, sizeof(r->dir), "%s", str(d->path));
			snprintf(r->where, sizeof(r->where), "%s", where);
			return true;
		}
		if (used < sizeof(dirs))
			used += (size_t)snprintf(dirs + used, sizeof(dirs) - used, "%s%s: %s",
						 used ? "; " : "", where, no);
	}
	vmc_why_set(why, "no crash dir a dump could be saved to: %s",
		    used ? dirs : "the agent lists none");
	return false;
}

static bool was_there(const struct vmc_kdump_ready *r, const char *dir, const char *name)
{
	size_t n = strlen(dir);

	for (size_t i = 0; i < r->n_before; i++)
		if (!strncmp(r->before[i], dir, n) && r->before[i][n] == '/' &&
		    !strcmp(r->before[i] + n + 1, name))
			return true;
	return false;
}

const Vmcheck__V1__CrashDump *vmc_kdump_new_dump(const Vmcheck__V1__Crash *c,
						 const struct vmc_kdump_ready *r, const char **dir)
{
	const Vmcheck__V1__CrashDump *best = NULL;

	for (size_t i = 0; c && i < c->n_dirs; i++) {
		const Vmcheck__V1__CrashDir *d = c->dirs[i];

		for (size_t j = 0; d && j < d->n_dumps; j++) {
			const Vmcheck__V1__CrashDump *u = d->dumps[j];

			if (!u || was_there(r, str(d->path), str(u->name)))
				continue;
			if (!best || u->mtime_s >= best->mtime_s) {
				best = u;
				*dir = str(d->path);
			}
		}
	}
	return best;
}

void vmc_kdump_track_init(struct vmc_kdump_track *t, uint64_t now_ns, unsigned deadline_ms,
			  unsigned stall_ms)
{
	memset(t, 0, sizeof(*t));
	t->start_ns = now_ns;
	t->deadline_ns = now_ns + deadline_ms * MS;
	t->stall_ns = stall_ms * MS;
}

uint64_t vmc_kdump_track_due(const struct vmc_kdump_track *t, uint64_t now_ns)
{
	if (t->seen)
		return t->grew_ns + t->stall_ns;
	/* A dump seen from now on stalls stall_ns after that at the earliest. */
	return now_ns + t->stall_ns < t->deadline_ns ? now_ns + t->stall_ns : t->deadline_ns;
}

enum vmc_kdump_progress vmc_kdump_track(struct vmc_kdump_track *t, const Vmcheck__V1__CrashDump *d,
					uint64_t now_ns, struct vmc_why *why)
{
	double secs = (double)(now_ns - t->start_ns) / 1e9;

	if (d && !d->incomplete && d->has_vmcore)
		return VMC_KDUMP_SAVED;
	if (d && d->incomplete && d->has_vmcore) {
		if (!t->seen || d->vmcore_size > t->size) {
			t->seen = true;
			t->size = d->vmcore_size;
			t->grew_ns = now_ns;
		}
		if (now_ns - t->grew_ns >= t->stall_ns) {
			vmc_why_set(why,
				    "%s: the incomplete vmcore has stayed at %llu bytes for %.1f s",
				    VMC_Q(str(d->name)), (unsigned long long)t->size,
				    (double)(now_ns - t->grew_ns) / 1e9);
			return VMC_KDUMP_STALLED;
		}
		vmc_why_set(why, "%s: vmcore being written, %llu bytes after %.1f s",
			    VMC_Q(str(d->name)), (unsigned long long)t->size, secs);
		return VMC_KDUMP_WRITING;
	}
	if (now_ns < t->deadline_ns)
		return VMC_KDUMP_WAITING;
	if (d)
		vmc_why_set(why, "%s: no vmcore written in it within %.1f s", VMC_Q(str(d->name)),
			    secs);
	else
		vmc_why_set(why, "no new dump directory within %.1f s", secs);
	return VMC_KDUMP_LATE;
}

static const char *format_name(Vmcheck__V1__CrashDump__Format f)
{
	switch (f) {
	case FMT(ELF):
		return "ELF core";
	case FMT(KDUMP):
		return "makedumpfile (KDUMP)";
	case FMT(UNKNOWN):
		return "neither ELF nor makedumpfile";
	default:
		return "none";
	}
}

bool vmc_kdump_dump_ok(const Vmcheck__V1__CrashDump *d, struct vmc_why *why)
{
	char name[VMC_Q_SIZE];

	vmc_esc_buf(name, sizeof(name), str(d->name), VMC_ESC_QUOTE);
	if (!d->has_vmcore) {
		vmc_why_set(why, "%s: no vmcore in it (%zu files)", name, d->n_files);
		return false;
	}
	if (d->incomplete) {
		vmc_why_set(why,
			    "%s: still incomplete after the reboot (vmcore %llu bytes): the "
			    "capture kernel did not finish it",
			    name, (unsigned long long)d->vmcore_size);
		return false;
	}
	if (d->format != FMT(ELF) && d->format != FMT(KDUMP)) {
		vmc_why_set(why, "%s: the vmcore's header is %s", name, format_name(d->format));
		return false;
	}
	if (!d->vmcore_size) {
		vmc_why_set(why, "%s: the vmcore is empty", name);
		return false;
	}
	vmc_why_set(why, "%s: vmcore %llu bytes, %s header, %zu files", name,
		    (unsigned long long)d->vmcore_size, format_name(d->format), d->n_files);
	return true;
}

/* ------------------------------------------------------------ the steps */

struct kdump_run {
	struct vmc_kdump_ready ready;
	struct vmc_kdump_deadlines dl;
	uint64_t t_crash;  /* host time of the crash request */
	uint64_t t_saved;  /* host time the dump was seen whole, 0 if not */
	bool capture_seen; /* the capture kernel's agent answered */
	char capture_boot[64];
};

static void get_state_request(Vmcheck__V1__Request *req, Vmcheck__V1__GetState *get,
			      uint32_t sections)
{
	vmcheck__v1__request__init(req);
	vmcheck__v1__get_state__init(get);
	get->sections = sections;
	req->kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
	req->get_state = get;
}

/*
 * A fresh reading of the crash section (and @more) in step @s, asked of
 * the agent: the view's is as new as the last file written in a crash dir,
 * but kexec_crash_loaded changes with no notification at all. The step
 * fails when there is none.
 */
static int read_crash(struct vmc_step *s, uint32_t more, unsigned ms, Vmcheck__V1__Response **rsp)
{
	Vmcheck__V1__Request req;
	Vmcheck__V1__GetState get;
	int r;

	get_state_request(&req, &get, VMCHECK__V1__SECTION__SECTION_CRASH | more);
	r = vmc_step_agent(s, &req, ms, rsp);
	if (r < 0)
		return r;
	if (!(*rsp)->state->crash) {
		const Vmcheck__V1__State *st = (*rsp)->state;

		vmc_step_note(s, "the agent's section errors: %zu", st->n_errors);
		for (size_t i = 0; i < st->n_errors; i++)
			vmc_step_note(s, "  %s", VMC_Q(str(st->errors[i]->message)));
		vmc_agent_response_free(vmc_step_conn(s), *rsp);
		*rsp = NULL;
		return -EIO;
	}
	return 0;
}

/*
 * Memory is reserved but no crash kernel loaded yet: distributions load it
 * late in the boot (kdump.service; the embedded guest in the background).
 */
static bool arming(const Vmcheck__V1__Crash *c)
{
	return c && c->crash_size && !c->kexec_crash_loaded;
}

static int armed(struct vmc_ctx *c, struct kdump_run *k)
{
	struct vmc_step *s = vmc_step_begin(c, CHECK, STEP_ARMED);
	uint64_t t0 = vmc_mono_ns(), until = t0 + c->opts->deadline_ms * MS;
	Vmcheck__V1__Response *rsp;
	struct vmc_why why = { .text = "" };
	char size[32];
	uint64_t mem;
	bool ok;
	int r;

	for (;;) {
		r = read_crash(s, VMCHECK__V1__SECTION__SECTION_MEMORY, c->opts->deadline_ms, &rsp);
		if (r < 0)
			return vmc_step_end(s, r, "reading the guest's crash section");
		ok = vmc_kdump_ready(rsp->state->crash, &k->ready, &why);
		if (ok || !arming(rsp->state->crash) || vmc_mono_ns() >= until)
			break;
		vmc_kdump_ready_free(&k->ready);
		vmc_agent_response_free(vmc_step_conn(s), rsp);
		poll(NULL, 0, ARMING_ASK_MS);
	}
	if (ok && vmc_mono_ns() - t0 >= ARMING_ASK_MS * MS)
		vmc_step_note(s, "the crash kernel was loaded %.1f s after the check began",
			      (double)(vmc_mono_ns() - t0) / 1e9);
	if (!ok) {
		vmc_step_note(s, "command line: %s", VMC_Q(str(rsp->state->crash->cmdline)));
		if (arming(rsp->state->crash))
			vmc_step_note(s,
				      "memory was reserved; no crash kernel was loaded within %u ms",
				      c->opts->deadline_ms);
		vmc_agent_response_free(vmc_step_conn(s), rsp);
		return vmc_step_end(s, -EINVAL, "%s", why.text);
	}
	mem = vmc_kdump_guest_bytes(rsp->state, vmc_hv_arch(c->hv)->ram_base);
	vmc_kdump_deadlines(mem, 3 * c->opts->deadline_ms, &k->dl);
	vmc_step_note(s,
		      "crash kernel loaded, %s reserved; dumps go to %s; %zu dump%s there before",
		      vmc_chk_bytes(k->ready.crash_size, size), k->ready.where, k->ready.n_before,
		      k->ready.n_before == 1 ? "" : "s");
	vmc_step_note(s,
		      "deadlines for %s of guest memory: capture kernel %u ms, saving %u ms "
		      "(while the dump grows: until it stalls for %u ms), reboot %u ms",
		      vmc_chk_bytes(mem, size), k->dl.capture_ms, k->dl.save_ms, VMC_KDUMP_STALL_MS,
		      k->dl.reboot_ms);
	vmc_agent_response_free(vmc_step_conn(s), rsp);
	return vmc_step_end(s, 0, NULL);
}

/*
 * pvpanic's events (file comment): the panic notifiers ran, so kdump did
 * not take over. Returns -EINVAL with the step failed if one was seen.
 */
static int panic_events(struct vmc_step *s, struct vmc_hv *hv)
{
	if (hv->ops->seen_event(hv, VMC_EV_GUEST_PANICKED, NULL))
		return vmc_step_end(s, -EINVAL,
				    "QEMU reported GUEST_PANICKED: the guest kernel panicked with no "
				    "crash kernel to go to");
	if (hv->ops->seen_event(hv, VMC_EV_GUEST_CRASHLOADED, NULL))
		return vmc_step_end(s, -EINVAL,
				    "QEMU reported GUEST_CRASHLOADED: the jump into the loaded "
				    "crash kernel failed");
	return 0;
}

static bool in_capture(const Vmcheck__V1__State *st)
{
	return st && st->crash && st->crash->capture_kernel;
}

/*
 * Act crash. The agent replies before it crashes the guest, but over a
 * network transport (SSH) the reply can die with the guest, unsent: a call
 * that goes unanswered or loses its connection is no failure here, the new
 * boot will tell. A refusal (an Error reply) is one.
 */
static int send_crash(struct vmc_step *s, Vmcheck__V1__Act *act, unsigned deadline_ms)
{
	struct vmc_agent_conn *conn = vmc_step_conn(s);
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__Response *rsp = NULL;
	int r;

	if (!conn)
		return vmc_chk_act(s, act, deadline_ms); /* reconnects, or says why not */
	req.kind_case = VMCHECK__V1__REQUEST__KIND_ACT;
	req.act = act;
	r = vmc_agent_call(conn, &req, (int)deadline_ms, &rsp, &err);
	if (r == 0) {
		r = vmc_agent_expect(conn, rsp, VMCHECK__V1__RESPONSE__KIND_ACT, "act crash", &err);
		vmc_agent_response_free(conn, rsp);
	} else if (r == -ETIMEDOUT || r == -EPIPE) {
		vmc_step_note(s,
			      "no reply to act crash (%s): the connection went down with the "
			      "guest; the new boot decides",
			      err.msg ? err.msg : strerror(-r));
		vmc_error_clear(&err);
		return 0;
	}
	/* Fails the step with the agent's refusal or the call's error. */
	return vmc_step_acted(s, r, &err);
}

static int crash(struct vmc_ctx *c, struct kdump_run *k)
{
	Vmcheck__V1__Act act = VMCHECK__V1__ACT__INIT;
	Vmcheck__V1__TriggerCrash tc = VMCHECK__V1__TRIGGER_CRASH__INIT;
	struct vmc_step *s = vmc_step_begin(c, CHECK, STEP_CRASH);
	const Vmcheck__V1__State *st;
	int r;

	k->t_crash = vmc_mono_ns();
	act.kind_case = VMCHECK__V1__ACT__KIND_CRASH;
	act.crash = &tc;
	r = send_crash(s, &act, c->opts->deadline_ms);
	/*
	 * The capture kernel's agent, or (its short boot not reached, as over
	 * SSH) the next normal boot's: allow for the whole cycle.
	 */
	if (r == 0)
		r = vmc_step_wait_new_boot(s, add_ms(k->dl.capture_ms,
						     add_ms(k->dl.save_ms, k->dl.reboot_ms)));
	if (r < 0) {
		/* The VM may have powered off on GUEST_PANICKED: say why. */
		if (panic_events(s, c->hv) < 0)
			return -EINVAL;
		return vmc_step_end(s, r, NULL);
	}
	r = panic_events(s, c->hv);
	if (r < 0)
		return r;
	st = vmc_view(c);
	k->capture_seen = in_capture(st);
	if (k->capture_seen) {
		snprintf(k->capture_boot, sizeof(k->capture_boot), "%s", str(st->boot_id));
		vmc_step_note(s, "capture kernel's agent after %.1f s; its command line: %s",
			      (double)(vmc_mono_ns() - k->t_crash) / 1e9,
			      VMC_Q(str(st->crash->cmdline)));
		return vmc_step_end(s, 0, NULL);
	}
	/* Back in a normal boot already: the capture kernel's reset must have come. */
	vmc_step_note(s,
		      "the capture boot ended before its agent was heard: the guest is in a "
		      "normal boot again after %.1f s",
		      (double)(vmc_mono_ns() - k->t_crash) / 1e9);
	r = vmc_step_expect_event(s, VMC_EV_RESET, NULL, c->opts->deadline_ms);
	return vmc_step_end(s, r, NULL);
}

/* The dump being written, as the pushes show it (follow()). */
struct follow {
	struct vmc_step *s;
	struct kdump_run *k;
	struct vmc_kdump_track t;
	enum vmc_kdump_progress p;
	bool writing; /* seen growing */
	char dir[256], name[256];
	uint64_t size;
	unsigned looks;     /* judgements: one per push, one as each wait begins or ends */
	struct vmc_why why; /* the last judgement's reason */
};

/*
 * The expectation of follow(): holds once the new dump is saved, late or
 * stalled, judged at the time the push arrives.
 */
static bool dump_settled(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why)
{
	struct follow *f = arg;
	const char *dir = "";
	const Vmcheck__V1__CrashDump *d = vmc_kdump_new_dump(st->crash, &f->k->ready, &dir);
	uint64_t now = vmc_mono_ns();

	f->looks++;
	f->p = vmc_kdump_track(&f->t, d, now, why);
	if (f->p == VMC_KDUMP_WAITING)
		vmc_why_set(why, "%s%s after %.1f s",
			    d ? VMC_Q(str(d->name)) : "no new dump directory",
			    d ? ": no vmcore in it yet" : " yet",
			    (double)(now - f->t.start_ns) / 1e9);
	if (d) {
		/* For notes only: quoted as they are kept. */
		vmc_esc_buf(f->dir, sizeof(f->dir), dir, VMC_ESC_QUOTE);
		vmc_esc_buf(f->name, sizeof(f->name), str(d->name), VMC_ESC_QUOTE);
		f->size = d->vmcore_size;
	}
	if (f->p == VMC_KDUMP_WRITING && !f->writing)
		vmc_step_note(f->s, "in progress in %s: %s", f->dir, why->text);
	f->writing |= f->p == VMC_KDUMP_WRITING;
	f->why = *why;
	return f->p == VMC_KDUMP_SAVED || f->p == VMC_KDUMP_LATE || f->p == VMC_KDUMP_STALLED;
}

/* Milliseconds from @from to @to, at least 1, saturated. */
static unsigned ms_until(uint64_t from, uint64_t to)
{
	uint64_t ms = to > from ? (to - from + MS - 1) / MS : 1;

	return ms > UINT32_MAX ? UINT32_MAX : (unsigned)ms;
}

/*
 * Follow the dump until it is saved (0), or the capture kernel reset the
 * guest or its agent is gone (0, judged after the reboot), or it is late
 * or stalled (-ETIMEDOUT, step failed). The capture kernel's agent pushes
 * the crash section whenever a file in a crash dir is created, written,
 * renamed or closed, so the dump is judged on each push. A dump that never
 * comes or stops growing sends nothing: each wait ends by the time the
 * tracker could call it late or stalled (vmc_kdump_track_due), the one
 * thing no event announces, and the dump is judged as last pushed.
 */
static int follow(struct vmc_ctx *c, struct vmc_step *s, struct kdump_run *k)
{
	struct follow f = { .s = s, .k = k };
	uint64_t t0 = vmc_mono_ns(); /* the step's begin: its waits count from there */
	struct vmc_why why = { .text = "" };
	int r;

	vmc_kdump_track_init(&f.t, t0, k->dl.save_ms, VMC_KDUMP_STALL_MS);
	for (;;) {
		uint64_t due = vmc_kdump_track_due(&f.t, vmc_mono_ns());

		r = vmc_step_expect(s, dump_settled, &f, ms_until(t0, due));
		if (r != -ETIMEDOUT)
			break;
		if (c->hv->ops->seen_event(c->hv, VMC_EV_RESET, NULL)) {
			vmc_step_note(s,
				      "the capture kernel reset the guest before the dump was seen "
				      "whole: it is judged after the reboot");
			return 0;
		}
		/* No push since: judged now. Still growing at the last push: wait on. */
		if (dump_settled(vmc_view(c), &f, &why)) {
			r = 0;
			break;
		}
	}
	if (r == -ECONNRESET || r == -EPIPE) {
		vmc_step_note(s,
			      "%s before the dump was seen whole%s%s: it is judged after the "
			      "reboot",
			      r == -EPIPE ? "the capture kernel's agent went away"
					  : "the guest reset and booted again",
			      f.name[0] ? ", last seen as " : "", f.name);
		return 0;
	}
	if (r < 0)
		return vmc_step_end(s, r, NULL);
	if (f.p == VMC_KDUMP_LATE || f.p == VMC_KDUMP_STALLED)
		return vmc_step_end(s, -ETIMEDOUT, "%s", f.why.text);
	k->t_saved = vmc_mono_ns();
	vmc_step_note(s, "saved as %s/%s after %.1f s (vmcore %llu bytes%s; %u looks)", f.dir,
		      f.name, (double)(k->t_saved - t0) / 1e9, (unsigned long long)f.size,
		      f.writing ? ", followed while it grew" : "", f.looks);
	return 0;
}

static int save(struct vmc_ctx *c, struct kdump_run *k)
{
	struct vmc_step *s = vmc_step_begin(c, CHECK, STEP_SAVE);
	uint64_t t0 = vmc_mono_ns();
	unsigned ms;
	int r;

	r = follow(c, s, k);
	if (r < 0)
		return r;
	/* Whatever it still does (the kernel log, sync, unmount): a step's worth. */
	ms = add_ms((unsigned)((vmc_mono_ns() - t0) / MS), c->opts->deadline_ms);
	r = vmc_step_expect_event(s, VMC_EV_RESET, NULL, ms);
	if (r == 0)
		r = vmc_step_wait_new_boot(s, add_ms(ms, k->dl.reboot_ms));
	if (r == 0)
		r = panic_events(s, c->hv);
	if (r == 0 && in_capture(vmc_view(c)))
		return vmc_step_end(s, -EINVAL, "the guest came back in a capture boot again");
	return vmc_step_end(s, r, NULL);
}

static int found(struct vmc_ctx *c, struct kdump_run *k)
{
	struct vmc_step *s = vmc_step_begin(c, CHECK, STEP_FOUND);
	const Vmcheck__V1__CrashDump *d;
	Vmcheck__V1__Response *rsp;
	struct vmc_why why = { .text = "" };
	const char *dir = "";
	bool ok;
	int r;

	r = read_crash(s, 0, c->opts->deadline_ms, &rsp);
	if (r < 0)
		return vmc_step_end(s, r, "reading the guest's crash section");
	d = vmc_kdump_new_dump(rsp->state->crash, &k->ready, &dir);
	ok = d && vmc_kdump_dump_ok(d, &why);
	if (!d)
		vmc_why_set(&why, "no new dump in any crash dir (%zu there before the crash)",
			    k->ready.n_before);
	if (ok) {
		vmc_step_note(s, "%s/%s", VMC_Q(dir), why.text);
		vmc_step_note(s, "crash -> dump found after the reboot: %.1f s%s",
			      (double)(vmc_mono_ns() - k->t_crash) / 1e9,
			      !k->capture_seen ? " (the capture boot was not seen)"
			      : !k->t_saved    ? " (the capture kernel's agent was not heard once "
						 "the dump was whole)"
					       : "");
		if (k->t_saved)
			vmc_step_note(s, "crash -> dump saved by the capture kernel: %.1f s",
				      (double)(k->t_saved - k->t_crash) / 1e9);
		vmc_step_note(s, "a crash kernel loaded again already: %s",
			      rsp->state->crash->kexec_crash_loaded ? "yes" : "not yet");
	}
	vmc_agent_response_free(vmc_step_conn(s), rsp);
	return ok ? vmc_step_end(s, 0, NULL) : vmc_step_end(s, -ENOENT, "%s", why.text);
}

int vmc_check_kdump(struct vmc_ctx *c)
{
	struct kdump_run k = { 0 };
	int r;

	r = armed(c, &k);
	if (r < 0) {
		/* The guest cannot dump: what would prove it did fails, it is not skipped. */
		vmc_step_not_run(c, CHECK, STEP_CRASH, true,
				 "not run: the guest is not ready to dump");
		vmc_step_not_run(c, CHECK, STEP_SAVE, true,
				 "not run: the guest is not ready to dump");
		vmc_step_not_run(c, CHECK, STEP_FOUND, true,
				 "not run: the guest is not ready to dump");
		goto out;
	}
	r = crash(c, &k);
	if (r < 0)
		vmc_step_not_run(c, CHECK, STEP_SAVE, true, "not run: the crash step failed");
	else if (k.capture_seen)
		r = save(c, &k);
	else
		vmc_step_skip(c, CHECK, STEP_SAVE,
			      "the capture boot ended before its agent answered");
	if (r == 0)
		r = found(c, &k);
	else
		vmc_step_not_run(c, CHECK, STEP_FOUND, true,
				 "not run: the crash or the save failed");
out:
	vmc_kdump_ready_free(&k.ready);
	return r;
}
