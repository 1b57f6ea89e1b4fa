/* SPDX-License-Identifier: MIT */
/*
 * The libvirt-channel:DOMAIN/URI agent spec, made and taken apart, and the
 * transport's open errors a unit test can cause without libvirtd: a URI
 * that cannot connect, a domain that does not exist, and the test driver,
 * which has the domain but no channel streams. Each names the URI, the
 * domain and libvirt's own words. (tests/integration/test-libvirt drives
 * the stream against a real domain.)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent-client.h"
#include "harness.h"
#include "libvirt-shared.h"

static void spec_names_domain_and_uri(void)
{
	char *s = vmc_libvirt_channel_spec("vm1", "qemu+ssh://root@h/system?keyfile=/k");

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_STRING_EQUAL(s, "libvirt-channel:vm1/qemu+ssh://root@h/system?keyfile=/k");
	free(s);
}

/* The first '/' ends the domain: a domain name holds none, a URI many. */
static void parse_splits_at_the_first_slash(void)
{
	char *name, *uri;

	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_channel_parse("vm1/qemu:///system", &name, &uri, NULL),
			      0);
	CU_ASSERT_STRING_EQUAL(name, "vm1");
	CU_ASSERT_STRING_EQUAL(uri, "qemu:///system");
	free(name);
	free(uri);
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_channel_parse("a-b.c/qemu+ssh://h/system?socket=/x/y",
							&name, &uri, NULL),
			      0);
	CU_ASSERT_STRING_EQUAL(name, "a-b.c");
	CU_ASSERT_STRING_EQUAL(uri, "qemu+ssh://h/system?socket=/x/y");
	free(name);
	free(uri);
}

/* What vmc_libvirt_channel_spec() makes, parse takes back apart. */
static void spec_and_parse_round_trip(void)
{
	char *s = vmc_libvirt_channel_spec("guest", "test:///default"), *name, *uri;

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL_FATAL(strncmp(s, VMC_LIBVIRT_CHANNEL_SCHEME ":",
				      strlen(VMC_LIBVIRT_CHANNEL_SCHEME ":")),
			      0);
	CU_ASSERT_EQUAL_FATAL(vmc_libvirt_channel_parse(s + strlen(VMC_LIBVIRT_CHANNEL_SCHEME ":"),
							&name, &uri, NULL),
			      0);
	CU_ASSERT_STRING_EQUAL(name, "guest");
	CU_ASSERT_STRING_EQUAL(uri, "test:///default");
	free(name);
	free(uri);
	free(s);
}

static void parse_refuses(const char *arg)
{
	struct vmc_error err = VMC_ERROR_INIT;
	char *name = (char *)"x", *uri = (char *)"y";
	char want[128];

	CU_ASSERT_EQUAL(vmc_libvirt_channel_parse(arg, &name, &uri, &err), -EINVAL);
	CU_ASSERT_PTR_NULL(name);
	CU_ASSERT_PTR_NULL(uri);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
	snprintf(want, sizeof(want), "libvirt-channel:%s: expected DOMAIN/URI", arg);
	if (strncmp(err.msg, want, strlen(want)))
		fprintf(stderr, "message: %s\nwanted:  %s...\n", err.msg, want);
	CU_ASSERT_EQUAL(strncmp(err.msg, want, strlen(want)), 0);
	vmc_error_clear(&err);
}

static void parse_refuses_a_missing_part(void)
{
	parse_refuses("");
	parse_refuses("vm");
	parse_refuses("/qemu:///system");
	parse_refuses("vm/");
}

/* vmc_agent_connect(@spec) fails with @code and a message holding each of @want. */
static void connect_fails(const char *spec, int code, const char *const *want)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_agent_conn *c = NULL;

	CU_ASSERT_EQUAL(vmc_agent_connect(spec, &c, &err), code);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
	for (; *want; want++) {
		if (!strstr(err.msg, *want))
			fprintf(stderr, "message: %s\nlacks:   %s\n", err.msg, *want);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, *want));
	}
	vmc_error_clear(&err);
}

static void spec_without_domain_and_uri_is_refused(void)
{
	connect_fails("libvirt-channel:", -EINVAL,
		      (const char *const[]){ "nothing after \"libvirt-channel:\"", NULL });
	connect_fails("libvirt-channel:vm", -EINVAL,
		      (const char *const[]){ "libvirt-channel:vm: expected DOMAIN/URI", NULL });
}

/* No daemon behind the socket: the URI and libvirt's words. */
static void unreachable_uri_names_uri_and_libvirt_error(void)
{
	connect_fails("libvirt-channel:vm/qemu:///system?socket=/nonexistent/libvirt-sock",
		      -ECONNREFUSED,
		      (const char *const[]){ "qemu:///system?socket=/nonexistent/libvirt-sock",
					     "connecting to libvirt: libvirt error 38/7: ",
					     "Failed to connect socket to "
					     "'/nonexistent/libvirt-sock'",
					     NULL });
}

static void unknown_domain_is_named(void)
{
	connect_fails("libvirt-channel:no-such-vm/test:///default", -ENOENT,
		      (const char *const[]){ "domain no-such-vm: test:///default: ",
					     "libvirt error 42/", "Domain not found", NULL });
}

/*
 * The test driver's domain "test" exists but the driver opens no channel
 * streams: the error of virDomainOpenChannel itself.
 */
static void channel_open_error_is_libvirts(void)
{
	connect_fails("libvirt-channel:test/test:///default", -ENODEV,
		      (const char *const[]){ "the agent channel of domain test on test:///default: "
					     "opening channel org.vmcheck.agent.0: libvirt error ",
					     "virDomainOpenChannel", NULL });
}

VMC_SUITE(agent_libvirt, NULL, NULL, VMC_TEST(spec_names_domain_and_uri),
	  VMC_TEST(parse_splits_at_the_first_slash), VMC_TEST(spec_and_parse_round_trip),
	  VMC_TEST(parse_refuses_a_missing_part), VMC_TEST(spec_without_domain_and_uri_is_refused),
	  VMC_TEST(unreachable_uri_names_uri_and_libvirt_error), VMC_TEST(unknown_domain_is_named),
	  VMC_TEST(channel_open_error_is_libvirts));
