/* SPDX-License-Identifier: MIT */
/*
 * The evidence of a failed step: a fresh snapshot, the guest changes since
 * the step began, the guest kernel's log since the action, the serial
 * console after a reboot nobody asked for, the hypervisor transcript, and
 * the detection ladder checks ask for.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "escape.h"
#include "print.h"
#include "state-diff.h"
#include "suite-int.h"

#define KMSG_MAX_LINES 100 /* kernel log lines kept as evidence */
#define KMSG_MAX_PAGES 64

/*
 * A failed step's evidence is drawn from a snapshot asked for after the
 * verdict, never from the last push that happened to arrive: a change the
 * kernel announces to nobody (a CPU leaving cpu/present) would otherwise
 * be missing from the ladder while the kernel log beside it tells of it.
 * Once per step; without an answer the evidence says it is older.
 */
static void refresh_view(struct vmc_step *st)
{
	struct vmc_suite *s = st->suite;
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__GetState get = VMCHECK__V1__GET_STATE__INIT;
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp;
	int r = -ENOTCONN;

	if (st->refreshed || st->skipped || st->died || st->interrupted)
		return;
	st->refreshed = true;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
	req.get_state = &get;
	if (s->conn)
		r = vmc_session_call(s, &req, CALL_TIMEOUT_MS, VMCHECK__V1__RESPONSE__KIND_STATE,
				     &rsp, &err);
	if (r == 0) {
		r = vmc_view_merge(s->view, rsp->state);
		if (r == 0)
			s->view_ns = vmc_mono_ns();
		fprintf(st->evidence_fp,
			"guest snapshot read for this evidence at +%.3f s (generation %llu)\n",
			(double)(vmc_mono_ns() - s->t_zero) / 1e9,
			(unsigned long long)rsp->state->generation);
		vmc_agent_response_free(s->conn, rsp);
	}
	if (r < 0) {
		fprintf(st->evidence_fp, "no fresh guest snapshot for this evidence (%s)",
			err.msg          ? err.msg
			: r == -ENOTCONN ? "no agent connection"
					 : strerror(-r));
		/* 0: this VM's agent never sent a snapshot, there is no older one to show. */
		if (s->view_ns)
			fprintf(st->evidence_fp,
				": what follows is the last one the agent pushed, at +%.3f s\n",
				(double)(s->view_ns - s->t_zero) / 1e9);
		else
			fputs(", and the agent of this VM never sent one\n", st->evidence_fp);
	}
	vmc_error_clear(&err);
}

static void ladder(struct vmc_step *st, const char *hv_id, const char *pci, const char *kobj,
		   bool gone)
{
	if (st->skipped || st->died)
		return;
	refresh_view(st);
	vmc_ladder_write(st->evidence_fp, st->suite->hv, vmc_view_state(st->suite->view), hv_id,
			 pci, kobj, gone, st->usable, st->usable_text);
}

void vmc_step_usable(struct vmc_step *st, bool ok, const char *fmt, ...)
{
	va_list ap;

	free(st->usable_text);
	va_start(ap, fmt);
	if (vasprintf(&st->usable_text, fmt, ap) < 0)
		st->usable_text = NULL;
	va_end(ap);
	st->usable = ok;
}

void vmc_step_ladder(struct vmc_step *st, const char *hv_id, const char *pci, const char *kobj)
{
	ladder(st, hv_id, pci, kobj, false);
}

void vmc_step_ladder_gone(struct vmc_step *st, const char *hv_id, const char *pci, const char *kobj)
{
	ladder(st, hv_id, pci, kobj, true);
}

static bool kmsg_refused(const Vmcheck__V1__Response *rsp)
{
	return rsp->kind_case == VMCHECK__V1__RESPONSE__KIND_ERROR &&
	       (rsp->error->code == VMCHECK__V1__ERROR__CODE__UNSUPPORTED ||
		rsp->error->code == VMCHECK__V1__ERROR__CODE__UNKNOWN_REQUEST);
}

/* The guest kernel's log since the step's action, for evidence. */
static void evidence_kmsg(struct vmc_step *st, FILE *fp)
{
	struct vmc_suite *s = st->suite;
	char *lines[KMSG_MAX_LINES] = { NULL };
	size_t n = 0, first = 0;
	bool new_boot = st->old_boot && s->boot_id && strcmp(st->old_boot, s->boot_id);
	int64_t offset;
	uint64_t since = s->kmsg_seq, from_us;

	if (!s->conn || s->no_kmsg) {
		fprintf(fp, "guest kernel log: %s\n",
			s->no_kmsg ? "agent has no kmsg" : "no agent connection");
		return;
	}
	if (vmc_session_clock_offset(s, &offset) < 0) {
		fprintf(fp, "guest kernel log: the agent does not answer\n");
		return;
	}
	/*
	 * Records from 50 ms before the action on (kmsg and monotonic clocks
	 * differ a little); after a new boot, that boot's whole log.
	 */
	from_us = !new_boot && (int64_t)st->t_action - offset > 50 * (int64_t)MS
			  ? (uint64_t)((int64_t)st->t_action - offset - 50 * (int64_t)MS) / 1000
			  : 0;
	for (unsigned page = 0; page < KMSG_MAX_PAGES; page++) {
		Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
		Vmcheck__V1__ReadKmsg rk = VMCHECK__V1__READ_KMSG__INIT;
		Vmcheck__V1__Response *rsp;
		const Vmcheck__V1__Kmsg *k;

		rk.since_seq = since;
		req.kind_case = VMCHECK__V1__REQUEST__KIND_READ_KMSG;
		req.read_kmsg = &rk;
		if (vmc_agent_call(s->conn, &req, 1000, &rsp, NULL) < 0) {
			fprintf(fp, "guest kernel log: no reply to read_kmsg\n");
			break;
		}
		if (kmsg_refused(rsp)) {
			s->no_kmsg = true;
			fprintf(fp, "guest kernel log: agent has no kmsg\n");
			vmc_agent_response_free(s->conn, rsp);
			break;
		}
		if (rsp->kind_case != VMCHECK__V1__RESPONSE__KIND_KMSG) {
			vmc_agent_response_free(s->conn, rsp);
			break;
		}
		k = rsp->kmsg;
		for (size_t i = 0; i < k->n_records; i++) {
			const Vmcheck__V1__KmsgRecord *rec = k->records[i];
			size_t slot = (first + n) % KMSG_MAX_LINES;
			const char *raw;
			char *msg;
			size_t len;

			if (!rec || rec->ts_us < from_us)
				continue;
			if (n == KMSG_MAX_LINES) {
				free(lines[first]);
				first = (first + 1) % KMSG_MAX_LINES;
				n--;
			}
			raw = rec->message ? rec->message : "";
			len = strlen(raw);
			/* Cut, and said so (the kernel's own records are shorter), then
			 * quoted: the record is the guest's, a newline in it included. */
			msg = strndup(raw, len > VMC_BOUND_KMSG_LINE ? VMC_BOUND_KMSG_LINE : len);
			if (msg) {
				char *q = vmc_esc_str(msg, VMC_ESC_QUOTE);

				free(msg);
				msg = q;
			}
			if (!msg ||
			    asprintf(&lines[slot], "  [%5llu.%06llu] %s%s",
				     (unsigned long long)(rec->ts_us / 1000000),
				     (unsigned long long)(rec->ts_us % 1000000), msg,
				     len > VMC_BOUND_KMSG_LINE ? " [cut: the record is longer]"
							       : "") < 0)
				lines[slot] = NULL;
			free(msg);
			n++;
		}
		bool more = k->n_records && k->next_seq > since;

		since = k->next_seq > since ? k->next_seq : since;
		vmc_agent_response_free(s->conn, rsp);
		if (!more)
			break;
	}
	s->kmsg_seq = since;
	if (!s->no_kmsg && new_boot)
		vmc_esc_line(fp, "guest kernel log of the new boot %s (its last %zu records):",
			     s->boot_id, n);
	else if (!s->no_kmsg)
		fprintf(fp, "guest kernel log since the action (%zu records):\n", n);
	for (size_t i = 0; i < n; i++) {
		char **l = &lines[(first + i) % KMSG_MAX_LINES];

		if (*l)
			fprintf(fp, "%s\n", *l);
		free(*l);
	}
}

/* Section errors of @now: which sections are stale, and the agent's reason. */
static void evidence_section_errors(FILE *fp, const Vmcheck__V1__State *now)
{
	if (!now->n_errors)
		return;
	fputs("the agent could not read these sections (their data below is older):\n", fp);
	for (size_t i = 0; i < now->n_errors; i++) {
		const Vmcheck__V1__SectionError *e = now->errors[i];
		const char *name = vmc_section_name(e->section);

		vmc_esc_line(fp, "  %s: %s", name ? name : "?",
			     e->message && *e->message ? e->message : strerror(e->errno_value));
	}
}

#define CONSOLE_TAIL_BYTES 16384
#define CONSOLE_TAIL_LINES 60

/*
 * The end of the serial console's log, after a reboot nobody asked for:
 * the kernel's last words before it are there, and the agent of the new
 * boot cannot tell them. The console is the guest's: each line is quoted
 * as every guest string is (escape.h), the carriage returns that end a
 * serial line dropped.
 */
static void evidence_console(struct vmc_step *st, FILE *fp)
{
	struct vmc_hv *hv = st->suite->hv;
	const char *path = hv->ops->console_log ? hv->ops->console_log(hv) : NULL;
	char buf[CONSOLE_TAIL_BYTES];
	size_t n = 0, start, lines = 0;
	FILE *f;

	if (!path) {
		fputs("serial console: not kept by this backend; the previous boot's kernel log "
		      "is lost with it\n",
		      fp);
		return;
	}
	f = fopen(path, "rb");
	if (f && fseek(f, 0, SEEK_END) == 0) {
		long size = ftell(f);

		if (size > (long)sizeof(buf))
			fseek(f, size - (long)sizeof(buf), SEEK_SET);
		else
			rewind(f);
		n = fread(buf, 1, sizeof(buf), f);
	}
	if (f)
		fclose(f);
	if (!n) {
		fprintf(fp, "serial console %s: nothing to read\n", path);
		return;
	}
	for (start = n; start > 0 && lines <= CONSOLE_TAIL_LINES; start--)
		lines += buf[start - 1] == '\n';
	if (lines > CONSOLE_TAIL_LINES)
		start++; /* the newline before the first line kept */
	fprintf(fp, "serial console, its last lines (%s):\n", path);
	while (start < n) {
		const char *nl = memchr(buf + start, '\n', n - start);
		size_t end = nl ? (size_t)(nl - buf) : n, len = end - start;

		while (len && buf[start + len - 1] == '\r')
			len--;
		fputs("  ", fp);
		vmc_esc_write(fp, buf + start, len, VMC_ESC_QUOTE);
		fputc('\n', fp);
		start = end + 1;
	}
}

void vmc_evidence_gather(struct vmc_step *st)
{
	struct vmc_suite *s = st->suite;
	FILE *fp = st->evidence_fp;
	const Vmcheck__V1__State *now;

	refresh_view(st);
	now = vmc_view_state(s->view);
	if (st->died) {
		fputs("the guest's last snapshot:\n", fp);
		vmc_print_state(fp, now);
	} else if (st->baseline) {
		evidence_section_errors(fp, now);
		fputs("guest changes since the step began (baseline -> now):\n", fp);
		if (!vmc_state_diff_write_max(fp, vmc_view_state(st->baseline), now,
					      VMC_BOUND_DIFF_LINES))
			fputs("  (none)\n", fp);
		/* Interrupted, the user wants out: no more waiting on the guest. */
		if (!st->interrupted)
			evidence_kmsg(st, fp);
	}
	if (st->reboot_unasked)
		evidence_console(st, fp);
	fputs("hypervisor transcript since the step began:\n", fp);
	s->hv->ops->transcript(s->hv, st->t_begin, fp);
}
