/* SPDX-License-Identifier: MIT */
/*
 * vmcheck subcommands. Each takes its own argv (argv[0] is the command's
 * name), handles --help itself, and returns the process exit code.
 */
#ifndef VMC_CMD_H
#define VMC_CMD_H

#include <stdbool.h>
#include <stdint.h>

#include "agent-client.h"

enum {
	VMC_EXIT_OK = 0,
	VMC_EXIT_FAIL = 1,  /* a check failed, or the agent did */
	VMC_EXIT_USAGE = 2, /* bad usage, or no connection to the agent */
	/* vmcheck run stopped by signal N (SIGINT, SIGTERM): 128 + N, as a shell says */
	VMC_EXIT_SIGNAL = 128,
};

/* How long one request may take before the agent counts as unresponsive. */
#define VMC_CMD_TIMEOUT_MS 10000

struct vmc_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

int vmc_cmd_state(int argc, char **argv);
int vmc_cmd_watch(int argc, char **argv);
int vmc_cmd_ping(int argc, char **argv);
int vmc_cmd_run(int argc, char **argv);

/* Helpers shared by the commands (cmd-common.c); they print their own messages. */

/*
 * vmc_cmd_open - connect to @spec and exchange Hello
 * @c:     set to the connection on success (close it with vmc_agent_close())
 * @hello: the agent's HelloReply response (free with vmc_agent_response_free()),
 *         or NULL if not wanted
 * Returns VMC_EXIT_OK; or, after printing why not, VMC_EXIT_FAIL when the
 * agent answered but refused, VMC_EXIT_USAGE when it could not be reached.
 */
int vmc_cmd_open(const char *spec, struct vmc_agent_conn **c, Vmcheck__V1__Response **hello);

/*
 * vmc_cmd_sections - OR the sections of a --section @list into *@mask
 * Returns 0; -EINVAL on an unknown name or an empty list, after saying so
 * (*@mask untouched).
 */
int vmc_cmd_sections(const char *list, uint32_t *mask);

/*
 * vmc_cmd_number - the decimal value of option @opt, given as @arg
 * Returns 0 with *@out set; -EINVAL if @arg is not a number within
 * [@min, @max], after saying so (*@out untouched).
 */
int vmc_cmd_number(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out);

/* "Try 'vmcheck CMD --help'." on stderr; returns VMC_EXIT_USAGE. */
int vmc_cmd_usage_error(const char *cmd);

/*
 * vmc_cmd_fail - print "vmcheck: " and @err's message (its code's strerror
 * without one) on stderr, then clear @err. Returns @code.
 */
int vmc_cmd_fail(struct vmc_error *err, int code);

/*
 * vmc_cmd_signals_fd - SIGINT and SIGTERM as a signalfd, so that a command
 * can stop cleanly (unsubscribe, complete its reports) instead of dying
 * Blocks both signals in the calling thread first: threads and children
 * started afterwards inherit the mask. Returns the fd (close-on-exec, the
 * caller's to close), or -1 with errno set; a signalfd() failure leaves
 * the signals blocked.
 */
int vmc_cmd_signals_fd(void);

/*
 * The SSH options of every command that takes --agent: VMC_CMD_SSH_OPTIONS
 * goes into the getopt_long() table, the codes it returns to
 * vmc_cmd_ssh_option(), VMC_CMD_SSH_USAGE into the help text.
 */
enum {
	VMC_OPT_SSH_KEY = 0x1000, /* clear of the commands' own option codes */
	VMC_OPT_SSH_KNOWN_HOSTS,
	VMC_OPT_SSH_ACCEPT_NEW,
};

#define VMC_CMD_SSH_OPTIONS                                                              \
	{ "ssh-key", required_argument, NULL, VMC_OPT_SSH_KEY },                         \
		{ "ssh-known-hosts", required_argument, NULL, VMC_OPT_SSH_KNOWN_HOSTS }, \
	{                                                                                \
		"ssh-accept-new", no_argument, NULL, VMC_OPT_SSH_ACCEPT_NEW              \
	}

#define VMC_CMD_SSH_USAGE                                                                  \
	"SSH (an ssh://USER@HOST[:PORT][/PATH] agent; key authentication only):\n"         \
	"      --ssh-key FILE          a private key, tried before the ssh-agent's keys\n" \
	"      --ssh-known-hosts FILE  host keys to check against (default\n"              \
	"                              ~/.ssh/known_hosts); a changed key is refused\n"    \
	"      --ssh-accept-new        record the key of a host not in it yet\n"

/*
 * vmc_cmd_ssh_option - take option @opt (with @arg) if it is an SSH one
 * Sets vmc_agent_ssh_opts (@arg must outlive the connections: argv does).
 * Returns true if @opt was one of VMC_CMD_SSH_OPTIONS.
 */
bool vmc_cmd_ssh_option(int opt, const char *arg);

/*
 * The options every agent command (state, watch, ping) takes: -a/--agent,
 * -h/--help and the SSH ones. VMC_CMD_AGENT_OPTIONS goes at the end of the
 * command's getopt_long() table, before the terminating { NULL }.
 */
#define VMC_CMD_AGENT_OPTIONS                                                          \
	{ "agent", required_argument, NULL, 'a' }, { "help", no_argument, NULL, 'h' }, \
		VMC_CMD_SSH_OPTIONS

struct option;

/* How an agent command's argv is parsed: the command's own part. */
struct vmc_cmd_parser {
	const char *shortopts;         /* getopt's, with "a:" and "h" */
	const struct option *longopts; /* ending in VMC_CMD_AGENT_OPTIONS */
	const char *usage;             /* the --help text */
	/* Take option @opt of the command's own, with @arg: 0, or -EINVAL after saying why. */
	int (*option)(int opt, const char *arg, void *ctx);
	void *ctx; /* handed to @option */
};

/* vmc_cmd_parse_agent()'s "carry on": the options are all taken. */
#define VMC_CMD_PARSED (-1)

/*
 * vmc_cmd_parse_agent - parse the argv of an agent command with @p
 * Takes --agent into *@spec (a pointer into @argv), prints @p->usage on
 * stdout for --help, sets the SSH options (vmc_cmd_ssh_option()), and hands
 * every other option to @p->option. --agent is required; a stray argument
 * is refused.
 * Returns VMC_CMD_PARSED to carry on; otherwise the command's exit code:
 * VMC_EXIT_OK after --help, VMC_EXIT_USAGE after saying what is wrong.
 */
int vmc_cmd_parse_agent(int argc, char **argv, const struct vmc_cmd_parser *p, const char **spec);

#endif
