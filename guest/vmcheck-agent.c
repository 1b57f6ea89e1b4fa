/* SPDX-License-Identifier: MIT */
/* vmcheck-agent as shipped: the agent command with no hooks. */
#include "agent.h"

int main(int argc, char **argv)
{
	return vmc_agent_main(argc, argv, NULL);
}
