/* SPDX-License-Identifier: MIT */
/*
 * struct vmc_hv over QMP: the backend vmc_qemu_launch() hands back,
 * and attach mode, for a QEMU someone else started.
 */
#ifndef VMC_HV_QMP_H
#define VMC_HV_QMP_H

#include "error.h"
#include "hv-qmp-client.h"
#include "hv.h"
#include "qemu-proc.h"

/*
 * vmc_hv_qmp_new - the QMP backend over connection @q
 * @proc: the QEMU process behind @q when this program started it (the
 *        backend then reports how it ended, and stops it on free()); NULL
 *        in attach mode and in tests
 * @arch: the guest's architecture (ops->arch()); NULL: ask QEMU
 *        (query-target), and refuse a target vmcheck does not drive
 * Takes over @q and @proc even on failure. Returns 0, -ENOMEM, or with
 * @arch NULL: -ENOTSUP (a target of another arch) or query-target's error.
 */
int vmc_hv_qmp_new(struct vmc_qmp *q, const char *agent_spec, struct vmc_qemu_proc *proc,
		   const struct vmc_arch *arch, struct vmc_hv **out, struct vmc_error *err);

/*
 * vmc_qmp_attach - drive a VM someone else started
 * @qmp_path: its QMP unix socket (a server socket QEMU listens on)
 * @agent_spec: how to reach the agent ("vserial:/path"), returned by
 *              ops->agent_spec(); may be NULL
 * The guest's architecture is QEMU's target (query-target): x86_64 or
 * aarch64, any other is refused. free() only disconnects; destroy() sends
 * "quit".
 * Returns 0 or a negative code with @err set.
 */
int vmc_qmp_attach(const char *qmp_path, const char *agent_spec, struct vmc_hv **out,
		   struct vmc_error *err);

/*
 * The QEMU process behind @hv (still owned by @hv); NULL when attached or
 * when @hv is not a QMP backend.
 */
struct vmc_qemu_proc *vmc_hv_qmp_proc(struct vmc_hv *hv);

#endif
