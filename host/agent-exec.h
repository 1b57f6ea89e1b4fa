/* SPDX-License-Identifier: MIT */
/*
 * exec:COMMAND, the agent as a child process speaking on its stdin and
 * stdout: what COMMAND becomes before /bin/sh runs it.
 */
#ifndef VMC_AGENT_EXEC_H
#define VMC_AGENT_EXEC_H

/*
 * vmc_agent_exec_command - the shell command that exec:@cmd runs
 * @cmd: COMMAND, the spec after "exec:"
 *
 * Over exec the agent can speak only on its stdin and stdout, while its
 * own default transport is the virtio port: a @cmd that runs the agent
 * (its first word vmcheck-agent, in any directory) with none of the
 * agent's transport options (--stdio, --listen, --virtio-port, also
 * abbreviated or with =VALUE) gets " --stdio" appended. Only a plain
 * command line qualifies: words alone, no quotes, shell operators,
 * expansions or "--". Any other @cmd is copied as it is.
 * Returns a string to free; NULL on ENOMEM.
 */
char *vmc_agent_exec_command(const char *cmd);

#endif
