/* SPDX-License-Identifier: MIT */
/*
 * The /dev/kmsg record parser on crafted records, the reader on a fixture
 * file of records, and once on this machine's own kernel log.
 */
#include <string.h>

#include "harness.h"
#include "kmsg.h"

#define ECODE(x) VMCHECK__V1__ERROR__CODE__##x

static struct vmc_arena arena = VMC_ARENA_INIT;

static Vmcheck__V1__KmsgRecord *parse(const char *rec)
{
	static Vmcheck__V1__KmsgRecord r;

	CU_ASSERT_EQUAL_FATAL(vmc_kmsg_parse(rec, strlen(rec), &arena, &r), 0);
	return &r;
}

static void a_plain_record(void)
{
	Vmcheck__V1__KmsgRecord *r =
		parse("6,339,5140900,-;NET: Registered PF_INET6 protocol family\n");

	CU_ASSERT_EQUAL(r->priority, 6);
	CU_ASSERT_EQUAL(r->facility, 0);
	CU_ASSERT_EQUAL(r->seq, 339);
	CU_ASSERT_EQUAL(r->ts_us, 5140900);
	CU_ASSERT_STRING_EQUAL(r->message, "NET: Registered PF_INET6 protocol family");
	CU_ASSERT_EQUAL(r->n_properties, 0);
	vmc_arena_free(&arena);
}

static void extra_header_fields_and_continuation_lines(void)
{
	Vmcheck__V1__KmsgRecord *r =
		parse("30,160,424069,c,caller=T1,future;virtio_blk virtio2: [vdb] 2097152 512-byte "
		      "logical blocks\n SUBSYSTEM=virtio\n DEVICE=+virtio:virtio2\n");

	/* 30 = facility 3 (daemon) << 3 | level 6 (info). */
	CU_ASSERT_EQUAL(r->facility, 3);
	CU_ASSERT_EQUAL(r->priority, 6);
	CU_ASSERT_EQUAL(r->seq, 160);
	CU_ASSERT_STRING_EQUAL(r->message,
			       "virtio_blk virtio2: [vdb] 2097152 512-byte logical blocks");
	CU_ASSERT_EQUAL_FATAL(r->n_properties, 2);
	CU_ASSERT_STRING_EQUAL(r->properties[0], "SUBSYSTEM=virtio");
	CU_ASSERT_STRING_EQUAL(r->properties[1], "DEVICE=+virtio:virtio2");
	vmc_arena_free(&arena);
}

static void escapes_are_decoded(void)
{
	Vmcheck__V1__KmsgRecord *r =
		parse("4,2,3,-;tab\\x09here back\\x5cslash \\xc3\\xa9t\\xC3\\xA9 nul\\x00 nl\\x0a\n"
		      " MODALIAS=a\\x3db\n");

	CU_ASSERT_STRING_EQUAL(r->message, "tab\there back\\slash \xc3\xa9t\xc3\xa9 nul\\x00 nl\n");
	CU_ASSERT_EQUAL_FATAL(r->n_properties, 1);
	CU_ASSERT_STRING_EQUAL(r->properties[0], "MODALIAS=a=b");
	/* An empty message is a message. */
	CU_ASSERT_STRING_EQUAL(parse("0,7,8,-;\n")->message, "");
	vmc_arena_free(&arena);
}

static void malformed_records_are_refused(void)
{
	static const char *const bad[] = {
		"",
		"\n",
		"6,339,5140900,-NET\n",             /* no ';' */
		"6,339,5140900;msg\n",              /* no flag */
		"6,339,5140900,x;msg\n",            /* unknown flag */
		"6,339,5140900,--;msg\n",           /* flag of two characters */
		"6,,5140900,-;msg\n",               /* empty seq */
		"6,3a9,5140900,-;msg\n",            /* junk in seq */
		"-6,339,5140900,-;msg\n",           /* sign */
		" 6,339,5140900,-;msg\n",           /* leading blank */
		"6,18446744073709551616,1,-;msg\n", /* seq overflows */
		"4294967296,1,1,-;msg\n",           /* priority over 32 bits */
		"6,339,5140900,-;no newline",
		"6,339,5140900,-,caller\n;msg\n", /* newline in the header */
		"6,339,5140900,-;bad \\xZ1 escape\n",
		"6,339,5140900,-;cut \\x4\n",
		"6,339,5140900,-;lone \\ backslash\n",
		"6,339,5140900,-;msg\nSUBSYSTEM=pci\n", /* continuation without blank */
		"6,339,5140900,-;msg\n NOEQUALS\n",
		"6,339,5140900,-;msg\n =value\n",  /* empty key */
		"6,339,5140900,-;msg\n KEY=v",     /* unterminated continuation */
		"6,339,5140900,-;msg\n KEY=\\q\n", /* bad escape in a value */
	};
	Vmcheck__V1__KmsgRecord r;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int got = vmc_kmsg_parse(bad[i], strlen(bad[i]), &arena, &r);

		if (got != -EINVAL)
			fprintf(stderr, "\n  accepted: '%s'\n", bad[i]);
		CU_ASSERT_EQUAL(got, -EINVAL);
		/* Validation alone refuses them as well. */
		CU_ASSERT_EQUAL(vmc_kmsg_parse(bad[i], strlen(bad[i]), NULL, &r), -EINVAL);
	}
	vmc_arena_free(&arena);
}

#define LOG                                               \
	"6,10,100,-;first\n"                              \
	"6,11,200,-;second\n SUBSYSTEM=net\n DEVICE=n2\n" \
	"6,x,300,-;garbled\n"                             \
	"3,12,300,-;third\n"                              \
	"6,13,400,c;fourth\n"

static void the_reader_filters_by_sequence_and_counts(void)
{
	Vmcheck__V1__Kmsg km = VMCHECK__V1__KMSG__INIT;
	struct vmc_outcome o;
	struct fx f;

	fx_init(&f);
	fx_write(&f, "dev/kmsg", LOG);
	CU_ASSERT_EQUAL_FATAL(vmc_kmsg_read(f.root.fd, 11, 0, 1 << 20, &arena, &km, &o), 0);
	CU_ASSERT_EQUAL_FATAL(km.n_records, 3);
	CU_ASSERT_EQUAL(km.records[0]->seq, 11);
	CU_ASSERT_EQUAL(km.records[0]->n_properties, 2);
	CU_ASSERT_STRING_EQUAL(km.records[1]->message, "third");
	CU_ASSERT_EQUAL(km.records[1]->priority, 3);
	CU_ASSERT_EQUAL(km.records[2]->seq, 13);
	CU_ASSERT_EQUAL(km.next_seq, 14);
	CU_ASSERT_EQUAL(km.malformed, 1);

	/* At most two: the next read goes on where this one stopped. */
	CU_ASSERT_EQUAL_FATAL(vmc_kmsg_read(f.root.fd, 0, 2, 1 << 20, &arena, &km, &o), 0);
	CU_ASSERT_EQUAL_FATAL(km.n_records, 2);
	CU_ASSERT_EQUAL(km.records[1]->seq, 11);
	CU_ASSERT_EQUAL(km.next_seq, 12);

	/* A byte budget for one short record only. */
	CU_ASSERT_EQUAL_FATAL(vmc_kmsg_read(f.root.fd, 0, 0, 60, &arena, &km, &o), 0);
	CU_ASSERT_EQUAL(km.n_records, 1);
	CU_ASSERT_EQUAL(km.next_seq, 11);

	/* Nothing new: no records, and next_seq stays. */
	CU_ASSERT_EQUAL_FATAL(vmc_kmsg_read(f.root.fd, 14, 0, 1 << 20, &arena, &km, &o), 0);
	CU_ASSERT_EQUAL(km.n_records, 0);
	CU_ASSERT_EQUAL(km.next_seq, 14);

	fx_remove(&f, "dev/kmsg");
	CU_ASSERT_EQUAL(vmc_kmsg_read(f.root.fd, 0, 0, 1 << 20, &arena, &km, &o), -ENOENT);
	CU_ASSERT_EQUAL(o.code, ECODE(NOT_FOUND));
	CU_ASSERT_STRING_EQUAL(o.msg, "opening dev/kmsg: No such file or directory");
	vmc_arena_free(&arena);
	fx_cleanup(&f);
}

static void this_machines_kernel_log_reads_in_order(void)
{
	Vmcheck__V1__Kmsg km = VMCHECK__V1__KMSG__INIT;
	struct vmc_sysroot live;
	struct vmc_outcome o;
	uint64_t third;

	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_open(&live, "/"), 0);
	CU_ASSERT_EQUAL_FATAL(vmc_kmsg_read(live.fd, 0, 5, 1 << 20, &arena, &km, &o), 0);
	CU_ASSERT_EQUAL_FATAL(km.n_records, 5);
	CU_ASSERT_EQUAL(km.malformed, 0);
	for (size_t i = 1; i < 5; i++)
		CU_ASSERT(km.records[i]->seq > km.records[i - 1]->seq);
	CU_ASSERT_EQUAL(km.next_seq, km.records[4]->seq + 1);
	third = km.records[2]->seq;
	CU_ASSERT_EQUAL_FATAL(vmc_kmsg_read(live.fd, third, 1, 1 << 20, &arena, &km, &o), 0);
	CU_ASSERT_EQUAL_FATAL(km.n_records, 1);
	CU_ASSERT_EQUAL(km.records[0]->seq, third);
	vmc_arena_free(&arena);
	vmc_sysroot_close(&live);
}

VMC_SUITE(kmsg, NULL, NULL, VMC_TEST(a_plain_record),
	  VMC_TEST(extra_header_fields_and_continuation_lines), VMC_TEST(escapes_are_decoded),
	  VMC_TEST(malformed_records_are_refused),
	  VMC_TEST(the_reader_filters_by_sequence_and_counts),
	  VMC_TEST(this_machines_kernel_log_reads_in_order))
