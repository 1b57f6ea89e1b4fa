/* SPDX-License-Identifier: MIT */
/*
 * vmcheck run --hosts: host labels, the list's rules, and the fork/merge
 * itself with fake single-host runs in real child processes (no libvirt):
 * steps through the pipes, stderr prefixed, a child's failure to connect,
 * a child killed, signals forwarded, a line that is not a step.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cmd-run-hosts.h"
#include "cmd.h"
#include "harness.h"

static void label_is(const char *uri, const char *want)
{
	char what[256];

	snprintf(what, sizeof(what), "label of %s", uri);
	fx_str_is(vmc_hosts_label(uri), want, what);
}

static void labels_are_the_host_part(void)
{
	label_is("qemu+ssh://a.example/system", "a.example");
	label_is("qemu+ssh://root@a.example/system?keyfile=/k", "a.example");
	label_is("qemu+tcp://10.0.0.7:16509/system", "10.0.0.7:16509");
	label_is("qemu+ssh://[fe80::1]/system", "[fe80::1]");
	label_is("qemu://b.example", "b.example");
	/* Local URIs name no host: the whole URI says which daemon. */
	label_is("qemu:///system", "qemu:///system");
	label_is("qemu:///system?socket=/run/x", "qemu:///system?socket=/run/x");
	label_is("test:///default", "test:///default");
}

static void hosts_list_labels_and_rules(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hosts h;

	CU_ASSERT_EQUAL_FATAL(vmc_hosts_parse("qemu+ssh://a.example/system,qemu:///system,"
					      "qemu+ssh://root@a.example/session,qemu:///system,"
					      "qemu+ssh://a.example/system",
					      true, &h, &err),
			      0);
	CU_ASSERT_EQUAL_FATAL(h.n, 5);
	CU_ASSERT_STRING_EQUAL(h.uris[2], "qemu+ssh://root@a.example/session");
	CU_ASSERT_STRING_EQUAL(h.labels[0], "a.example");
	CU_ASSERT_STRING_EQUAL(h.labels[1], "qemu:///system");
	CU_ASSERT_STRING_EQUAL(h.labels[2], "a.example#2");
	CU_ASSERT_STRING_EQUAL(h.labels[3], "qemu:///system#2");
	CU_ASSERT_STRING_EQUAL(h.labels[4], "a.example#3");
	vmc_hosts_free(&h);

	/* One --domain is one VM: not twice. Other URIs of one host are fine. */
	CU_ASSERT_EQUAL(vmc_hosts_parse("qemu:///system,qemu:///system", false, &h, &err), -EINVAL);
	CU_ASSERT_STRING_EQUAL(err.msg, "--hosts: qemu:///system given twice, with --domain (one "
					"domain, one run)");
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL_FATAL(vmc_hosts_parse("qemu:///system,qemu:///session", false, &h, &err),
			      0);
	CU_ASSERT_EQUAL(h.n, 2);
	vmc_hosts_free(&h);

	for (size_t i = 0; i < 4; i++) {
		const char *bad[] = { "", ",qemu:///system", "qemu:///system,", "a,,b" };
		char want[80];

		snprintf(want, sizeof(want), "--hosts \"%s\": an empty entry", bad[i]);
		CU_ASSERT_EQUAL(vmc_hosts_parse(bad[i], true, &h, &err), -EINVAL);
		CU_ASSERT_STRING_EQUAL(err.msg, want);
		vmc_error_clear(&err);
	}
}

/* ---- the run, with fake single-host runs */

/* The steps of host @host, in order; NULL past the last. */
static const struct fx_cap_rec *nth(const struct fx_capture *c, const char *host, size_t k)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->r[i].host, host) && k-- == 0)
			return &c->r[i];
	return NULL;
}

static void step(struct vmc_report *rep, const char *check, const char *name,
		 enum vmc_step_status st)
{
	uint64_t t0 = 1000000000;
	struct vmc_step_record r = {
		.check = check,
		.name = name,
		.operation = check,
		.status = st,
		.message = st == VMC_STEP_FAILED ? "it did not" : NULL,
		.t_zero = t0,
		.t_begin = t0 + 1000,
		.t_action = t0 + 2000,
		.t_confirm = t0 + 5000,
		.t_end = t0 + 9000,
		.latency_ns = st == VMC_STEP_PASSED ? 3000 : -1,
	};

	rep->ops->step(rep, &r);
}

/* Wait up to 5 s for SIGTERM (blocked in @set), on a signalfd as the suite does. */
static bool got_sigterm(const sigset_t *set)
{
	struct pollfd pfd = { .events = POLLIN };
	bool got;

	pfd.fd = signalfd(-1, set, SFD_CLOEXEC);
	got = pfd.fd >= 0 && poll(&pfd, 1, 5000) == 1;
	close(pfd.fd);
	return got;
}

/* A child's single-host run, by its "URI". */
static int fake_run(const char *uri, int json_fd, void *arg)
{
	struct vmc_report *rep;
	int code = VMC_EXIT_OK;
	sigset_t term;

	if (!strcmp(uri, "junk")) {
		dprintf(json_fd, "{\"check\": no json\n");
		return VMC_EXIT_OK;
	}
	if (vmc_report_json_new_fd(json_fd, &rep, NULL) < 0)
		return 3;
	if (!strcmp(uri, "pass")) {
		step(rep, "nic", "plug nic1", VMC_STEP_PASSED);
		step(rep, "nic", "unplug nic1", VMC_STEP_PASSED);
	} else if (!strcmp(uri, "fail")) {
		step(rep, "disk", "plug disk1", VMC_STEP_FAILED);
		code = VMC_EXIT_FAIL;
	} else if (!strcmp(uri, "connect")) {
		fprintf(stderr, "vmcheck: warming up\nvmcheck: connect: no such daemon");
		code = VMC_EXIT_USAGE;
	} else if (!strcmp(uri, "kill")) {
		step(rep, "nic", "plug nic1", VMC_STEP_PASSED);
		fprintf(stderr, "about to die\n");
		raise(SIGKILL);
	} else if (!strcmp(uri, "stop")) {
		/*
		 * A SIGTERM for the parent alone must come back here. To its main
		 * thread: other tests left threads in this process that do not
		 * block SIGTERM (vmcheck's parent has none).
		 */
		sigemptyset(&term);
		sigaddset(&term, SIGTERM);
		sigprocmask(SIG_BLOCK, &term, NULL);
		tgkill(getppid(), getppid(), SIGTERM);
		step(rep, "lifecycle", "stopped",
		     got_sigterm(&term) ? VMC_STEP_PASSED : VMC_STEP_FAILED);
	} else if (!strcmp(uri, "early")) {
		/* Still connecting: SIGTERM is not taken yet and ends it. */
		poll(NULL, 0, 5000);
	}
	vmc_report_free(rep);
	return code;
}

/* vmc_hosts_run() of fake_run() on the hosts of @list; its log in *@log (to free). */
static int run_fakes(const char *list, struct fx_capture *cap, char **log)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_report *reps[] = { &cap->base };
	size_t len = 0;
	FILE *fp = open_memstream(log, &len);
	struct vmc_hosts h;
	int code;

	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	fx_capture_init(cap);
	CU_ASSERT_EQUAL_FATAL(vmc_hosts_parse(list, true, &h, &err), 0);
	code = vmc_hosts_run(&h, &(struct vmc_hosts_job){ .run = fake_run,
							  .reports = reps,
							  .n_reports = 1,
							  .log = fp });
	fclose(fp);
	vmc_hosts_free(&h);
	CU_ASSERT_EQUAL(cap->finished, 1);
	return code;
}

static void hosts_run_merges_every_child(void)
{
	struct fx_capture cap;
	const struct fx_cap_rec *r;
	char *log = NULL;

	CU_ASSERT_EQUAL(run_fakes("pass,fail,connect,kill,junk,pass", &cap, &log), VMC_EXIT_FAIL);
	for (const char *const *p = (const char *const[]){ "pass", "pass#2", NULL }; *p; p++) {
		r = nth(&cap, *p, 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(r);
		CU_ASSERT_STRING_EQUAL(r->name, "plug nic1");
		CU_ASSERT_EQUAL(r->status, VMC_STEP_PASSED);
		/* Times are the child's offsets from the parent's start. */
		CU_ASSERT_EQUAL(r->t_action - r->t_zero, 2000);
		CU_ASSERT_PTR_NOT_NULL(nth(&cap, *p, 1));
		CU_ASSERT_PTR_NULL(nth(&cap, *p, 2));
	}
	/* Its own failed step, exit 1: nothing added. */
	r = nth(&cap, "fail", 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(r->status, VMC_STEP_FAILED);
	CU_ASSERT_STRING_EQUAL(r->message, "it did not");
	CU_ASSERT_PTR_NULL(nth(&cap, "fail", 1));
	/* Exit 2 before any step: "connect" failed, in its last stderr line's words. */
	r = nth(&cap, "connect", 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_STRING_EQUAL(r->check, "host");
	CU_ASSERT_STRING_EQUAL(r->name, "connect");
	CU_ASSERT_EQUAL(r->status, VMC_STEP_FAILED);
	CU_ASSERT_STRING_EQUAL(r->message, "connect: no such daemon");
	CU_ASSERT_PTR_NULL(nth(&cap, "connect", 1));
	/* Killed after a step: that step, then "exit" failed with the signal. */
	CU_ASSERT_EQUAL(nth(&cap, "kill", 0)->status, VMC_STEP_PASSED);
	r = nth(&cap, "kill", 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_STRING_EQUAL(r->name, "exit");
	CU_ASSERT_STRING_EQUAL(r->message, "vmcheck for kill killed by signal 9 (Killed)");
	CU_ASSERT_STRING_EQUAL(r->notes, "last on stderr: about to die\n");
	/* A line that is not a step. */
	r = nth(&cap, "junk", 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_STRING_EQUAL(r->name, "report");
	CU_ASSERT_EQUAL(r->status, VMC_STEP_FAILED);
	CU_ASSERT_PTR_NOT_NULL(strstr(r->message, "{\"check\": no json"));
	CU_ASSERT_EQUAL(cap.n, 2 + 1 + 1 + 2 + 1 + 2);
	/* Every stderr line re-printed with its host, the last one without its newline too. */
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "[connect] vmcheck: warming up\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "[connect] vmcheck: connect: no such daemon\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "[kill] about to die\n"));
	free(log);
	fx_capture_free(&cap);
}

static void hosts_run_forwards_sigterm(void)
{
	struct fx_capture cap;
	const struct fx_cap_rec *r;
	sigset_t before, after;
	char *log = NULL;

	sigprocmask(SIG_SETMASK, NULL, &before);
	CU_ASSERT_EQUAL(run_fakes("stop,early", &cap, &log), VMC_EXIT_FAIL);
	sigprocmask(SIG_SETMASK, NULL, &after);
	/* The mask as it was; the parent's SIGTERM was taken off its signalfd, not left pending. */
	CU_ASSERT_EQUAL(sigismember(&after, SIGTERM), sigismember(&before, SIGTERM));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(log, "vmcheck: Terminated: stopping the run on every host\n"));
	/* The run that takes SIGTERM stops cleanly on it... */
	r = nth(&cap, "stop", 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(r->status, VMC_STEP_PASSED);
	/* ... one still connecting ends by it, at once (not after its 5 s). */
	r = nth(&cap, "early", 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_STRING_EQUAL(r->name, "connect");
	CU_ASSERT_STRING_EQUAL(r->message, "vmcheck for early killed by signal 15 (Terminated)");
	CU_ASSERT(r->t_end - r->t_zero < 4000000000ull);
	CU_ASSERT_EQUAL(cap.n, 2);
	free(log);
	fx_capture_free(&cap);
}

VMC_SUITE(cmd_run_hosts, NULL, NULL, VMC_TEST(labels_are_the_host_part),
	  VMC_TEST(hosts_list_labels_and_rules), VMC_TEST(hosts_run_merges_every_child),
	  VMC_TEST(hosts_run_forwards_sigterm))
