/* SPDX-License-Identifier: MIT */
/*
 * Unit-test runner. CUnit 2.1-3's own XML output is broken on Debian 12
 * (malformed XML, aborts on the first failure) and CU_basic_run_tests()
 * returns success even when tests fail, so the JUnit file is written here
 * from the registry and the exit status comes from the failure count.
 */
#include <CUnit/TestRun.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "escape.h"
#include "harness.h"
#include "report.h"

static struct vmc_test_suite *suites;
static const char *fixtures_dir = "tests/fixtures";

void vmc_test_register(struct vmc_test_suite *s)
{
	struct vmc_test_suite **p = &suites;

	/* Keep registration order stable: sorted by name. */
	while (*p && strcmp((*p)->name, s->name) < 0)
		p = &(*p)->next;
	s->next = *p;
	*p = s;
}

const char *fx_fixtures_dir(void)
{
	return fixtures_dir;
}

void fx_open_committed(const char *name, struct vmc_sysroot *root)
{
	char p[2 * PATH_MAX + 2];

	snprintf(p, sizeof(p), "%s/%s", fixtures_dir, name);
	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(root, p), 0);
	root->live = false;
}

void fx_run(struct fx_run *t, struct vmc_sysroot root, fx_reader_fn read)
{
	memset(t, 0, sizeof(*t));
	t->o.root = root;
	t->a = (struct vmc_arena)VMC_ARENA_INIT;
	vmcheck__v1__state__init(&t->st);
	t->r = read(&t->o, &t->a, &t->st);
}

void fx_run_done(struct fx_run *t, bool close_root)
{
	vmc_arena_free(&t->a);
	if (close_root)
		vmc_sysroot_close(&t->o.root);
}

static void mkparents(const char *path)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *s = tmp + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(tmp, 0755);
		*s = '/';
	}
}

void fx_str_is(char *got, const char *want, const char *what)
{
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	if (strcmp(got, want))
		fprintf(stderr, "%s: \"%s\", want \"%s\"\n", what, got, want);
	CU_ASSERT_STRING_EQUAL(got, want);
	free(got);
}

void fx_init(struct fx *f)
{
	const char *t = getenv("TMPDIR");

	snprintf(f->path, sizeof(f->path), "%s/vmc-fx-XXXXXX", t ? t : "/tmp");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(f->path));
	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&f->root, f->path), 0);
	f->root.live = false;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

void fx_cleanup(struct fx *f)
{
	vmc_sysroot_close(&f->root);
	nftw(f->path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void fx_write(struct fx *f, const char *rel, const char *content)
{
	char p[2 * PATH_MAX + 2];
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s", f->path, rel);
	mkparents(p);
	fp = fopen(p, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	fputs(content, fp);
	fclose(fp);
}

void fx_mkdir(struct fx *f, const char *rel)
{
	char p[2 * PATH_MAX + 2];

	snprintf(p, sizeof(p), "%s/%s/", f->path, rel);
	mkparents(p);
}

void fx_symlink(struct fx *f, const char *target, const char *rel)
{
	char p[2 * PATH_MAX + 2];

	snprintf(p, sizeof(p), "%s/%s", f->path, rel);
	mkparents(p);
	CU_ASSERT_EQUAL_FATAL(symlink(target, p), 0);
}

void fx_remove(struct fx *f, const char *rel)
{
	char p[2 * PATH_MAX + 2];

	snprintf(p, sizeof(p), "%s/%s", f->path, rel);
	nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

struct result {
	const char *suite, *test;
	double secs;
};

static struct result *results;
static size_t n_results, cap_results;
static struct timespec t_start;

static void on_test_start(const CU_pTest t, const CU_pSuite s)
{
	(void)t;
	(void)s;
	clock_gettime(CLOCK_MONOTONIC, &t_start);
}

static void on_test_complete(const CU_pTest t, const CU_pSuite s, const CU_pFailureRecord f)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	printf("%-28s %-52s %s\n", s->pName, t->pName, f ? "FAIL" : "ok");
	for (CU_pFailureRecord r = f; r; r = r->pNext)
		printf("    %s:%u: %s\n", r->strFileName, r->uiLineNumber, r->strCondition);
	if (n_results == cap_results) {
		cap_results = cap_results ? cap_results * 2 : 64;
		results = realloc(results, cap_results * sizeof(*results));
		if (!results)
			abort();
	}
	results[n_results++] = (struct result){ s->pName, t->pName,
						(double)(now.tv_sec - t_start.tv_sec) +
							(now.tv_nsec - t_start.tv_nsec) / 1e9 };
}

static void write_junit(const char *path)
{
	FILE *fp = fopen(path, "w");
	CU_pFailureRecord fr;
	unsigned failures = 0;

	if (!fp) {
		fprintf(stderr, "unit-tests: cannot write %s: %s\n", path, strerror(errno));
		return;
	}
	for (fr = CU_get_failure_list(); fr; fr = fr->pNext)
		failures++;
	fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	fprintf(fp, "<testsuites name=\"vmcheck-unit\" tests=\"%zu\" failures=\"%u\">\n", n_results,
		failures);
	for (size_t i = 0; i < n_results; i++) {
		fprintf(fp, "  <testcase classname=\"");
		vmc_esc_xml(fp, results[i].suite, true);
		fprintf(fp, "\" name=\"");
		vmc_esc_xml(fp, results[i].test, true);
		fprintf(fp, "\" time=\"%.6f\"", results[i].secs);
		bool any = false;
		for (fr = CU_get_failure_list(); fr; fr = fr->pNext) {
			if (!fr->pTest || strcmp(fr->pTest->pName, results[i].test) ||
			    !fr->pSuite || strcmp(fr->pSuite->pName, results[i].suite))
				continue;
			if (!any)
				fprintf(fp, ">\n");
			any = true;
			fprintf(fp, "    <failure message=\"");
			vmc_esc_xml(fp, fr->strCondition, true);
			fprintf(fp, "\">");
			vmc_esc_xml(fp, fr->strFileName, false);
			fprintf(fp, ":%u</failure>\n", fr->uiLineNumber);
		}
		fprintf(fp, any ? "  </testcase>\n" : "/>\n");
	}
	fprintf(fp, "</testsuites>\n");
	fclose(fp);
}

int main(int argc, char **argv)
{
	const char *junit = NULL, *only = NULL;
	unsigned nfail;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--junit") && i + 1 < argc)
			junit = argv[++i];
		else if (!strcmp(argv[i], "--fixtures") && i + 1 < argc)
			fixtures_dir = argv[++i];
		else if (!strcmp(argv[i], "--suite") && i + 1 < argc)
			only = argv[++i];
		else {
			fprintf(stderr,
				"usage: %s [--junit FILE] [--fixtures DIR] [--suite NAME]\n",
				argv[0]);
			return 2;
		}
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	for (struct vmc_test_suite *s = suites; s; s = s->next) {
		CU_pSuite cs;

		if (only && strcmp(only, s->name))
			continue;
		cs = CU_add_suite(s->name, s->init, s->cleanup);
		if (!cs)
			return 2;
		for (const struct vmc_test *t = s->tests; t->name; t++)
			if (!CU_add_test(cs, t->name, t->fn))
				return 2;
	}
	CU_set_test_start_handler(on_test_start);
	CU_set_test_complete_handler(on_test_complete);
	/* The core runner: the basic one would replace our handlers. */
	CU_run_all_tests();
	nfail = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	if (junit)
		write_junit(junit);
	printf("\n%u passed, %u failed\n",
	       CU_get_number_of_tests_run() - CU_get_number_of_tests_failed(),
	       CU_get_number_of_tests_failed());
	CU_cleanup_registry();
	free(results);
	return nfail ? 1 : 0;
}

/* ---- fx_capture */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int capture_step(struct vmc_report *r, const struct vmc_step_record *rec)
{
	struct fx_capture *c = (struct fx_capture *)r;
	struct fx_cap_rec *x;

	CU_ASSERT_FATAL(c->n < ARRAY_SIZE(c->r));
	x = &c->r[c->n++];
	x->host = dup_or_null(rec->host);
	x->check = dup_or_null(rec->check);
	x->name = dup_or_null(rec->name);
	x->message = dup_or_null(rec->message);
	x->notes = dup_or_null(rec->notes);
	x->evidence = dup_or_null(rec->evidence);
	x->status = rec->status;
	x->t_zero = rec->t_zero;
	x->t_action = rec->t_action;
	x->t_kernel = rec->t_kernel;
	x->t_confirm = rec->t_confirm;
	x->t_end = rec->t_end;
	x->latency_ns = rec->latency_ns;
	return 0;
}

static int capture_finish(struct vmc_report *r)
{
	((struct fx_capture *)r)->finished++;
	return 0;
}

void fx_capture_free(struct fx_capture *c)
{
	for (size_t i = 0; i < c->n; i++) {
		struct fx_cap_rec *x = &c->r[i];

		free(x->host);
		free(x->check);
		free(x->name);
		free(x->message);
		free(x->notes);
		free(x->evidence);
	}
	c->n = 0;
}

static void capture_free(struct vmc_report *r)
{
	fx_capture_free((struct fx_capture *)r);
}

void fx_capture_init(struct fx_capture *c)
{
	static const struct vmc_report_ops ops = { capture_step, capture_finish, capture_free };

	memset(c, 0, sizeof(*c));
	c->base.ops = &ops;
}
