/* SPDX-License-Identifier: MIT */
/*
 * vmcheck-agent-liar: vmcheck-agent's command line plus --lie NAME, for
 * tests that must see the host catch a lying guest. Never install it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "liar.h"

enum {
	EXIT_USAGE = 2
};

static void usage(void)
{
	printf("Usage: vmcheck-agent-liar [--lie NAME] [vmcheck-agent options]\n"
	       "\n"
	       "vmcheck-agent telling exactly one lie, for tests of the host. The lie is\n"
	       "--lie NAME, or else the word vmcheck.lie=NAME on the kernel command line\n"
	       "(proc/cmdline under --sysroot); without either it tells the truth.\n"
	       "Lies: %s.\n"
	       "\n"
	       "The agent's own options follow.\n\n",
	       vmc_liar_names());
	fflush(stdout);
}

static int bad_usage(const char *what, const char *name)
{
	fprintf(stderr, "vmcheck-agent-liar: %s '%s': the lies are %s\n", what, name,
		vmc_liar_names());
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	static struct vmc_liar liar;
	struct vmc_agent_hooks hooks;
	char **args = calloc((size_t)argc + 1, sizeof(*args));
	int n = 0, r;

	if (!args)
		return 1;
	vmc_liar_init(&liar);
	for (int i = 0; i < argc; i++) {
		const char *name;

		if (i > 0 && !strcmp(argv[i], "--lie") && i + 1 < argc)
			name = argv[++i];
		else if (i > 0 && !strncmp(argv[i], "--lie=", 6))
			name = argv[i] + 6;
		else if (i > 0 && !strcmp(argv[i], "--lie"))
			return bad_usage("--lie wants a NAME", "");
		else {
			if (i > 0 && (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")))
				usage();
			args[n++] = argv[i];
			continue;
		}
		if (liar.lie != VMC_LIAR_NONE)
			return bad_usage("one lie per run, not also", name);
		if (vmc_liar_parse(name, &liar.lie) < 0)
			return bad_usage("unknown lie", name);
	}
	vmc_liar_hooks(&liar, &hooks);
	r = vmc_agent_main(n, args, &hooks);
	vmc_liar_stop(&liar);
	free(args);
	return r;
}
