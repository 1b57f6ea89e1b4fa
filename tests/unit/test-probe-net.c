/* SPDX-License-Identifier: MIT */
/*
 * The net probe over a real link. Each case forks a "guest" into a network
 * namespace of its own (unshare(CLONE_NEWNET)), which forks a "host"
 * listener into another; a veth pair joins the two, made and inspected with
 * iproute2's ip, not with the probe's own netlink code. The namespaces, the
 * veth pair and every address die with those processes, whatever a case
 * does. Needs root; argument checks run without it, on a fixture root.
 */
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <unistd.h>

#include "clock.h"
#include "harness.h"
#include "probe.h"

#define ECODE(x) VMCHECK__V1__ERROR__CODE__##x
#define LINK "vmcg0"      /* the guest's end */
#define PEER_LINK "vmch0" /* the listener's end */
#define MAC "02:00:00:00:0a:01"
#define ADDR "192.0.2.1" /* TEST-NET-1: nothing outside the namespaces */
#define PEER "192.0.2.2"
#define PORT 40000u
#define TOKEN "vmcheck-probe-token-7f3a"
#define WAIT_MS 20000

enum listen_mode {
	ECHO,
	MANGLE
};

/* How the guest namespace looks before the probe. */
struct setup {
	bool up;          /* the guest's link is up already */
	const char *addr; /* an address it has already ("192.0.2.1/24"), or NULL */
	enum listen_mode mode;
};

/* What the guest process saw, handed to the test through a pipe. */
struct net_run {
	char setup_failed[256]; /* "" when the namespaces were set up */
	int r;
	struct vmc_outcome o;
	char link[32], source[32];
	uint64_t connect_ns, rtt_ns, duration_ns, elapsed_ns;
	bool link_was_up;
	char heard[128]; /* what the listener received */
	size_t n_heard;
	char addrs_after[256]; /* the link's IPv4 addresses afterwards, "a/p a/p" */
	bool up_after;
};

static Vmcheck__V1__NetProbe probe_args(const char *mac, const char *peer, unsigned port,
					unsigned timeout_ms)
{
	Vmcheck__V1__NetProbe p = VMCHECK__V1__NET_PROBE__INIT;

	p.mac = (char *)mac;
	p.address = ADDR;
	p.prefixlen = 24;
	p.peer = (char *)peer;
	p.port = port;
	p.token.data = (uint8_t *)TOKEN;
	p.token.len = strlen(TOKEN);
	p.timeout_ms = timeout_ms;
	return p;
}

/* Run an ip command; its output (stdout and stderr) in @out. Returns its exit status. */
static int ip(char *out, size_t size, const char *fmt, ...) _printf_(3, 4);

static int ip(char *out, size_t size, const char *fmt, ...)
{
	char cmd[512];
	size_t n = 0;
	va_list ap;
	FILE *fp;
	int st;

	memcpy(cmd, "ip ", 3);
	va_start(ap, fmt);
	vsnprintf(cmd + 3, sizeof(cmd) - 3 - 6, fmt, ap);
	va_end(ap);
	strcat(cmd, " 2>&1");
	fp = popen(cmd, "r");
	if (!fp)
		return -1;
	if (out && size) {
		n = fread(out, 1, size - 1, fp);
		out[n] = '\0';
	}
	while (fgetc(fp) != EOF)
		;
	st = pclose(fp);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Wait for one byte on @fd; false after @ms. */
static bool wait_byte(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	return poll(&p, 1, ms) == 1 && read(fd, &c, 1) == 1;
}

/* The listener's end: configure it, then echo (or mangle) and report what came. */
static void listener(int ctl_in, int ctl_out, int heard_out, enum listen_mode mode)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	char buf[128], out[256];
	int one = 1, ls, fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (unshare(CLONE_NEWNET) < 0 || write(ctl_out, "u", 1) != 1 || !wait_byte(ctl_in, WAIT_MS))
		_exit(1);
	if (ip(out, sizeof(out), "link set " PEER_LINK " up") ||
	    ip(out, sizeof(out), "addr add " PEER "/24 dev " PEER_LINK))
		_exit(2);
	inet_pton(AF_INET, PEER, &sa.sin_addr);
	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 4) < 0 ||
	    write(ctl_out, "l", 1) != 1)
		_exit(3);
	for (;;) {
		size_t n = 0;
		ssize_t k;

		fd = accept(ls, NULL, NULL);
		if (fd < 0)
			_exit(4);
		while (n < sizeof(buf) && (k = read(fd, buf + n, sizeof(buf) - n)) > 0) {
			for (ssize_t i = 0; i < k && mode == MANGLE; i++)
				buf[n + i] ^= 0x20;
			if (write(fd, buf + n, (size_t)k) != k)
				break;
			n += (size_t)k;
		}
		for (size_t i = 0; i < n && mode == MANGLE; i++)
			buf[i] ^= 0x20;
		if (write(heard_out, buf, n) < 0)
			_exit(5);
		close(fd);
	}
}

/* The guest link's IPv4 addresses and whether it is up, as ip sees them. */
static void observe(struct net_run *run)
{
	char out[1024], *p, *q;

	ip(out, sizeof(out), "-o -4 addr show dev " LINK);
	for (p = out; (p = strstr(p, " inet ")) != NULL; p += 6) {
		size_t len = strcspn(p + 6, " ");

		snprintf(run->addrs_after + strlen(run->addrs_after),
			 sizeof(run->addrs_after) - strlen(run->addrs_after), "%s%.*s",
			 run->addrs_after[0] ? " " : "", (int)len, p + 6);
	}
	ip(out, sizeof(out), "-o link show dev " LINK);
	p = strchr(out, '<');
	q = p ? strchr(p, '>') : NULL;
	if (q) {
		*q = ',';
		q[1] = '\0';
		run->up_after = strstr(p, "<UP,") || strstr(p, ",UP,");
	}
}

/* Both namespaces, the veth pair and the listener; "" in run->setup_failed on success. */
static pid_t setup_namespaces(const struct setup *s, int heard[2], struct net_run *run)
{
	int to_l[2], from_l[2];
	char out[256];
	pid_t l;

	if (unshare(CLONE_NEWNET) < 0 || pipe(to_l) < 0 || pipe(from_l) < 0 || pipe(heard) < 0) {
		snprintf(run->setup_failed, sizeof(run->setup_failed), "unshare/pipe: %m");
		return -1;
	}
	l = fork();
	if (l == 0)
		listener(to_l[0], from_l[1], heard[1], s->mode);
	if (l < 0 || !wait_byte(from_l[0], WAIT_MS)) {
		snprintf(run->setup_failed, sizeof(run->setup_failed), "listener did not start");
		return -1;
	}
	if (ip(out, sizeof(out),
	       "link add " LINK " address " MAC " type veth peer name " PEER_LINK " netns %d",
	       (int)l) ||
	    (s->up && ip(out, sizeof(out), "link set " LINK " up")) ||
	    (s->addr && ip(out, sizeof(out), "addr add %s dev " LINK, s->addr)) ||
	    write(to_l[1], "g", 1) != 1 || !wait_byte(from_l[0], WAIT_MS)) {
		snprintf(run->setup_failed, sizeof(run->setup_failed), "veth setup: %.200s", out);
		return l;
	}
	return l;
}

/* In the guest process: set up, probe, look at the link, report to @res_fd. */
static void guest(const struct setup *s, const Vmcheck__V1__NetProbe *p, int res_fd)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__ProbeResult res = VMCHECK__V1__PROBE_RESULT__INIT;
	struct vmc_sysroot root;
	struct net_run run;
	int heard[2];
	uint64_t t0;
	pid_t l;

	memset(&run, 0, sizeof(run));
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	l = setup_namespaces(s, heard, &run);
	if (!run.setup_failed[0]) {
		vmc_sysroot_open(&root, "/");
		t0 = vmc_mono_ns();
		run.r = vmc_probe_net(&root, p, &a, &res, &run.o);
		run.elapsed_ns = vmc_mono_ns() - t0;
		snprintf(run.link, sizeof(run.link), "%s", res.link ? res.link : "");
		snprintf(run.source, sizeof(run.source), "%s", res.source ? res.source : "");
		run.connect_ns = res.connect_ns;
		run.rtt_ns = res.rtt_ns;
		run.duration_ns = res.duration_ns;
		run.link_was_up = res.link_was_up;
		/* The listener reports in one write, once the probe's connection closed. */
		if (run.r == 0) {
			struct pollfd pfd = { .fd = heard[0], .events = POLLIN };
			ssize_t k = poll(&pfd, 1, 2000) == 1
					    ? read(heard[0], run.heard, sizeof(run.heard))
					    : 0;

			run.n_heard = k > 0 ? (size_t)k : 0;
		}
		observe(&run);
	}
	if (l > 0) {
		kill(l, SIGKILL);
		waitpid(l, NULL, 0);
	}
	if (write(res_fd, &run, sizeof(run)) != (ssize_t)sizeof(run))
		_exit(1);
	_exit(0);
}

/* Fork a guest for @s, run probe @p there and collect what it saw. */
static bool run_case(const struct setup *s, const Vmcheck__V1__NetProbe *p, struct net_run *run)
{
	struct pollfd pfd;
	int fds[2];
	pid_t g;
	bool got;

	if (geteuid() != 0) {
		CU_PASS("skipped: network namespaces need root");
		return false;
	}
	CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
	fflush(NULL);
	g = fork();
	CU_ASSERT_FATAL(g >= 0);
	if (g == 0) {
		close(fds[0]);
		guest(s, p, fds[1]);
	}
	close(fds[1]);
	pfd = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	got = poll(&pfd, 1, WAIT_MS) == 1 && read(fds[0], run, sizeof(*run)) == sizeof(*run);
	if (!got)
		kill(g, SIGKILL);
	waitpid(g, NULL, 0);
	close(fds[0]);
	CU_ASSERT_FATAL(got);
	if (run->setup_failed[0])
		fprintf(stderr, "net probe setup: %s\n", run->setup_failed);
	CU_ASSERT_STRING_EQUAL_FATAL(run->setup_failed, "");
	return true;
}

static void expect_untouched_after(const struct net_run *run)
{
	CU_ASSERT_STRING_EQUAL(run->addrs_after, "");
	CU_ASSERT_FALSE(run->up_after);
}

static void the_token_crosses_the_link_and_it_is_restored(void)
{
	struct setup s = { .up = false };
	Vmcheck__V1__NetProbe p = probe_args(MAC, PEER, PORT, 0);
	struct net_run run;

	if (!run_case(&s, &p, &run))
		return;
	if (run.r < 0)
		fprintf(stderr, "net probe: %s\n", run.o.msg);
	CU_ASSERT_EQUAL_FATAL(run.r, 0);
	CU_ASSERT_EQUAL(run.n_heard, strlen(TOKEN));
	CU_ASSERT_NSTRING_EQUAL(run.heard, TOKEN, strlen(TOKEN));
	CU_ASSERT_STRING_EQUAL(run.link, LINK);
	CU_ASSERT_NSTRING_EQUAL(run.source, ADDR ":", strlen(ADDR ":"));
	CU_ASSERT(strlen(run.source) > strlen(ADDR ":"));
	CU_ASSERT(run.connect_ns > 0);
	CU_ASSERT(run.rtt_ns > 0);
	CU_ASSERT(run.duration_ns >= run.connect_ns + run.rtt_ns);
	CU_ASSERT(run.duration_ns <= run.elapsed_ns);
	CU_ASSERT_FALSE(run.link_was_up);
	/* The address it added is gone and the link is down again. */
	expect_untouched_after(&run);
}

/* A link that was up with exactly the probe's address keeps both. */
static void an_address_and_link_it_found_are_kept(void)
{
	struct setup s = { .up = true, .addr = ADDR "/24" };
	Vmcheck__V1__NetProbe p = probe_args(MAC, PEER, PORT, 0);
	struct net_run run;

	if (!run_case(&s, &p, &run))
		return;
	CU_ASSERT_EQUAL_FATAL(run.r, 0);
	CU_ASSERT_NSTRING_EQUAL(run.heard, TOKEN, strlen(TOKEN));
	CU_ASSERT_TRUE(run.link_was_up);
	CU_ASSERT_STRING_EQUAL(run.addrs_after, ADDR "/24");
	CU_ASSERT_TRUE(run.up_after);
}

/* The same address with another prefix is not "that address": only the probe's goes. */
static void only_the_address_it_added_goes(void)
{
	struct setup s = { .up = true, .addr = ADDR "/28" };
	Vmcheck__V1__NetProbe p = probe_args(MAC, PEER, PORT, 0);
	struct net_run run;

	if (!run_case(&s, &p, &run))
		return;
	CU_ASSERT_EQUAL_FATAL(run.r, 0);
	CU_ASSERT_NSTRING_EQUAL(run.heard, TOKEN, strlen(TOKEN));
	CU_ASSERT_STRING_EQUAL(run.addrs_after, ADDR "/28");
	CU_ASSERT_TRUE(run.up_after);
}

/* Nobody at the peer address: no ARP answer, the deadline ends it, cleanup follows. */
static void a_wrong_peer_fails_within_the_deadline(void)
{
	struct setup s = { .up = false };
	Vmcheck__V1__NetProbe p = probe_args(MAC, "192.0.2.99", PORT, 800);
	struct net_run run;

	if (!run_case(&s, &p, &run))
		return;
	CU_ASSERT_EQUAL(run.r, -ETIMEDOUT);
	CU_ASSERT_EQUAL(run.o.err, ETIMEDOUT);
	CU_ASSERT_STRING_EQUAL(run.o.msg, "connect 192.0.2.99:40000 from 192.0.2.1 via " LINK
					  ": no answer within the probe's 800 ms");
	CU_ASSERT(run.elapsed_ns >= 800ull * 1000000);
	/* The deadline, plus the cleanup's two netlink calls: far below a second. */
	CU_ASSERT(run.elapsed_ns < 1300ull * 1000000);
	expect_untouched_after(&run);
}

static void a_refused_connection_names_the_step_and_the_link(void)
{
	struct setup s = { .up = false };
	Vmcheck__V1__NetProbe p = probe_args(MAC, PEER, PORT + 1, 0);
	char want[128];
	struct net_run run;

	if (!run_case(&s, &p, &run))
		return;
	CU_ASSERT_EQUAL(run.r, -ECONNREFUSED);
	CU_ASSERT_EQUAL(run.o.err, ECONNREFUSED);
	snprintf(want, sizeof(want), "connect " PEER ":40001 from " ADDR " via " LINK ": %s",
		 strerror(ECONNREFUSED));
	CU_ASSERT_STRING_EQUAL(run.o.msg, want);
	expect_untouched_after(&run);
}

static void an_echo_that_differs_is_a_failure(void)
{
	struct setup s = { .up = false, .mode = MANGLE };
	Vmcheck__V1__NetProbe p = probe_args(MAC, PEER, PORT, 0);
	struct net_run run;

	if (!run_case(&s, &p, &run))
		return;
	CU_ASSERT(run.r < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(run.o.msg, "the echo from " PEER ":40000 via " LINK
						 " differs from the token"));
	expect_untouched_after(&run);
}

static void an_unknown_mac_is_not_found(void)
{
	struct setup s = { .up = false };
	Vmcheck__V1__NetProbe p = probe_args("02:00:00:00:0A:99", PEER, PORT, 0);
	struct net_run run;

	if (!run_case(&s, &p, &run))
		return;
	CU_ASSERT_EQUAL(run.r, -EINVAL);
	CU_ASSERT_EQUAL(run.o.code, ECODE(NOT_FOUND));
	CU_ASSERT_STRING_EQUAL(run.o.msg, "no link with MAC 02:00:00:00:0a:99");
	expect_untouched_after(&run);
}

/*
 * Wrong arguments are refused before anything is touched. A fixture root
 * keeps this on the safe side: were a check missing, the probe would stop
 * at "not the live system" instead of acting on this machine's links.
 */
static void bad_arguments_are_refused(void)
{
	static const struct {
		const char *mac, *addr, *peer;
		unsigned prefixlen, port, timeout;
		size_t token;
		const char *why;
	} bad[] = {
		{ "02:00:00:00:0a", ADDR, PEER, 24, PORT, 0, 4, "not a MAC address" },
		{ "02:00:00:00:0a:1", ADDR, PEER, 24, PORT, 0, 4, "not a MAC address" },
		{ "02-00-00-00-0a-01", ADDR, PEER, 24, PORT, 0, 4, "not a MAC address" },
		{ MAC, "192.0.2", PEER, 24, PORT, 0, 4, "address '192.0.2' is not" },
		{ MAC, "fe80::1", PEER, 24, PORT, 0, 4, "address 'fe80::1' is not" },
		{ MAC, "0.0.0.0", PEER, 24, PORT, 0, 4, "address '0.0.0.0' is not" },
		{ MAC, ADDR, "224.0.0.1", 24, PORT, 0, 4, "peer '224.0.0.1' is not" },
		{ MAC, ADDR, "", 24, PORT, 0, 4, "peer '' is not" },
		{ MAC, ADDR, ADDR, 24, PORT, 0, 4, "the probe's own address" },
		{ MAC, ADDR, PEER, 0, PORT, 0, 4, "prefixlen 0: want 1 to 32" },
		{ MAC, ADDR, PEER, 33, PORT, 0, 4, "prefixlen 33: want 1 to 32" },
		{ MAC, ADDR, PEER, 24, 0, 0, 4, "port 0: want 1 to 65535" },
		{ MAC, ADDR, PEER, 24, 65536, 0, 4, "port 65536: want 1 to 65535" },
		{ MAC, ADDR, PEER, 24, PORT, 0, 0, "a token of 0 bytes: want 1 to 64" },
		{ MAC, ADDR, PEER, 24, PORT, 0, 65, "a token of 65 bytes: want 1 to 64" },
		{ MAC, ADDR, PEER, 24, PORT, 30001, 4, "timeout_ms 30001 is over the limit" },
	};
	static uint8_t token[65];
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__ProbeResult res = VMCHECK__V1__PROBE_RESULT__INIT;
	Vmcheck__V1__NetProbe p;
	struct vmc_outcome o;
	struct fx fx;

	fx_init(&fx);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		p = probe_args(bad[i].mac, bad[i].peer, bad[i].port, bad[i].timeout);
		p.address = (char *)bad[i].addr;
		p.prefixlen = bad[i].prefixlen;
		p.token.data = token;
		p.token.len = bad[i].token;
		memset(&o, 0, sizeof(o));
		CU_ASSERT_EQUAL(vmc_probe_net(&fx.root, &p, &a, &res, &o), -EINVAL);
		CU_ASSERT_EQUAL(o.code, ECODE(BAD_ARGUMENT));
		if (!strstr(o.msg, bad[i].why))
			fprintf(stderr, "case %zu: '%s' lacks '%s'\n", i, o.msg, bad[i].why);
		CU_ASSERT_PTR_NOT_NULL(strstr(o.msg, bad[i].why));
	}
	/* Arguments right, but a fixture is no kernel to act on. */
	p = probe_args(MAC, PEER, PORT, 30000);
	CU_ASSERT_EQUAL(vmc_probe_net(&fx.root, &p, &a, &res, &o), -EINVAL);
	CU_ASSERT_EQUAL(o.code, ECODE(UNSUPPORTED));
	vmc_arena_free(&a);
	fx_cleanup(&fx);
}

VMC_SUITE(probe_net, NULL, NULL, VMC_TEST(the_token_crosses_the_link_and_it_is_restored),
	  VMC_TEST(an_address_and_link_it_found_are_kept), VMC_TEST(only_the_address_it_added_goes),
	  VMC_TEST(a_wrong_peer_fails_within_the_deadline),
	  VMC_TEST(a_refused_connection_names_the_step_and_the_link),
	  VMC_TEST(an_echo_that_differs_is_a_failure), VMC_TEST(an_unknown_mac_is_not_found),
	  VMC_TEST(bad_arguments_are_refused))
