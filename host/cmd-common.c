/* SPDX-License-Identifier: MIT */
/* What the vmcheck commands share: errors, usage, option values, the agent, signals. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>

#include "cmd.h"
#include "escape.h"
#include "parse.h"

int vmc_cmd_fail(struct vmc_error *err, int code)
{
	/*
	 * A message may quote the guest (an agent's Error, a link name): the
	 * last pass of the terminal escaping, which leaves text quoted already
	 * as it is (escape.h).
	 */
	fputs("vmcheck: ", stderr);
	vmc_esc_fputs(stderr, err->msg ? err->msg : strerror(-err->code), 0);
	fputc('\n', stderr);
	vmc_error_clear(err);
	return code;
}

/* After getopt: no stray arguments and an --agent SPEC; 0, or the usage exit code. */
static int need_agent(const char *cmd, int argc, char **argv, const char *spec)
{
	if (optind < argc) {
		fprintf(stderr, "vmcheck: %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
		return vmc_cmd_usage_error(cmd);
	}
	if (!spec) {
		fprintf(stderr, "vmcheck: %s: --agent SPEC is required\n", cmd);
		return vmc_cmd_usage_error(cmd);
	}
	return 0;
}

bool vmc_cmd_ssh_option(int opt, const char *arg)
{
	switch (opt) {
	case VMC_OPT_SSH_KEY:
		vmc_agent_ssh_opts.key = arg;
		return true;
	case VMC_OPT_SSH_KNOWN_HOSTS:
		vmc_agent_ssh_opts.known_hosts = arg;
		return true;
	case VMC_OPT_SSH_ACCEPT_NEW:
		vmc_agent_ssh_opts.accept_new = true;
		return true;
	default:
		return false;
	}
}

int vmc_cmd_usage_error(const char *cmd)
{
	fprintf(stderr, "Try 'vmcheck %s --help'.\n", cmd);
	return VMC_EXIT_USAGE;
}

int vmc_cmd_open(const char *spec, struct vmc_agent_conn **c, Vmcheck__V1__Response **hello)
{
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp;
	int r;

	if (vmc_agent_connect(spec, c, &err) < 0)
		return vmc_cmd_fail(&err, VMC_EXIT_USAGE);
	r = vmc_agent_hello(*c, VMC_CMD_TIMEOUT_MS, &rsp, &err);
	if (r < 0) {
		vmc_agent_close(*c);
		*c = NULL;
		/* An agent that answers but refuses is the agent's failure, not the link's. */
		return vmc_cmd_fail(&err, r == -EPROTONOSUPPORT ? VMC_EXIT_FAIL : VMC_EXIT_USAGE);
	}
	if (hello)
		*hello = rsp;
	else
		vmc_agent_response_free(*c, rsp);
	return VMC_EXIT_OK;
}

int vmc_cmd_sections(const char *list, uint32_t *mask)
{
	uint32_t m;

	if (vmc_section_parse(list, &m) < 0 || !*list) {
		fprintf(stderr,
			"vmcheck: --section \"%s\": expected a comma list of system, links, blocks, memory, cpus, pci, crash, all\n",
			list);
		return -EINVAL;
	}
	*mask |= m;
	return 0;
}

int vmc_cmd_number(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;

	if (vmc_parse_u64(arg, 10, &v) < 0 || v < min || v > max) {
		fprintf(stderr, "vmcheck: %s \"%s\": expected a number from %llu to %llu\n", opt,
			arg, (unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int vmc_cmd_signals_fd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	return signalfd(-1, &set, SFD_CLOEXEC);
}

int vmc_cmd_parse_agent(int argc, char **argv, const struct vmc_cmd_parser *p, const char **spec)
{
	int opt, code;

	*spec = NULL;
	optind = 0;
	while ((opt = getopt_long(argc, argv, p->shortopts, p->longopts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			*spec = optarg;
			break;
		case 'h':
			fputs(p->usage, stdout);
			return VMC_EXIT_OK;
		case '?': /* getopt_long has said what was wrong */
			return vmc_cmd_usage_error(argv[0]);
		default:
			if (!vmc_cmd_ssh_option(opt, optarg) && p->option(opt, optarg, p->ctx) < 0)
				return vmc_cmd_usage_error(argv[0]);
		}
	}
	code = need_agent(argv[0], argc, argv, *spec);
	return code ? code : VMC_CMD_PARSED;
}
