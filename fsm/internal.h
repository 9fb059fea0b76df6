/*
 * fsm/ private declarations: the site cache (site.c) shared with the constraint engine (fsm.c).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "fsm/fsm.h"

/* A loaded constraint, with its own copies of the site patterns. */
struct constraint {
	char *before, *after;
	uint64_t delay_ns;
	struct fsm_counters counters;
};

/*
 * One distinct site string, resolved once: the constraints it activates (B) and the constraints
 * that may delay it (A). Sites matching nothing are cached too, so a miss costs one lookup.
 */
struct fsm_site {
	uint64_t hash;
	uint32_t nb, na;
	const uint32_t *b; /* nb constraint indices, ascending */
	const uint32_t *a; /* na constraint indices, ascending */
	char str[];
};

/* Open-addressing table of resolved sites, keyed by content; entries live until it is freed. */
struct site_cache {
	struct fsm_site **slot;
	size_t cap; /* a power of two, or 0 */
	size_t n;
};

/*
 * Finds or adds @site's entry, resolved against @c[0..@n). Returns 0 and *ret, or -ENOMEM
 * (the cache is unchanged).
 */
int site_cache_get(struct site_cache *sc, const struct constraint *c, size_t n, const char *site,
		   const struct fsm_site **ret);
void site_cache_fini(struct site_cache *sc);
