/* SPDX-License-Identifier: MIT */
/*
 * The launcher's QEMU command lines for x86_64 and aarch64 guests, what it
 * refuses before starting anything, the UEFI variable store it copies, and
 * the accelerator a foreign guest gets.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "accel.h"
#include "harness.h"
#include "macro.h"
#include "qemu.h"

static const struct vmc_qemu_argv_in in = { .accel = "tcg",
					    .workdir = "/w",
					    .qmp_fd = 3,
					    .agent_fd = 4 };

/* The command line of @cfg with @in, one argument a line; NULL if refused. */
static char *line_of(const struct vmc_qemu_config *cfg, const struct vmc_qemu_argv_in *i)
{
	struct vmc_error err = VMC_ERROR_INIT;
	char **v = NULL, *s = NULL;
	size_t len = 0;
	FILE *f;

	if (vmc_qemu_argv(cfg, i, &v, &err) < 0) {
		fprintf(stderr, "refused: %s\n", err.msg);
		vmc_error_clear(&err);
		return NULL;
	}
	f = open_memstream(&s, &len);
	for (size_t n = 0; f && v[n]; n++)
		fprintf(f, "%s\n", v[n]);
	if (f)
		fclose(f);
	vmc_qemu_argv_free(v);
	return s;
}

/* What the root ports, the agent, the boot NIC and the crash disk look like on both arches. */
#define PORTS                                                                     \
	"-device\npcie-root-port,id=pciroot1,chassis=1,slot=1\n"                  \
	"-device\npcie-root-port,id=pciroot2,chassis=2,slot=2\n"                  \
	"-device\npcie-root-port,id=pciroot3,chassis=3,slot=3\n"                  \
	"-device\npcie-root-port,id=pciroot4,chassis=4,slot=4\n"                  \
	"-device\npcie-root-port,id=pciroot5,chassis=5,slot=5\n"                  \
	"-device\npcie-root-port,id=pciroot6,chassis=6,slot=6\n"                  \
	"-device\npcie-root-port,id=pciroot7,chassis=7,slot=7\n"                  \
	"-device\npcie-root-port,id=pciroot8,chassis=8,slot=8\n"                  \
	"-device\npcie-root-port,id=rp-agent,chassis=9,slot=9\n"                  \
	"-device\nvirtio-serial-pci,id=agent-serial,bus=rp-agent\n"               \
	"-chardev\nsocket,id=agent,fd=4,server=on,wait=off\n"                     \
	"-device\nvirtserialport,id=agent-port,bus=agent-serial.0,chardev=agent," \
	"name=org.vmcheck.agent.0\n"                                              \
	"-device\npcie-root-port,id=rp-net,chassis=10,slot=10\n"                  \
	"-netdev\nuser,id=boot-net\n"                                             \
	"-device\nvirtio-net-pci,id=boot-nic,netdev=boot-net,bus=rp-net\n"
#define CRASH_DISK                                                                 \
	"-device\npcie-root-port,id=rp-crash,chassis=11,slot=11\n"                 \
	"-blockdev\ndriver=file,filename=/w/crash-disk.img,node-name=crash-file\n" \
	"-blockdev\ndriver=raw,file=crash-file,node-name=crash-blk\n"              \
	"-device\nvirtio-blk-pci,id=crash-disk,drive=crash-blk,serial=vmcheck-crash,bus=rp-crash\n"
#define BOOT                                                \
	"-kernel\nk\n-initrd\ni\n-append\nconsole=X\n"      \
	"-chardev\nsocket,id=qmp,fd=3,server=on,wait=off\n" \
	"-mon\nchardev=qmp,mode=control\n"                  \
	"-chardev\nfile,id=console,path=/w/console.log\n"   \
	"-serial\nchardev:console\n"

static void the_x86_64_line_is_q35_with_s3(void)
{
	struct vmc_qemu_config cfg = { .kernel = "k", .initrd = "i", .append = "console=X" };

	/* As the launcher has always started it: these words are what QA's hosts run. */
	fx_str_is(line_of(&cfg, &in),
		  "qemu-system-x86_64\n-name\nvmcheck\n-machine\nq35\n-accel\ntcg\n"
		  "-cpu\nqemu64\n-m\n512M,slots=4,maxmem=4096M\n-smp\n1,maxcpus=4\n"
		  "-nodefaults\n-no-user-config\n-display\nnone\n"
		  "-global\nICH9-LPC.disable_s3=0\n" BOOT PORTS "-device\npvpanic\n" CRASH_DISK,
		  "x86_64");
	/* A wrapper script's name says no arch: x86_64, the binary as given. */
	cfg.qemu = "/opt/q/qemu-wrapper";
	cfg.accel = "auto";
	fx_str_is(line_of(&cfg, &in),
		  "/opt/q/qemu-wrapper\n-name\nvmcheck\n-machine\nq35\n-accel\ntcg\n"
		  "-cpu\nqemu64\n-m\n512M,slots=4,maxmem=4096M\n-smp\n1,maxcpus=4\n"
		  "-nodefaults\n-no-user-config\n-display\nnone\n"
		  "-global\nICH9-LPC.disable_s3=0\n" BOOT PORTS "-device\npvpanic\n" CRASH_DISK,
		  "x86_64 through a wrapper");
}

static void the_aarch64_line_is_virt_with_uefi(void)
{
	struct vmc_qemu_config cfg = { .arch = &vmc_arch_aarch64,
				       .kernel = "k",
				       .initrd = "i",
				       .append = "console=X" };
	const char *want =
		"qemu-system-aarch64\n-name\nvmcheck\n-machine\nvirt,gic-version=3\n-accel\ntcg\n"
		"-cpu\ncortex-a57\n-m\n512M,slots=4,maxmem=4096M\n-smp\n1,maxcpus=4\n"
		"-nodefaults\n-no-user-config\n-display\nnone\n"
		"-drive\nif=pflash,format=raw,readonly=on,file=/usr/share/AAVMF/AAVMF_CODE.fd\n"
		"-drive\nif=pflash,format=raw,file=/w/efi-vars.fd\n" BOOT PORTS
		"-device\npvpanic-pci\n" CRASH_DISK "-device\nvirtio-keyboard-pci,id=keyboard\n";

	fx_str_is(line_of(&cfg, &in), want, "--arch aarch64");
	/* The binary's name alone says aarch64, and is kept as given. */
	cfg.arch = NULL;
	cfg.qemu = "qemu-system-aarch64";
	fx_str_is(line_of(&cfg, &in), want, "--qemu qemu-system-aarch64");
}

static void aarch64_options_follow_the_x86_ones(void)
{
	struct vmc_qemu_config cfg = {
		.arch = &vmc_arch_aarch64,
		.qemu = "/usr/bin/qemu-system-aarch64",
		.kernel = "k",
		.initrd = "i",
		.append = "a,b",
		.ram_bytes = 64ULL << 30,
		.hotplug_ports = 1,
		.cpus = 2,
		.maxcpus = 2,
		.agent_ssh = true,
	};
	struct vmc_qemu_argv_in ssh = in;
	char *s;

	ssh.ssh_port = 2222;
	ssh.workdir = "/w,x";
	s = line_of(&cfg, &ssh);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	/*
	 * One RAM backend, no DIMM slots, and -m its size (arm virt refuses a
	 * backend above -m's default); ',' in paths doubled for QEMU's option parser.
	 */
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "-machine\nvirt,gic-version=3,memory-backend=ram0\n"));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(s, "-object\nmemory-backend-ram,id=ram0,size=68719476736,reserve=off\n"
			  "-m\n65536M\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "-smp\n2,maxcpus=2\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "-append\na,b\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "-drive\nif=pflash,format=raw,file=/w,,x/efi-vars.fd\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "user,id=boot-net,hostfwd=tcp:127.0.0.1:2222-:22\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "pcie-root-port,id=pciroot1,chassis=1,slot=1\n"));
	CU_ASSERT_PTR_NULL(strstr(s, "pciroot2"));
	/* Nothing of q35's. */
	CU_ASSERT_PTR_NULL(strstr(s, "ICH9"));
	CU_ASSERT_PTR_NULL(strstr(s, "q35"));
	CU_ASSERT_PTR_NULL(strstr(s, "-device\npvpanic\n"));
	/* The keyboard comes before the extra arguments, after everything x86 has too. */
	CU_ASSERT_PTR_NOT_NULL(
		strstr(s, "bus=rp-crash\n-device\nvirtio-keyboard-pci,id=keyboard\n"));
	free(s);
}

/* @cfg refused by vmc_qemu_argv() with exactly @want. */
static void argv_refused(const struct vmc_qemu_config *cfg, const char *want)
{
	struct vmc_error err = VMC_ERROR_INIT;
	char **v = NULL;

	CU_ASSERT_EQUAL(vmc_qemu_argv(cfg, &in, &v, &err), -EINVAL);
	CU_ASSERT_PTR_NULL(v);
	fx_str_is(err.msg ? strdup(err.msg) : NULL, want, "refusal");
	vmc_error_clear(&err);
}

static void phys_bits_is_for_x86_only(void)
{
	struct vmc_qemu_config cfg = { .kernel = "k",
				       .initrd = "i",
				       .append = "c",
				       .phys_bits = 42,
				       .ram_bytes = 1ULL << 40 };
	char *s = line_of(&cfg, &in);

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "-machine\nq35,memory-backend=ram0\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "-cpu\nqemu64,phys-bits=42\n"));
	/* q35 takes the backend's size without -m (measured up to 1 TiB). */
	CU_ASSERT_PTR_NULL(strstr(s, "\n-m\n"));
	free(s);
	cfg.arch = &vmc_arch_aarch64;
	argv_refused(&cfg, "phys-bits 42: an x86 CPU property, an aarch64 guest has none");
	cfg.phys_bits = 0;
	cfg.append = NULL;
	argv_refused(&cfg, "a QEMU command line: a kernel command line is needed");
}

static void the_arch_comes_from_the_config_then_the_binary(void)
{
	CU_ASSERT_PTR_EQUAL(vmc_qemu_arch(&(struct vmc_qemu_config){ 0 }), &vmc_arch_x86_64);
	CU_ASSERT_PTR_EQUAL(vmc_qemu_arch(
				    &(struct vmc_qemu_config){ .qemu = "qemu-system-aarch64" }),
			    &vmc_arch_aarch64);
	CU_ASSERT_PTR_EQUAL(vmc_qemu_arch(&(struct vmc_qemu_config){ .qemu = "./my-qemu" }),
			    &vmc_arch_x86_64);
	/* An explicit arch is not second-guessed here (vmcheck run refuses the contradiction). */
	CU_ASSERT_PTR_EQUAL(vmc_qemu_arch(
				    &(struct vmc_qemu_config){ .arch = &vmc_arch_aarch64,
							       .qemu = "qemu-system-x86_64" }),
			    &vmc_arch_aarch64);
}

/* vmc_qemu_launch() refusing @cfg before starting anything, with @code and @want. */
static void launch_refused(const struct vmc_qemu_config *cfg, int code, const char *want)
{
	struct vmc_error err = VMC_ERROR_INIT;
	struct vmc_hv *hv = NULL;

	CU_ASSERT_EQUAL(vmc_qemu_launch(cfg, &hv, &err), code);
	CU_ASSERT_PTR_NULL(hv);
	fx_str_is(err.msg ? strdup(err.msg) : NULL, want, "launch refused");
	vmc_error_clear(&err);
}

static void a_missing_kit_names_its_make_target(void)
{
	struct vmc_qemu_config cfg = { .kernel = "/nonexistent/vmlinuz",
				       .initrd = "/nonexistent/initrd.img",
				       .accel = "tcg" };

	launch_refused(&cfg, -ENOENT,
		       "/nonexistent/vmlinuz: No such file or directory "
		       "(build the guest with 'make guest')");
	cfg.arch = &vmc_arch_aarch64;
	launch_refused(&cfg, -ENOENT,
		       "/nonexistent/vmlinuz: No such file or directory "
		       "(build the guest with 'make guest ARCH=aarch64')");
}

/* The machine uname says this host is. */
static const char *host_machine(void)
{
	static struct utsname u;

	CU_ASSERT_EQUAL_FATAL(uname(&u), 0);
	return u.machine;
}

static void a_foreign_guest_runs_under_tcg_without_a_probe(void)
{
	const struct vmc_arch *arches[] = { &vmc_arch_x86_64, &vmc_arch_aarch64 };
	const char *host = host_machine(), *why = NULL;
	char want[256];
	bool one_foreign = false;

	for (size_t i = 0; i < ARRAY_SIZE(arches); i++) {
		bool foreign = strcmp(arches[i]->name, host) != 0;

		why = NULL;
		if (!foreign) {
			CU_ASSERT_PTR_NULL(vmc_accel_foreign(arches[i], &why));
			CU_ASSERT_PTR_NULL(why);
			continue;
		}
		one_foreign = true;
		CU_ASSERT_STRING_EQUAL(vmc_accel_foreign(arches[i], &why), "tcg");
		snprintf(want, sizeof(want),
			 "an %s guest on this %s host: KVM runs only the host's own architecture",
			 arches[i]->name, host);
		fx_str_is(why ? strdup(why) : NULL, want, "foreign");
		/* --accel auto decides the same without booting anything. */
		why = NULL;
		CU_ASSERT_STRING_EQUAL(
			vmc_qemu_accel_auto(&(struct vmc_qemu_config){ .arch = arches[i],
								       .kernel = "/nonexistent" },
					    &why),
			"tcg");
		fx_str_is(why ? strdup(why) : NULL, want, "accel auto");
		/* --accel kvm is refused up front, with the reason. */
		snprintf(want, sizeof(want),
			 "accelerator kvm: an %s guest on this %s host: KVM runs only the "
			 "host's own architecture (use tcg)",
			 arches[i]->name, host);
		launch_refused(&(struct vmc_qemu_config){ .arch = arches[i],
							  .kernel = "/nonexistent",
							  .initrd = "/nonexistent",
							  .accel = "kvm" },
			       -EINVAL, want);
	}
	/* Every host this runs on has one arch of the two that is not its own. */
	CU_ASSERT_TRUE(one_foreign);
}

/* A scratch directory for one test, which removes it. */
static void scratch(char *dir, size_t size)
{
	snprintf(dir, size, "/tmp/vmcheck-unit-XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
}

static void write_file(const char *path, const void *buf, size_t n, off_t at)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL_FATAL(pwrite(fd, buf, n, at), (ssize_t)n);
	close(fd);
}

static void the_uefi_variable_store_is_copied_per_vm(void)
{
	char dir[64], from[96], to[96], want[256], *a, *b;
	size_t size = 4u << 20;
	struct vmc_error err = VMC_ERROR_INIT;
	struct stat st;
	FILE *f;

	scratch(dir, sizeof(dir));
	snprintf(from, sizeof(from), "%s/AAVMF_VARS.fd", dir);
	snprintf(to, sizeof(to), "%s/efi-vars.fd", dir);
	/* A header, 4 MiB of zeros with a block of data in the middle and a last byte. */
	write_file(from, "_FVH-ish header", 15, 0);
	write_file(from, "\xaa\x55", 2, 2u << 20);
	write_file(from, "\x01", 1, (off_t)size - 1);
	/* What was there is replaced, not appended to. */
	write_file(to, "stale stale stale", 17, (off_t)size + 100);
	CU_ASSERT_EQUAL_FATAL(vmc_qemu_efi_vars(from, to, &err), 0);
	CU_ASSERT_EQUAL_FATAL(stat(to, &st), 0);
	CU_ASSERT_EQUAL(st.st_size, (off_t)size);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
	/* Holes where the template is zeros: three 64 KiB chunks written at most. */
	CU_ASSERT(st.st_blocks * 512 <= 3 * 65536);
	a = calloc(1, size);
	b = calloc(1, size);
	CU_ASSERT_FATAL(a && b);
	f = fopen(from, "rb");
	CU_ASSERT_EQUAL(fread(a, 1, size, f), size);
	fclose(f);
	f = fopen(to, "rb");
	CU_ASSERT_EQUAL(fread(b, 1, size, f), size);
	fclose(f);
	CU_ASSERT_EQUAL(memcmp(a, b, size), 0);
	free(a);
	free(b);
	/* No template: the file and the package that has it. */
	unlink(to);
	unlink(from);
	CU_ASSERT_EQUAL(vmc_qemu_efi_vars(from, to, &err), -ENOENT);
	snprintf(want, sizeof(want),
		 "UEFI variable store %s: No such file or directory "
		 "(apt-get install qemu-efi-aarch64)",
		 from);
	fx_str_is(err.msg ? strdup(err.msg) : NULL, want, "no template");
	vmc_error_clear(&err);
	CU_ASSERT_EQUAL(rmdir(dir), 0);
}

VMC_SUITE(qemu_argv, NULL, NULL, VMC_TEST(the_x86_64_line_is_q35_with_s3),
	  VMC_TEST(the_aarch64_line_is_virt_with_uefi),
	  VMC_TEST(aarch64_options_follow_the_x86_ones), VMC_TEST(phys_bits_is_for_x86_only),
	  VMC_TEST(the_arch_comes_from_the_config_then_the_binary),
	  VMC_TEST(a_missing_kit_names_its_make_target),
	  VMC_TEST(a_foreign_guest_runs_under_tcg_without_a_probe),
	  VMC_TEST(the_uefi_variable_store_is_copied_per_vm))
