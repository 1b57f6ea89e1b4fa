/* SPDX-License-Identifier: MIT */
/* vmcheck state: one snapshot of the guest, as text or JSON. */
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
	"                       socket), exec:COMMAND (stdin/stdout of COMMAND) or\n"
	"                       ssh://USER@HOST[:PORT][/PATH] (PATH --stdio over SSH;\n"
	"                       default PATH: vmcheck-agent in the guest's PATH)\n"
	"  -j, --json           the State message as one JSON object\n"
	"  -s, --section LIST   only these sections (system, links, blocks, memory,\n"
	"                       cpus, pci, crash, all; comma separated, repeatable)\n"
	"  -h, --help           this text\n"
	VMC_CMD_SSH_USAGE
	"\n"
	"Sections the agent could not read are reported on stderr. Exit status: 0 ok,\n"
	"1 the agent failed or a section could not be read, 2 usage or connection error.\n";

int vmc_cmd_state(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "agent", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "section", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		VMC_CMD_SSH_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	Vmcheck__V1__Request req = VMCHECK__V1__REQUEST__INIT;
	Vmcheck__V1__GetState get = VMCHECK__V1__GET_STATE__INIT;
	struct vmc_error err = VMC_ERROR_INIT;
	Vmcheck__V1__Response *rsp = NULL;
	struct vmc_agent_conn *c = NULL;
	const char *spec = NULL;
	uint32_t mask = 0;
	bool json = false;
	int opt, code;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "a:js:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			spec = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 's':
			if (vmc_cmd_sections(optarg, &mask) < 0)
				return vmc_cmd_usage_error(argv[0]);
			break;
		case 'h':
			fputs(usage, stdout);
			return VMC_EXIT_OK;
		default:
			if (!vmc_cmd_ssh_option(opt, optarg))
				return vmc_cmd_usage_error(argv[0]);
		}
	}
	code = vmc_cmd_need_agent(argv[0], argc, argv, spec);
	if (code)
		return code;

	code = vmc_cmd_open(spec, &c, NULL);
	if (code)
		return code;
	get.sections = mask;
	req.kind_case = VMCHECK__V1__REQUEST__KIND_GET_STATE;
	req.get_state = &get;
	if (vmc_agent_call(c, &req, VMC_CMD_TIMEOUT_MS, &rsp, &err) < 0 ||
	    vmc_agent_expect(c, rsp, VMCHECK__V1__RESPONSE__KIND_STATE, "get_state", &err) < 0) {
		code = vmc_cmd_fail(&err, VMC_EXIT_FAIL);
		goto out;
	}
	if (json) {
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
