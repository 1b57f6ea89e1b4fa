/* SPDX-License-Identifier: MIT */
/* Tests of the links section reader. */
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"
#include "state.h"

static int read_links(const struct vmc_sysroot *root, struct vmc_arena *a, Vmcheck__V1__State *st)
{
	struct vmc_state_opts o = { .root = *root };

	vmcheck__v1__state__init(st);
	return vmc_state_read_links(&o, a, st);
}

/* A virtual netdev "name" under devices/virtual/net, linked from class/net. */
static void mk_netdev(struct fx *f, const char *name, unsigned ifindex, const char *carrier)
{
	static const char *const attrs[][2] = {
		{ "mtu", "1500\n" },
		{ "flags", "0x1002\n" },
		{ "type", "1\n" },
		{ "operstate", "down\n" },
		{ "address", "02:00:00:00:00:01\n" },
	};
	char p[PATH_MAX], t[PATH_MAX], v[32];

	for (size_t i = 0; i < ARRAY_SIZE(attrs); i++) {
		snprintf(p, sizeof(p), "sys/devices/virtual/net/%s/%s", name, attrs[i][0]);
		fx_write(f, p, attrs[i][1]);
	}
	snprintf(p, sizeof(p), "sys/devices/virtual/net/%s/ifindex", name);
	snprintf(v, sizeof(v), "%u\n", ifindex);
	fx_write(f, p, v);
	if (carrier) {
		snprintf(p, sizeof(p), "sys/devices/virtual/net/%s/carrier", name);
		fx_write(f, p, carrier);
	}
	snprintf(p, sizeof(p), "sys/class/net/%s", name);
	snprintf(t, sizeof(t), "../../devices/virtual/net/%s", name);
	fx_symlink(f, t, p);
}

static void reads_the_committed_guest(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__State st;
	struct vmc_sysroot root;
	Vmcheck__V1__Link *eth0, *lo;

	fx_open_committed("kdump-guest", &root);
	CU_ASSERT_EQUAL_FATAL(read_links(&root, &a, &st), 0);
	CU_ASSERT_EQUAL_FATAL(st.n_links, 2);
	eth0 = st.links[0];
	lo = st.links[1];
	CU_ASSERT_STRING_EQUAL(eth0->name, "eth0");
	CU_ASSERT_EQUAL(eth0->ifindex, 2);
	CU_ASSERT_STRING_EQUAL(eth0->mac, "52:54:00:12:34:56");
	CU_ASSERT_STRING_EQUAL(eth0->operstate, "up");
	CU_ASSERT_EQUAL(eth0->carrier, VMCHECK__V1__LINK__CARRIER__CARRIER_UP);
	CU_ASSERT_EQUAL(eth0->mtu, 1500);
	CU_ASSERT_EQUAL(eth0->flags, 0x1003);
	CU_ASSERT_EQUAL(eth0->type, 1);
	CU_ASSERT_STRING_EQUAL(eth0->driver, "virtio_net");
	CU_ASSERT_STRING_EQUAL(eth0->pci_address, "0000:01:00.0");
	CU_ASSERT_STRING_EQUAL(eth0->devpath,
			       "devices/pci0000:00/0000:00:02.0/0000:01:00.0/virtio1/net/eth0");
	CU_ASSERT_EQUAL(eth0->n_addresses, 0); /* no netlink on a fixture */

	CU_ASSERT_STRING_EQUAL(lo->name, "lo");
	CU_ASSERT_EQUAL(lo->ifindex, 1);
	CU_ASSERT_EQUAL(lo->type, 772);
	CU_ASSERT_EQUAL(lo->mtu, 65536);
	CU_ASSERT_STRING_EQUAL(lo->driver, "");
	CU_ASSERT_STRING_EQUAL(lo->pci_address, "");
	CU_ASSERT_STRING_EQUAL(lo->devpath, "devices/virtual/net/lo");
	vmc_arena_free(&a);
	vmc_sysroot_close(&root);
}

static void carrier_is_up_down_or_unknown(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__State st;
	struct fx f;

	fx_init(&f);
	mk_netdev(&f, "veth0", 5, NULL);
	mk_netdev(&f, "veth1", 6, "1\n");
	mk_netdev(&f, "veth2", 7, "0\n");
	CU_ASSERT_EQUAL_FATAL(read_links(&f.root, &a, &st), 0);
	CU_ASSERT_EQUAL_FATAL(st.n_links, 3);
	CU_ASSERT_EQUAL(st.links[0]->carrier, VMCHECK__V1__LINK__CARRIER__CARRIER_UNKNOWN);
	CU_ASSERT_EQUAL(st.links[1]->carrier, VMCHECK__V1__LINK__CARRIER__CARRIER_UP);
	CU_ASSERT_EQUAL(st.links[2]->carrier, VMCHECK__V1__LINK__CARRIER__CARRIER_DOWN);
	CU_ASSERT_STRING_EQUAL(st.links[0]->driver, "");
	CU_ASSERT_STRING_EQUAL(st.links[0]->operstate, "down");
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

static void vanished_links_and_non_links_are_skipped(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__State st;
	struct fx f;

	fx_init(&f);
	mk_netdev(&f, "eth10", 10, "1\n");
	mk_netdev(&f, "eth2", 3, "1\n");
	mk_netdev(&f, "eth3", 4, "1\n");
	/* Hot-removed between the listing and the read: the link dangles. */
	fx_symlink(&f, "../../devices/virtual/net/gone0", "sys/class/net/gone0");
	/* Removed half way: attributes disappear. */
	fx_remove(&f, "sys/devices/virtual/net/eth3/mtu");
	/* The bonding driver's control file is no link. */
	fx_write(&f, "sys/class/net/bonding_masters", "\n");
	CU_ASSERT_EQUAL_FATAL(read_links(&f.root, &a, &st), 0);
	CU_ASSERT_EQUAL_FATAL(st.n_links, 2);
	CU_ASSERT_STRING_EQUAL(st.links[0]->name, "eth2");
	CU_ASSERT_STRING_EQUAL(st.links[1]->name, "eth10");
	CU_ASSERT_EQUAL(st.links[1]->ifindex, 10);
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

static void failures_leave_no_section(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__State st;
	struct fx f;

	fx_init(&f);
	CU_ASSERT_EQUAL(read_links(&f.root, &a, &st), -ENOENT);
	CU_ASSERT_PTR_NULL(st.links);

	/* Present but malformed is an error, not an absence. */
	mk_netdev(&f, "eth0", 2, NULL);
	fx_write(&f, "sys/devices/virtual/net/eth0/ifindex", "2x\n");
	CU_ASSERT_EQUAL(read_links(&f.root, &a, &st), -EINVAL);
	CU_ASSERT_PTR_NULL(st.links);
	CU_ASSERT_EQUAL(st.n_links, 0);
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

static void live_links_agree_with_the_kernel(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__State st;
	struct vmc_sysroot root;
	bool lo_has_127 = false;

	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&root, "/"), 0);
	CU_ASSERT_EQUAL_FATAL(read_links(&root, &a, &st), 0);
	CU_ASSERT_FATAL(st.n_links > 0);
	for (size_t i = 0; i < st.n_links; i++) {
		const Vmcheck__V1__Link *l = st.links[i];

		CU_ASSERT(l->name[0] != '\0');
		CU_ASSERT(l->ifindex > 0);
		CU_ASSERT_EQUAL(l->ifindex, if_nametoindex(l->name));
		if (strcmp(l->name, "lo"))
			continue;
		for (size_t j = 0; j < l->n_addresses; j++) {
			const Vmcheck__V1__Address *ad = l->addresses[j];

			if (ad->family == AF_INET && !strcmp(ad->address, "127.0.0.1")) {
				lo_has_127 = true;
				CU_ASSERT_EQUAL(ad->prefixlen, 8);
				CU_ASSERT_STRING_EQUAL(ad->scope, "host");
			}
		}
	}
	CU_ASSERT_TRUE(lo_has_127);
	vmc_arena_free(&a);
	vmc_sysroot_close(&root);
}

/*
 * The kernel's side of RTM_GETADDR dumps, scripted: every dump is two
 * datagrams, one RTM_NEWADDR for ifindex 2 ("10.0.0.N/24", N the dump's
 * number) and then NLMSG_DONE. The first @interrupted dumps are flagged
 * NLM_F_DUMP_INTR, the first of them on its address, the others on DONE
 * (where the kernel sets it when the table changed after the last part).
 */
struct nl_script {
	unsigned interrupted; /* dumps flagged interrupted before clean ones */
	int error;            /* answer every dump with NLMSG_ERROR @error instead */
	unsigned requests;    /* dumps asked for */
	uint32_t seq;         /* of the last one */
	unsigned part;        /* datagrams of it handed out */
};

static int script_send(void *ctx, const void *req, size_t len)
{
	struct nl_script *sc = ctx;
	const struct nlmsghdr *nh = req;

	CU_ASSERT_FATAL(len >= sizeof(*nh));
	CU_ASSERT_EQUAL(nh->nlmsg_type, RTM_GETADDR);
	CU_ASSERT_EQUAL(nh->nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
	sc->requests++;
	sc->seq = nh->nlmsg_seq;
	sc->part = 0;
	return 0;
}

static void put_attr(char *buf, size_t *len, unsigned short type, const void *data, size_t n)
{
	struct rtattr *rta = (struct rtattr *)(buf + *len);

	rta->rta_type = type;
	rta->rta_len = (unsigned short)RTA_LENGTH(n);
	memcpy(RTA_DATA(rta), data, n);
	*len += RTA_ALIGN(rta->rta_len);
}

static ssize_t script_recv(void *ctx, void *buf, size_t size)
{
	struct nl_script *sc = ctx;
	struct nlmsghdr *nh = buf;
	bool intr = sc->requests <= sc->interrupted;
	size_t len = NLMSG_HDRLEN;

	CU_ASSERT_FATAL(size >= 256 && sc->part < 2);
	memset(buf, 0, 256);
	nh->nlmsg_seq = sc->seq;
	nh->nlmsg_flags = NLM_F_MULTI;
	if (sc->error) {
		struct nlmsgerr *e = NLMSG_DATA(nh);

		nh->nlmsg_type = NLMSG_ERROR;
		e->error = sc->error;
		len += sizeof(*e);
	} else if (sc->part == 0) {
		struct ifaddrmsg *ifa = NLMSG_DATA(nh);
		char text[32];
		struct in_addr in;

		nh->nlmsg_type = RTM_NEWADDR;
		if (intr && sc->requests == 1)
			nh->nlmsg_flags |= NLM_F_DUMP_INTR;
		ifa->ifa_family = AF_INET;
		ifa->ifa_prefixlen = 24;
		ifa->ifa_index = 2;
		len += NLMSG_ALIGN(sizeof(*ifa));
		snprintf(text, sizeof(text), "10.0.0.%u", sc->requests);
		inet_pton(AF_INET, text, &in);
		put_attr(buf, &len, IFA_ADDRESS, &in, sizeof(in));
		put_attr(buf, &len, IFA_LOCAL, &in, sizeof(in));
	} else {
		nh->nlmsg_type = NLMSG_DONE;
		if (intr && sc->requests > 1)
			nh->nlmsg_flags |= NLM_F_DUMP_INTR;
		len += sizeof(int);
	}
	nh->nlmsg_len = (uint32_t)len;
	sc->part++;
	return (ssize_t)len;
}

/* A fixture with one link, eth0 (ifindex 2), read as if live through @sc. */
static int read_scripted(struct fx *f, struct nl_script *sc, struct vmc_arena *a,
			 Vmcheck__V1__State *st)
{
	struct vmc_nl_source nl = { script_send, script_recv, sc };
	struct vmc_state_opts o = { .root = f->root, .nl = &nl };

	o.root.live = true;
	vmcheck__v1__state__init(st);
	return vmc_state_read_links(&o, a, st);
}

/* Interrupted dumps are thrown away and retried: only the clean one counts. */
static void an_interrupted_address_dump_is_retried(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	struct nl_script sc = { .interrupted = 3 };
	Vmcheck__V1__State st;
	struct fx f;

	fx_init(&f);
	mk_netdev(&f, "eth0", 2, "1\n");
	CU_ASSERT_EQUAL_FATAL(read_scripted(&f, &sc, &a, &st), 0);
	CU_ASSERT_EQUAL(sc.requests, 4);
	CU_ASSERT_EQUAL_FATAL(st.n_links, 1);
	CU_ASSERT_EQUAL_FATAL(st.links[0]->n_addresses, 1);
	CU_ASSERT_STRING_EQUAL(st.links[0]->addresses[0]->address, "10.0.0.4");
	CU_ASSERT_EQUAL(st.links[0]->addresses[0]->prefixlen, 24);
	vmc_arena_free(&a);

	/* Not interrupted: one dump. */
	sc = (struct nl_script){ 0 };
	CU_ASSERT_EQUAL_FATAL(read_scripted(&f, &sc, &a, &st), 0);
	CU_ASSERT_EQUAL(sc.requests, 1);
	CU_ASSERT_STRING_EQUAL(st.links[0]->addresses[0]->address, "10.0.0.1");
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

/*
 * Four interrupted dumps in a row: the section fails with -EAGAIN and says
 * why, rather than passing off the last dump's partial table as the state.
 */
static void four_interrupted_dumps_fail_the_section(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	struct nl_script sc = { .interrupted = 100 };
	struct vmc_nl_source nl = { script_send, script_recv, &sc };
	struct vmc_state_opts o = { .nl = &nl };
	Vmcheck__V1__State st, *snap;
	struct fx f;

	fx_init(&f);
	mk_netdev(&f, "eth0", 2, "1\n");
	CU_ASSERT_EQUAL(read_scripted(&f, &sc, &a, &st), -EAGAIN);
	CU_ASSERT_EQUAL(sc.requests, 4);
	CU_ASSERT_PTR_NULL(st.links);
	vmc_arena_free(&a);

	/* In a snapshot: a section error that says what happened. */
	sc = (struct nl_script){ .interrupted = 100 };
	o.root = f.root;
	o.root.live = true;
	CU_ASSERT_EQUAL_FATAL(vmc_state_read(&o, VMCHECK__V1__SECTION__SECTION_LINKS, 1, &a, &snap),
			      0);
	CU_ASSERT_EQUAL(sc.requests, 4);
	CU_ASSERT_FALSE(snap->sections & VMCHECK__V1__SECTION__SECTION_LINKS);
	CU_ASSERT_EQUAL(snap->n_links, 0);
	CU_ASSERT_EQUAL_FATAL(snap->n_errors, 1);
	CU_ASSERT_EQUAL(snap->errors[0]->section, VMCHECK__V1__SECTION__SECTION_LINKS);
	CU_ASSERT_EQUAL(snap->errors[0]->errno_value, EAGAIN);
	CU_ASSERT_STRING_EQUAL(snap->errors[0]->message,
			       "reading links: address dump interrupted 4 times");
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

/* The kernel refusing the dump is the section's error, with its errno. */
static void a_refused_address_dump_fails_with_its_errno(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	struct nl_script sc = { .error = -EPERM };
	Vmcheck__V1__State st;
	struct fx f;

	fx_init(&f);
	mk_netdev(&f, "eth0", 2, "1\n");
	CU_ASSERT_EQUAL(read_scripted(&f, &sc, &a, &st), -EPERM);
	CU_ASSERT_EQUAL(sc.requests, 1);
	CU_ASSERT_PTR_NULL(vmc_state_explain_links(-EPERM));
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

VMC_SUITE(state_links, NULL, NULL, VMC_TEST(reads_the_committed_guest),
	  VMC_TEST(carrier_is_up_down_or_unknown),
	  VMC_TEST(vanished_links_and_non_links_are_skipped), VMC_TEST(failures_leave_no_section),
	  VMC_TEST(an_interrupted_address_dump_is_retried),
	  VMC_TEST(four_interrupted_dumps_fail_the_section),
	  VMC_TEST(a_refused_address_dump_fails_with_its_errno),
	  VMC_TEST(live_links_agree_with_the_kernel))
