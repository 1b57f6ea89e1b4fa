/* SPDX-License-Identifier: MIT */
/* Tests of the crash section reader. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "harness.h"
#include "state.h"

#define FMT(x) VMCHECK__V1__CRASH_DUMP__FORMAT__FORMAT_##x

static Vmcheck__V1__Crash *read_crash(const struct vmc_sysroot *root, const char *const *dirs,
				      struct vmc_arena *a)
{
	struct vmc_state_opts o = { .root = *root, .crash_dirs = dirs };
	Vmcheck__V1__State st = VMCHECK__V1__STATE__INIT;

	CU_ASSERT_EQUAL_FATAL(vmc_state_read_crash(&o, a, &st), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st.crash);
	return st.crash;
}

/* Write @len bytes of @data (NULs allowed) to @rel under the scratch tree. */
static void write_bytes(struct fx *f, const char *rel, const void *data, size_t len)
{
	char p[2 * PATH_MAX];
	FILE *fp;

	fx_write(f, rel, "");
	snprintf(p, sizeof(p), "%s/%s", f->path, rel);
	fp = fopen(p, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	CU_ASSERT_EQUAL(fwrite(data, 1, len, fp), len);
	fclose(fp);
}

static void reads_the_committed_guest(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	const Vmcheck__V1__CrashDump *d;
	const Vmcheck__V1__CrashDir *dir;
	struct vmc_sysroot root;
	Vmcheck__V1__Crash *c;

	fx_open_committed("kdump-guest", &root);
	c = read_crash(&root, NULL, &a);
	CU_ASSERT_TRUE(c->kexec_crash_loaded);
	CU_ASSERT_FALSE(c->capture_kernel);
	CU_ASSERT_EQUAL(c->crash_size, 96 << 20);
	CU_ASSERT_PTR_NOT_NULL(strstr(c->cmdline, "crashkernel=96M"));
	CU_ASSERT_EQUAL_FATAL(c->n_dirs, 2);

	dir = c->dirs[0];
	CU_ASSERT_STRING_EQUAL(dir->path, "/var/crash");
	CU_ASSERT_TRUE(dir->exists);
	CU_ASSERT_EQUAL_FATAL(dir->n_dumps, 3);

	d = dir->dumps[0];
	CU_ASSERT_STRING_EQUAL(d->name, "127.0.0.1-2024-08-22-01:49:50");
	CU_ASSERT_TRUE(d->has_vmcore);
	CU_ASSERT_EQUAL(d->format, FMT(KDUMP));
	CU_ASSERT_EQUAL(d->vmcore_size, 4096);
	CU_ASSERT_FALSE(d->incomplete);
	CU_ASSERT_EQUAL_FATAL(d->n_files, 2);
	CU_ASSERT_STRING_EQUAL(d->files[0]->name, "vmcore");
	CU_ASSERT_EQUAL(d->files[0]->size, 4096);
	CU_ASSERT_STRING_EQUAL(d->files[1]->name, "vmcore-dmesg.txt");
	CU_ASSERT(d->mtime_s > 0);

	d = dir->dumps[1];
	CU_ASSERT_EQUAL(d->format, FMT(ELF));
	CU_ASSERT_EQUAL(d->vmcore_size, 64);
	CU_ASSERT_FALSE(d->incomplete);

	/* makedumpfile was cut short: its partial output still has a header. */
	d = dir->dumps[2];
	CU_ASSERT_TRUE(d->incomplete);
	CU_ASSERT_TRUE(d->has_vmcore);
	CU_ASSERT_EQUAL(d->format, FMT(KDUMP));
	CU_ASSERT_EQUAL(d->vmcore_size, 512);

	dir = c->dirs[1];
	CU_ASSERT_STRING_EQUAL(dir->path, "/var/oled/crash");
	CU_ASSERT_FALSE(dir->exists);
	CU_ASSERT_FALSE(dir->writable);
	CU_ASSERT_EQUAL(dir->n_dumps, 0);
	vmc_arena_free(&a);
	vmc_sysroot_close(&root);
}

static void each_format_is_detected(void)
{
	static const char *const dirs[] = { "dumps", NULL };
	static const unsigned char elf[] = { 0x7f, 'E', 'L', 'F', 2, 1, 1, 0 };
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__CrashDump **d;
	Vmcheck__V1__Crash *c;
	struct fx f;

	fx_init(&f);
	write_bytes(&f, "dumps/a-elf/vmcore", elf, sizeof(elf));
	write_bytes(&f, "dumps/b-kdump/vmcore", "KDUMP   \x06\0\0\0", 12);
	write_bytes(&f, "dumps/c-flat/vmcore.flat", "makedumpfile\0\0\0\0\x01", 17);
	fx_write(&f, "dumps/d-junk/vmcore", "not a dump at all\n");
	fx_write(&f, "dumps/e-short/vmcore", "\177EL");
	fx_write(&f, "dumps/f-none/vmcore-dmesg.txt", "dmesg only\n");
	/* kdump-tools names its dump "dump.<timestamp>". */
	write_bytes(&f, "dumps/g-debian/dump.202408220149", elf, sizeof(elf));
	fx_mkdir(&f, "dumps/h-empty");
	c = read_crash(&f.root, dirs, &a);
	CU_ASSERT_EQUAL_FATAL(c->n_dirs, 1);
	CU_ASSERT_TRUE(c->dirs[0]->writable);
	CU_ASSERT_EQUAL_FATAL(c->dirs[0]->n_dumps, 8);
	d = c->dirs[0]->dumps;
	CU_ASSERT_EQUAL(d[0]->format, FMT(ELF));
	CU_ASSERT_EQUAL(d[1]->format, FMT(KDUMP));
	CU_ASSERT_EQUAL(d[2]->format, FMT(KDUMP));
	CU_ASSERT_EQUAL(d[2]->vmcore_size, 17);
	CU_ASSERT_EQUAL(d[3]->format, FMT(UNKNOWN));
	CU_ASSERT_EQUAL(d[4]->format, FMT(UNKNOWN));
	CU_ASSERT_TRUE(d[4]->has_vmcore);
	CU_ASSERT_EQUAL(d[5]->format, FMT(NONE));
	CU_ASSERT_FALSE(d[5]->has_vmcore);
	CU_ASSERT_EQUAL(d[5]->vmcore_size, 0);
	CU_ASSERT_EQUAL(d[6]->format, FMT(ELF));
	CU_ASSERT_TRUE(d[6]->has_vmcore);
	CU_ASSERT_EQUAL(d[7]->n_files, 0);
	CU_ASSERT_EQUAL(d[7]->format, FMT(NONE));
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

static void exact_vmcore_name_is_preferred(void)
{
	static const char *const dirs[] = { "var/crash", NULL };
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__CrashDump *d;
	struct fx f;

	fx_init(&f);
	fx_write(&f, "var/crash/1/dump.1", "makedumpfile");
	fx_write(&f, "var/crash/1/vmcore-incomplete", "KDUMP   ");
	fx_write(&f, "var/crash/1/vmcore-dmesg-incomplete.txt", "[0.0] log");
	fx_write(&f, "var/crash/1/vmcore", "\177ELF....");
	fx_write(&f, "var/crash/1/vmcore.flat", "makedumpfile....");
	d = read_crash(&f.root, dirs, &a)->dirs[0]->dumps[0];
	CU_ASSERT_EQUAL(d->n_files, 5);
	CU_ASSERT_EQUAL(d->format, FMT(ELF));
	CU_ASSERT_EQUAL(d->vmcore_size, 8);
	CU_ASSERT_TRUE(d->incomplete);
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

static void special_files_are_never_opened(void)
{
	static const char *const dirs[] = { "var/crash", NULL };
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__CrashDump *d;
	Vmcheck__V1__CrashDir *dir;
	char p[2 * PATH_MAX];
	struct fx f;

	fx_init(&f);
	fx_mkdir(&f, "var/crash/fifo");
	snprintf(p, sizeof(p), "%s/var/crash/fifo/vmcore", f.path);
	CU_ASSERT_EQUAL_FATAL(mkfifo(p, 0600), 0);
	fx_symlink(&f, "/dev/zero", "var/crash/fifo/vmcore.flat");
	fx_symlink(&f, "vmcore", "var/crash/fifo/vmcore-1");
	/* Entries of the crash dir that are no directories are no dumps. */
	fx_mkdir(&f, "elsewhere/dump");
	fx_symlink(&f, "../../elsewhere/dump", "var/crash/linked");
	fx_write(&f, "var/crash/kexec_cmd", "kexec -p\n");
	snprintf(p, sizeof(p), "%s/var/crash/pipe", f.path);
	CU_ASSERT_EQUAL_FATAL(mkfifo(p, 0600), 0);
	dir = read_crash(&f.root, dirs, &a)->dirs[0];
	CU_ASSERT_EQUAL_FATAL(dir->n_dumps, 1);
	d = dir->dumps[0];
	CU_ASSERT_STRING_EQUAL(d->name, "fifo");
	CU_ASSERT_EQUAL(d->n_files, 0);
	CU_ASSERT_FALSE(d->has_vmcore);
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

static void custom_dirs_in_order(void)
{
	static const char *const dirs[] = { "/srv/dumps", "var/crash", "/", NULL };
	const struct timespec when[2] = { { 1724291390, 0 }, { 1724291390, 0 } };
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__Crash *c;
	char p[2 * PATH_MAX];
	struct fx f;

	fx_init(&f);
	fx_write(&f, "srv/dumps/d1/vmcore", "KDUMP   ");
	snprintf(p, sizeof(p), "%s/srv/dumps/d1", f.path);
	CU_ASSERT_EQUAL_FATAL(utimensat(AT_FDCWD, p, when, 0), 0);
	c = read_crash(&f.root, dirs, &a);
	CU_ASSERT_FALSE(c->kexec_crash_loaded);
	CU_ASSERT_EQUAL(c->crash_size, 0);
	CU_ASSERT_STRING_EQUAL(c->cmdline, "");
	CU_ASSERT_EQUAL_FATAL(c->n_dirs, 3);
	CU_ASSERT_STRING_EQUAL(c->dirs[0]->path, "/srv/dumps");
	CU_ASSERT_TRUE(c->dirs[0]->exists);
	CU_ASSERT_EQUAL_FATAL(c->dirs[0]->n_dumps, 1);
	CU_ASSERT_EQUAL(c->dirs[0]->dumps[0]->mtime_s, 1724291390);
	CU_ASSERT_EQUAL(c->dirs[0]->dumps[0]->format, FMT(KDUMP));
	CU_ASSERT_STRING_EQUAL(c->dirs[1]->path, "/var/crash");
	CU_ASSERT_FALSE(c->dirs[1]->exists);
	/* The root itself: its subdirectories are the dumps. */
	CU_ASSERT_STRING_EQUAL(c->dirs[2]->path, "/");
	CU_ASSERT_TRUE(c->dirs[2]->exists);
	CU_ASSERT_EQUAL(c->dirs[2]->n_dumps, 1);
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

/* The embedded guest's capture boot while makedumpfile writes (real data). */
static void reads_a_capture_boot(void)
{
	struct vmc_arena a = VMC_ARENA_INIT;
	const Vmcheck__V1__CrashDump *d;
	struct vmc_sysroot root;
	Vmcheck__V1__Crash *c;

	fx_open_committed("kdump-capture", &root);
	c = read_crash(&root, NULL, &a);
	CU_ASSERT_TRUE(c->capture_kernel);
	CU_ASSERT_FALSE(c->kexec_crash_loaded);
	CU_ASSERT_PTR_NOT_NULL(strstr(c->cmdline, " elfcorehdr="));
	CU_ASSERT_EQUAL_FATAL(c->dirs[0]->n_dumps, 1);
	d = c->dirs[0]->dumps[0];
	CU_ASSERT_STRING_EQUAL(d->name, "2026-11-22-01:21:20");
	CU_ASSERT_TRUE(d->incomplete);
	CU_ASSERT_TRUE(d->has_vmcore);
	CU_ASSERT_EQUAL(d->format, FMT(KDUMP));
	CU_ASSERT_EQUAL(d->vmcore_size, 512);
	/* No mountinfo in the fixture: the mount is unknown, not guessed. */
	CU_ASSERT_STRING_EQUAL(c->dirs[0]->fs_type, "");
	vmc_arena_free(&a);
	vmc_sysroot_close(&root);
}

/* "MAJ:MIN" of the directory @rel of the scratch tree, and another device. */
static void dev_of(struct fx *f, const char *rel, char mine[32], char other[32])
{
	char p[2 * PATH_MAX];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/%s", f->path, rel);
	CU_ASSERT_EQUAL_FATAL(stat(p, &sb), 0);
	snprintf(mine, 32, "%u:%u", major(sb.st_dev), minor(sb.st_dev));
	snprintf(other, 32, "%u:%u", major(sb.st_dev) + 1, minor(sb.st_dev));
}

static void mount_of_each_dir(void)
{
	static const char *const dirs[] = { "var/crash", "srv/my dumps", "var/oled/crash", NULL };
	struct vmc_arena a = VMC_ARENA_INIT;
	char mi[2048], dev[32], other[32];
	Vmcheck__V1__Crash *c;
	struct fx f;

	fx_init(&f);
	fx_mkdir(&f, "var/crash/lost+found");
	fx_mkdir(&f, "srv/my dumps");
	dev_of(&f, "var/crash", dev, other);
	snprintf(mi, sizeof(mi),
		 "1 1 %s / / rw - rootfs rootfs rw\n"
		 /* Same device, covers /var/crash but is not the longest. */
		 "20 1 %s / /var rw shared:1 - tmpfs tmpfs rw\n"
		 "21 20 %s / /var/crash rw,relatime shared:2 - ext4 /dev/vda rw\n"
		 /* A prefix of the path but not a parent directory of it. */
		 "22 20 %s / /var/crashed rw - ext4 /dev/vdb rw\n"
		 /* Longer and covering, but another device. */
		 "23 21 %s / /var/crash/sub rw - ext4 /dev/vdc rw\n"
		 "24 1 %s /exports /srv/my\\040dumps rw - nfs srv:/my\\040dumps rw\n",
		 other, dev, dev, dev, other, dev);
	fx_write(&f, "proc/self/mountinfo", mi);
	c = read_crash(&f.root, dirs, &a);
	CU_ASSERT_FALSE(c->capture_kernel);
	CU_ASSERT_EQUAL_FATAL(c->n_dirs, 3);
	CU_ASSERT_STRING_EQUAL(c->dirs[0]->mount_point, "/var/crash");
	CU_ASSERT_STRING_EQUAL(c->dirs[0]->fs_type, "ext4");
	CU_ASSERT_STRING_EQUAL(c->dirs[0]->mount_source, "/dev/vda");
	CU_ASSERT_EQUAL(c->dirs[0]->n_dumps, 0); /* lost+found is no dump */
	CU_ASSERT_STRING_EQUAL(c->dirs[1]->mount_point, "/srv/my dumps");
	CU_ASSERT_STRING_EQUAL(c->dirs[1]->fs_type, "nfs");
	CU_ASSERT_STRING_EQUAL(c->dirs[1]->mount_source, "srv:/my dumps");
	CU_ASSERT_FALSE(c->dirs[2]->exists);
	CU_ASSERT_STRING_EQUAL(c->dirs[2]->mount_point, "");
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

/* A RAM-backed root (the initramfs) covers a crash dir nothing is mounted on. */
static void initramfs_root_is_reported(void)
{
	static const char *const dirs[] = { "var/crash", NULL };
	struct vmc_arena a = VMC_ARENA_INIT;
	char mi[512], dev[32], other[32];
	Vmcheck__V1__CrashDir *d;
	struct fx f;

	fx_init(&f);
	fx_mkdir(&f, "var/crash");
	dev_of(&f, "var/crash", dev, other);
	snprintf(mi, sizeof(mi),
		 "1 1 %s / / rw - rootfs rootfs rw\n"
		 "17 1 %s / /proc rw - proc proc rw\n",
		 dev, other);
	fx_write(&f, "proc/self/mountinfo", mi);
	d = read_crash(&f.root, dirs, &a)->dirs[0];
	CU_ASSERT_STRING_EQUAL(d->mount_point, "/");
	CU_ASSERT_STRING_EQUAL(d->fs_type, "rootfs");
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

/* Whatever mountinfo holds, the section is read; the mount stays unknown. */
static void malformed_mountinfo_leaves_the_mount_unknown(void)
{
	static const char *const bad[] = {
		"21 20 %s / /var/crash rw ext4 /dev/vda rw\n",      /* no " - " */
		"21 20 %s / /var/crash - ext4 /dev/vda rw\n",       /* too few fields */
		"21 20 254 / /var/crash rw - ext4 /dev/vda rw\n",   /* no MAJ:MIN */
		"21 20 %s / /var/cr\\9ash rw - ext4 /dev/vda rw\n", /* bad escape */
		"21 20 %s / /var/crash rw - ext4\n",                /* no source */
	};
	static const char *const dirs[] = { "var/crash", NULL };
	char mi[512], dev[32], other[32];
	struct fx f;

	fx_init(&f);
	fx_mkdir(&f, "var/crash");
	dev_of(&f, "var/crash", dev, other);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct vmc_arena a = VMC_ARENA_INIT;
		Vmcheck__V1__CrashDir *d;

		snprintf(mi, sizeof(mi), bad[i], dev);
		fx_write(&f, "proc/self/mountinfo", mi);
		d = read_crash(&f.root, dirs, &a)->dirs[0];
		CU_ASSERT_TRUE(d->exists);
		if (strcmp(d->fs_type, ""))
			fprintf(stderr, "\nline %zu gave fs_type %s\n", i, d->fs_type);
		CU_ASSERT_STRING_EQUAL(d->fs_type, "");
		vmc_arena_free(&a);
	}
	fx_cleanup(&f);
}

/*
 * While kexec loads a crash kernel, kexec_crash_size fails (EBUSY): the
 * reservation is read from iomem instead, every "Crash kernel" range.
 */
static void crash_size_from_iomem_while_kexec_loads(void)
{
	static const char *const dirs[] = { "var/crash", NULL };
	struct vmc_arena a = VMC_ARENA_INIT;
	Vmcheck__V1__Crash *c;
	struct fx f;

	fx_init(&f);
	/* A directory in its place: reading it fails, as EBUSY does. */
	fx_mkdir(&f, "sys/kernel/kexec_crash_size");
	fx_write(&f, "sys/kernel/kexec_crash_loaded", "0\n");
	fx_write(&f, "proc/iomem",
		 "00000000-00000fff : Reserved\n"
		 "00100000-1ffdcfff : System RAM\n"
		 "  0d000000-0dffffff : Kernel code\n"
		 "  18000000-1dffffff : Crash kernel\n"
		 "100000000-13fffffff : System RAM\n"
		 "  120000000-120ffffff : Crash kernel\n"
		 "b0000000-bfffffff : PCI MMCONFIG 0000 [bus 00-ff]\n");
	c = read_crash(&f.root, dirs, &a);
	CU_ASSERT_FALSE(c->kexec_crash_loaded);
	CU_ASSERT_EQUAL(c->crash_size, (96ull << 20) + (16ull << 20));
	vmc_arena_free(&a);

	/* A malformed range: nothing is guessed. */
	fx_write(&f, "proc/iomem", "  18000000-zz : Crash kernel\n");
	CU_ASSERT_EQUAL(read_crash(&f.root, dirs, &a)->crash_size, 0);
	vmc_arena_free(&a);
	/* kexec_crash_size, when it answers, is the one believed. */
	fx_remove(&f, "sys/kernel/kexec_crash_size");
	fx_write(&f, "sys/kernel/kexec_crash_size", "4096\n");
	CU_ASSERT_EQUAL(read_crash(&f.root, dirs, &a)->crash_size, 4096);
	vmc_arena_free(&a);
	fx_cleanup(&f);
}

VMC_SUITE(state_crash, NULL, NULL, VMC_TEST(reads_the_committed_guest),
	  VMC_TEST(each_format_is_detected), VMC_TEST(exact_vmcore_name_is_preferred),
	  VMC_TEST(special_files_are_never_opened), VMC_TEST(custom_dirs_in_order),
	  VMC_TEST(reads_a_capture_boot), VMC_TEST(mount_of_each_dir),
	  VMC_TEST(initramfs_root_is_reported),
	  VMC_TEST(malformed_mountinfo_leaves_the_mount_unknown),
	  VMC_TEST(crash_size_from_iomem_while_kexec_loads))
