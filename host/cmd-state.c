/* SPDX-License-Identifier: MIT */
/* vmcheck state: one snapshot of the guest, as text or JSON. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "print.h"

static const char usage[] =
	"usage: vmcheck state --agent SPEC [--json] [--section LIST]...\n"
	"\n"
	"Print one snapshot of the guest, as the agent reads it from the guest kernel.\n"
	"\n"
	"  -a, --agent SPEC     the agent: unix:PATH, vserial:PATH (a QEMU chardev\n"
	"                       socket), exec:COMMAND (stdin/stdout of COMMAND; the\n"
	"                       agent named with no transport option gets --stdio) or\n"
	"                       ssh://USER@HOST[:PORT][/PATH] (PATH --stdio over SSH;\n"
	"                       default PATH: vmcheck-agent in the guest's PATH) or\n"
	"                       libvirt-channel:DOMAIN/URI (the domain's\n"
	"                       org.vmcheck.agent.0 channel through libvirt)\n"
	"  -j, --json           the State message as one JSON object\n"
	"  -s, --section LIST   only these sections (system, links, blocks, memory,\n"
	"                       cpus, pci, crash, all; comma separated, repeatable)\n"
	"  -h, --help           this text\n" VMC_CMD_SSH_USAGE "\n"
	"Sections the agent could not read are reported on stderr. Exit status: 0 ok,\n"
	"1 the agent failed or a section could not be read, 2 usage or connection error.\n";

struct state_opts {
	uint32_t mask;
	bool json;
};

/* An option of state's own (struct vmc_cmd_parser): 0, or -EINVAL after saying why. */
static int state_option(int opt, const char *arg, void *ctx)
{
	struct state_opts *o = ctx;

	switch (opt) {
	case 'j':
		o->json = true;
		return 0;
	case 's':
		return vmc_cmd_sections(arg, &o->mask);
	default:
		return -EINVAL;
	}
}

int vmc_cmd_state(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "section", required_argument, NULL, 's' },
		VMC_CMD_AGENT_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct state_opts o = { 0 };
	const struct vmc_cmd_parser parser = {
		.shortopts = "a:js:h",
		.longopts = opts,
		.usage = usage,
		.option = state_option,
		.ctx = &o,
	};
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__GetState get = VMCHECK__V1__GET_STATE__INIT;
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp = NULL;
	struct vmc_agent_conn *c = NULL;
	const char *spec;
	int code;

	code = vmc_cmd_parse_agent(argc, argv, &parser, &spec);
	if (code != VMC_CMD_PARSED)
		return code;

	code = vmc_cmd_open(spec, &c, NULL);
	if (code)
		return code;
	get.sections = o.mask;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
	req.get_state = &get;
	if (vmc_agent_call(c, &req, VMC_CMD_TIMEOUT_MS, &rsp, &err) < 0 ||
	    vmc_agent_expect(c, rsp, VMCHECK__V1__RESPONSE__KIND_STATE, "get_state", &err) < 0) {
		code = vmc_cmd_fail(&err, VMC_EXIT_FAIL);
		goto out;
	}
	if (o.json) {
		int r = vmc_json_print(stdout, &rsp->state->base);

		if (r < 0) {
			fprintf(stderr, "vmcheck: state: writing JSON: %s\n", strerror(-r));
			code = VMC_EXIT_FAIL;
		}
	} else {
		vmc_print_state(stdout, rsp->state);
	}
	fflush(stdout);
	vmc_print_section_errors(stderr, rsp->state);
	if (rsp->state->n_errors)
		code = VMC_EXIT_FAIL;
out:
	if (rsp)
		vmc_agent_response_free(c, rsp);
	vmc_agent_close(c);
	return code;
}
