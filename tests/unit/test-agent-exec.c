/* SPDX-License-Identifier: MIT */
/*
 * exec:COMMAND: the agent named without a transport option is given
 * --stdio; every other command line runs as it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent-exec.h"
#include "harness.h"

static void runs(const char *cmd, const char *want)
{
	char what[256];

	snprintf(what, sizeof(what), "exec:%s runs", cmd);
	fx_str_is(vmc_agent_exec_command(cmd), want, what);
}

static void unchanged(const char *cmd)
{
	runs(cmd, cmd);
}

static void the_agent_alone_gets_stdio(void)
{
	runs("build/vmcheck-agent", "build/vmcheck-agent --stdio");
	runs("vmcheck-agent", "vmcheck-agent --stdio");
	runs("/usr/sbin/vmcheck-agent", "/usr/sbin/vmcheck-agent --stdio");
	runs("  ./vmcheck-agent\t", "  ./vmcheck-agent\t --stdio");
}

static void other_options_keep_their_place(void)
{
	runs("vmcheck-agent --sysroot /tmp/dump --allow-crash",
	     "vmcheck-agent --sysroot /tmp/dump --allow-crash --stdio");
	runs("vmcheck-agent --crash-dir=/var/kdump --max-frame 65536 --coalesce-ms 5",
	     "vmcheck-agent --crash-dir=/var/kdump --max-frame 65536 --coalesce-ms 5 --stdio");
	/* An option's argument is no option, even one that looks like it. */
	runs("vmcheck-agent --sysroot --stdio", "vmcheck-agent --sysroot --stdio --stdio");
	runs("vmcheck-agent --sys --listen", "vmcheck-agent --sys --listen --stdio");
}

static void a_transport_option_is_kept(void)
{
	unchanged("build/vmcheck-agent --stdio");
	unchanged("build/vmcheck-agent --sysroot /tmp/dump --stdio");
	unchanged("vmcheck-agent --listen unix:/tmp/a.sock");
	unchanged("vmcheck-agent --listen=unix:/tmp/a.sock");
	unchanged("vmcheck-agent --virtio-port");
	unchanged("vmcheck-agent --virtio-port org.vmcheck.agent.1");
	unchanged("vmcheck-agent --virtio-port=org.vmcheck.agent.1");
	/* getopt_long() takes an unambiguous prefix: so does the check. */
	unchanged("vmcheck-agent --std");
	unchanged("vmcheck-agent --li unix:/tmp/a.sock");
	unchanged("vmcheck-agent --vi");
}

static void other_commands_run_as_they_are(void)
{
	unchanged("false");
	unchanged("echo vmcheck-agent");
	unchanged("vmcheck-agent-liar");
	unchanged("build/vmcheck-agent.sh");
	unchanged("sudo vmcheck-agent");
	unchanged("ssh guest vmcheck-agent");
	unchanged("");
}

static void shell_syntax_is_left_alone(void)
{
	unchanged("vmcheck-agent; echo done");
	unchanged("vmcheck-agent 2>/dev/null");
	unchanged("vmcheck-agent | cat");
	unchanged("vmcheck-agent --sysroot \"/tmp/my dump\"");
	unchanged("vmcheck-agent --sysroot '/tmp/my dump'");
	unchanged("vmcheck-agent --sysroot $DUMP");
	unchanged("vmcheck-agent # the default transport");
	unchanged("vmcheck-agent --sysroot /x\nfalse");
	unchanged("vmcheck-agent --");
}

VMC_SUITE(agent_exec, NULL, NULL, VMC_TEST(the_agent_alone_gets_stdio),
	  VMC_TEST(other_options_keep_their_place), VMC_TEST(a_transport_option_is_kept),
	  VMC_TEST(other_commands_run_as_they_are), VMC_TEST(shell_syntax_is_left_alone))
