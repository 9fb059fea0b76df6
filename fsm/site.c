/*
 * Sites: matching a site against a constraint's pattern (frames joined by '<', a "module+*" frame
 * matching any frame), and the cache that resolves each distinct site string once against all
 * loaded constraints, so the per-event cost of a site is one hash lookup, not a match per
 * constraint.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/internal.h"

/* A system-library frame: "module+*". */
static bool
frame_wild(const char *s, size_t len)
{
	return len >= 2 && s[len - 2] == '+' && s[len - 1] == '*';
}

bool
fsm_site_match(const char *p, const char *s)
{
	if (!p || !s)
		return false;
	for (;;) {
		size_t lp = strcspn(p, "<"), ls = strcspn(s, "<");

		if (!frame_wild(p, lp) && !frame_wild(s, ls) && (lp != ls || memcmp(p, s, lp) != 0))
			return false;
		p += lp;
		s += ls;
		/* One ended while the other goes on: different numbers of frames. */
		if (*p != *s)
			return false;
		if (*p == '\0')
			return true;
		p++;
		s++;
	}
}

/* FNV-1a, 64 bits: sites are short ASCII strings; the table is ours, not an adversary's. */
static uint64_t
hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

static struct fsm_site *
site_new(const struct constraint *c, size_t n, const char *str, uint64_t hash)
{
	uint32_t nb = 0, na = 0;

	for (size_t i = 0; i < n; i++) {
		nb += fsm_site_match(c[i].before, str);
		na += fsm_site_match(c[i].after, str);
	}
	size_t len = strlen(str) + 1;
	/* One block: the header, the string, then the index arrays (aligned after the string). */
	size_t off = sizeof(struct fsm_site) + len;
	off = (off + sizeof(uint32_t) - 1) & ~(sizeof(uint32_t) - 1);
	struct fsm_site *e = malloc(off + (size_t)(nb + na) * sizeof(uint32_t));
	if (!e)
		return NULL;
	uint32_t *idx = (uint32_t *)((char *)e + off);
	e->hash = hash;
	e->nb = nb;
	e->na = na;
	e->b = idx;
	e->a = idx + nb;
	memcpy(e->str, str, len);
	nb = na = 0;
	for (size_t i = 0; i < n; i++) {
		if (fsm_site_match(c[i].before, str))
			idx[nb++] = (uint32_t)i;
		if (fsm_site_match(c[i].after, str))
			idx[e->nb + na++] = (uint32_t)i;
	}
	return e;
}

static int
grow(struct site_cache *sc)
{
	size_t cap = sc->cap ? sc->cap * 2 : 64;
	struct fsm_site **slot = calloc(cap, sizeof(*slot));

	if (!slot)
		return -ENOMEM;
	for (size_t i = 0; i < sc->cap; i++) {
		struct fsm_site *e = sc->slot[i];
		if (!e)
			continue;
		size_t j = e->hash & (cap - 1);
		while (slot[j])
			j = (j + 1) & (cap - 1);
		slot[j] = e;
	}
	free(sc->slot);
	sc->slot = slot;
	sc->cap = cap;
	return 0;
}

int
site_cache_get(struct site_cache *sc, const struct constraint *c, size_t n, const char *site,
	       const struct fsm_site **ret)
{
	uint64_t h = hash_str(site);
	size_t j;

	if (sc->cap) {
		for (j = h & (sc->cap - 1); sc->slot[j]; j = (j + 1) & (sc->cap - 1)) {
			const struct fsm_site *e = sc->slot[j];
			if (e->hash == h && strcmp(e->str, site) == 0) {
				*ret = e;
				return 0;
			}
		}
	}
	/* Load at most 1/2: linear probing stays short. */
	if ((sc->n + 1) * 2 > sc->cap) {
		int r = grow(sc);
		if (r < 0)
			return r;
	}
	struct fsm_site *e = site_new(c, n, site, h);
	if (!e)
		return -ENOMEM;
	for (j = h & (sc->cap - 1); sc->slot[j]; j = (j + 1) & (sc->cap - 1))
		;
	sc->slot[j] = e;
	sc->n++;
	*ret = e;
	return 0;
}

void
site_cache_fini(struct site_cache *sc)
{
	for (size_t i = 0; i < sc->cap; i++)
		free(sc->slot[i]);
	free(sc->slot);
	sc->slot = NULL;
	sc->cap = sc->n = 0;
}

bool
fsm_site_relevant(const struct fsm_site *s)
{
	return s && (s->nb || s->na);
}

bool
fsm_site_activates(const struct fsm_site *s)
{
	return s && s->nb;
}

bool
fsm_site_delayable(const struct fsm_site *s)
{
	return s && s->na;
}
