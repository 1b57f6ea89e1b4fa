/* SPDX-License-Identifier: MIT */
/*
 * The host side of VFIO passthrough, read from the HOST's sysfs relative to
 * a root directory fd (like the guest readers, so fixture trees stand in):
 * is a PCI function an SR-IOV VF, which driver holds it, which IOMMU group
 * it is in and who shares that group, does /dev/vfio/GROUP exist. The
 * verdict on whether a VM can take it comes before any action.
 */
#ifndef VMC_CHECK_VFIO_HOST_H
#define VMC_CHECK_VFIO_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define VMC_VFIO_ADDR_LEN 13 /* "0000:06:02.0" */
#define VMC_VFIO_NAME_LEN 32

struct vmc_vfio_peer {
	char addr[VMC_VFIO_ADDR_LEN];
	char driver[VMC_VFIO_NAME_LEN]; /* "" when unbound */
};

struct vmc_vfio_host {
	char addr[VMC_VFIO_ADDR_LEN];
	uint32_t vendor, device;
	char driver[VMC_VFIO_NAME_LEN];    /* bound driver, "" when none */
	char physfn[VMC_VFIO_ADDR_LEN];    /* its PF; "" when it is no VF */
	char pf_driver[VMC_VFIO_NAME_LEN]; /* the PF's driver, "" when unknown */
	int group;                         /* IOMMU group, -1 without one */
	bool group_dev;                    /* /dev/vfio/GROUP exists */
	struct vmc_vfio_peer *peers;       /* the other functions in the group; owned */
	size_t n_peers;
};

/*
 * vmc_vfio_host_read - what sys/bus/pci/devices/@addr under @rootfd says
 * Returns 0 (free with vmc_vfio_host_free()), -EINVAL (@addr is no PCI
 * address), -ENOENT (no such device), -ENOMEM or another -errno. @out is
 * untouched on failure.
 */
int vmc_vfio_host_read(int rootfd, const char *addr, struct vmc_vfio_host *out);
void vmc_vfio_host_free(struct vmc_vfio_host *h);

/*
 * vmc_vfio_host_vfs - every PCI function with a physfn link (an SR-IOV
 * VF), naturally sorted. Returns the count with *@addrs malloc'd (free with
 * vmc_sysroot_names_free()), or -errno (-ENOENT: no PCI in this sysfs).
 */
int vmc_vfio_host_vfs(int rootfd, char ***addrs);

/*
 * vmc_vfio_host_usable - can a VM take @h through VFIO? @rebinds: the
 * backend binds it to vfio-pci itself (libvirt managed='yes'). It must be
 * a VF, in an IOMMU group whose other members are unbound or bound to
 * vfio-pci, pci-stub or pcieport (the kernel's rule for a viable group),
 * bound to vfio-pci with /dev/vfio/GROUP present, or else left to a
 * rebinding backend. Returns 0 with *@managed telling whether the backend
 * must rebind it, or a negative code with the reason in @err.
 */
int vmc_vfio_host_usable(const struct vmc_vfio_host *h, bool rebinds, bool *managed,
			 struct vmc_error *err);

/*
 * vmc_vfio_vf_driver - the driver a guest binds to a VF of a PF driven by
 * @pf_driver ("ice" -> "iavf"), or NULL when not known.
 */
const char *vmc_vfio_vf_driver(const char *pf_driver);

#endif
