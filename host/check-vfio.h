/* SPDX-License-Identifier: MIT */
/*
 * VFIO VF hotplug (check-vfio.c): how the guest's view shows a VF. Pure
 * predicates over the merged State, unit-tested against fixture States.
 */
#ifndef VMC_CHECK_VFIO_H
#define VMC_CHECK_VFIO_H

#include <stdbool.h>
#include <stdint.h>

#include "check-util.h"

/*
 * A VF on a root port: the PCI function behind @port with the host
 * function's @vendor:@device (VFIO passes the IDs through), bound to
 * @driver (NULL: whichever, reported), and the network link on it.
 * vmc_vfio_guest_up fills @pci, @link and @got_driver.
 */
struct vmc_vfio_want {
	uint32_t vendor, device;
	const char *port;   /* the root port's guest PCI address */
	const char *driver; /* the VF driver expected in the guest, or NULL */
	char pci[VMC_CHK_PCI_LEN];
	char link[VMC_CHK_NAME_LEN];
	char got_driver[VMC_CHK_NAME_LEN];
};
bool vmc_vfio_guest_up(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);
/* Holds once no function with the VF's IDs is behind the port and no link is on @pci. */
bool vmc_vfio_guest_gone(const Vmcheck__V1__State *st, void *arg, struct vmc_why *why);

#endif
