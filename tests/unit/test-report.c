/* SPDX-License-Identifier: MIT */
/*
 * The reports: JUnit XML well-formed after every step (parsed back with a
 * small strict checker), JSON lines one object per step, the human summary.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "harness.h"
#include "report.h"

#define MS 1000000ll

/* Guest strings end up in reports: markup, quotes, control bytes, broken UTF-8. */
static const char nasty[] = "vdb <size> & \"serial\" 'x'\x01\x1b[0m \xff\xfe caf\xc3\xa9 \xe2\x82";

static void rec_init(struct vmc_step_record *r, const char *check, const char *name,
		     enum vmc_step_status st, int64_t latency_ms)
{
	memset(r, 0, sizeof(*r));
	r->check = check;
	r->name = name;
	r->operation = "nic plug";
	r->status = st;
	r->t_zero = 1000 * MS;
	r->t_begin = 2000 * MS;
	r->t_action = 2001 * MS;
	r->t_reply = 2003 * MS;
	r->t_confirm = latency_ms >= 0 ? (uint64_t)(2001 + latency_ms) * MS : 0;
	r->t_end = 2100 * MS;
	r->latency_ns = latency_ms >= 0 ? latency_ms * MS : -1;
	if (st != VMC_STEP_PASSED)
		r->message = nasty;
	if (st == VMC_STEP_FAILED)
		r->evidence = "ladder:\n  pci MISSING <- stopped here\n]]> </system-out>";
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	CU_ASSERT_FATAL(getdelim(&buf, &len, '\0', fp) >= 0 || feof(fp));
	fclose(fp);
	return buf ? buf : strdup("");
}

/* ---- a strict little XML checker: enough for what the JUnit writer produces */

static bool is_name(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == ':';
}

/* An entity at @p ("&amp;" ...); returns its length or 0. */
static size_t entity(const char *p)
{
	static const char *const names[] = { "&amp;", "&lt;", "&gt;", "&quot;", "&apos;" };
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strncmp(p, names[i], strlen(names[i])))
			return strlen(names[i]);
	if (p[1] != '#')
		return 0;
	for (n = 2; p[n] >= '0' && p[n] <= '9'; n++)
		;
	return n > 2 && p[n] == ';' ? n + 1 : 0;
}

/* Character data: no raw '<', every '&' an entity, no control characters, valid UTF-8. */
static bool text_ok(const char *p, const char *end)
{
	char *copy = strndup(p, (size_t)(end - p)), *clean = vmc_report_clean(copy);
	bool ok = clean && !strcmp(copy, clean);

	for (; ok && p < end; p++) {
		if (*p == '<')
			ok = false;
		else if (*p == '&')
			ok = entity(p) > 0;
	}
	free(copy);
	free(clean);
	return ok;
}

/*
 * Well-formed: a declaration, one root element, tags properly nested,
 * attributes quoted with clean values. Returns the number of elements, -1
 * when malformed.
 */
static int xml_check(const char *doc, const char *root)
{
	struct {
		const char *name;
		size_t len;
	} stack[32];
	int depth = 0, elements = 0;
	const char *p = doc;

	if (strncmp(p, "<?xml ", 6) || !(p = strstr(p, "?>")))
		return -1;
	p += 2;
	while (*p) {
		const char *lt = strchr(p, '<');

		if (!lt)
			return text_ok(p, p + strlen(p)) && depth == 0 && elements ? elements : -1;
		if (!text_ok(p, lt) || (depth == 0 && strspn(p, " \n") != (size_t)(lt - p)))
			return -1;
		p = lt + 1;
		if (*p == '/') {
			size_t n;

			if (depth == 0)
				return -1;
			n = stack[depth - 1].len;
			if (strncmp(p + 1, stack[depth - 1].name, n) || p[1 + n] != '>')
				return -1;
			depth--;
			p += n + 2;
			continue;
		}
		if (!is_name(*p) || (depth == 0 && elements))
			return -1;
		if (depth == 0 && (strncmp(p, root, strlen(root)) || is_name(p[strlen(root)])))
			return -1;
		stack[depth].name = p;
		while (is_name(*p))
			p++;
		stack[depth].len = (size_t)(p - stack[depth].name);
		/* Attributes: name="value" */
		for (;;) {
			const char *q;

			p += strspn(p, " ");
			if (*p == '>' || (p[0] == '/' && p[1] == '>'))
				break;
			if (!is_name(*p))
				return -1;
			while (is_name(*p))
				p++;
			if (p[0] != '=' || p[1] != '"')
				return -1;
			q = strchr(p + 2, '"');
			if (!q || !text_ok(p + 2, q) || memchr(p + 2, '\n', (size_t)(q - p - 2)))
				return -1;
			p = q + 1;
		}
		elements++;
		if (*p == '/') {
			p += 2;
		} else {
			p++;
			if (++depth >= (int)ARRAY_SIZE(stack))
				return -1;
		}
	}
	return -1;
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void xml_checker_rejects_broken_documents(void)
{
	CU_ASSERT_EQUAL(xml_check("<?xml version=\"1.0\"?>\n<a><b x=\"1\"/></a>\n", "a"), 2);
	CU_ASSERT_EQUAL(xml_check("<?xml version=\"1.0\"?>\n<a><b></a></b>\n", "a"), -1);
	CU_ASSERT_EQUAL(xml_check("<?xml version=\"1.0\"?>\n<a>x & y</a>\n", "a"), -1);
	CU_ASSERT_EQUAL(xml_check("<?xml version=\"1.0\"?>\n<a x=\"<\"/>\n", "a"), -1);
	CU_ASSERT_EQUAL(xml_check("<?xml version=\"1.0\"?>\n<a>\xff</a>\n", "a"), -1);
	CU_ASSERT_EQUAL(xml_check("<?xml version=\"1.0\"?>\n<a>", "a"), -1);
	CU_ASSERT_EQUAL(xml_check("<?xml version=\"1.0\"?>\n<a/><a/>", "a"), -1);
}

static void junit_well_formed_after_every_step(void)
{
	char dir[] = "/tmp/vmc-junit-XXXXXX", path[64], tmp[80];
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step_record r;
	struct vmc_report *rep;
	const struct {
		const char *check, *name;
		enum vmc_step_status st;
		int64_t ms;
	} steps[] = {
		{ "lifecycle", "stop", VMC_STEP_PASSED, 12 },
		{ "nic", "plug nic1 <52:54:00:76:00:01>", VMC_STEP_PASSED, 31 },
		{ "nic", nasty, VMC_STEP_FAILED, -1 },
		{ "lifecycle", "reset", VMC_STEP_PASSED, 2100 },
		{ "disk", "plug disk1", VMC_STEP_SKIPPED, -1 },
	};
	char *doc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/junit.xml", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	CU_ASSERT_EQUAL_FATAL(vmc_report_junit_new(path, &rep, &err), 0);
	/* Valid before any step: the run may die before the first one. */
	doc = slurp(path);
	CU_ASSERT_EQUAL(xml_check(doc, "testsuites"), 1);
	free(doc);
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		rec_init(&r, steps[i].check, steps[i].name, steps[i].st, steps[i].ms);
		CU_ASSERT_EQUAL(rep->ops->step(rep, &r), 0);
		doc = slurp(path);
		/* testsuites + one testsuite per check so far + one testcase per step + extras */
		CU_ASSERT(xml_check(doc, "testsuites") > (int)i + 1);
		CU_ASSERT_EQUAL(count(doc, "<testcase "), i + 1);
		CU_ASSERT_EQUAL(access(tmp, F_OK), -1);
		free(doc);
	}
	CU_ASSERT_EQUAL(rep->ops->finish(rep), 0);
	doc = slurp(path);
	CU_ASSERT(xml_check(doc, "testsuites") > 0);
	/* One testsuite per check, in first-seen order, with its own counts. */
	CU_ASSERT_EQUAL(count(doc, "<testsuite "), 3);
	CU_ASSERT_PTR_NOT_NULL(strstr(doc, "<testsuites name=\"vmcheck\" tests=\"5\" failures=\"1\" "
					   "errors=\"0\" skipped=\"1\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(doc, "<testsuite name=\"lifecycle\" tests=\"2\" failures=\"0\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(doc, "<testsuite name=\"nic\" tests=\"2\" failures=\"1\""));
	CU_ASSERT(strstr(doc, "name=\"lifecycle\"") < strstr(doc, "name=\"nic\""));
	/* Escaped, cleaned, and the evidence (with its own markup) in system-out. */
	CU_ASSERT_PTR_NOT_NULL(strstr(doc, "vdb &lt;size&gt; &amp; &quot;serial&quot; 'x'[0m ?? "
					   "caf\xc3\xa9 ??"));
	CU_ASSERT_PTR_NOT_NULL(strstr(doc, "<system-out>timeline: action, reply +2.0 ms\nladder:\n"
					   "  pci MISSING &lt;- stopped here\n]]&gt; &lt;/system-out&gt;"
					   "</system-out>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(doc, "<skipped message=\"vdb"));
	free(doc);
	vmc_report_free(rep);
	unlink(path);
	rmdir(dir);
}

static void junit_bad_path_fails_early(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_report *rep = NULL;

	CU_ASSERT_EQUAL(vmc_report_junit_new("/nonexistent/dir/j.xml", &rep, &err), -ENOENT);
	CU_ASSERT_PTR_NULL(rep);
	CU_ASSERT_STRING_EQUAL(err.msg,
			       "junit report /nonexistent/dir/j.xml: No such file or directory");
	vmc_error_clear(&err);
}

static void json_one_object_per_step(void)
{
	char dir[] = "/tmp/vmc-json-XXXXXX", path[64];
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step_record r;
	struct vmc_report *rep;
	char *doc, *line, *save = NULL;
	unsigned n = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/r.json", dir);
	CU_ASSERT_EQUAL_FATAL(vmc_report_json_new(path, &rep, &err), 0);
	rec_init(&r, "nic", "plug nic1", VMC_STEP_PASSED, 31);
	r.t_kernel = 2025 * MS;
	CU_ASSERT_EQUAL(rep->ops->step(rep, &r), 0);
	/* Flushed at once: the line is there before the report is closed. */
	doc = slurp(path);
	CU_ASSERT_EQUAL(count(doc, "\n"), 1);
	free(doc);
	rec_init(&r, "nic", nasty, VMC_STEP_FAILED, -1);
	CU_ASSERT_EQUAL(rep->ops->step(rep, &r), 0);
	doc = slurp(path);
	for (line = strtok_r(doc, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
		struct json_object *o = json_tokener_parse(line), *v, *tl;

		CU_ASSERT_PTR_NOT_NULL_FATAL(o);
		CU_ASSERT(json_object_object_get_ex(o, "timeline", &tl));
		CU_ASSERT(json_object_object_get_ex(tl, "action", &v));
		CU_ASSERT_EQUAL(json_object_get_int64(v), 1001 * MS);
		CU_ASSERT(json_object_object_get_ex(o, "latency_ms", &v));
		if (n == 0) {
			CU_ASSERT_STRING_EQUAL(json_object_get_string(
						       json_object_object_get(o, "status")),
					       "passed");
			CU_ASSERT_DOUBLE_EQUAL(json_object_get_double(v), 31.0, 1e-9);
			CU_ASSERT_EQUAL(json_object_get_int64(json_object_object_get(tl, "kernel")),
					1025 * MS);
			CU_ASSERT(json_object_object_get_ex(o, "message", &v) && !v);
		} else {
			CU_ASSERT_PTR_NULL(v);
			CU_ASSERT(json_object_object_get_ex(tl, "confirm", &v) && !v);
			CU_ASSERT_STRING_EQUAL(json_object_get_string(
						       json_object_object_get(o, "step")),
					       "vdb <size> & \"serial\" 'x'[0m ?? caf\xc3\xa9 ??");
			CU_ASSERT_PTR_NOT_NULL(strstr(json_object_get_string(
							      json_object_object_get(o, "evidence")),
						      "stopped here"));
		}
		json_object_put(o);
	}
	CU_ASSERT_EQUAL(n, 2);
	free(doc);
	vmc_report_free(rep);
	unlink(path);
	rmdir(dir);
}

static void text_progress_and_summary(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step_record r;
	struct vmc_report *rep;
	char *out = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&out, &len);
	const int64_t lat[] = { 30, 10, 20, 40 };

	CU_ASSERT_EQUAL_FATAL(vmc_report_text_new(fp, false, &rep, &err), 0);
	for (size_t i = 0; i < ARRAY_SIZE(lat); i++) {
		rec_init(&r, "nic", "plug nic1 (pciroot1, 52:54:00:76:00:01)", VMC_STEP_PASSED,
			 lat[i]);
		rep->ops->step(rep, &r);
	}
	rec_init(&r, "nic", "unplug nic1", VMC_STEP_FAILED, -1);
	r.operation = "nic unplug";
	rep->ops->step(rep, &r);
	rec_init(&r, "disk", "not run", VMC_STEP_SKIPPED, -1);
	rep->ops->step(rep, &r);
	rep->ops->finish(rep);
	fclose(fp);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "  nic        plug nic1 (pciroot1, 52:54:00:76:00:01)"
					   "            ok      30 ms\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "unplug nic1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "FAIL"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "pci MISSING <- stopped here"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "  nic                        4       1       0\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "  disk                       0       0       1\n"));
	/* p50 of 10, 20, 30, 40 is the lower median; failed steps have no latency. */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "  nic plug                   4     20 ms     40 ms\n"));
	CU_ASSERT_PTR_NULL(strstr(out, "  nic unplug "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "6 steps: 4 passed, 1 failed, 1 skipped in 1.1 s\n"));
	vmc_report_free(rep);
	free(out);
}

VMC_SUITE(report, NULL, NULL, VMC_TEST(xml_checker_rejects_broken_documents),
	  VMC_TEST(junit_well_formed_after_every_step), VMC_TEST(junit_bad_path_fails_early),
	  VMC_TEST(json_one_object_per_step), VMC_TEST(text_progress_and_summary))
