/* SPDX-License-Identifier: MIT */
/*
 * JUnit XML, the format CI systems read. The file is rewritten whole after
 * every step (to PATH.tmp, then renamed over PATH), so whatever reads it,
 * whenever, sees a well-formed document with every step so far. A testsuite
 * per check, or per host in a --hosts run.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "report.h"

struct jcase {
	char *host; /* NULL outside a --hosts run */
	char *check, *name, *message, *out;
	enum vmc_step_status status;
	uint64_t ns;
};

struct junit_report {
	struct vmc_report base;
	char *path, *tmp;
	struct jcase *cases;
	size_t n, cap;
	char **hosts; /* the testsuites to write first, in this order */
	size_t n_hosts;
	uint64_t t_zero, t_end;
};

static void write_case(FILE *fp, const struct jcase *c)
{
	/* Within a host's testsuite the check is the class; alone, it is vmcheck's. */
	fputs(c->host ? "    <testcase classname=\"" : "    <testcase classname=\"vmcheck.", fp);
	vmc_esc_xml(fp, c->check, true);
	fputs("\" name=\"", fp);
	vmc_esc_xml(fp, c->name, true);
	fprintf(fp, "\" time=\"%.6f\">\n", (double)c->ns / 1e9);
	if (c->status != VMC_STEP_PASSED) {
		bool failed = c->status == VMC_STEP_FAILED;

		fprintf(fp, "      <%s message=\"", failed ? "failure" : "skipped");
		vmc_esc_xml(fp, c->message ? c->message : "", true);
		if (failed) {
			fputs("\" type=\"failure\">", fp);
			vmc_esc_xml(fp, c->message ? c->message : "", false);
			fputs("</failure>\n", fp);
		} else {
			fputs("\"/>\n", fp);
		}
	}
	if (c->out && *c->out) {
		fputs("      <system-out>", fp);
		vmc_esc_xml(fp, c->out, false);
		fputs("</system-out>\n", fp);
	}
	fputs("    </testcase>\n", fp);
}

/* The testsuite of case @c: its host's, or its check's. */
static const char *suite_of(const struct jcase *c)
{
	return c->host ? c->host : c->check;
}

/* Was testsuite @name written already: a declared host, or the suite of an earlier case? */
static bool written(const struct junit_report *j, size_t upto, const char *name)
{
	for (size_t i = 0; i < j->n_hosts; i++)
		if (!strcmp(j->hosts[i], name))
			return true;
	for (size_t i = 0; i < upto; i++)
		if (!strcmp(suite_of(&j->cases[i]), name))
			return true;
	return false;
}

static void write_suite(FILE *fp, const struct junit_report *j, const char *name)
{
	unsigned n[3] = { 0, 0, 0 };
	uint64_t ns = 0;

	for (size_t k = 0; k < j->n; k++)
		if (!strcmp(suite_of(&j->cases[k]), name)) {
			n[j->cases[k].status]++;
			ns += j->cases[k].ns;
		}
	fputs("  <testsuite name=\"", fp);
	vmc_esc_xml(fp, name, true);
	fprintf(fp,
		"\" tests=\"%u\" failures=\"%u\" errors=\"0\" skipped=\"%u\" "
		"time=\"%.6f\">\n",
		n[0] + n[1] + n[2], n[1], n[2], (double)ns / 1e9);
	for (size_t k = 0; k < j->n; k++)
		if (!strcmp(suite_of(&j->cases[k]), name))
			write_case(fp, &j->cases[k]);
	fputs("  </testsuite>\n", fp);
}

static void write_doc(FILE *fp, const struct junit_report *j)
{
	unsigned tot[3] = { 0, 0, 0 };

	for (size_t i = 0; i < j->n; i++)
		tot[j->cases[i].status]++;
	fprintf(fp,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<testsuites name=\"vmcheck\" tests=\"%zu\" failures=\"%u\" errors=\"0\" "
		"skipped=\"%u\" time=\"%.6f\">\n",
		j->n, tot[1], tot[2],
		j->t_end > j->t_zero ? (double)(j->t_end - j->t_zero) / 1e9 : 0.0);
	/* The declared hosts in their order, then every other suite as it first appeared. */
	for (size_t i = 0; i < j->n_hosts; i++)
		write_suite(fp, j, j->hosts[i]);
	for (size_t i = 0; i < j->n; i++)
		if (!written(j, i, suite_of(&j->cases[i])))
			write_suite(fp, j, suite_of(&j->cases[i]));
	fputs("</testsuites>\n", fp);
}

static int rewrite(struct junit_report *j)
{
	FILE *fp = fopen(j->tmp, "we");
	int r = 0;

	if (!fp)
		return -errno;
	write_doc(fp, j);
	if (ferror(fp))
		r = -EIO;
	if (fclose(fp) == EOF && !r)
		r = -errno;
	if (!r && rename(j->tmp, j->path) < 0)
		r = -errno;
	if (r)
		unlink(j->tmp);
	return r;
}

/* "timeline: action +0.0 ms, reply +2.1 ms, ..." relative to the step's action. */
static void timeline(FILE *fp, const struct vmc_step_record *rec)
{
	const char *names[] = { "reply", "kernel", "confirm", "event" };
	const uint64_t ts[] = { rec->t_reply, rec->t_kernel, rec->t_confirm, rec->t_event };

	if (!rec->t_action)
		return;
	fputs("timeline: action", fp);
	for (size_t i = 0; i < 4; i++)
		if (ts[i])
			fprintf(fp, ", %s %+.1f ms", names[i],
				((double)ts[i] - (double)rec->t_action) / 1e6);
	fputc('\n', fp);
}

static int junit_step(struct vmc_report *r, const struct vmc_step_record *rec)
{
	struct junit_report *j = (struct junit_report *)r;
	struct jcase *c;
	size_t len = 0;
	FILE *fp;

	if (j->n == j->cap) {
		size_t cap = j->cap ? 2 * j->cap : 32;

		c = realloc(j->cases, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		j->cases = c;
		j->cap = cap;
	}
	c = &j->cases[j->n];
	memset(c, 0, sizeof(*c));
	c->status = rec->status;
	c->ns = rec->t_end > rec->t_begin ? rec->t_end - rec->t_begin : 0;
	c->host = rec->host ? strdup(rec->host) : NULL;
	c->check = strdup(rec->check);
	c->name = strdup(rec->name);
	c->message = rec->message ? strdup(rec->message) : NULL;
	fp = open_memstream(&c->out, &len);
	if (fp) {
		timeline(fp, rec);
		if (rec->notes)
			fputs(rec->notes, fp);
		if (rec->evidence)
			fputs(rec->evidence, fp);
		fclose(fp);
	}
	if (!c->check || !c->name || (rec->message && !c->message) || (rec->host && !c->host) ||
	    !fp || !c->out) {
		free(c->host);
		free(c->check);
		free(c->name);
		free(c->message);
		free(c->out);
		return -ENOMEM;
	}
	j->n++;
	j->t_zero = rec->t_zero;
	/* The latest end: steps of several hosts come interleaved (one host's are in order). */
	if (rec->t_end > j->t_end)
		j->t_end = rec->t_end;
	return rewrite(j);
}

static int junit_finish(struct vmc_report *r)
{
	return rewrite((struct junit_report *)r);
}

static void junit_free(struct vmc_report *r)
{
	struct junit_report *j = (struct junit_report *)r;

	for (size_t i = 0; i < j->n; i++) {
		free(j->cases[i].host);
		free(j->cases[i].check);
		free(j->cases[i].name);
		free(j->cases[i].message);
		free(j->cases[i].out);
	}
	free(j->cases);
	for (size_t i = 0; i < j->n_hosts; i++)
		free(j->hosts[i]);
	free(j->hosts);
	free(j->path);
	free(j->tmp);
	free(j);
}

static const struct vmc_report_ops junit_ops = {
	.step = junit_step,
	.finish = junit_finish,
	.free = junit_free,
};

int vmc_report_junit_new(const char *path, struct vmc_report **out, struct vmc_error *err)
{
	return vmc_report_junit_new_hosts(path, NULL, 0, out, err);
}

int vmc_report_junit_new_hosts(const char *path, const char *const *hosts, size_t n,
			       struct vmc_report **out, struct vmc_error *err)
{
	struct junit_report *j = calloc(1, sizeof(*j));
	int r;

	if (!j || !(j->path = strdup(path)) || asprintf(&j->tmp, "%s.tmp", path) < 0) {
		if (j)
			free(j->path);
		free(j);
		return vmc_error_set(err, -ENOMEM, "junit report: out of memory");
	}
	j->base.ops = &junit_ops;
	j->base.name = j->path;
	j->hosts = n ? calloc(n, sizeof(*j->hosts)) : NULL;
	for (j->n_hosts = 0; j->hosts && j->n_hosts < n; j->n_hosts++)
		if (!(j->hosts[j->n_hosts] = strdup(hosts[j->n_hosts])))
			break;
	if (j->n_hosts < n) {
		junit_free(&j->base);
		return vmc_error_set(err, -ENOMEM, "junit report: out of memory");
	}
	/* An empty document at once: a bad path fails before anything runs. */
	r = rewrite(j);
	if (r < 0) {
		vmc_error_set(err, r, "junit report %s: %s", path, strerror(-r));
		junit_free(&j->base);
		return r;
	}
	*out = &j->base;
	return 0;
}
