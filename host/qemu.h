/* SPDX-License-Identifier: MIT */
/*
 * The QEMU launcher: it hands back a struct vmc_hv driven over QMP
 * (hv-qmp.h, which also attaches to a QEMU someone else started).
 *
 * A launched VM has the topology every check needs (doc/facts.md, "Working
 * QEMU shape"): q35, DIMM slots and maxmem, maxcpus, S3 enabled, hotplug
 * pcie-root-ports "pciroot1".."pciroot<N>", the agent's virtio-serial port
 * org.vmcheck.agent.0 on WORKDIR/agent.sock behind root port "rp-agent", a
 * user-mode boot NIC behind "rp-net", the serial console in
 * WORKDIR/console.log and QEMU's stderr in WORKDIR/qemu.stderr. For kdump:
 * a pvpanic device, and a crash disk (WORKDIR/crash-disk.img, a fresh
 * ext4 image; virtio-blk with serial VMC_QEMU_CRASH_SERIAL behind
 * "rp-crash") that the embedded guest mounts on /var/crash.
 *
 * An aarch64 guest (doc/facts.md, "aarch64 guests") gets the same devices
 * on `virt,gic-version=3` with a cortex-a57 CPU, booted through UEFI (the
 * AAVMF pflash pair: the firmware read-only, a copy of its variable store
 * in WORKDIR/efi-vars.fd), pvpanic-pci for the ISA pvpanic, and a
 * virtio keyboard for the ctrl-alt-del of a guest reboot (q35 has PS/2
 * built in); there is no S3 switch to set.
 *
 * The launcher owns its QEMU (qemu-proc.h): the process is its own process
 * group, dies with us (PR_SET_PDEATHSIG), is killed by SIGINT/SIGTERM
 * handlers installed at the first launch (they kill every launched QEMU,
 * remove its sockets and re-raise), and is reaped by free().
 */
#ifndef VMC_QEMU_H
#define VMC_QEMU_H

#include <stdbool.h>
#include <stdint.h>

#include "arch.h"
#include "error.h"
#include "hv.h"

/* Zero or NULL in any field means its default. */
struct vmc_qemu_config {
	/* The guest's; NULL: the one @qemu's name says (vmc_arch_of_qemu()), else x86_64. */
	const struct vmc_arch *arch;
	const char *qemu;              /* the arch's binary, "qemu-system-x86_64" (PATH) */
	const char *kernel;            /* required */
	const char *initrd;            /* required */
	const char *append;            /* contents of the file "cmdline" next to the kernel */
	unsigned mem_mb;               /* 512 */
	unsigned mem_slots;            /* 4 */
	unsigned maxmem_mb;            /* 4096 */
	unsigned cpus;                 /* 1 */
	unsigned maxcpus;              /* 4 */
	unsigned hotplug_ports;        /* 8, at most VMC_QEMU_PORTS_MAX */
	const char *accel;             /* "auto" (KVM if it really boots, else TCG), "kvm", "tcg" */
	const char *workdir;           /* a new directory under $TMPDIR (or /tmp) */
	bool keep_workdir;             /* keep console.log and qemu.stderr (sockets always go) */
	const char *const *extra_args; /* NULL-terminated, appended as they are */
	/*
	 * Non-zero: a big guest (doc/facts.md, "Big guests"). All its RAM comes from
	 * one memory-backend-ram with reserve=off (plain -m fails to allocate
	 * tens of GiB here), and there are no DIMM slots: mem_mb, maxmem_mb
	 * and mem_slots are ignored.
	 */
	uint64_t ram_bytes;
	/*
	 * 0: QEMU's default (40 under TCG; 1 TiB and more need 42). An x86
	 * CPU property: refused for another arch.
	 */
	unsigned phys_bits;
	/*
	 * The agent over SSH: the boot NIC's user-mode netdev forwards a free
	 * 127.0.0.1 port to the guest's port 22 (the kit's dropbear), and the
	 * agent spec is ssh://root@127.0.0.1:PORT/sbin/vmcheck-agent-ssh (the
	 * kit's agent with the same crash permission as on virtio-serial).
	 */
	bool agent_ssh;
	/*
	 * A disk image (raw or qcow2) booted as the root disk: virtio-blk with
	 * serial VMC_QEMU_ROOT_SERIAL on pcie.0 (not a hotplug port, and
	 * probed before the crash disk: /dev/vda). The image is never written:
	 * the guest's writes go to a qcow2 overlay in the workdir
	 * (root-overlay.qcow2, made with qemu-img), removed with it.
	 */
	const char *image;
};

#define VMC_QEMU_PORTS_MAX 24 /* one per free slot of pcie.0 */
/* An aarch64 guest's UEFI (Debian's qemu-efi-aarch64): the code, and the variable store's template. */
#define VMC_QEMU_AAVMF_CODE "/usr/share/AAVMF/AAVMF_CODE.fd"
#define VMC_QEMU_AAVMF_VARS "/usr/share/AAVMF/AAVMF_VARS.fd"
#define VMC_QEMU_CRASH_SERIAL "vmcheck-crash"
#define VMC_QEMU_ROOT_SERIAL "vmcheck-root"

/*
 * vmc_qemu_launch - start QEMU as @cfg says and connect its QMP monitor
 * @out: the VM; its ops->free() quits QEMU (QMP quit, then SIGTERM, then
 *       SIGKILL, each with a bounded wait), reaps it and removes its sockets
 *       and, unless keep_workdir, its files and the workdir it created
 *
 * With accel "auto" the first launch of a process probes KVM (it hangs on
 * nested hosts: doc/facts.md, "KVM on a nested host") by booting this guest
 * under KVM until its agent port opens, within VMC_QEMU_KVM_PROBE_MS; the
 * verdict is cached per host kernel and QEMU binary in
 * $XDG_RUNTIME_DIR/vmcheck-kvm-probe (or /tmp/vmcheck-kvm-probe-<uid>) and
 * one line on stderr says which accelerator is used and why (accel.h). A
 * working probe VM is the one returned.
 *
 * Returns 0, or a negative code with @err set: -EINVAL (bad config),
 * -ENOENT (kernel, initrd or cmdline missing), -ECHILD (QEMU exited while
 * starting; @err holds its exit status and the end of its stderr),
 * -ETIMEDOUT (no QMP greeting). Nothing is left running on failure.
 */
int vmc_qemu_launch(const struct vmc_qemu_config *cfg, struct vmc_hv **out, struct vmc_error *err);

/*
 * vmc_qemu_accel_auto - what --accel auto picks on this host for the guest
 * of @cfg, "kvm" or "tcg", and *@why: the cached verdict or a probe boot
 * (its VM stopped again), as vmc_qemu_launch would decide. For backends
 * that start QEMU some other way on this host (a local libvirtd).
 */
const char *vmc_qemu_accel_auto(const struct vmc_qemu_config *cfg, const char **why);

/* The guest architecture of @cfg: @cfg->arch, else the one @cfg->qemu names, else x86_64. */
const struct vmc_arch *vmc_qemu_arch(const struct vmc_qemu_config *cfg);

/* What vmc_qemu_argv() puts in the command line besides @cfg. */
struct vmc_qemu_argv_in {
	const char *accel;    /* "kvm" or "tcg" */
	const char *workdir;  /* the VM's files, under the names of qemu-proc.h */
	int qmp_fd, agent_fd; /* the listening sockets QEMU inherits */
	unsigned ssh_port;    /* @cfg->agent_ssh: the 127.0.0.1 port forwarded to 22 */
};

/*
 * vmc_qemu_argv - the command line vmc_qemu_launch() runs for @cfg, built
 * without looking at any file: argv[0] is @cfg->qemu (or the arch's
 * binary) unresolved, and the kernel command line is @cfg->append, which
 * is required here.
 * @out: NULL-terminated; free it with vmc_qemu_argv_free()
 * Returns 0, -EINVAL with @err saying what in @cfg is refused, or -ENOMEM.
 */
int vmc_qemu_argv(const struct vmc_qemu_config *cfg, const struct vmc_qemu_argv_in *in, char ***out,
		  struct vmc_error *err);
void vmc_qemu_argv_free(char **argv);

/*
 * vmc_qemu_efi_vars - make @to a VM's own copy of the UEFI variable store
 * template @from (UEFI writes its variables there, so VMs cannot share
 * one), sparse where the template is zeros, mode 0600.
 * Returns 0, or a negative code with @err naming the file that failed; a
 * missing template says which package has it.
 */
int vmc_qemu_efi_vars(const char *from, const char *to, struct vmc_error *err);

/* The launched VM's workdir (console.log, qemu.stderr); NULL when attached. */
const char *vmc_qemu_workdir(struct vmc_hv *hv);

/*
 * vmc_qemu_crash_disk - make @path the crash disk of a guest whose memory
 * can grow to @ram bytes: a sparse ext4 image labelled
 * VMC_QEMU_CRASH_SERIAL, @ram + 1 GiB big, made with mkfs.ext4. Returns 0;
 * -ENOENT without mkfs.ext4, -EIO when it failed (its output in @err).
 */
int vmc_qemu_crash_disk(const char *path, uint64_t ram, struct vmc_error *err);

#endif
