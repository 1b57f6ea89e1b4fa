/* SPDX-License-Identifier: MIT */
/*
 * The ssh:// agent spec, taken apart and refused, and the one SSH failure a
 * unit test can cause without a server: a port nobody listens on.
 * (tests/integration/test-ssh drives the transport against the guest.)
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "agent-client.h"
#include "harness.h"

static void parses_user_host_port_path(void)
{
	struct vmc_agent_ssh_target t;

	CU_ASSERT_EQUAL_FATAL(vmc_agent_ssh_parse("ssh://root@127.0.0.1:2222/sbin/vmcheck-agent",
						  &t, NULL),
			      0);
	CU_ASSERT_STRING_EQUAL(t.user, "root");
	CU_ASSERT_STRING_EQUAL(t.host, "127.0.0.1");
	CU_ASSERT_EQUAL(t.port, 2222);
	CU_ASSERT_STRING_EQUAL(t.path, "/sbin/vmcheck-agent");
	vmc_agent_ssh_target_free(&t);
}

static void port_and_path_default(void)
{
	struct vmc_agent_ssh_target t;

	CU_ASSERT_EQUAL_FATAL(vmc_agent_ssh_parse("ssh://qa@guest-1.example", &t, NULL), 0);
	CU_ASSERT_STRING_EQUAL(t.user, "qa");
	CU_ASSERT_STRING_EQUAL(t.host, "guest-1.example");
	CU_ASSERT_EQUAL(t.port, 22);
	CU_ASSERT_STRING_EQUAL(t.path, "vmcheck-agent");
	vmc_agent_ssh_target_free(&t);

	CU_ASSERT_EQUAL_FATAL(vmc_agent_ssh_parse("ssh://qa@h:65535", &t, NULL), 0);
	CU_ASSERT_EQUAL(t.port, 65535);
	CU_ASSERT_STRING_EQUAL(t.path, "vmcheck-agent");
	vmc_agent_ssh_target_free(&t);

	CU_ASSERT_EQUAL_FATAL(vmc_agent_ssh_parse("ssh://qa@h/opt/my agent's", &t, NULL), 0);
	CU_ASSERT_EQUAL(t.port, 22);
	CU_ASSERT_STRING_EQUAL(t.path, "/opt/my agent's");
	vmc_agent_ssh_target_free(&t);
}

static void ipv6_literals(void)
{
	struct vmc_agent_ssh_target t;

	CU_ASSERT_EQUAL_FATAL(vmc_agent_ssh_parse("ssh://root@[::1]:2222/a", &t, NULL), 0);
	CU_ASSERT_STRING_EQUAL(t.host, "::1");
	CU_ASSERT_EQUAL(t.port, 2222);
	CU_ASSERT_STRING_EQUAL(t.path, "/a");
	vmc_agent_ssh_target_free(&t);

	CU_ASSERT_EQUAL_FATAL(vmc_agent_ssh_parse("ssh://root@[fe80::1%eth0]", &t, NULL), 0);
	CU_ASSERT_STRING_EQUAL(t.host, "fe80::1%eth0");
	CU_ASSERT_EQUAL(t.port, 22);
	vmc_agent_ssh_target_free(&t);
}

static void bad_specs_are_refused(void)
{
	static const struct {
		const char *spec, *why;
	} cases[] = {
		{ "ssh:/root@h", "no \"ssh://\"" },
		{ "ssh://h:22", "no USER@ before the host" },
		{ "ssh://@h", "no USER@ before the host" },
		{ "ssh://ro/ot@h", "no USER@ before the host" },
		{ "ssh://root@", "no host" },
		{ "ssh://root@:22", "no host" },
		{ "ssh://root@[]:22", "no host" },
		{ "ssh://root@h@x", "'@', '[' or ']' in the host" },
		{ "ssh://root@h]", "'@', '[' or ']' in the host" },
		{ "ssh://root@[::1", "no ']' after the IPv6 address" },
		{ "ssh://root@[::1]x", "unexpected characters after the host" },
		{ "ssh://root@h:", "the port is not a number from 1 to 65535" },
		{ "ssh://root@h:0", "the port is not a number from 1 to 65535" },
		{ "ssh://root@h:65536", "the port is not a number from 1 to 65535" },
		{ "ssh://root@h:022222", "the port is not a number from 1 to 65535" },
		{ "ssh://root@h:+22", "the port is not a number from 1 to 65535" },
		{ "ssh://root@h:22x/a", "the port is not a number from 1 to 65535" },
		{ "ssh://root@h/", "an empty agent path" },
		{ "ssh://root@[::1]:2222/", "an empty agent path" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct vmc_agent_ssh_target t = { .port = 7 };
		struct vmc_error err = VMC_ERROR_INIT;
		char want[256];

		snprintf(want, sizeof(want),
			 "agent spec \"%s\": %s (expected ssh://USER@HOST[:PORT][/PATH])",
			 cases[i].spec, cases[i].why);
		CU_ASSERT_EQUAL(vmc_agent_ssh_parse(cases[i].spec, &t, &err), -EINVAL);
		if (!err.msg || strcmp(err.msg, want))
			fprintf(stderr, "\n  %s: got \"%s\"\n", cases[i].spec, err.msg);
		CU_ASSERT(err.msg && !strcmp(err.msg, want));
		/* Untouched on failure. */
		CU_ASSERT(t.port == 7 && !t.user && !t.host && !t.path);
		vmc_error_clear(&err);
	}
}

/* A 127.0.0.1 port with no listener (bound, then released). */
static unsigned dead_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CU_ASSERT_EQUAL_FATAL(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void connect_goes_through_the_parser_and_libssh(void)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_agent_conn *c = NULL;
	char spec[64], want[128];

	CU_ASSERT_EQUAL(vmc_agent_connect("ssh://root@h:99999", &c, &err), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "the port is not a number from 1 to 65535"));

	snprintf(spec, sizeof(spec), "ssh://root@127.0.0.1:%u/sbin/vmcheck-agent", dead_port());
	snprintf(want, sizeof(want), "connecting to %s: ", spec);
	CU_ASSERT_EQUAL(vmc_agent_connect(spec, &c, &err), -ECONNREFUSED);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT(err.msg && !strncmp(err.msg, want, strlen(want)) &&
		  strstr(err.msg, "Connection refused"));
	vmc_error_clear(&err);
}

VMC_SUITE(agent_ssh, NULL, NULL, VMC_TEST(parses_user_host_port_path),
	  VMC_TEST(port_and_path_default), VMC_TEST(ipv6_literals), VMC_TEST(bad_specs_are_refused),
	  VMC_TEST(connect_goes_through_the_parser_and_libssh));
