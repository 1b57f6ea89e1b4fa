/* SPDX-License-Identifier: MIT */
/*
 * Strict parsers and comparators of the strings sysfs and procfs hand over:
 * numbers, PCI addresses, kernel CPU lists, names with a numeric suffix.
 * Pure string work: no file is read here (common/sysroot.h reads them).
 * Outputs are untouched on failure.
 */
#ifndef VMC_PARSE_H
#define VMC_PARSE_H

#include <stdbool.h>
#include <stdint.h>

/* Strict numbers: no junk, no overflow, optional trailing newline. */
int vmc_parse_u64(const char *s, int base, uint64_t *out);
int vmc_parse_s64(const char *s, int base, int64_t *out);

/* Compare like "sort -V" for names with a numeric suffix: cpu2 < cpu10. */
int vmc_parse_natcmp(const char *a, const char *b);

/* True if @s is a PCI function address "dddd:bb:dd.f". */
bool vmc_parse_is_pci_address(const char *s);

/*
 * vmc_parse_pci_of_path - the last PCI function in a sysfs device path
 * @parent: if non-NULL, the one before it (the upstream bridge), or ""
 * Returns 0, or -ENOENT if the path has no PCI component.
 */
int vmc_parse_pci_of_path(const char *path, char out[13], char parent[13]);

/*
 * Kernel CPU list format ("0-3,5"): membership test.
 * Returns -EINVAL on malformed input.
 */
int vmc_parse_cpulist_contains(const char *list, unsigned cpu, bool *out);

#endif
