/* SPDX-License-Identifier: MIT */
/*
 * Small text helpers shared by the table printer and the state diff: how an
 * absent value and a flag read in their output.
 */
#ifndef VMC_TEXT_H
#define VMC_TEXT_H

#include <stdbool.h>

/* NULL and "" both read as "-", so columns and fields stay countable. */
static inline const char *vmc_text_dash(const char *s)
{
	return s && *s ? s : "-";
}

/* NULL reads as "". */
static inline const char *vmc_text_str(const char *s)
{
	return s ? s : "";
}

static inline const char *vmc_text_yesno(bool b)
{
	return b ? "yes" : "no";
}

#endif
