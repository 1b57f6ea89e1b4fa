/* SPDX-License-Identifier: MIT */
/* Tests of the sysroot helpers every reader stands on. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "sysroot.h"

static void read_str_strips_newlines_and_bounds(void)
{
	struct fx f;
	char buf[8];

	fx_init(&f);
	fx_write(&f, "a", "hello\n\n");
	fx_write(&f, "big", "0123456789\n");
	CU_ASSERT_EQUAL(vmc_sysroot_read_str(f.root.fd, "a", buf, sizeof(buf)), 5);
	CU_ASSERT_STRING_EQUAL(buf, "hello");
	CU_ASSERT_EQUAL(vmc_sysroot_read_str(f.root.fd, "big", buf, sizeof(buf)), -EOVERFLOW);
	CU_ASSERT_EQUAL(vmc_sysroot_read_str(f.root.fd, "missing", buf, sizeof(buf)), -ENOENT);
	/* A leading slash stays inside the root. */
	CU_ASSERT_EQUAL(vmc_sysroot_read_str(f.root.fd, "/a", buf, sizeof(buf)), 5);
	fx_cleanup(&f);
}

static void links_resolve_inside_the_root(void)
{
	struct fx f;
	char out[256];

	fx_init(&f);
	fx_mkdir(&f, "sys/devices/pci0000:00/0000:00:02.0/0000:01:00.0/virtio1/net/eth0");
	fx_symlink(&f, "../../devices/pci0000:00/0000:00:02.0/0000:01:00.0/virtio1/net/eth0",
		   "sys/class/net/eth0");
	CU_ASSERT_EQUAL(vmc_sysroot_resolve_linkf(f.root.fd, out, sizeof(out), "sys/class/net/%s",
						  "eth0"),
			0);
	CU_ASSERT_STRING_EQUAL(out,
			       "sys/devices/pci0000:00/0000:00:02.0/0000:01:00.0/virtio1/net/eth0");
	fx_symlink(&f, "../../../../../../..", "sys/class/net/evil");
	CU_ASSERT_EQUAL(vmc_sysroot_resolve_linkf(f.root.fd, out, sizeof(out),
						  "sys/class/net/evil"),
			-EXDEV);
	CU_ASSERT_EQUAL(vmc_sysroot_link_basef(f.root.fd, out, sizeof(out), "sys/class/net/eth0"),
			0);
	CU_ASSERT_STRING_EQUAL(out, "eth0");
	fx_cleanup(&f);
}

static void dir_listing_sorts_naturally(void)
{
	struct fx f;
	char **names;
	int n;

	fx_init(&f);
	fx_mkdir(&f, "d/cpu10");
	fx_mkdir(&f, "d/cpu2");
	fx_mkdir(&f, "d/cpu1");
	n = vmc_sysroot_list_dirf(f.root.fd, &names, "d");
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT_STRING_EQUAL(names[0], "cpu1");
	CU_ASSERT_STRING_EQUAL(names[1], "cpu2");
	CU_ASSERT_STRING_EQUAL(names[2], "cpu10");
	vmc_sysroot_names_free(names, n);
	CU_ASSERT_EQUAL(vmc_sysroot_list_dirf(f.root.fd, &names, "nope"), -ENOENT);
	fx_cleanup(&f);
}

/* More entries than one getdents64 buffer holds; "." and ".." left out. */
static void dir_iterator_reads_past_one_buffer(void)
{
	enum {
		N = 300
	};
	static bool seen[N];
	struct vmc_sysroot_dir d;
	const char *name;
	struct fx f;
	char rel[96];
	int r, n = 0;

	fx_init(&f);
	for (int i = 0; i < N; i++) {
		snprintf(rel, sizeof(rel), "d/entry-with-a-name-long-enough-to-fill-%03d", i);
		fx_mkdir(&f, rel);
	}
	memset(seen, 0, sizeof(seen));
	CU_ASSERT_EQUAL_FATAL(vmc_sysroot_dir_open(&d, f.root.fd, "d"), 0);
	while ((r = vmc_sysroot_dir_next(&d, &name)) > 0) {
		int i;

		CU_ASSERT_EQUAL(sscanf(name, "entry-with-a-name-long-enough-to-fill-%d", &i), 1);
		if (i >= 0 && i < N) {
			CU_ASSERT_FALSE(seen[i]);
			seen[i] = true;
		}
		n++;
	}
	vmc_sysroot_dir_close(&d);
	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT_EQUAL(n, N);
	fx_write(&f, "file", "x");
	CU_ASSERT_EQUAL(vmc_sysroot_dir_open(&d, f.root.fd, "file"), -ENOTDIR);
	CU_ASSERT_EQUAL(vmc_sysroot_dir_open(&d, f.root.fd, "nope"), -ENOENT);
	fx_cleanup(&f);
}

VMC_SUITE(sysroot, NULL, NULL, VMC_TEST(read_str_strips_newlines_and_bounds),
	  VMC_TEST(links_resolve_inside_the_root), VMC_TEST(dir_listing_sorts_naturally),
	  VMC_TEST(dir_iterator_reads_past_one_buffer))
