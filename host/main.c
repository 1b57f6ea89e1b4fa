/* SPDX-License-Identifier: MIT */
/* vmcheck: subcommands dispatched from one table, iproute2 style. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const struct vmc_cmd cmds[] = {
	{ "run", "boot the test guest (or attach) and run the sanity suite", vmc_cmd_run },
	{ "state", "print one snapshot of the guest (links, blocks, memory, cpus, ...)",
	  vmc_cmd_state },
	{ "watch", "follow the guest's changes as the agent pushes them", vmc_cmd_watch },
	{ "ping", "measure the round trip to the agent", vmc_cmd_ping },
};

static void usage(FILE *fp)
{
	fprintf(fp, "usage: vmcheck [--help] [--version] COMMAND [ARGS...]\n"
		    "       vmcheck help COMMAND\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		fprintf(fp, "  %-8s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(fp, "  %-8s %s\n", "help", "print the usage of a command");
	fprintf(fp, "\nThe agent is named by a spec: unix:PATH, vserial:PATH, exec:COMMAND,\n"
		    "ssh://USER@HOST[:PORT][/PATH] or libvirt-channel:DOMAIN/URI (a libvirt\n"
		    "domain's org.vmcheck.agent.0 channel). exec runs COMMAND with /bin/sh;\n"
		    "the agent named with no transport option (exec:vmcheck-agent) is given\n"
		    "--stdio.\n"
		    "Exit status: 0 ok, 1 check or agent failure, 2 usage or connection error.\n");
}

static const struct vmc_cmd *find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	fprintf(stderr, "vmcheck: unknown command \"%s\"; try 'vmcheck --help'.\n", name);
	return NULL;
}

int main(int argc, char **argv)
{
	const struct vmc_cmd *cmd;

	if (argc < 2) {
		usage(stderr);
		return VMC_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return VMC_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("vmcheck %s\n", VMC_VERSION);
		return VMC_EXIT_OK;
	}
	if (!strcmp(argv[1], "help")) {
		char help[] = "--help";
		char *args[] = { argv[2], help, NULL };

		if (argc < 3) {
			usage(stdout);
			return VMC_EXIT_OK;
		}
		cmd = find(argv[2]);
		return cmd ? cmd->run(2, args) : VMC_EXIT_USAGE;
	}
	cmd = find(argv[1]);
	return cmd ? cmd->run(argc - 1, argv + 1) : VMC_EXIT_USAGE;
}
