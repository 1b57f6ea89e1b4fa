/* SPDX-License-Identifier: MIT */
/*
 * The merged view of the guest. The agent pushes partial States: an Event's
 * State holds only the sections its kernel burst touched (State.sections).
 * A view keeps, per section, the newest State that carried it, and shows
 * them together as one State. Each merged State is copied into memory the
 * view owns (shared, reference counted, between a view and its copies), so
 * a view outlives the agent connection and the Response it came from.
 */
#ifndef VMC_SUITE_VIEW_H
#define VMC_SUITE_VIEW_H

#include <stdint.h>

#include "pb.h"

struct vmc_view;

/* An empty view (no section). Returns NULL on ENOMEM. */
struct vmc_view *vmc_view_new(void);
/* NULL is a no-op. Copies made with vmc_view_dup() stay valid. */
void vmc_view_free(struct vmc_view *v);

/*
 * vmc_view_merge - replace the sections @st carries with @st's
 * The generation, boot_id and clocks of the view become @st's. A section
 * @st could not read (a SectionError, its bit clear) keeps its older data,
 * and the error stays in the merged State's errors until a State carries
 * that section again: stale data never passes for fresh. @st is copied:
 * the caller keeps it. Returns 0, -ENOMEM or -EMSGSIZE (a State over the
 * view's budget); the view is unchanged on failure.
 */
int vmc_view_merge(struct vmc_view *v, const Vmcheck__V1__State *st);

/* Drop every section (a new boot: nothing of the old one holds). */
void vmc_view_reset(struct vmc_view *v);

/*
 * The merged State: every section merged so far, its sections bits their
 * union, and the errors of sections whose newest read failed. Valid until
 * the next merge or reset of @v; never NULL.
 */
const Vmcheck__V1__State *vmc_view_state(const struct vmc_view *v);

/* A frozen copy sharing @v's memory (a step's baseline); NULL on ENOMEM. */
struct vmc_view *vmc_view_dup(const struct vmc_view *v);

#endif
