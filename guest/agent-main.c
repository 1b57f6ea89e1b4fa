/* SPDX-License-Identifier: MIT */
/*
 * The vmcheck-agent command: options, signals, one transport, the agent
 * core. vmcheck-agent's main() runs it without hooks; test agents (the
 * liar) run the same command line with theirs.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "agent.h"
#include "frame.h"
#include "parse.h"
#include "transport.h"

#define DEFAULT_PORT "org.vmcheck.agent.0"
#define MAX_CRASH_DIRS 16
#define MIN_FRAME 4096u
#define MAX_FRAME (1u << 30)
#define MAX_COALESCE_MS 10000u

enum {
	EXIT_RUNTIME = 1,
	EXIT_USAGE = 2
};

static void usage(FILE *fp)
{
	fprintf(fp,
		"Usage: vmcheck-agent [TRANSPORT] [OPTIONS]\n"
		"\n"
		"The guest side of vmcheck: answers protobuf requests from the host with\n"
		"state read from this kernel (sysfs, procfs, netlink) and pushes a fresh\n"
		"snapshot whenever the kernel announces a change. It reports; the host judges.\n"
		"\n"
		"Transport (one; the default is --virtio-port " DEFAULT_PORT "):\n"
		"  --stdio               requests on stdin, replies on stdout; exits 0 once\n"
		"                        stdin is closed and every request is answered\n"
		"  --listen unix:PATH    listen on a unix socket and serve one client at a\n"
		"                        time; a stale socket at PATH is replaced, and PATH\n"
		"                        is removed on exit\n"
		"  --virtio-port [NAME]  the virtio-serial port NAME: /dev/virtio-ports/NAME,\n"
		"                        or the /dev/vportNpM whose sysfs name matches; kept\n"
		"                        open while hosts come and go\n"
		"\n"
		"Options:\n"
		"  --sysroot DIR         read sysfs/procfs below DIR instead of / (pushes\n"
		"                        still follow the running kernel's notifications)\n"
		"  --crash-dir DIR       also report kdump dumps in DIR, relative to the\n"
		"                        sysroot (repeatable; /var/crash and /var/oled/crash\n"
		"                        are always reported)\n"
		"  --max-frame BYTES     largest frame accepted and sent (%u..%u,\n"
		"                        default %u)\n"
		"  --coalesce-ms N       default burst window of pushes, 1..%u ms (default 2);\n"
		"                        a subscription may ask for a longer one\n"
		"  --allow-crash         permit Act crash (sysrq c); refused otherwise\n"
		"  --version             print the version and exit\n"
		"  --help                print this help and exit\n"
		"\n"
		"Protocol (package vmcheck.v1): every message is one frame, \"VMC1\", a\n"
		"big-endian u32 payload length, then a protobuf Request (host to agent) or\n"
		"Response (agent to host). Every request gets exactly one reply carrying its\n"
		"id; undecodable frames get Error MALFORMED or TOO_LARGE with id 0. Pushes\n"
		"are Events with id 0 and their subscription's id. On a virtio port the agent\n"
		"also sends a HelloReply with id 0 when it starts and whenever a host\n"
		"connects. Diagnostics go to stderr, never to the wire.\n"
		"\n"
		"Exit status: 0 stopped (stdin closed, SIGTERM or SIGINT), 1 runtime failure,\n"
		"2 usage error.\n",
		MIN_FRAME, MAX_FRAME, VMC_FRAME_MAX_DEFAULT, MAX_COALESCE_MS);
}

static int bad_usage(const char *fmt, ...) _printf_(1, 2);

static int bad_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vmcheck-agent: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'vmcheck-agent --help'.\n");
	return EXIT_USAGE;
}

static int parse_range(const char *s, uint64_t min, uint64_t max, unsigned *out)
{
	uint64_t v;

	if (vmc_parse_u64(s, 10, &v) < 0 || v < min || v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static bool has_dir(const char *const *dirs, const char *d)
{
	for (; *dirs; dirs++)
		if (!strcmp(*dirs, d))
			return true;
	return false;
}

/* SIGINT/SIGTERM as a readable fd, so every wait can watch for a stop. */
static int stop_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* Blocked before any thread starts, so all of them inherit it. */
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int vmc_agent_main(int argc, char **argv, const struct vmc_agent_hooks *hooks)
{
	enum {
		OPT_STDIO = 256,
		OPT_LISTEN,
		OPT_VPORT,
		OPT_SYSROOT,
		OPT_CRASH_DIR,
		OPT_MAX_FRAME,
		OPT_COALESCE,
		OPT_ALLOW_CRASH,
		OPT_VERSION
	};
	static const struct option opts[] = {
		{ "stdio", no_argument, NULL, OPT_STDIO },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "virtio-port", optional_argument, NULL, OPT_VPORT },
		{ "sysroot", required_argument, NULL, OPT_SYSROOT },
		{ "crash-dir", required_argument, NULL, OPT_CRASH_DIR },
		{ "max-frame", required_argument, NULL, OPT_MAX_FRAME },
		{ "coalesce-ms", required_argument, NULL, OPT_COALESCE },
		{ "allow-crash", no_argument, NULL, OPT_ALLOW_CRASH },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *crash_dirs[MAX_CRASH_DIRS + 3] = { "var/crash", "var/oled/crash" };
	size_t n_crash = 2;
	const char *transport = NULL, *arg = DEFAULT_PORT, *sysroot = "/";
	struct vmc_agent_config cfg = { 0 };
	struct vmc_transport *t = NULL;
	struct vmc_agent *ag = NULL;
	unsigned max_frame = 0;
	int c, r, stop_fd;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_STDIO:
		case OPT_LISTEN:
		case OPT_VPORT:
			if (transport)
				return bad_usage("only one transport may be given (%s was)",
						 transport);
			transport = opts[c - OPT_STDIO].name;
			if (c == OPT_LISTEN) {
				if (strncmp(optarg, "unix:", 5) || !optarg[5])
					return bad_usage("--listen wants unix:PATH, not '%s'",
							 optarg);
				arg = optarg + 5;
			} else if (c == OPT_VPORT) {
				/* "--virtio-port NAME" as well as "--virtio-port=NAME". */
				if (!optarg && optind < argc && argv[optind][0] != '-')
					optarg = argv[optind++];
				if (optarg)
					arg = optarg;
			}
			break;
		case OPT_SYSROOT:
			sysroot = optarg;
			break;
		case OPT_CRASH_DIR:
			/* Relative to the sysroot, whatever the spelling. */
			while (*optarg == '/')
				optarg++;
			if (!*optarg)
				optarg = ".";
			if (has_dir(crash_dirs, optarg))
				break;
			if (n_crash == MAX_CRASH_DIRS + 2)
				return bad_usage("at most %u --crash-dir options", MAX_CRASH_DIRS);
			crash_dirs[n_crash++] = optarg;
			break;
		case OPT_MAX_FRAME:
			if (parse_range(optarg, MIN_FRAME, MAX_FRAME, &max_frame) < 0)
				return bad_usage("--max-frame: '%s' is not a byte count in range",
						 optarg);
			break;
		case OPT_COALESCE:
			if (parse_range(optarg, 1, MAX_COALESCE_MS, &cfg.coalesce_ms) < 0)
				return bad_usage("--coalesce-ms: '%s' is not 1..10000", optarg);
			break;
		case OPT_ALLOW_CRASH:
			cfg.allow_crash = true;
			break;
		case OPT_VERSION:
			printf("vmcheck-agent %s (protocol vmcheck.v1)\n", VMC_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			/* getopt_long has said what was wrong. */
			fprintf(stderr, "Try 'vmcheck-agent --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return bad_usage("unexpected argument '%s'", argv[optind]);
	if (!transport)
		transport = "virtio-port";

	signal(SIGPIPE, SIG_IGN);
	stop_fd = stop_signals();
	if (stop_fd < 0) {
		fprintf(stderr, "vmcheck-agent: signalfd: %s\n", strerror(errno));
		return EXIT_RUNTIME;
	}
	r = vmc_sysroot_open(&cfg.state.root, sysroot);
	if (r < 0) {
		fprintf(stderr, "vmcheck-agent: opening sysroot %s: %s\n", sysroot, strerror(-r));
		return EXIT_RUNTIME;
	}
	cfg.state.crash_dirs = crash_dirs;
	cfg.hooks = hooks;
	if (hooks && hooks->start && hooks->start(hooks->ctx, &cfg.state.root) < 0)
		return EXIT_RUNTIME;
	/* CPUID is asked once: the SMT width does not change while we run. */
	cfg.state.smt_shift = vmc_state_smt_shift(&cfg.state.root);

	if (!strcmp(transport, "stdio"))
		r = vmc_transport_stdio_open(&t);
	else if (!strcmp(transport, "listen"))
		r = vmc_transport_unix_open(arg, &t);
	else
		r = vmc_transport_vport_open(cfg.state.root.fd, arg, &t);
	if (r == -ENOENT && !strcmp(transport, "virtio-port")) {
		fprintf(stderr,
			"vmcheck-agent: no virtio-serial port named %s (no "
			"/dev/virtio-ports/%s, no match in /sys/class/virtio-ports/*/name)\n",
			arg, arg);
		return EXIT_RUNTIME;
	}
	if (r < 0) {
		fprintf(stderr, "vmcheck-agent: opening --%s %s: %s\n", transport,
			strcmp(transport, "stdio") ? arg : "", strerror(-r));
		return EXIT_RUNTIME;
	}

	cfg.max_frame = max_frame;
	cfg.transport = t->name;
	cfg.watch = true;
	r = vmc_agent_new(&cfg, vmc_transport_send, t, &ag);
	if (r < 0) {
		fprintf(stderr, "vmcheck-agent: starting: %s\n", strerror(-r));
		t->ops->close(t);
		return EXIT_RUNTIME;
	}
	r = t->ops->serve(t, ag, stop_fd);
	if (r < 0)
		fprintf(stderr, "vmcheck-agent: %s transport: %s\n", t->name, strerror(-r));
	vmc_agent_free(ag);
	t->ops->close(t);
	vmc_sysroot_close(&cfg.state.root);
	close(stop_fd);
	return r < 0 ? EXIT_RUNTIME : 0;
}
