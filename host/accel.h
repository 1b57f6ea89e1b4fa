/* SPDX-License-Identifier: MIT */
/*
 * --accel auto: KVM if this host really boots the guest under it, else
 * TCG. /dev/kvm may exist and hang (doc/facts.md, "KVM on a nested host"),
 * so the verdict comes from a probe boot, decided once per process and
 * cached per host kernel and QEMU binary in $XDG_RUNTIME_DIR/vmcheck-kvm-probe
 * (or /tmp/vmcheck-kvm-probe-<uid>). How the guest is booted is the caller's:
 * the launcher hands its own start in.
 */
#ifndef VMC_ACCEL_H
#define VMC_ACCEL_H

#include "arch.h"
#include "error.h"

struct vmc_qemu_proc;
struct vmc_qmp;

/* How long the probe boot may take to bring the guest's agent up. */
#define VMC_QEMU_KVM_PROBE_MS 8000

/* How the probe boots the guest. */
struct vmc_accel_boot {
	const char *qemu;            /* the QEMU binary (a path): part of the cache key */
	const struct vmc_arch *arch; /* the guest's; NULL: x86_64 */
	/*
	 * Start the guest under @accel with its QMP connected: 0 with *@p
	 * and *@q set, or a negative code with @err set and nothing running.
	 */
	int (*start)(void *ctx, const char *accel, struct vmc_qemu_proc **p, struct vmc_qmp **q,
		     struct vmc_error *err);
	void *ctx;
};

/*
 * vmc_accel_foreign - NULL when @arch (NULL: x86_64) is this host's own
 * (uname's machine); else "tcg" and *@why (if non-NULL) the reason: KVM
 * runs guests of the host's architecture only, so no probe can help.
 */
const char *vmc_accel_foreign(const struct vmc_arch *arch, const char **why);

/*
 * vmc_accel_choose - "kvm" or "tcg" for --accel auto, and *@why (if
 * @why is non-NULL) the reason
 *
 * A guest of another architecture than the host's is TCG at once
 * (vmc_accel_foreign()), said once on stderr; neither the process's
 * verdict nor the cache change. Otherwise the first call of the process
 * decides: from the cache, from /dev/kvm
 * not being usable, or by booting the guest with @b under KVM until its
 * agent port opens within VMC_QEMU_KVM_PROBE_MS. A probe VM that came up
 * is handed back in *@p and *@q (the caller's to stop or to use); else
 * they are left alone. The first call says on stderr which accelerator
 * is used and why; later calls return the same verdict.
 */
const char *vmc_accel_choose(const struct vmc_accel_boot *b, struct vmc_qemu_proc **p,
			     struct vmc_qmp **q, const char **why);

/*
 * vmc_accel_commit - cache the verdict for @qemu if a probe boot decided
 * it and it is not cached yet; call once a VM has run under it.
 */
void vmc_accel_commit(const char *qemu);

/* The verdict of this process, or NULL before any; *@why its reason. */
const char *vmc_accel_decided(const char **why);

/*
 * vmc_accel_fallback - decide TCG because no probe is possible (@reason
 * says why) unless decided already; returns the verdict, *@why its reason.
 */
const char *vmc_accel_fallback(const char *reason, const char **why);

#endif
