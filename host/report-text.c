/* SPDX-License-Identifier: MIT */
/*
 * The human report: one progress line per step as it ends, failures with
 * their evidence, then a summary table (steps per check, latency per
 * operation). Also the helpers every report shares.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "report.h"

/*
 * An evidence line in the text report is cut after this many columns: a
 * QMP reply (query-pci) can be kilobytes on one line. The JSON and JUnit
 * reports keep the evidence whole.
 */
#define EVIDENCE_COLUMNS 200

const char *vmc_step_status_short(enum vmc_step_status st)
{
	return st == VMC_STEP_PASSED ? "ok" : st == VMC_STEP_FAILED ? "FAIL" : "skip";
}

const char *vmc_step_status_name(enum vmc_step_status st)
{
	return st == VMC_STEP_PASSED ? "passed" : st == VMC_STEP_FAILED ? "failed" : "skipped";
}

void vmc_report_free(struct vmc_report *r)
{
	if (r)
		r->ops->free(r);
}

/* --------------------------------------------------------------- report */

struct check_count {
	char *check;
	unsigned n[3]; /* by enum vmc_step_status */
};

struct op_latency {
	char *op;
	int64_t *ns;
	size_t n, cap;
};

/* The steps of one host; outside a --hosts run the only group, host NULL. */
struct group {
	char *host;
	struct check_count *checks;
	size_t n_checks;
	struct op_latency *ops;
	size_t n_ops;
	uint64_t t_end;
};

struct text_report {
	struct vmc_report base;
	FILE *fp;
	bool verbose;
	struct group *groups; /* in first-seen order */
	size_t n_groups;
	uint64_t t_zero, t_end;
	char *whole; /* where the whole evidence is, or NULL */
};

static void fmt_ms(char *buf, size_t size, int64_t ns)
{
	double ms = (double)ns / 1e6;

	if (ms < 10)
		snprintf(buf, size, "%.1f ms", ms);
	else if (ms < 10000)
		snprintf(buf, size, "%.0f ms", ms);
	else
		snprintf(buf, size, "%.1f s", ms / 1000);
}

/*
 * Each line of @raw on @fp, indented. Step messages, notes and evidence
 * carry guest strings, so each passes the terminal escaping (escape.h) as
 * the last thing before the output: text quoted already is left as it is,
 * and whatever was not still cannot reach the terminal raw. With @cut, a
 * line longer than that many columns is cut, and says how much is left.
 * Returns the number of lines cut.
 */
static unsigned indented(FILE *fp, const char *raw, size_t cut)
{
	char *clean = vmc_esc_str(raw, VMC_ESC_LINES);
	const char *text = clean;
	unsigned n_cut = 0;

	if (raw && !clean)
		fputs("        (out of memory)\n", fp);
	while (text && *text) {
		const char *nl = strchr(text, '\n');
		size_t len = nl ? (size_t)(nl - text) : strlen(text), at = 0, cols = 0;

		/* A column per character: UTF-8 continuation bytes take none. */
		while (cut && at < len && (cols < cut || ((unsigned char)text[at] & 0xc0) == 0x80))
			cols += ((unsigned char)text[at++] & 0xc0) != 0x80;
		if (cut && at < len) {
			fprintf(fp, "        %.*s ... (%zu more bytes)\n", (int)at, text, len - at);
			n_cut++;
		} else {
			fprintf(fp, "        %.*s\n", (int)len, text);
		}
		text = nl ? nl + 1 : NULL;
	}
	free(clean);
	return n_cut;
}

static struct group *group_of(struct text_report *t, const char *host)
{
	struct group *g;

	for (size_t i = 0; i < t->n_groups; i++)
		if (host ? t->groups[i].host && !strcmp(t->groups[i].host, host)
			 : !t->groups[i].host)
			return &t->groups[i];
	g = realloc(t->groups, (t->n_groups + 1) * sizeof(*g));
	if (!g)
		return NULL;
	t->groups = g;
	g = &g[t->n_groups];
	memset(g, 0, sizeof(*g));
	if (host && !(g->host = strdup(host)))
		return NULL;
	t->n_groups++;
	return g;
}

static struct check_count *count_of(struct group *g, const char *check)
{
	struct check_count *c;

	for (size_t i = 0; i < g->n_checks; i++)
		if (!strcmp(g->checks[i].check, check))
			return &g->checks[i];
	c = realloc(g->checks, (g->n_checks + 1) * sizeof(*c));
	if (!c)
		return NULL;
	g->checks = c;
	c = &c[g->n_checks];
	memset(c, 0, sizeof(*c));
	c->check = strdup(check);
	if (!c->check)
		return NULL;
	g->n_checks++;
	return c;
}

static int add_latency(struct group *g, const char *op, int64_t ns)
{
	struct op_latency *o = NULL;

	for (size_t i = 0; i < g->n_ops && !o; i++)
		if (!strcmp(g->ops[i].op, op))
			o = &g->ops[i];
	if (!o) {
		o = realloc(g->ops, (g->n_ops + 1) * sizeof(*o));
		if (!o)
			return -ENOMEM;
		g->ops = o;
		o = &o[g->n_ops];
		memset(o, 0, sizeof(*o));
		o->op = strdup(op);
		if (!o->op)
			return -ENOMEM;
		g->n_ops++;
	}
	if (o->n == o->cap) {
		size_t cap = o->cap ? 2 * o->cap : 8;
		int64_t *ns_arr = realloc(o->ns, cap * sizeof(*ns_arr));

		if (!ns_arr)
			return -ENOMEM;
		o->ns = ns_arr;
		o->cap = cap;
	}
	o->ns[o->n++] = ns;
	return 0;
}

static int text_step(struct vmc_report *r, const struct vmc_step_record *rec)
{
	struct text_report *t = (struct text_report *)r;
	struct group *g = group_of(t, rec->host);
	struct check_count *c = g ? count_of(g, rec->check) : NULL;
	char lat[32] = "", *name;

	t->t_zero = rec->t_zero;
	/* The latest end: steps of several hosts come interleaved (one host's are in order). */
	if (rec->t_end > t->t_end)
		t->t_end = rec->t_end;
	if (!c)
		return -ENOMEM;
	if (rec->t_end > g->t_end)
		g->t_end = rec->t_end;
	c->n[rec->status]++;
	if (rec->status == VMC_STEP_PASSED && rec->latency_ns >= 0) {
		fmt_ms(lat, sizeof(lat), rec->latency_ns);
		if (add_latency(g, rec->operation, rec->latency_ns) < 0)
			return -ENOMEM;
	}
	if (rec->host)
		fprintf(t->fp, "[%s] ", rec->host);
	/* A step's name can hold a guest's interface or disk name. */
	name = vmc_esc_str(rec->name, 0);
	fprintf(t->fp, "%s%-10s %-50s %-4s %8s\n", rec->host ? "" : "  ", rec->check,
		name ? name : "?", vmc_step_status_short(rec->status), lat);
	free(name);
	if (rec->message && rec->status != VMC_STEP_PASSED)
		indented(t->fp, rec->message, 0);
	/* What a cleanup removed is said always: it was done to the user's VM. */
	if (t->verbose || rec->status == VMC_STEP_FAILED || !strcmp(rec->check, "cleanup"))
		indented(t->fp, rec->notes, 0);
	if (rec->status == VMC_STEP_FAILED && indented(t->fp, rec->evidence, EVIDENCE_COLUMNS))
		fprintf(t->fp, "        (lines cut at %d columns; %s)\n", EVIDENCE_COLUMNS,
			t->whole ? t->whole : "--json FILE keeps the evidence whole");
	return fflush(t->fp) == EOF ? -errno : 0;
}

static int cmp_s64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The tables of group @g: steps per check, latency per operation. Adds its counts to @tot. */
static void group_summary(FILE *fp, struct group *g, unsigned tot[3])
{
	fprintf(fp, "  %-20s %7s %7s %7s\n", "check", "passed", "failed", "skipped");
	for (size_t i = 0; i < g->n_checks; i++) {
		const struct check_count *c = &g->checks[i];

		fprintf(fp, "  %-20s %7u %7u %7u\n", c->check, c->n[0], c->n[1], c->n[2]);
		for (int k = 0; k < 3; k++)
			tot[k] += c->n[k];
	}
	if (g->n_ops)
		fprintf(fp, "\n  %-20s %7s %9s %9s\n", "operation", "count", "p50", "max");
	for (size_t i = 0; i < g->n_ops; i++) {
		struct op_latency *o = &g->ops[i];
		char p50[32], max[32];

		qsort(o->ns, o->n, sizeof(*o->ns), cmp_s64);
		fmt_ms(p50, sizeof(p50), o->ns[(o->n - 1) / 2]);
		fmt_ms(max, sizeof(max), o->ns[o->n - 1]);
		fprintf(fp, "  %-20s %7zu %9s %9s\n", o->op, o->n, p50, max);
	}
}

static double secs(uint64_t zero, uint64_t end)
{
	return end > zero ? (double)(end - zero) / 1e9 : 0.0;
}

static int text_finish(struct vmc_report *r)
{
	struct text_report *t = (struct text_report *)r;
	bool hosts = t->n_groups > 1 || (t->n_groups && t->groups[0].host);
	struct group none = { 0 }; /* no step at all: the headers alone */
	size_t n_groups = t->n_groups ? t->n_groups : 1;
	unsigned tot[3] = { 0, 0, 0 };

	for (size_t i = 0; i < n_groups; i++) {
		struct group *g = t->n_groups ? &t->groups[i] : &none;
		const char *host = g->host ? g->host : "-";
		unsigned n[3] = { 0, 0, 0 };

		if (hosts)
			fprintf(t->fp, "\n[%s]", host);
		fputc('\n', t->fp);
		group_summary(t->fp, g, n);
		if (hosts)
			fprintf(t->fp,
				"\n  %s: %u steps: %u passed, %u failed, %u skipped in %.1f s\n",
				host, n[0] + n[1] + n[2], n[0], n[1], n[2],
				secs(t->t_zero, g->t_end));
		for (int k = 0; k < 3; k++)
			tot[k] += n[k];
	}
	fprintf(t->fp, "\n%u steps: %u passed, %u failed, %u skipped in %.1f s",
		tot[0] + tot[1] + tot[2], tot[0], tot[1], tot[2], secs(t->t_zero, t->t_end));
	if (hosts)
		fprintf(t->fp, " on %zu hosts", t->n_groups);
	fputc('\n', t->fp);
	return fflush(t->fp) == EOF ? -errno : 0;
}

static void text_free(struct vmc_report *r)
{
	struct text_report *t = (struct text_report *)r;

	for (size_t k = 0; k < t->n_groups; k++) {
		struct group *g = &t->groups[k];

		for (size_t i = 0; i < g->n_checks; i++)
			free(g->checks[i].check);
		for (size_t i = 0; i < g->n_ops; i++) {
			free(g->ops[i].op);
			free(g->ops[i].ns);
		}
		free(g->checks);
		free(g->ops);
		free(g->host);
	}
	free(t->groups);
	free(t->whole);
	free(t);
}

static const struct vmc_report_ops text_ops = {
	.step = text_step,
	.finish = text_finish,
	.free = text_free,
};

int vmc_report_text_new(FILE *fp, bool verbose, struct vmc_report **out, struct vmc_error *err)
{
	return vmc_report_text_new_hosts(fp, verbose, NULL, 0, out, err);
}

int vmc_report_text_new_hosts(FILE *fp, bool verbose, const char *const *hosts, size_t n,
			      struct vmc_report **out, struct vmc_error *err)
{
	struct text_report *t = calloc(1, sizeof(*t));

	if (!t)
		return vmc_error_set(err, -ENOMEM, "text report: out of memory");
	t->base.ops = &text_ops;
	t->base.name = fp == stdout ? "standard output" : "the text report";
	t->fp = fp;
	t->verbose = verbose;
	/* The summary's blocks in the order the hosts were given. */
	for (size_t i = 0; i < n; i++)
		if (!group_of(t, hosts[i])) {
			text_free(&t->base);
			return vmc_error_set(err, -ENOMEM, "text report: out of memory");
		}
	*out = &t->base;
	return 0;
}

int vmc_report_text_whole_at(struct vmc_report *r, const char *fmt, ...)
{
	struct text_report *t = (struct text_report *)r;
	char *s = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	free(t->whole);
	t->whole = s;
	return 0;
}
