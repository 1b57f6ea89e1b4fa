/* SPDX-License-Identifier: MIT */
/*
 * The reports: JUnit XML well-formed after every step (parsed back with a
 * small strict checker), JSON lines one object per step, the human summary.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>
#include <libxml/parser.h>

#include "escape.h"
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

/*
 * Character data: no raw '<', every '&' an entity, no control characters
 * but tab and newline, valid UTF-8 (the escaping leaves such text as it is).
 */
static bool text_ok(const char *p, const char *end)
{
	char *copy = strndup(p, (size_t)(end - p)), *clean = vmc_esc_str(copy, VMC_ESC_LINES);
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
	CU_ASSERT_PTR_NOT_NULL(strstr(doc,
				      "<testsuites name=\"vmcheck\" tests=\"5\" failures=\"1\" "
				      "errors=\"0\" skipped=\"1\""));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(doc, "<testsuite name=\"lifecycle\" tests=\"2\" failures=\"0\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(doc, "<testsuite name=\"nic\" tests=\"2\" failures=\"1\""));
	CU_ASSERT(strstr(doc, "name=\"lifecycle\"") < strstr(doc, "name=\"nic\""));
	/* Escaped, controls and broken UTF-8 visible, the evidence (with its markup) in system-out. */
	CU_ASSERT_PTR_NOT_NULL(strstr(doc, "vdb &lt;size&gt; &amp; &quot;serial&quot; "
					   "'x'\\x01\\e[0m \\xff\\xfe caf\xc3\xa9 \\xe2\\x82"));
	CU_ASSERT_PTR_NOT_NULL(strstr(doc,
				      "<system-out>timeline: action, reply +2.0 ms\nladder:\n"
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
					       "vdb <size> & \"serial\" 'x'\x01\x1b[0m "
					       "\xef\xbf\xbd\xef\xbf\xbd caf\xc3\xa9 "
					       "\xef\xbf\xbd\xef\xbf\xbd");
			CU_ASSERT_PTR_NOT_NULL(
				strstr(json_object_get_string(json_object_object_get(o, "evidence")),
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

/* Guest strings in a step reach the terminal with their control sequences escaped. */
static void text_escapes_control_sequences(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step_record r;
	struct vmc_report *rep;
	char *out = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&out, &len);

	CU_ASSERT_EQUAL_FATAL(vmc_report_text_new(fp, false, &rep, &err), 0);
	rec_init(&r, "nic", "use nic1 (eth\x1b]0;pwned\x07)", VMC_STEP_FAILED, -1);
	r.message = "the agent: \x1b[2Jcleared\r";
	r.evidence = "kernel: \x1b[31mred\x1b[0m";
	rep->ops->step(rep, &r);
	rep->ops->finish(rep);
	fclose(fp);
	CU_ASSERT_PTR_NULL(memchr(out, '\x1b', len));
	CU_ASSERT_PTR_NULL(memchr(out, '\x07', len));
	CU_ASSERT_PTR_NULL(memchr(out, '\r', len));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "use nic1 (eth\\e]0;pwned\\x07)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "the agent: \\e[2Jcleared\\r\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "kernel: \\e[31mred\\e[0m\n"));
	vmc_report_free(rep);
	free(out);
}

/* A QMP reply of kilobytes on one line: cut in the text report, which says where it is whole. */
static void text_cuts_long_evidence_lines(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step_record r;
	struct vmc_report *rep;
	char *out = NULL, *ev, *line, want[300];
	size_t len = 0;
	FILE *fp = open_memstream(&out, &len);

	ev = malloc(9100);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	/* 9000 bytes of reply, the "ж" at the cut kept whole, then a short line. */
	strcpy(ev, "hypervisor transcript since the step began:\n1.000000 <- ");
	len = strlen(ev);
	memset(ev + len, 'q', 9000);
	memcpy(ev + len + 199 - 14, "\xd0\xb6", 2);
	strcpy(ev + len + 9000, "\n1.5 -> {\"execute\":\"query-pci\"}\n");
	len = 0;
	CU_ASSERT_EQUAL_FATAL(vmc_report_text_new(fp, false, &rep, &err), 0);
	CU_ASSERT_EQUAL(vmc_report_text_whole_at(rep, "the JSON report %s keeps it whole",
						 "r.json"),
			0);
	rec_init(&r, "nic", "plug nic1", VMC_STEP_FAILED, -1);
	r.evidence = ev;
	rep->ops->step(rep, &r);
	fclose(fp);
	line = strstr(out, "        1.000000 <- ");
	CU_ASSERT_PTR_NOT_NULL_FATAL(line);
	/* 200 columns: "1.000000 <- " (12), 185 q, the two-byte letter, 2 more q. */
	snprintf(want, sizeof(want), "        1.000000 <- %.*s\xd0\xb6qq ... (8811 more bytes)\n",
		 185, ev + strlen("hypervisor transcript since the step began:\n1.000000 <- "));
	CU_ASSERT(!strncmp(line, want, strlen(want)));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "        1.5 -> {\"execute\":\"query-pci\"}\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "        (lines cut at 200 columns; the JSON report "
					   "r.json keeps it whole)\n"));
	vmc_report_free(rep);
	free(out);
	free(ev);
}

/* Every byte but NUL in every place a step's strings go: libxml2's strict parser takes the file. */
static void junit_parses_with_every_byte(void)
{
	char dir[] = "/tmp/vmc-junit-XXXXXX", path[64], all[300];
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step_record r;
	struct vmc_report *rep;
	xmlDocPtr doc;
	size_t n = 0;

	for (unsigned b = 1; b < 256; b++)
		all[n++] = (char)b;
	strcpy(all + n, "]]>\xed\xa0\x80\xef\xbf\xbf\xc2\x9b");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/junit.xml", dir);
	CU_ASSERT_EQUAL_FATAL(vmc_report_junit_new(path, &rep, &err), 0);
	rec_init(&r, all, all, VMC_STEP_FAILED, -1);
	r.message = r.notes = r.evidence = r.operation = all;
	CU_ASSERT_EQUAL(rep->ops->step(rep, &r), 0);
	rec_init(&r, "nic", all, VMC_STEP_SKIPPED, -1);
	r.message = all;
	CU_ASSERT_EQUAL(rep->ops->step(rep, &r), 0);
	vmc_report_free(rep);
	doc = xmlReadFile(path, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	CU_ASSERT_PTR_NOT_NULL(doc);
	if (doc) {
		xmlChar *t = xmlNodeGetContent(xmlDocGetRootElement(doc));

		/* The escapes are there, as text. */
		CU_ASSERT(t && strstr((const char *)t, "\\x1a\\e\\x1c") &&
			  strstr((const char *)t, "\\xed\\xa0\\x80\\uffff\\u009b"));
		xmlFree(t);
		xmlFreeDoc(doc);
	}
	unlink(path);
	rmdir(dir);
}

/* ---- --hosts: the parser next to the JSON writer, reports with a host */

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* Every field of @b as @a had it. */
static void assert_same_record(const struct vmc_step_record *a, const struct vmc_step_record *b)
{
	CU_ASSERT(same_str(a->host, b->host));
	CU_ASSERT(same_str(a->check, b->check));
	CU_ASSERT(same_str(a->name, b->name));
	CU_ASSERT(same_str(a->operation, b->operation));
	CU_ASSERT_EQUAL(a->status, b->status);
	CU_ASSERT(same_str(a->message, b->message));
	CU_ASSERT(same_str(a->notes, b->notes));
	CU_ASSERT(same_str(a->evidence, b->evidence));
	CU_ASSERT_EQUAL(a->t_zero, b->t_zero);
	CU_ASSERT_EQUAL(a->t_begin, b->t_begin);
	CU_ASSERT_EQUAL(a->t_action, b->t_action);
	CU_ASSERT_EQUAL(a->t_reply, b->t_reply);
	CU_ASSERT_EQUAL(a->t_kernel, b->t_kernel);
	CU_ASSERT_EQUAL(a->t_confirm, b->t_confirm);
	CU_ASSERT_EQUAL(a->t_event, b->t_event);
	CU_ASSERT_EQUAL(a->t_end, b->t_end);
	CU_ASSERT_EQUAL(a->latency_ns, b->latency_ns);
}

static void json_record_round_trip(void)
{
	char dir[] = "/tmp/vmc-json-XXXXXX", path[64];
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step_record in[3];
	struct vmc_report *rep;
	char *doc, *line, *save = NULL;
	size_t n = 0;

	/* A pass with every time (latency not a whole microsecond, kernel before the start)... */
	rec_init(&in[0], "nic", "plug nic1 (52:54:00:76:00:01) on pciroot1", VMC_STEP_PASSED, 31);
	in[0].t_confirm += 123456;
	in[0].latency_ns = (int64_t)(in[0].t_confirm - in[0].t_action);
	in[0].t_kernel = 999 * MS;
	in[0].t_event = 2040 * MS + 7;
	in[0].notes = "baseline: 2 links\nafter: 3 links \"eth1\" caf\xc3\xa9\n";
	/* ... a failure with a host and evidence, a skip without action or operation. */
	rec_init(&in[1], "disk", "unplug disk1 (serial vmcd00011)", VMC_STEP_FAILED, -1);
	in[1].host = "a.example";
	in[1].message = "no removal within 10000 ms\t<- here";
	rec_init(&in[2], "vcpu", "not run", VMC_STEP_SKIPPED, -1);
	in[2].host = "qemu:///system?socket=/run/x";
	in[2].message = "the VM is gone";
	in[2].operation = NULL;
	in[2].t_action = in[2].t_reply = 0;
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/r.json", dir);
	CU_ASSERT_EQUAL_FATAL(vmc_report_json_new(path, &rep, &err), 0);
	for (size_t i = 0; i < ARRAY_SIZE(in); i++)
		CU_ASSERT_EQUAL(rep->ops->step(rep, &in[i]), 0);
	vmc_report_free(rep);
	doc = slurp(path);
	/* "host" only where a host was set: single-host lines are as before. */
	CU_ASSERT_EQUAL(count(doc, "\"host\":"), 2);
	CU_ASSERT(!strncmp(doc, "{\"check\":\"nic\"", 14));
	for (line = strtok_r(doc, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
		struct vmc_report_json_step out;

		CU_ASSERT_FATAL(n < ARRAY_SIZE(in));
		CU_ASSERT_EQUAL_FATAL(vmc_report_json_parse(line, 1000 * MS, &out, &err), 0);
		assert_same_record(&in[n], &out.rec);
		vmc_report_json_step_free(&out);
	}
	CU_ASSERT_EQUAL(n, ARRAY_SIZE(in));
	free(doc);
	unlink(path);
	rmdir(dir);
}

static void json_parse_rejects_what_the_writer_never_writes(void)
{
	static const char tl[] = "\"timeline\":{\"begin\":0,\"action\":null,\"reply\":null,"
				 "\"kernel\":null,\"confirm\":null,\"event\":null,\"end\":5}";
	static const char head[] =
		"{\"check\":\"nic\",\"step\":\"plug\",\"operation\":\"nic plug\",";
	static const char tail[] = "\"message\":null,\"notes\":null,\"evidence\":null,";
	const struct {
		const char *middle, *why;
	} bad[] = {
		{ "\"status\":\"bogus\",", "report line: member status missing or mistyped" },
		{ "\"status\":1,", "report line: member status missing or mistyped" },
		{ "\"status\":\"passed\",\"host\":7,",
		  "report line: member host missing or mistyped" },
	};
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_report_json_step out = { .json = NULL };
	char line[1024];

	/* The well-formed line first, so each failure below is down to its one change. */
	snprintf(line, sizeof(line), "%s\"status\":\"passed\",%s%s,\"latency_ms\":null}", head,
		 tail, tl);
	CU_ASSERT_EQUAL_FATAL(vmc_report_json_parse(line, 100, &out, &err), 0);
	CU_ASSERT_EQUAL(out.rec.t_end, 105);
	CU_ASSERT_EQUAL(out.rec.t_action, 0);
	CU_ASSERT_EQUAL(out.rec.latency_ns, -1);
	CU_ASSERT_PTR_NULL(out.rec.host);
	vmc_report_json_step_free(&out);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(line, sizeof(line), "%s%s%s%s,\"latency_ms\":null}", head, bad[i].middle,
			 tail, tl);
		CU_ASSERT_EQUAL(vmc_report_json_parse(line, 0, &out, &err), -EINVAL);
		CU_ASSERT_STRING_EQUAL(err.msg ? err.msg : "", bad[i].why);
		vmc_error_clear(&err);
	}
	snprintf(line, sizeof(line), "%s\"status\":\"passed\",%s%s,\"latency_ms\":-2.0}", head,
		 tail, tl);
	CU_ASSERT_EQUAL(vmc_report_json_parse(line, 0, &out, &err), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err.msg ? err.msg : "", "report line: member latency_ms missing or "
						       "mistyped");
	vmc_error_clear(&err);
	/* A timeline member missing: "kernel" dropped. */
	snprintf(line, sizeof(line),
		 "%s\"status\":\"passed\",%s\"timeline\":{\"begin\":0,"
		 "\"action\":null,\"reply\":null,\"confirm\":null,\"event\":null,\"end\":5},"
		 "\"latency_ms\":null}",
		 head, tail);
	CU_ASSERT_EQUAL(vmc_report_json_parse(line, 0, &out, &err), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err.msg ? err.msg : "", "report line: member kernel missing or "
						       "mistyped");
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(vmc_report_json_parse("{\"check\":\"nic\"} x", 0, &out, &err), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err.msg ? err.msg : "", "report line: junk after the object");
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(vmc_report_json_parse("{\"check\":\"ni", 0, &out, &err), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err.msg ? err.msg : "", "report line: truncated");
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(vmc_report_json_parse("[1]", 0, &out, &err), -EINVAL);
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(vmc_report_json_parse("", 0, &out, &err), -EINVAL);
	vmc_error_clear(&err);
	/* Untouched on failure. */
	CU_ASSERT_PTR_NULL(out.json);
}

static void junit_one_testsuite_per_host(void)
{
	static const char *const hosts[] = { "a.example", "b.example" };
	char dir[] = "/tmp/vmc-junit-XXXXXX", path[64];
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step_record r;
	struct vmc_report *rep;
	const struct {
		const char *host, *check, *name;
		enum vmc_step_status st;
	} steps[] = {
		/* b first: the order in the file is the order the hosts were given. */
		{ "b.example", "nic", "plug nic1", VMC_STEP_PASSED },
		{ "a.example", "nic", "plug nic1", VMC_STEP_PASSED },
		{ "b.example", "nic", "unplug nic1", VMC_STEP_FAILED },
		{ "a.example", "disk", "plug disk1", VMC_STEP_PASSED },
		{ "b.example", "disk", "plug disk1", VMC_STEP_SKIPPED },
		{ "a.example", "disk", "unplug disk1", VMC_STEP_PASSED },
	};
	char *doc, *a, *b;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/junit.xml", dir);
	CU_ASSERT_EQUAL_FATAL(vmc_report_junit_new_hosts(path, hosts, 2, &rep, &err), 0);
	/* Both hosts are there before their first step. */
	doc = slurp(path);
	CU_ASSERT_EQUAL(xml_check(doc, "testsuites"), 3);
	CU_ASSERT_PTR_NOT_NULL(
		strstr(doc, "<testsuite name=\"a.example\" tests=\"0\" failures=\"0\""));
	free(doc);
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		rec_init(&r, steps[i].check, steps[i].name, steps[i].st, 20);
		r.host = steps[i].host;
		CU_ASSERT_EQUAL(rep->ops->step(rep, &r), 0);
	}
	CU_ASSERT_EQUAL(rep->ops->finish(rep), 0);
	vmc_report_free(rep);
	doc = slurp(path);
	CU_ASSERT(xml_check(doc, "testsuites") > 0);
	CU_ASSERT_EQUAL(count(doc, "<testsuite "), 2);
	CU_ASSERT_EQUAL(count(doc, "<testcase "), 6);
	CU_ASSERT_PTR_NOT_NULL(strstr(doc, "<testsuites name=\"vmcheck\" tests=\"6\" "
					   "failures=\"1\" errors=\"0\" skipped=\"1\""));
	a = strstr(doc, "<testsuite name=\"a.example\" tests=\"3\" failures=\"0\" errors=\"0\" "
			"skipped=\"0\"");
	b = strstr(doc, "<testsuite name=\"b.example\" tests=\"3\" failures=\"1\" errors=\"0\" "
			"skipped=\"1\"");
	CU_ASSERT_PTR_NOT_NULL(a);
	CU_ASSERT_PTR_NOT_NULL(b);
	CU_ASSERT(a < b);
	/* Within a host the check is the class; a's cases all come before b's testsuite. */
	CU_ASSERT_PTR_NOT_NULL(strstr(doc, "<testcase classname=\"disk\" name=\"unplug disk1\""));
	CU_ASSERT_PTR_NULL(strstr(doc, "vmcheck.nic"));
	CU_ASSERT(strstr(doc, "name=\"unplug disk1\"") < b);
	CU_ASSERT(strstr(doc, "name=\"unplug nic1\"") > b);
	free(doc);
	unlink(path);
	rmdir(dir);
}

static void text_with_hosts(void)
{
	static const char *const hosts[] = { "a.example", "b.example" };
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_step_record r;
	struct vmc_report *rep;
	char *out = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&out, &len);
	char *a, *b;

	CU_ASSERT_EQUAL_FATAL(vmc_report_text_new_hosts(fp, false, hosts, 2, &rep, &err), 0);
	rec_init(&r, "nic", "plug nic1", VMC_STEP_PASSED, 40);
	r.host = "b.example";
	rep->ops->step(rep, &r);
	rec_init(&r, "nic", "plug nic1", VMC_STEP_PASSED, 10);
	r.host = "a.example";
	rep->ops->step(rep, &r);
	rec_init(&r, "nic", "unplug nic1", VMC_STEP_FAILED, -1);
	r.host = "b.example";
	r.operation = "nic unplug";
	rep->ops->step(rep, &r);
	rep->ops->finish(rep);
	fclose(fp);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[b.example] nic        plug nic1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[a.example] nic        plug nic1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[b.example] nic        unplug nic1"));
	/* One summary block per host, in the given order, each with its own latencies. */
	a = strstr(out, "\n[a.example]\n");
	b = strstr(out, "\n[b.example]\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT(a < b);
	CU_ASSERT_PTR_NOT_NULL(strstr(a, "  nic                        1       0       0\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(a, "  nic plug                   1     10 ms     10 ms\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(a, "  a.example: 1 steps: 1 passed, 0 failed, 0 skipped"));
	CU_ASSERT(strstr(a, "  a.example: 1 steps") < b);
	CU_ASSERT_PTR_NOT_NULL(strstr(b, "  nic                        1       1       0\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b, "  nic plug                   1     40 ms     40 ms\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b, "  b.example: 2 steps: 1 passed, 1 failed, 0 skipped"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\n3 steps: 2 passed, 1 failed, 0 skipped in 1.1 s on 2 "
					   "hosts\n"));
	vmc_report_free(rep);
	free(out);
}

VMC_SUITE(report, NULL, NULL, VMC_TEST(xml_checker_rejects_broken_documents),
	  VMC_TEST(junit_well_formed_after_every_step), VMC_TEST(junit_bad_path_fails_early),
	  VMC_TEST(json_one_object_per_step), VMC_TEST(text_progress_and_summary),
	  VMC_TEST(text_escapes_control_sequences), VMC_TEST(json_record_round_trip),
	  VMC_TEST(json_parse_rejects_what_the_writer_never_writes),
	  VMC_TEST(junit_one_testsuite_per_host), VMC_TEST(text_with_hosts),
	  VMC_TEST(text_cuts_long_evidence_lines), VMC_TEST(junit_parses_with_every_byte))
