/*
 * model/ unit tests: event kinds and the event's JSON form; then the model (AVISO.md sections
 * 3-6) on hand-computed tables: candidate pairs from crafted RPBs, OI/CI/FC/rank of a small
 * model, chi-square against known values, class assignment, selection frequencies over 10,000
 * seeded draws; and the store: persistence, growth, several processes, all-or-nothing updates.
 */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model/event.h"
#include "model/internal.h"
#include "model/model.h"
#include "ckmain.h"

START_TEST(kind_names_round_trip)
{
	for (int i = 0; i < MODEL_EV__COUNT; i++) {
		enum model_event_kind k;
		ck_assert_int_eq(model_event_kind_parse(model_event_kind_name(i), &k), 0);
		ck_assert_int_eq(k, i);
	}
	enum model_event_kind k = MODEL_EV_POINT;
	ck_assert_int_eq(model_event_kind_parse("mutex_lok", &k), -EINVAL);
	ck_assert_int_eq(k, MODEL_EV_POINT);
	ck_assert_str_eq(model_event_kind_name(MODEL_EV__COUNT), "?");
}
END_TEST

START_TEST(event_json_exact)
{
	struct model_event ev = {
		.seq = 7, .ns = 123456789, .thread = 2, .tid = 4242, .pid = 4240,
		.kind = MODEL_EV_MUTEX_LOCK, .object = 0x7ffd1000,
		.site = "prog+0x1234", .where = "a \"b\".c:12 f\n",
	};
	char buf[512];
	size_t n = model_event_format_json(&ev, buf, sizeof(buf));
	ck_assert_str_eq(buf, "{\"seq\":7,\"ns\":123456789,\"thread\":2,\"tid\":4242,\"pid\":4240,"
			      "\"kind\":\"mutex_lock\",\"site\":\"prog+0x1234\","
			      "\"where\":\"a \\\"b\\\".c:12 f\\n\",\"object\":\"0x7ffd1000\"}");
	ck_assert_uint_eq(n, strlen(buf));
}
END_TEST

START_TEST(event_json_truncation_counts_full_length)
{
	struct model_event ev = {
		.seq = 1, .thread = 1, .kind = MODEL_EV_SIGNAL, .site = "x+0x1", .where = NULL,
	};
	char full[256], small[16];
	size_t n = model_event_format_json(&ev, full, sizeof(full));
	size_t m = model_event_format_json(&ev, small, sizeof(small));
	ck_assert_uint_eq(n, m);
	ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
	ck_assert_int_eq(strncmp(full, small, sizeof(small) - 1), 0);
	ck_assert_ptr_null(strstr(full, "where"));
}
END_TEST

START_TEST(quote_control_bytes)
{
	char buf[64];
	model_json_quote("\x01t\x7f", buf, sizeof(buf));
	ck_assert_str_eq(buf, "\"\\u0001t\\u007f\"");
}
END_TEST

/* ---- pure pieces ---- */

/* Builds an event of thread @t at site @site with sequence number @seq. */
static struct model_event
ev(uint64_t seq, uint32_t t, const char *site)
{
	return (struct model_event){.seq = seq, .thread = t, .site = site};
}

/* The candidate pairs of @e (given out of order on purpose) as "ba" strings. */
static void
pairs_as_text(const struct model_event *e, size_t n, unsigned window, bool rule, char *out)
{
	struct rpb r;
	struct pair *p;

	ck_assert_int_eq(model_rpb_init(&r, e, n), 0);
	long np = model_rpb_pairs(&r, window, rule, &p);
	ck_assert_int_ge(np, 0);
	out[0] = '\0';
	for (long i = 0; i < np; i++) {
		char pair[8];
		snprintf(pair, sizeof(pair), "%s%s%s", i ? " " : "", r.sites[p[i].b],
			 r.sites[p[i].a]);
		strcat(out, pair);
	}
	free(p);
	model_rpb_fini(&r);
}

/*
 * seq: 1 T1 a, 2 T2 b, 3 T1 c, 4 T2 d, 5 T3 a. With the rule, e_i's pairs stop at its thread's
 * next event: (a,b) (b,c) (c,d) (c,a) (d,a). Without it, T1's a also pairs with d and a
 * (B = A allowed), T2's b with a.
 */
START_TEST(candidates_from_crafted_rpb)
{
	struct model_event e[] = {ev(4, 2, "d"), ev(1, 1, "a"), ev(3, 1, "c"), ev(5, 3, "a"),
				  ev(2, 2, "b")};
	char text[128];

	pairs_as_text(e, 5, 10, true, text);
	ck_assert_str_eq(text, "ab bc ca cd da");
	pairs_as_text(e, 5, 10, false, text);
	ck_assert_str_eq(text, "aa ab ad ba bc ca cd da");
	pairs_as_text(e, 5, 2, true, text); /* window 2: neighbours only */
	ck_assert_str_eq(text, "ab bc cd da");
}
END_TEST

/* An event of @kind on @object. */
static struct model_event
evk(uint64_t seq, uint32_t t, const char *site, enum model_event_kind kind, uint64_t object)
{
	struct model_event e = ev(seq, t, site);

	e.kind = kind;
	e.object = object;
	return e;
}

/* The sites of @e in the order model_rpb_init lays them out, as one string. */
static void
laid_out(const struct model_event *e, size_t n, char *out)
{
	struct rpb r;

	ck_assert_int_eq(model_rpb_init(&r, e, n), 0);
	for (size_t k = 0; k < r.n; k++)
		out[k] = r.sites[r.site[k]][0];
	out[r.n] = '\0';
	model_rpb_fini(&r);
}

/*
 * Call entries, acquisition order: T3 enters lock(m) (b) while T2 holds m (a); it acquires
 * only after T2's unlock (c). Locks of other mutexes and a thread's own order stay as they are;
 * a lock that entered after an unlock but whose thread's next event comes after another
 * thread's whole critical section acquired after that section.
 */
START_TEST(contended_locks_where_they_acquired)
{
	const enum model_event_kind L = MODEL_EV_MUTEX_LOCK, U = MODEL_EV_MUTEX_UNLOCK;
	char text[16];

	struct model_event e1[] = {evk(1, 2, "a", L, 0x10), evk(2, 3, "b", L, 0x10),
				   evk(3, 2, "c", U, 0x10), evk(4, 3, "d", U, 0x10),
				   evk(5, 2, "e", L, 0x20)};
	laid_out(e1, 5, text);
	ck_assert_str_eq(text, "acbde");

	/* Another mutex: nothing moves. */
	struct model_event e2[] = {evk(1, 2, "a", L, 0x10), evk(2, 3, "b", L, 0x20),
				   evk(3, 2, "c", U, 0x10), evk(4, 3, "d", U, 0x20)};
	laid_out(e2, 4, text);
	ck_assert_str_eq(text, "abcd");

	/* Two waiters: each after the unlock before its own next event. */
	struct model_event e3[] = {evk(1, 1, "a", L, 0x10), evk(2, 2, "b", L, 0x10),
				   evk(3, 3, "c", L, 0x10), evk(4, 1, "d", U, 0x10),
				   evk(5, 2, "e", U, 0x10), evk(6, 3, "f", U, 0x10)};
	laid_out(e3, 6, text);
	ck_assert_str_eq(text, "adbecf");

	/* T3's lock (b) entered after T2's unlock (a), but T2 locked and unlocked m again (c, d)
	 * before T3's next event (e): T3 acquired after d. */
	struct model_event e4[] = {evk(1, 2, "a", U, 0x10), evk(2, 3, "b", L, 0x10),
				   evk(3, 2, "c", L, 0x10), evk(4, 2, "d", U, 0x10),
				   evk(5, 3, "e", U, 0x10)};
	laid_out(e4, 5, text);
	ck_assert_str_eq(text, "acdbe");

	/* A trylock stays where it is; so does a lock with no unlock in sight. */
	struct model_event e5[] = {evk(1, 2, "a", L, 0x10),
				   evk(2, 3, "b", MODEL_EV_MUTEX_TRYLOCK, 0x10),
				   evk(3, 2, "c", U, 0x10), evk(4, 1, "d", L, 0x20),
				   evk(5, 4, "e", L, 0x20)};
	laid_out(e5, 5, text);
	ck_assert_str_eq(text, "abcde");

	/* Candidates follow the acquisition order: (c, b) and (c, d), no (a, b) any more. */
	pairs_as_text(e1, 5, 10, true, text);
	ck_assert_str_eq(text, "cb cd de");

	/* A signal's delivery is never an A (nothing can delay it), but it may be a B. */
	struct model_event e7[] = {evk(1, 1, "a", L, 0x30), evk(2, 2, "s", MODEL_EV_SIGNAL, 11),
				   evk(3, 1, "b", U, 0x30)};
	pairs_as_text(e7, 3, 10, true, text);
	ck_assert_str_eq(text, "sb");
}
END_TEST

/*
 * Read-write locks: an acquisition moves after the unlocks of the holds that exclude it (a
 * writer's, for a reader; any, for a writer), and is then a candidate A after the acquisition
 * whose hold it waited for: glibc hands the lock over to a thread waiting inside, so only a
 * delay that began at that acquisition can order it (pairs.c, rwlock_dup).
 */
START_TEST(rwlock_acquisitions_where_they_acquired)
{
	const enum model_event_kind R = MODEL_EV_RWLOCK_RDLOCK, W = MODEL_EV_RWLOCK_WRLOCK,
				    U = MODEL_EV_RWLOCK_UNLOCK;
	char text[64];

	/* T2 enters its read lock (r) before T3's write lock (w); T3 unlocks (u), then enters
	 * another write lock (x), which waits for T2's read hold to end (v). */
	struct model_event e1[] = {evk(1, 2, "r", R, 0x40), evk(2, 3, "w", W, 0x40),
				   evk(3, 3, "u", U, 0x40), evk(4, 3, "x", W, 0x40),
				   evk(5, 2, "v", U, 0x40)};
	laid_out(e1, 5, text);
	ck_assert_str_eq(text, "wurvx");
	/* (u, r) as for a mutex, and (w, r), (r, x): after the holds they waited for. */
	pairs_as_text(e1, 5, 10, true, text);
	ck_assert_str_eq(text, "rx ur uv vx wr");

	/* Readers share: a reader's unlock after another reader entered moves nothing. */
	struct model_event e2[] = {evk(1, 3, "b", R, 0x40), evk(2, 2, "a", R, 0x40),
				   evk(3, 3, "c", U, 0x40), evk(4, 2, "d", U, 0x40)};
	laid_out(e2, 4, text);
	ck_assert_str_eq(text, "bacd");
	pairs_as_text(e2, 4, 10, true, text);
	ck_assert_str_eq(text, "ac ba cd");

	/* The same with T3 a writer: T2's read lock acquired after T3's unlock. */
	e2[0].kind = W;
	laid_out(e2, 4, text);
	ck_assert_str_eq(text, "bcad");
	pairs_as_text(e2, 4, 10, true, text);
	ck_assert_str_eq(text, "ba ca cd");

	/* A hold whose acquisition the RPB lost: a writer still waited for it, a reader cannot
	 * tell (it may have been a read hold); no waited pair either way. */
	struct model_event e3[] = {evk(1, 2, "a", W, 0x40), evk(2, 3, "c", U, 0x40),
				   evk(3, 2, "d", U, 0x40)};
	laid_out(e3, 3, text);
	ck_assert_str_eq(text, "cad");
	e3[0].kind = R;
	laid_out(e3, 3, text);
	ck_assert_str_eq(text, "acd");

	/* A try-read-lock stays where it is; a mutex gives no waited pair (the tracer can hold
	 * a thread woken inside pthread_mutex_lock before it takes the mutex). */
	struct model_event e4[] = {evk(1, 2, "a", MODEL_EV_RWLOCK_TRYRDLOCK, 0x40),
				   evk(2, 3, "b", W, 0x40), evk(3, 3, "c", U, 0x40)};
	laid_out(e4, 3, text);
	ck_assert_str_eq(text, "abc");
	struct model_event e5[] = {evk(1, 2, "a", MODEL_EV_MUTEX_LOCK, 0x10),
				   evk(2, 3, "b", MODEL_EV_MUTEX_LOCK, 0x10),
				   evk(3, 2, "c", MODEL_EV_MUTEX_UNLOCK, 0x10),
				   evk(4, 3, "d", MODEL_EV_MUTEX_UNLOCK, 0x10)};
	pairs_as_text(e5, 4, 10, true, text);
	ck_assert_str_eq(text, "cb cd");
}
END_TEST

START_TEST(pair_counts_and_window_bound)
{
	/* x y x y x y alternating threads: (x,y) thrice, (y,x) twice with window 2. */
	struct model_event e[] = {ev(1, 1, "x"), ev(2, 2, "y"), ev(3, 1, "x"),
				  ev(4, 2, "y"), ev(5, 1, "x"), ev(6, 2, "y")};
	struct rpb r;
	struct pair *p;

	ck_assert_int_eq(model_rpb_init(&r, e, 6), 0);
	long np = model_pairs_extract(r.site, r.thread, r.n, 2, true, r.delayable, &p);
	ck_assert_int_eq(np, 2);
	ck_assert_uint_eq(p[0].count, 3); /* (x,y) */
	ck_assert_uint_eq(p[1].count, 2); /* (y,x) */
	free(p);
	/* Window 10 with the rule: each event pairs only with the next (the one after is its
	 * own thread's), so the same counts. */
	np = model_pairs_extract(r.site, r.thread, r.n, 10, true, r.delayable, &p);
	ck_assert_int_eq(np, 2);
	ck_assert_uint_eq(p[0].count + p[1].count, 5);
	free(p);
	model_rpb_fini(&r);
}
END_TEST

START_TEST(invariance_formulas)
{
	/* One pseudo-count each way: (3 + 1) / (4 + 2); never 0 or 1. */
	ck_assert_double_eq_tol(model_stat_oi(3, 1), 4.0 / 6.0, 1e-12);
	ck_assert_double_eq_tol(model_stat_oi(0, 0), 0.5, 1e-12);
	ck_assert_double_eq_tol(model_stat_oi(0, 4), 1.0 / 6.0, 1e-12);
	/* f(B,A) = 2, row(B) = 10, col(A) = 6: 1 - 2 / (8 + 4). */
	ck_assert_double_eq_tol(model_stat_ci(2, 10, 6), 1.0 - 2.0 / 12.0, 1e-12);
	ck_assert_double_eq_tol(model_stat_ci(0, 0, 0), 0.5, 1e-12);
	ck_assert_double_eq_tol(model_stat_ci(5, 6, 5), 0.0, 1e-12); /* clamped */
	ck_assert_double_eq_tol(model_stat_fc(3, 4), 0.75, 1e-12);
	ck_assert_double_eq_tol(model_stat_fc(0, 0), 0.0, 1e-12);
	ck_assert_double_eq_tol(model_stat_weight_paper(0.5, 0, 0), 0.5, 1e-12);
	/* 0.5 * exp(8 * 0.7 - 0.7) + 0.001 */
	ck_assert_double_eq_tol(model_stat_weight_paper(0.5, 10, 3), 67.14588984246777, 1e-9);
}
END_TEST

START_TEST(chi_square_known_values)
{
	/* {{30, 70}, {5, 95}}: 200 * 2500^2 / (100 * 100 * 35 * 165) */
	ck_assert_double_eq_tol(model_stat_chi2(30, 70, 5, 95), 21.645021645021647, 1e-9);
	ck_assert_double_eq_tol(model_stat_chi2(30, 70, 3, 17), 1.8808777429467085, 1e-9);
	ck_assert_double_eq_tol(model_stat_chi2(10, 10, 10, 10), 0.0, 1e-12);
	ck_assert_double_eq_tol(model_stat_chi2(0, 0, 3, 4), 0.0, 1e-12); /* empty margin */

	double chi2;
	ck_assert(model_stat_effective(100, 30, 100, 5, &chi2));
	ck_assert_double_eq_tol(chi2, 21.645021645021647, 1e-9);
	ck_assert(!model_stat_effective(100, 30, 20, 3, &chi2));  /* lower, not significant */
	ck_assert(!model_stat_effective(100, 5, 100, 30, &chi2)); /* significant, but higher */
	ck_assert(!model_stat_effective(0, 0, 10, 0, NULL));
}
END_TEST

START_TEST(baseline_confidence)
{
	ck_assert(!model_stat_baseline_known(0, 0));
	ck_assert(!model_stat_baseline_known(200, 60)); /* p~0.30: needs ~336 runs */
	ck_assert(model_stat_baseline_known(400, 120));
	ck_assert(!model_stat_baseline_known(20, 0)); /* 0 of 20 is not +/-5% yet */
	ck_assert(model_stat_baseline_known(200, 0));
}
END_TEST

START_TEST(similarity_of_site_sets)
{
	uint32_t a[] = {1, 2, 3, 4, 5}, b[] = {1, 2, 3, 4}, c[] = {1, 2, 9};
	ck_assert_double_eq_tol(model_sites_similarity(a, 5, b, 4), 0.8, 1e-12);
	ck_assert_double_eq_tol(model_sites_similarity(a, 5, c, 3), 2.0 / 6.0, 1e-12);
	ck_assert_double_eq_tol(model_sites_similarity(NULL, 0, NULL, 0), 1.0, 1e-12);
	ck_assert_double_eq_tol(model_sites_similarity(a, 5, NULL, 0), 0.0, 1e-12);
}
END_TEST

START_TEST(prng_is_seeded_and_beta_mean)
{
	struct prng r1, r2;
	model_prng_seed(&r1, 42);
	model_prng_seed(&r2, 42);
	for (int i = 0; i < 100; i++)
		ck_assert_uint_eq(model_prng_next(&r1), model_prng_next(&r2));
	double sum = 0;
	for (int i = 0; i < 10000; i++)
		sum += model_prng_beta(&r1, 2, 6);
	ck_assert_double_eq_tol(sum / 10000, 0.25, 0.01);
	sum = 0;
	for (int i = 0; i < 10000; i++)
		sum += model_prng_beta(&r1, 0.3, 0.7); /* shape < 1 path */
	ck_assert_double_eq_tol(sum / 10000, 0.3, 0.015);
}
END_TEST

/* Counts, over 10,000 seeded draws, how often each outcome of model_select_run comes up. */
static void
draw_frequencies(const struct sel_input *in, double *ret_freq /* [n + 1], last: baseline */)
{
	const int draws = 10000;
	size_t n = in->classes[0].n;
	struct prng rng;
	long choice;

	model_prng_seed(&rng, 1234);
	for (size_t i = 0; i <= n; i++)
		ret_freq[i] = 0;
	for (int d = 0; d < draws; d++) {
		if (model_select_run(in, &rng, &choice))
			ret_freq[n] += 1.0 / draws;
		else
			ret_freq[choice] += 1.0 / draws;
	}
}

START_TEST(selection_frequencies_paper)
{
	/* Nothing used, baseline unknown: 10% baseline, else proportional to rank. */
	struct sel_con c[3] = {
	    {.cid = 1, .rank = 0.5}, {.cid = 2, .rank = 0.3}, {.cid = 3, .rank = 0.2}};
	struct sel_class k = {.id = 1, .n = 3, .c = c};
	struct sel_input in = {.selector = MODEL_SELECT_PAPER, .n_classes = 1, .classes = &k};
	double f[4];

	draw_frequencies(&in, f);
	ck_assert_double_eq_tol(f[3], 0.10, 0.01);
	ck_assert_double_eq_tol(f[0], 0.45, 0.015);
	ck_assert_double_eq_tol(f[1], 0.27, 0.015);
	ck_assert_double_eq_tol(f[2], 0.18, 0.015);

	/* Baseline known (400 runs, 120 failures): 1% baseline. c[0] effective (2 of 100),
	 * exploited 75%; exploring weighs w0 = 0.5 e^(8*0.98-0.7) + .001, w1 = 0.3 (unused),
	 * w2 = 0.2 e^(8*0.7-0.7) + .001 (3 of 10): by hand, 0.9798, 0.0001, 0.0101, 0.01. */
	in.base_runs = 400;
	in.base_failures = 120;
	c[0].runs = 100;
	c[0].failures = 2;
	c[0].effective = model_stat_effective(400, 120, 100, 2, &c[0].chi2);
	c[2].runs = 10;
	c[2].failures = 3;
	ck_assert(c[0].effective);
	draw_frequencies(&in, f);
	ck_assert_double_eq_tol(f[0], 0.9798, 0.006);
	ck_assert_double_eq_tol(f[1], 0.0001, 0.001);
	ck_assert_double_eq_tol(f[2], 0.0101, 0.004);
	ck_assert_double_eq_tol(f[3], 0.01, 0.004);
}
END_TEST

START_TEST(baseline_share_rules)
{
	/* 40 baseline runs, 12 failures: not known within +/-5 points. Class 1 (19 failures) has
	 * a contender (0 of 60 runs); class 2 (1 failure, 5%) has none. */
	struct sel_con c1[2] = {{.cid = 1, .rank = 0.9, .runs = 60, .failures = 0},
				{.cid = 2, .rank = 0.5, .runs = 10, .failures = 3}};
	struct sel_con c2[1] = {{.cid = 3, .rank = 0.7, .runs = 30, .failures = 9}};
	c1[0].effective = model_stat_effective(40, 12, 60, 0, &c1[0].chi2);
	c1[1].effective = model_stat_effective(40, 12, 10, 3, &c1[1].chi2);
	c2[0].effective = model_stat_effective(40, 12, 30, 9, &c2[0].chi2);
	ck_assert(c1[0].effective && !c1[1].effective && !c2[0].effective);
	struct sel_class k[3] = {
	    {.id = 1, .failures = 19, .n = 2, .c = c1, .base_runs = 40, .base_failures = 12},
	    {.id = 2, .failures = 1, .n = 1, .c = c2, .base_runs = 40, .base_failures = 12},
	    {.id = 3, .failures = 50, .n = 0}}; /* no candidates: ignored */
	struct sel_input in = {.selector = MODEL_SELECT_THOMPSON_MAX,
			       .baseline = MODEL_BASELINE_PAPER,
			       .base_runs = 40,
			       .base_failures = 12,
			       .n_classes = 3,
			       .classes = k};

	ck_assert_double_eq(model_select_base_share(&in), SELECT_BASE_SHARE_EARLY);
	in.baseline = MODEL_BASELINE_CONTENDER;
	ck_assert_double_eq(model_select_base_share(&in), SELECT_BASE_SHARE_LATE);

	/* Measured over draws: about 1% baseline runs, against 10% under the paper's rule. */
	struct prng rng;
	int base = 0;
	long choice[3];
	model_prng_seed(&rng, 99);
	for (int d = 0; d < 10000; d++)
		base += model_select_run(&in, &rng, choice);
	ck_assert_int_ge(base, 60);
	ck_assert_int_le(base, 140);

	/* Effective but not decisive (cxx_workq: a baseline measured high by chance, 12 of 40,
	 * and a useless constraint at 155 of 948): the share stays at 10%. */
	struct sel_con keep = c1[0];
	c1[0].runs = 948;
	c1[0].failures = 155;
	c1[0].effective = model_stat_effective(40, 12, 948, 155, &c1[0].chi2);
	ck_assert(c1[0].effective && c1[0].chi2 < SELECT_DECISIVE_CHI2);
	ck_assert_double_eq(model_select_base_share(&in), SELECT_BASE_SHARE_EARLY);
	c1[0] = keep;
	ck_assert_double_eq(model_select_base_share(&in), SELECT_BASE_SHARE_LATE);

	/* Class 2 now holds 3 of the 22 failures of classes with candidates (>= 10%) and has no
	 * contender: back to 10%. */
	k[1].failures = 3;
	ck_assert_double_eq(model_select_base_share(&in), SELECT_BASE_SHARE_EARLY);
	k[1].failures = 1;
	/* With the class counts a class's share is of the baseline runs' failures: class 2, 30
	 * failures but none in baseline runs, is minor; as a share of all failures it is not. */
	k[1].failures = 30;
	k[1].base_failures = 0;
	ck_assert_double_eq(model_select_base_share(&in), SELECT_BASE_SHARE_EARLY);
	in.class_counts = true;
	ck_assert_double_eq(model_select_base_share(&in), SELECT_BASE_SHARE_LATE);
	k[1].base_failures = 2; /* 2 of the 14: major again */
	ck_assert_double_eq(model_select_base_share(&in), SELECT_BASE_SHARE_EARLY);
	in.class_counts = false;
	k[1].failures = 1;
	k[1].base_failures = 12;
	/* The contender stops being one (its failures catch up with the baseline's rate). */
	c1[0].failures = 17;
	c1[0].effective = model_stat_effective(40, 12, 60, 17, &c1[0].chi2);
	ck_assert(!c1[0].effective);
	ck_assert_double_eq(model_select_base_share(&in), SELECT_BASE_SHARE_EARLY);
	/* No class with candidates at all: no contender, 10%. */
	in.n_classes = 0;
	ck_assert_double_eq(model_select_base_share(&in), SELECT_BASE_SHARE_EARLY);
	/* A known baseline gives 1% under both rules. */
	in.base_runs = 400;
	in.base_failures = 120;
	ck_assert_double_eq(model_select_base_share(&in), SELECT_BASE_SHARE_LATE);
	in.baseline = MODEL_BASELINE_PAPER;
	ck_assert_double_eq(model_select_base_share(&in), SELECT_BASE_SHARE_LATE);
	/* Names round-trip; unknown names are refused. */
	enum model_baseline_rule r = MODEL_BASELINE_PAPER;
	ck_assert_int_eq(model_baseline_parse("contender", &r), 0);
	ck_assert_int_eq(r, MODEL_BASELINE_CONTENDER);
	ck_assert_int_eq(model_baseline_parse("nope", &r), -EINVAL);
	ck_assert_str_eq(model_baseline_name(MODEL_BASELINE_PAPER), "paper");
}
END_TEST

START_TEST(selection_thompson_prefers_rank_and_success)
{
	/* Equal ranks: the one that never failed in 20 runs beats the one failing at the
	 * baseline rate; an unused one of the same rank explores in between. */
	struct sel_con c[3] = {{.cid = 1, .rank = 0.5, .runs = 20, .failures = 6},
			       {.cid = 2, .rank = 0.5, .runs = 20, .failures = 0},
			       {.cid = 3, .rank = 0.5}};
	struct sel_class k = {.id = 1, .n = 3, .c = c, .base_runs = 100, .base_failures = 30};
	struct sel_input in = {.selector = MODEL_SELECT_THOMPSON_MAX,
			       .base_runs = 100,
			       .base_failures = 30,
			       .n_classes = 1,
			       .classes = &k};
	double f[4], g[4];

	draw_frequencies(&in, f);
	ck_assert_double_eq_tol(f[3], 0.10, 0.01);
	ck_assert(f[1] > 0.6);
	ck_assert(f[0] < 0.05);
	ck_assert(f[2] > f[0]);
	draw_frequencies(&in, g); /* same seed, same draws */
	ck_assert_mem_eq(f, g, sizeof(f));

	in.selector = MODEL_SELECT_THOMPSON;
	draw_frequencies(&in, f);
	ck_assert(f[1] > f[2] && f[2] > f[0]);
	ck_assert_str_eq(model_selector_name(MODEL_SELECT_DEFAULT), "thompson-max");
	enum model_selector sel;
	ck_assert_int_eq(model_selector_parse("paper", &sel), 0);
	ck_assert_int_eq(sel, MODEL_SELECT_PAPER);
	ck_assert_int_eq(model_selector_parse("nope", &sel), -EINVAL);
}
END_TEST

/*
 * A residual class is chosen in exactly the runs that load its parent constraint, and weighed
 * against that constraint's rate: with the parent at 1/100, a residual constraint at 1/20 is
 * worth nothing (worse than its parent alone), one at 0/50 is effective there.
 */
START_TEST(selection_residual_class_rides_on_its_parent)
{
	struct sel_con parent[2] = {{.cid = 5, .rank = 0.5, .runs = 100, .failures = 1},
				    {.cid = 6, .rank = 0.9}};
	struct sel_con res[2] = {{.cid = 7, .rank = 0.5, .runs = 20, .failures = 1},
				 {.cid = 8, .rank = 0.1, .runs = 50, .failures = 0}};
	struct sel_class k[2] = {
	    {.id = 1, .n = 2, .c = parent, .base_runs = 100, .base_failures = 30},
	    {.id = 2,
	     .n = 2,
	     .c = res,
	     .under = 5 + 1,
	     .parent = 0,
	     .base_runs = 100,
	     .base_failures = 1}};
	struct sel_input in = {.selector = MODEL_SELECT_THOMPSON_MAX,
			       .base_runs = 100,
			       .base_failures = 30,
			       .n_classes = 2,
			       .classes = k};
	size_t with = 0, without = 0, picks[2] = {0};
	struct prng rng;
	long choice[2];

	parent[0].effective = true;
	res[1].effective = true;
	model_prng_seed(&rng, 7);
	for (int i = 0; i < 4000; i++) {
		if (model_select_run(&in, &rng, choice))
			continue;
		ck_assert_int_ge(choice[0], 0);
		ck_assert(choice[1] < 0 || choice[0] == 0); /* never without its parent */
		if (choice[1] >= 0)
			picks[choice[1]]++;
		if (choice[0] == 0)
			with++;
		else
			without++;
	}
	ck_assert_uint_gt(without, 100); /* explored: the untried parent constraint */
	ck_assert_uint_gt(with, 3000);
	ck_assert_uint_gt(picks[1], 20 * picks[0]);

	/* Known useless (rates far above the parent's): on top of it, nothing is loaded. */
	struct sel_con useless[2] = {{.cid = 7, .rank = 0.5, .runs = 200, .failures = 20},
				     {.cid = 8, .rank = 0.1, .runs = 200, .failures = 30}};
	k[1].c = useless;
	size_t loaded = 0;
	for (int i = 0; i < 1000; i++)
		if (!model_select_run(&in, &rng, choice) && choice[1] >= 0)
			loaded++;
	ck_assert_uint_eq(loaded, 0);
	k[1].c = res;
	/* A residual class without a contender does not keep the baseline share at 10%. */
	in.baseline = MODEL_BASELINE_CONTENDER;
	res[1].effective = false;
	ck_assert_double_eq(model_select_base_share(&in), SELECT_BASE_SHARE_LATE);
	k[1].under = 0; /* as a class of its own, it would */
	ck_assert_double_eq(model_select_base_share(&in), SELECT_BASE_SHARE_EARLY);
}
END_TEST

/* The rank is a prior that evidence overrides: a culprit of rank 0.007 with 740 runs at 0.5%
 * failures is explored before a constraint of rank 0.228 failing 16.5% of 103 runs, against a
 * baseline measured at 4 of 14 (cxx_workq's numbers). As a plain factor the rank kept the
 * culprit behind. Untried constraints keep their rank as their bound. */
START_TEST(selection_rank_is_a_prior_evidence_overrides)
{
	struct sel_con c[3] = {{.cid = 1, .rank = 0.228, .runs = 103, .failures = 17},
			       {.cid = 2, .rank = 0.1},
			       {.cid = 3, .rank = 0.007, .runs = 740, .failures = 4}};
	struct sel_class k = {
	    .id = 1, .failures = 20, .n = 3, .c = c, .base_runs = 14, .base_failures = 4};
	struct sel_input in = {.selector = MODEL_SELECT_THOMPSON_MAX,
			       .base_runs = 14,
			       .base_failures = 4,
			       .n_classes = 1,
			       .classes = &k};
	double f[4];

	draw_frequencies(&in, f); /* none effective: every non-baseline run explores */
	ck_assert_msg(f[2] > 0.6, "culprit %.3f, useless %.3f, untried %.3f", f[2], f[0], f[1]);
	ck_assert(f[2] > f[0] && f[2] > f[1]);
	/* Before any evidence the rank decides: untried, the culprit comes last. */
	c[2].runs = c[2].failures = 0;
	c[0].runs = c[0].failures = 0;
	draw_frequencies(&in, f);
	ck_assert(f[0] > f[2] && f[1] > f[2]);
}
END_TEST

/* ---- the model over a store ---- */

static char tmpdir[64];

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
store_setup(void)
{
	strcpy(tmpdir, "/tmp/test-model-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
store_teardown(void)
{
	nftw(tmpdir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static const struct model_program prog = {.id = "b1d", .path = "/bin/prog"};

static struct model *
open_model(unsigned window)
{
	struct model_options o;
	struct model *m;

	model_options_init(&o);
	o.window = window;
	o.seed = 99;
	o.no_sync = true;
	ck_assert_int_eq(model_open(tmpdir, &o, &m), 0);
	return m;
}

/* Starts a run; returns its id in @run. */
static void
start(struct model *m, char *run)
{
	struct model_plan *p;

	ck_assert_int_eq(model_run_start(m, &prog, NULL, &p), 0);
	strcpy(run, p->run);
	model_plan_free(p);
}

/* Starts a run and ends it as if it had loaded @cids[0..n-1], with @e as its outcome. */
static void
report_loaded(struct model *m, const char *const *cids, size_t n, bool failed,
	      const struct model_event *e, size_t ne)
{
	char run[48];
	start(m, run);
	struct model_report rep = {.run = run,
				   .failed = failed,
				   .have_constraints = true,
				   .constraints = cids,
				   .n_constraints = n,
				   .rpb = e,
				   .n_rpb = ne};
	ck_assert_int_eq(model_run_end(m, &rep), 0);
}

/*
 * A failure of a run that loaded a decisive contender of the class it is like starts that
 * contender's residual class (double_free fails in two orders: one class, one constraint per
 * order). The residual class is offered only on top of its contender, and its constraints are
 * judged against the contender's failure rate, not the baseline's.
 */
/* Starts a run and ends it as a baseline run with @e as its outcome. */
static void
report(struct model *m, bool failed, const struct model_event *e, size_t n)
{
	report_loaded(m, NULL, 0, failed, e, n);
}

static const struct model_constraint_stats *
find_constraint(const struct model_program_stats *ps, const char *b, const char *a)
{
	for (size_t k = 0; k < ps->n_classes; k++)
		for (size_t i = 0; i < ps->classes[k].n; i++)
			if (strcmp(ps->classes[k].c[i].b, b) == 0 &&
			    strcmp(ps->classes[k].c[i].a, a) == 0)
				return &ps->classes[k].c[i];
	return NULL;
}

/*
 * Window 2 (neighbours). Failures: [x1 y2 z1] -> (x,y) (y,z); [z2 x1 y2] -> (z,x) (x,y): one
 * class (same sites), F = 2. Correct samples: 3 x [y2 x1], 1 x [x1 y2], 2 x [x1 z2],
 * 1 x [w1 y2], so f(y,x) = 3, f(x,y) = 1, f(x,z) = 2, f(w,y) = 1; rows x 3, y 3, w 1; columns
 * x 3, y 2, z 2. By hand:
 *   (x,y): OI = 3/4, CI = 1 - 1/((3-1) + (2-1)) = 2/3, FC = 2/2, rank = 0.5
 *   (y,z): OI = 0.5 (no counts), CI = 1 - 0/(3 + 2) = 1, FC = 1/2, rank = 0.25
 *   (z,x): OI = 2/2 = 1, CI = 1 - 0/(0 + 3) = 1, FC = 1/2, rank = 0.5
 * (the paper's values; the model's OI has a pseudo-count each way, (f(A,B) + 1) / (f + 2),
 * and its rank softens OI to 0.5 + 0.5 OI: the values asserted below).
 */
START_TEST(rank_of_a_small_model)
{
	struct model *m = open_model(2);
	struct model_event f1[] = {ev(1, 1, "x"), ev(2, 2, "y"), ev(3, 1, "z")};
	struct model_event f2[] = {ev(1, 2, "z"), ev(2, 1, "x"), ev(3, 2, "y")};
	struct model_event yx[] = {ev(1, 2, "y"), ev(2, 1, "x")};
	struct model_event xy[] = {ev(1, 1, "x"), ev(2, 2, "y")};
	struct model_event xz[] = {ev(1, 1, "x"), ev(2, 2, "z")};
	struct model_event wy[] = {ev(1, 1, "w"), ev(2, 2, "y")};
	char run[48];

	report(m, true, f1, 3);
	report(m, true, f2, 3);
	start(m, run);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(model_run_correct(m, run, yx, 2), 0);
	ck_assert_int_eq(model_run_correct(m, run, xy, 2), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(model_run_correct(m, run, xz, 2), 0);
	ck_assert_int_eq(model_run_correct(m, run, wy, 2), 0);

	struct model_stats *st;
	ck_assert_int_eq(model_stats_get(m, "b1d", &st), 0);
	ck_assert_uint_eq(st->n, 1);
	const struct model_program_stats *ps = &st->programs[0];
	ck_assert_uint_eq(ps->n_classes, 1);
	ck_assert_uint_eq(ps->classes[0].failures, 2);
	ck_assert_uint_eq(ps->n_constraints, 3);
	ck_assert_uint_eq(ps->correct_samples, 7);
	ck_assert_uint_eq(ps->baseline_runs, 2);
	ck_assert_uint_eq(ps->baseline_failures, 2);
	ck_assert_uint_eq(ps->open_runs, 1);

	const struct model_constraint_stats *c = find_constraint(ps, "x", "y");
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->f_ab, 3);
	ck_assert_uint_eq(c->f_ba, 1);
	ck_assert_uint_eq(c->failing_with, 2);
	ck_assert_double_eq_tol(c->oi, 4.0 / 6.0, 1e-12);
	ck_assert_double_eq_tol(c->ci, 2.0 / 3.0, 1e-12);
	ck_assert_double_eq_tol(c->fc, 1.0, 1e-12);
	/* rank = (0.5 + 0.5 OI) CI FC (RANK_OI_FLOOR) */
	ck_assert_double_eq_tol(c->rank, (0.5 + 0.5 * 4.0 / 6.0) * 2.0 / 3.0, 1e-12);
	c = find_constraint(ps, "y", "z");
	ck_assert_ptr_nonnull(c);
	ck_assert_double_eq_tol(c->oi, 0.5, 1e-12);
	ck_assert_double_eq_tol(c->ci, 1.0, 1e-12);
	ck_assert_double_eq_tol(c->rank, (0.5 + 0.5 * 0.5) * 0.5, 1e-12);
	c = find_constraint(ps, "z", "x");
	ck_assert_ptr_nonnull(c);
	ck_assert_double_eq_tol(c->oi, 3.0 / 4.0, 1e-12); /* f(A,B) = 2, f(B,A) = 0 */
	ck_assert_double_eq_tol(c->rank, (0.5 + 0.5 * 0.75) * 0.5, 1e-12);
	model_stats_free(st);
	model_close(m);
}
END_TEST

/*
 * Through the store: a failure whose reader entered its read lock (r) before the writer's
 * write lock (w) and acquired after its unlock (u) makes (w, r) a candidate, and a correct run
 * with that order counts it in f(w, r) (f_ba: B then A).
 */
START_TEST(rwlock_waited_pair_through_the_model)
{
	const enum model_event_kind R = MODEL_EV_RWLOCK_RDLOCK, W = MODEL_EV_RWLOCK_WRLOCK,
				    U = MODEL_EV_RWLOCK_UNLOCK;
	struct model *m = open_model(2);
	struct model_event e[] = {evk(1, 2, "r", R, 0x40), evk(2, 3, "w", W, 0x40),
				  evk(3, 3, "u", U, 0x40), evk(4, 2, "v", U, 0x40)};
	char run[48];

	report(m, true, e, 4);
	start(m, run);
	ck_assert_int_eq(model_run_correct(m, run, e, 4), 0);

	struct model_stats *st;
	ck_assert_int_eq(model_stats_get(m, "b1d", &st), 0);
	const struct model_program_stats *ps = &st->programs[0];
	const struct model_constraint_stats *c = find_constraint(ps, "w", "r");
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->failing_with, 1);
	ck_assert_uint_eq(c->f_ba, 1); /* f(B, A): w then r */
	ck_assert_uint_eq(c->f_ab, 0);
	ck_assert_ptr_nonnull(find_constraint(ps, "u", "r")); /* where it acquired */
	ck_assert_ptr_null(find_constraint(ps, "r", "w")); /* where it entered: no more */
	model_stats_free(st);
	model_close(m);
}
END_TEST

/* A failure RPB over @sites, threads alternating. */
static void
fail_with_sites(struct model *m, const char *const *sites, size_t n)
{
	struct model_event e[16];
	for (size_t i = 0; i < n; i++)
		e[i] = ev(i + 1, 1 + i % 2, sites[i]);
	report(m, true, e, n);
}

START_TEST(class_assignment)
{
	struct model *m = open_model(10);
	const char *s1[] = {"a", "b", "c", "d", "e"}, *s2[] = {"a", "b", "c", "d"};
	const char *s3[] = {"a", "b", "x", "y"}, *s4[] = {"y", "x", "b", "a"};

	fail_with_sites(m, s1, 5); /* class 1 */
	fail_with_sites(m, s2, 4); /* 4/5 = 0.8 of class 1's exemplar: joins */
	fail_with_sites(m, s3, 4); /* 2/7 of class 1: a new class */
	fail_with_sites(m, s4, 4); /* the same sites as class 2's exemplar */

	struct model_stats *st;
	ck_assert_int_eq(model_stats_get(m, NULL, &st), 0);
	const struct model_program_stats *ps = &st->programs[0];
	ck_assert_uint_eq(ps->n_classes, 2);
	ck_assert_uint_eq(ps->classes[0].failures, 2);
	ck_assert_uint_eq(ps->classes[0].n_sites, 5);
	ck_assert_uint_eq(ps->classes[1].failures, 2);
	ck_assert_uint_eq(ps->classes[1].n_sites, 4);
	model_stats_free(st);
	model_close(m);
}
END_TEST

/* @st formatted as JSON and parsed back (its curves dropped: JSON keeps fewer points). */
static struct model_stats *
stats_through_json(struct model_stats *st)
{
	struct model_stats *back;
	const char *err;
	char *text;

	for (size_t p = 0; p < st->n; p++)
		st->programs[p].baseline_curve.n = st->programs[p].constrained_curve.n = 0;
	ck_assert_int_eq(model_json_format_stats(st, &text), 0);
	ck_assert_int_eq(model_json_parse_stats(text, strlen(text), &back, &err), 0);
	free(text);
	return back;
}

START_TEST(residual_class_on_a_decisive_contender)
{
	struct model *m = open_model(10);
	const char *s1[] = {"a", "b", "c", "d"};
	struct model_event f[4], ok[] = {ev(1, 1, "b"), ev(2, 2, "a")};
	struct model_stats *st;

	for (size_t i = 0; i < 4; i++)
		f[i] = ev(i + 1, 1 + i % 2, s1[i]);
	for (int i = 0; i < 20; i++) /* baseline: 10 of 20 fail */
		report(m, i % 2 == 0, i % 2 == 0 ? f : ok, i % 2 == 0 ? 4 : 2);
	ck_assert_int_eq(model_stats_get(m, NULL, &st), 0);
	const struct model_constraint_stats *cc = find_constraint(&st->programs[0], "a", "b");
	ck_assert_ptr_nonnull(cc);
	char cid[24];
	strcpy(cid, cc->id);
	model_stats_free(st);
	const char *con[] = {cid};

	/* Not decisive yet (1 run, 1 failure): its failure joins the class. */
	report_loaded(m, con, 1, true, f, 4);
	for (int i = 0; i < 40; i++)
		report_loaded(m, con, 1, false, NULL, 0);
	/* Decisive now (1/41 against 10/20): what it leaves starts a residual class. */
	report_loaded(m, con, 1, true, f, 4);
	ck_assert_int_eq(model_stats_get(m, NULL, &st), 0);
	const struct model_program_stats *ps = &st->programs[0];
	ck_assert_uint_eq(ps->n_classes, 2);
	ck_assert_uint_eq(ps->classes[0].under, 0);
	ck_assert_uint_eq(ps->classes[0].failures, 11);
	ck_assert_uint_eq(ps->classes[1].under, strtoul(cid, NULL, 10) + 1);
	ck_assert_uint_eq(ps->classes[1].failures, 1);
	ck_assert_uint_gt(ps->classes[1].n, 0);
	/* What the contender left is still of its class's kind: it counts against it. */
	cc = find_constraint(ps, "a", "b");
	ck_assert_uint_eq(cc->runs, 42);
	ck_assert_uint_eq(cc->failures, 2);
	ck_assert_uint_eq(ps->classes[1].base_runs, 42);
	ck_assert_uint_eq(ps->classes[1].base_failures, 2);
	/* Its candidates are the failure's pairs but the contender's own. */
	ck_assert_uint_eq(ps->classes[1].n, ps->classes[0].n - 1);
	for (size_t i = 0; i < ps->classes[1].n; i++)
		ck_assert(strcmp(ps->classes[1].c[i].b, "a") || strcmp(ps->classes[1].c[i].a, "b"));
	uint32_t residual = ps->classes[1].id;
	char xid[24];
	strcpy(xid, ps->classes[1].c[0].id);
	model_stats_free(st);

	/* Offered with the contender (it may also draw nothing), never without it. */
	size_t with = 0, without = 0, on_top = 0;
	for (uint64_t seed = 1; seed <= 200; seed++) {
		struct model_plan *p;
		ck_assert_int_eq(model_run_start(m, &prog, &seed, &p), 0);
		bool has_c = false, has_residual = false;
		for (size_t i = 0; i < p->n; i++) {
			has_c |= strcmp(p->constraints[i].id, cid) == 0;
			has_residual |= p->constraints[i].class_id == residual;
		}
		ck_assert(has_c || !has_residual);
		on_top += has_residual;
		if (!p->baseline && has_c)
			with++;
		else if (!p->baseline)
			without++;
		model_plan_free(p);
	}
	ck_assert_uint_gt(with, 100); /* the contender is exploited 75% of the time */
	ck_assert_uint_gt(on_top, with / 2); /* its untried candidates are worth a try */

	/* 0 of 6 runs on top of the contender: below the baseline (chi-square 4.8), but not
	 * below the contender's 1/42: not a contender of its class. */
	const char *both[] = {cid, xid};
	for (int i = 0; i < 6; i++)
		report_loaded(m, both, 2, false, NULL, 0);
	ck_assert_int_eq(model_stats_get(m, NULL, &st), 0);
	ps = &st->programs[0];
	const struct model_constraint_stats *x = NULL;
	for (size_t i = 0; i < ps->classes[1].n; i++)
		if (strcmp(ps->classes[1].c[i].id, xid) == 0)
			x = &ps->classes[1].c[i];
	ck_assert_ptr_nonnull(x);
	ck_assert_uint_eq(x->runs, 6);
	ck_assert(!x->effective);
	double chi2;
	ck_assert(model_stat_effective(20, 10, 6, 0, &chi2));

	/* The stats keep "under" through JSON. */
	struct model_stats *back = stats_through_json(st);
	ck_assert_uint_eq(back->programs[0].classes[1].under, ps->classes[1].under);
	ck_assert_uint_eq(back->programs[0].classes[0].under, 0);
	model_stats_free(back);
	model_stats_free(st);
	model_close(m);
}
END_TEST

/* Sets program 1's flags in the store of the closed model at tmpdir (an older store has 0). */
static int
set_flags(struct store_txn *t, void *arg)
{
	struct prog_meta meta;
	int r = model_rec_meta_get(t, 1, &meta);

	if (r < 0)
		return r;
	meta.flags = *(const uint32_t *)arg;
	meta.gen++;
	return model_rec_meta_put(t, 1, &meta);
}

/*
 * A run loads one constraint per class, so a constraint of a rare class rides on another
 * class's contender: on all of its runs' failures it looks effective. Each constraint is judged
 * on its runs' failures of its own class's kind, against the baseline's failures of that kind.
 * Baseline: 10 of 20 runs fail like class 1, 2 like class 2. Then 30 runs load X (class 1) and
 * Y (class 2): 3 fail like class 2, none like class 1. X: 0/30 against 10/20, a contender. Y:
 * 3/30 against 2/20, no better than nothing (on every failure, 3/30 against 12/20, it was).
 * A store older than the class counts keeps judging on every failure.
 */
START_TEST(constraint_judged_on_its_own_class)
{
	struct model *m = open_model(10);
	const char *s1[] = {"a", "b", "c", "d"}, *s2[] = {"p", "q", "r", "s"};
	struct model_event f1[4], f2[4], ok[] = {ev(1, 1, "b"), ev(2, 2, "a")};
	struct model_stats *st;

	for (size_t i = 0; i < 4; i++) {
		f1[i] = ev(i + 1, 1 + i % 2, s1[i]);
		f2[i] = ev(i + 1, 1 + i % 2, s2[i]);
	}
	for (int i = 0; i < 20; i++)
		report(m, i < 12, i < 10 ? f1 : i < 12 ? f2 : ok, i < 12 ? 4 : 2);
	ck_assert_int_eq(model_stats_get(m, NULL, &st), 0);
	const struct model_constraint_stats *x = find_constraint(&st->programs[0], "a", "b"),
					    *y = find_constraint(&st->programs[0], "p", "q");
	ck_assert_ptr_nonnull(x);
	ck_assert_ptr_nonnull(y);
	char xid[24], yid[24];
	strcpy(xid, x->id);
	strcpy(yid, y->id);
	model_stats_free(st);
	const char *both[] = {xid, yid};
	for (int i = 0; i < 30; i++)
		report_loaded(m, both, 2, i < 3, i < 3 ? f2 : NULL, i < 3 ? 4 : 0);

	for (int old = 0; old < 2; old++) {
		if (old) {
			model_close(m);
			struct store *s;
			uint32_t flags = 0;
			ck_assert_int_eq(model_store_open(tmpdir, 0, true, &s), 0);
			ck_assert_int_eq(model_store_write(s, set_flags, &flags), 0);
			model_store_close(s);
			m = open_model(10);
		}
		ck_assert_int_eq(model_stats_get(m, NULL, &st), 0);
		const struct model_program_stats *ps = &st->programs[0];
		ck_assert_uint_eq(ps->n_classes, 2);
		ck_assert_uint_eq(ps->classes[0].failures, 10);
		ck_assert_uint_eq(ps->classes[1].failures, 5);
		ck_assert_uint_eq(ps->classes[0].base_runs, 20);
		ck_assert_uint_eq(ps->classes[0].base_failures, old ? 12 : 10);
		ck_assert_uint_eq(ps->classes[1].base_failures, old ? 12 : 2);
		x = find_constraint(ps, "a", "b");
		y = find_constraint(ps, "p", "q");
		ck_assert_uint_eq(x->runs, 30);
		ck_assert_uint_eq(x->all_failures, 3);
		ck_assert_uint_eq(x->failures, old ? 3 : 0);
		ck_assert(x->effective);
		ck_assert_uint_eq(y->runs, 30);
		ck_assert_uint_eq(y->all_failures, 3);
		ck_assert_uint_eq(y->failures, 3);
		ck_assert(y->effective == (bool)old);
		if (!old) {
			double chi2;
			ck_assert(!model_stat_effective(20, 2, 30, 3, &chi2));
			ck_assert(model_stat_effective(20, 12, 30, 3, &chi2));
			struct model_stats *back = stats_through_json(st);
			const struct model_program_stats *bp = &back->programs[0];
			ck_assert_uint_eq(bp->classes[1].base_failures, 2);
			ck_assert_uint_eq(bp->classes[1].base_runs, 20);
			ck_assert_uint_eq(find_constraint(bp, "a", "b")->all_failures, 3);
			ck_assert_uint_eq(find_constraint(bp, "a", "b")->failures, 0);
			model_stats_free(back);
		}
		model_stats_free(st);
	}
	model_close(m);
}
END_TEST

START_TEST(start_serves_one_per_class_and_replays)
{
	struct model *m = open_model(10);
	const char *s1[] = {"a", "b", "c"}, *s2[] = {"p", "q", "r"};
	struct model_plan *p1, *p2;
	uint64_t seed;

	fail_with_sites(m, s1, 3);
	fail_with_sites(m, s2, 3);
	/* Find a seed that is not a baseline run, then replay it. */
	for (seed = 1;; seed++) {
		ck_assert_int_eq(model_run_start(m, &prog, &seed, &p1), 0);
		if (!p1->baseline)
			break;
		model_plan_free(p1);
	}
	ck_assert_uint_eq(p1->n, 2);
	ck_assert_uint_ne(p1->constraints[0].class_id, p1->constraints[1].class_id);
	ck_assert_uint_eq(p1->constraints[0].delay_us, 1000);
	ck_assert_uint_eq(p1->seed, seed);
	ck_assert_int_eq(model_run_start(m, &prog, &seed, &p2), 0);
	ck_assert_uint_eq(p2->n, 2);
	for (size_t i = 0; i < 2; i++)
		ck_assert_str_eq(p1->constraints[i].id, p2->constraints[i].id);
	ck_assert_str_ne(p1->run, p2->run);
	model_plan_free(p1);
	model_plan_free(p2);
	model_close(m);
}
END_TEST

/* Starts runs with seeds 1, 2, ... until one is not a baseline run; returns how many
 * constraints it got. */
static size_t
served_constraints(struct model *m)
{
	for (uint64_t seed = 1; seed < 100; seed++) {
		struct model_plan *p;
		ck_assert_int_eq(model_run_start(m, &prog, &seed, &p), 0);
		size_t n = p->n;
		bool baseline = p->baseline;
		model_plan_free(p);
		if (!baseline)
			return n;
	}
	ck_abort_msg("99 baseline runs in a row");
	return 0;
}

START_TEST(snapshot_age_bounds_staleness)
{
	struct model_options o;
	struct model *m;
	const char *s1[] = {"a", "b", "c"}, *s2[] = {"p", "q", "r"};

	model_options_init(&o);
	o.no_sync = true;
	o.snapshot_ms = 3600 * 1000; /* an hour: the first snapshot stays */
	ck_assert_int_eq(model_open(tmpdir, &o, &m), 0);
	fail_with_sites(m, s1, 3);
	ck_assert_uint_eq(served_constraints(m), 1);
	fail_with_sites(m, s2, 3); /* a second class, unseen by the cached snapshot */
	ck_assert_uint_eq(served_constraints(m), 1);
	model_close(m);
	m = open_model(10); /* snapshot_ms 0: always the latest */
	ck_assert_uint_eq(served_constraints(m), 2);
	model_close(m);

	/* 1 ms: stale soon, then the next start rebuilds it. */
	o.snapshot_ms = 1;
	const char *s3[] = { "u", "v", "w" };
	ck_assert_int_eq(model_open(tmpdir, &o, &m), 0);
	ck_assert_uint_eq(served_constraints(m), 2);
	fail_with_sites(m, s3, 3);
	usleep(5000);
	ck_assert_uint_eq(served_constraints(m), 3);
	model_close(m);
}
END_TEST

/* The whole /api/stats text: equal texts, equal store. */
static char *
stats_text(struct model *m)
{
	struct model_stats *st;
	char *json;

	ck_assert_int_eq(model_stats_get(m, NULL, &st), 0);
	ck_assert_int_eq(model_json_format_stats(st, &json), 0);
	model_stats_free(st);
	return json;
}

START_TEST(bad_reports_change_nothing)
{
	struct model *m = open_model(10);
	const char *s1[] = {"a", "b", "c"};
	char run[48];

	fail_with_sites(m, s1, 3);
	start(m, run);
	char *before = stats_text(m);
	const char *bogus[] = {"999"}, *garbage[] = {"1x"};
	struct model_event e[] = {ev(1, 1, "zz"), ev(2, 2, "yy")};
	struct model_report rep = {.run = run,
				   .failed = true,
				   .have_constraints = true,
				   .constraints = bogus,
				   .n_constraints = 1,
				   .rpb = e,
				   .n_rpb = 2};
	ck_assert_int_eq(model_run_end(m, &rep), -EINVAL); /* unknown constraint */
	rep.constraints = garbage;
	ck_assert_int_eq(model_run_end(m, &rep), -EINVAL); /* not an id */
	rep.n_constraints = 0;
	rep.run = "1-999";
	ck_assert_int_eq(model_run_end(m, &rep), -ENOENT); /* unknown run */
	rep.run = "7-1";
	ck_assert_int_eq(model_run_end(m, &rep), -ENOENT); /* unknown program */
	rep.run = "1-";
	ck_assert_int_eq(model_run_end(m, &rep), -EINVAL);
	ck_assert_int_eq(model_run_tick(m, "x"), -EINVAL);
	ck_assert_int_eq(model_run_correct(m, "1-999", e, 2), -ENOENT);
	char *after = stats_text(m);
	ck_assert_str_eq(before, after);
	free(after);

	rep.run = run;
	ck_assert_int_eq(model_run_end(m, &rep), 0);
	ck_assert_int_eq(model_run_end(m, &rep), -EALREADY); /* a run ends once */
	ck_assert_int_eq(model_run_tick(m, run), -EALREADY);
	free(before);
	model_close(m);
}
END_TEST

START_TEST(ticks_count_successes)
{
	struct model *m = open_model(10);
	char run[48];

	start(m, run);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(model_run_tick(m, run), 0);
	struct model_stats *st;
	ck_assert_int_eq(model_stats_get(m, NULL, &st), 0);
	ck_assert_uint_eq(st->programs[0].ticks, 5);
	ck_assert_uint_eq(st->programs[0].baseline_runs, 5);
	ck_assert_uint_eq(st->programs[0].baseline_failures, 0);
	ck_assert_uint_eq(st->programs[0].baseline_curve.n, 5);
	model_stats_free(st);
	model_close(m);
}
END_TEST

START_TEST(persists_across_reopen)
{
	struct model *m = open_model(10);
	const char *s1[] = {"a", "b", "c", "d"};

	fail_with_sites(m, s1, 4);
	char *before = stats_text(m);
	model_close(m);
	m = open_model(10);
	char *after = stats_text(m);
	ck_assert_str_eq(before, after);
	char run[48];
	start(m, run);
	ck_assert_str_eq(run, "1-2"); /* numbering goes on */
	free(before);
	free(after);
	model_close(m);
}
END_TEST

START_TEST(map_grows_when_full)
{
	struct model_options o;
	struct model *m;
	size_t map0, map, used;
	struct model_event e[200];
	char names[200][24];

	model_options_init(&o);
	o.map_size = 64 << 10; /* 64 KiB: full after a few failures */
	o.no_sync = true;
	ck_assert_int_eq(model_open(tmpdir, &o, &m), 0);
	ck_assert_int_eq(model_disk_usage(m, &map0, &used), 0);
	for (int f = 0; f < 20; f++) {
		for (int i = 0; i < 200; i++) {
			snprintf(names[i], sizeof(names[i]), "site-%d-%d", f, i);
			e[i] = ev((uint64_t)i + 1, 1 + (uint32_t)(i % 3), names[i]);
		}
		report(m, true, e, 200);
	}
	ck_assert_int_eq(model_disk_usage(m, &map, &used), 0);
	ck_assert_uint_gt(map, map0);
	struct model_stats *st;
	ck_assert_int_eq(model_stats_get(m, NULL, &st), 0);
	ck_assert_uint_eq(st->programs[0].baseline_failures, 20);
	model_stats_free(st);
	model_close(m);
}
END_TEST

START_TEST(several_processes_share_a_store)
{
	const int procs = 3, runs = 20;
	pid_t pid[3];

	for (int p = 0; p < procs; p++) {
		pid[p] = fork();
		ck_assert_int_ge(pid[p], 0);
		if (pid[p] == 0) {
			struct model_options o;
			struct model *m;
			model_options_init(&o);
			o.no_sync = true;
			o.map_size = 256 << 10; /* small: growth races with the others */
			if (model_open(tmpdir, &o, &m) < 0)
				_exit(1);
			for (int i = 0; i < runs; i++) {
				char site[3][32];
				struct model_event e[3];
				for (int k = 0; k < 3; k++) {
					snprintf(site[k], sizeof(site[k]), "p%d-%d-%d", p, i, k);
					e[k] = ev((uint64_t)k + 1, 1 + (uint32_t)k % 2, site[k]);
				}
				struct model_plan *plan;
				if (model_run_start(m, &prog, NULL, &plan) < 0)
					_exit(2);
				struct model_report rep = {
				    .run = plan->run, .failed = true, .rpb = e, .n_rpb = 3};
				int r = model_run_end(m, &rep);
				model_plan_free(plan);
				if (r < 0)
					_exit(3);
			}
			model_close(m);
			_exit(0);
		}
	}
	for (int p = 0; p < procs; p++) {
		int status;
		ck_assert_int_eq(waitpid(pid[p], &status, 0), pid[p]);
		ck_assert(WIFEXITED(status));
		ck_assert_int_eq(WEXITSTATUS(status), 0);
	}
	struct model *m = open_model(10);
	struct model_stats *st;
	ck_assert_int_eq(model_stats_get(m, NULL, &st), 0);
	ck_assert_uint_eq(st->programs[0].runs_started, procs * runs);
	ck_assert_uint_eq(st->programs[0].runs_ended, procs * runs);
	ck_assert_uint_eq(st->programs[0].baseline_failures + st->programs[0].constrained_failures,
			  procs * runs);
	model_stats_free(st);
	model_close(m);
}
END_TEST

/* ---- JSON forms ---- */

START_TEST(json_reports_strict_types)
{
	struct model_json_doc *doc;
	struct model_report rep;
	const char *err = NULL;
	const char *ok = "{\"run\":\"1-2\",\"outcome\":\"failure\",\"constraints\":[\"3\"],"
			 "\"failure\":{\"signal\":11},\"extra\":[1,2],\"rpb\":[{\"seq\":5,\"ns\":1,"
			 "\"thread\":2,\"tid\":9,\"pid\":8,\"kind\":\"mutex_lock\",\"site\":\"s\","
			 "\"where\":\"f.c:1\",\"object\":\"0x10\",\"new\":true}]}";

	ck_assert_int_eq(model_json_parse_report(ok, strlen(ok), MODEL_JSON_END, &doc, &rep, &err),
			 0);
	ck_assert_str_eq(rep.run, "1-2");
	ck_assert(rep.failed && rep.have_constraints);
	ck_assert_uint_eq(rep.n_constraints, 1);
	ck_assert_str_eq(rep.constraints[0], "3");
	ck_assert_uint_eq(rep.n_rpb, 1);
	ck_assert_uint_eq(rep.rpb[0].seq, 5);
	ck_assert_uint_eq(rep.rpb[0].object, 0x10);
	ck_assert_str_eq(rep.rpb[0].where, "f.c:1");
	model_json_doc_free(doc);

	static const char *const bad[] = {
	    "{\"run\":\"1-2\",\"outcome\":\"failure\"",	   /* malformed */
	    "{\"run\":\"1-2\",\"outcome\":\"failure\"} x", /* trailing data */
	    "[1]",					   /* not an object */
	    "{\"run\":12,\"outcome\":\"failure\"}",	   /* wrong type */
	    "{\"run\":\"1-2\",\"outcome\":\"maybe\"}",
	    "{\"run\":\"1-2\",\"outcome\":\"success\",\"constraints\":[3]}",
	    "{\"run\":\"1-2\",\"outcome\":\"failure\",\"rpb\":[{\"seq\":1,\"thread\":1}]}",
	    "{\"run\":\"1-2\",\"outcome\":\"failure\",\"rpb\":[{\"seq\":-1,\"thread\":1,"
	    "\"site\":\"s\"}]}",
	    "{\"run\":\"1-2\",\"outcome\":\"failure\",\"rpb\":[{\"seq\":1,\"thread\":1,"
	    "\"site\":\"s\",\"kind\":\"mutex_lok\"}]}",
	    "{\"run\":\"1-2\",\"outcome\":\"failure\",\"failure\":3}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		ck_assert_int_eq(model_json_parse_report(bad[i], strlen(bad[i]), MODEL_JSON_END,
							 &doc, &rep, &err),
				 -EINVAL);
		ck_assert_ptr_nonnull(err);
	}
	const char *nobody = "{\"run\":\"1-2\"}";
	ck_assert_int_eq(
	    model_json_parse_report(nobody, strlen(nobody), MODEL_JSON_CORRECT, &doc, &rep, &err),
	    -EINVAL);
	ck_assert_int_eq(
	    model_json_parse_report(nobody, strlen(nobody), MODEL_JSON_TICK, &doc, &rep, &err), 0);
	model_json_doc_free(doc);
}
END_TEST

START_TEST(json_plan_round_trip)
{
	struct model_served c = {.id = "7",
				 .class_id = 2,
				 .b = "p+0x1<p+0x2",
				 .a = "q\"x",
				 .b_where = "a.c:1",
				 .a_where = "",
				 .delay_us = 1000};
	struct model_plan p = {.run = "3-4", .seed = UINT64_MAX, .n = 1, .constraints = &c};
	struct model_plan *q;
	const char *err;
	char *json;

	ck_assert_int_eq(model_json_format_plan(&p, &json), 0);
	ck_assert_int_eq(model_json_parse_plan(json, strlen(json), &q, &err), 0);
	ck_assert_str_eq(q->run, "3-4");
	ck_assert_uint_eq(q->seed, UINT64_MAX);
	ck_assert(!q->baseline);
	ck_assert_uint_eq(q->n, 1);
	ck_assert_str_eq(q->constraints[0].a, "q\"x");
	ck_assert_str_eq(q->constraints[0].b, "p+0x1<p+0x2");
	ck_assert_uint_eq(q->constraints[0].class_id, 2);
	model_plan_free(q);
	free(json);
	ck_assert_int_eq(model_json_format_error("a \"b\"", &json), 0);
	ck_assert_str_eq(json, "{\"error\":\"a \\\"b\\\"\"}");
	free(json);
}
END_TEST

/* The client's /start body: seed (full u64 range) and offline_run read back; bad seeds refused. */
START_TEST(json_start_request_round_trip)
{
	struct model_start_request req = {.prog = {.id = "b1d", .path = "/bin/p\"q"},
					  .pid = 42,
					  .host = "h",
					  .have_seed = true,
					  .seed = UINT64_MAX,
					  .offline_run = "offline-1-2-3"},
				   got;
	struct model_json_doc *doc;
	const char *err;
	char *json;

	ck_assert_int_eq(model_json_format_start(&req, &json), 0);
	ck_assert_int_eq(model_json_parse_start(json, strlen(json), &doc, &got, &err), 0);
	ck_assert_str_eq(got.prog.id, "b1d");
	ck_assert_str_eq(got.prog.path, "/bin/p\"q");
	ck_assert_int_eq(got.pid, 42);
	ck_assert_str_eq(got.host, "h");
	ck_assert(got.have_seed);
	ck_assert_uint_eq(got.seed, UINT64_MAX);
	ck_assert_str_eq(got.offline_run, "offline-1-2-3");
	model_json_doc_free(doc);
	free(json);

	req = (struct model_start_request){.prog = {.id = "", .path = "/p"}, .seed = 7};
	ck_assert_int_eq(model_json_format_start(&req, &json), 0);
	ck_assert_str_eq(json, "{\"program\":{\"id\":\"\",\"path\":\"/p\"}}");
	ck_assert_int_eq(model_json_parse_start(json, strlen(json), &doc, &got, &err), 0);
	ck_assert(!got.have_seed);
	ck_assert_ptr_null(got.offline_run);
	model_json_doc_free(doc);
	free(json);

	static const char *const bad[] = {
	    "{\"program\":{\"id\":\"x\"},\"seed\":-1}",
	    "{\"program\":{\"id\":\"x\"},\"seed\":1.5}",
	    "{\"program\":{\"id\":\"x\"},\"seed\":\"5\"}",
	    "{\"program\":{\"id\":\"x\"},\"seed\":true}",
	    "{\"program\":{\"id\":\"x\"},\"offline_run\":1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		ck_assert_int_eq(model_json_parse_start(bad[i], strlen(bad[i]), &doc, &got, &err),
				 -EINVAL);
		ck_assert_ptr_nonnull(err);
	}
	const char *zero = "{\"program\":{\"id\":\"x\"},\"seed\":0}";
	ck_assert_int_eq(model_json_parse_start(zero, strlen(zero), &doc, &got, &err), 0);
	ck_assert(got.have_seed);
	ck_assert_uint_eq(got.seed, 0);
	model_json_doc_free(doc);
}
END_TEST

/* The client's /end, /correct and /tick bodies parse back to what was formatted. */
START_TEST(json_report_bodies_round_trip)
{
	struct model_event e[] = {ev(1, 1, "s\"1"), ev(2, 2, "s2")};
	const char *cids[] = {"4", "9"};
	struct model_report rep = {.run = "1-2",
				   .failed = true,
				   .have_constraints = true,
				   .constraints = cids,
				   .n_constraints = 2,
				   .rpb = e,
				   .n_rpb = 2},
			    got;
	struct model_json_doc *doc;
	const char *err;
	char *json;

	e[0].where = "a.c:1 f";
	e[0].kind = MODEL_EV_MUTEX_LOCK;
	e[0].object = 0x1234;
	e[1].kind = MODEL_EV_POINT;
	ck_assert_int_eq(model_json_format_report(&rep, MODEL_JSON_END, &json), 0);
	ck_assert_int_eq(
	    model_json_parse_report(json, strlen(json), MODEL_JSON_END, &doc, &got, &err), 0);
	ck_assert_str_eq(got.run, "1-2");
	ck_assert(got.failed && got.have_constraints);
	ck_assert_uint_eq(got.n_constraints, 2);
	ck_assert_str_eq(got.constraints[1], "9");
	ck_assert_uint_eq(got.n_rpb, 2);
	ck_assert_str_eq(got.rpb[0].site, "s\"1");
	ck_assert_str_eq(got.rpb[0].where, "a.c:1 f");
	ck_assert_int_eq(got.rpb[0].kind, MODEL_EV_MUTEX_LOCK);
	ck_assert_uint_eq(got.rpb[0].object, 0x1234);
	ck_assert_uint_eq(got.rpb[1].seq, 2);
	ck_assert_uint_eq(got.rpb[1].thread, 2);
	model_json_doc_free(doc);
	free(json);

	/* A success carries no RPB; a baseline run says so with an empty list. */
	rep.failed = false;
	rep.n_constraints = 0;
	ck_assert_int_eq(model_json_format_report(&rep, MODEL_JSON_END, &json), 0);
	ck_assert_str_eq(json, "{\"run\":\"1-2\",\"outcome\":\"success\",\"constraints\":[]}");
	free(json);
	ck_assert_int_eq(model_json_format_report(&rep, MODEL_JSON_CORRECT, &json), 0);
	ck_assert_int_eq(
	    model_json_parse_report(json, strlen(json), MODEL_JSON_CORRECT, &doc, &got, &err), 0);
	ck_assert_uint_eq(got.n_rpb, 2);
	model_json_doc_free(doc);
	free(json);
	ck_assert_int_eq(model_json_format_report(&rep, MODEL_JSON_TICK, &json), 0);
	ck_assert_str_eq(json, "{\"run\":\"1-2\"}");
	free(json);
}
END_TEST

/* /api/stats parsed by the client formats back to the same text (charts aside: not parsed). */
START_TEST(json_stats_round_trip)
{
	struct model *m = open_model(10);
	const char *s1[] = {"a", "b", "c"}, *s2[] = {"x", "y", "z", "w"};
	struct model_event ok[] = {ev(1, 1, "b"), ev(2, 2, "a")};
	struct model_stats *st, *back;
	const char *err;
	char *text, *again;

	fail_with_sites(m, s1, 3);
	fail_with_sites(m, s2, 4);
	for (int i = 0; i < 6; i++)
		report(m, i % 3 == 0, ok, 2);
	ck_assert_int_eq(model_stats_get(m, NULL, &st), 0);
	ck_assert_uint_ge(st->n, 1);
	ck_assert_uint_ge(st->programs[0].n_classes, 2);
	for (size_t p = 0; p < st->n; p++)
		st->programs[p].baseline_curve.n = st->programs[p].constrained_curve.n = 0;
	ck_assert_int_eq(model_json_format_stats(st, &text), 0);
	ck_assert_int_eq(model_json_parse_stats(text, strlen(text), &back, &err), 0);
	ck_assert_int_eq(model_json_format_stats(back, &again), 0);
	ck_assert_str_eq(again, text);
	ck_assert_uint_eq(back->programs[0].runs_ended, st->programs[0].runs_ended);
	ck_assert_uint_eq(back->programs[0].n_constraints, st->programs[0].n_constraints);
	ck_assert_str_eq(back->programs[0].classes[0].c[0].b, st->programs[0].classes[0].c[0].b);
	model_stats_free(back);
	free(again);
	free(text);
	model_stats_free(st);

	static const char *const bad[] = {"[]", "{\"programs\":[{\"id\":1}]}",
					  "{\"programs\":[{\"runs_started\":1}]}", "{}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(model_json_parse_stats(bad[i], strlen(bad[i]), &back, &err),
				 -EINVAL);
	model_close(m);
}
END_TEST

static Suite *
model_suite(void)
{
	Suite *s = suite_create("model");
	TCase *tc = tcase_create("event");
	tcase_add_test(tc, kind_names_round_trip);
	tcase_add_test(tc, event_json_exact);
	tcase_add_test(tc, event_json_truncation_counts_full_length);
	tcase_add_test(tc, quote_control_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("pure");
	tcase_add_test(tc, candidates_from_crafted_rpb);
	tcase_add_test(tc, contended_locks_where_they_acquired);
	tcase_add_test(tc, rwlock_acquisitions_where_they_acquired);
	tcase_add_test(tc, pair_counts_and_window_bound);
	tcase_add_test(tc, invariance_formulas);
	tcase_add_test(tc, chi_square_known_values);
	tcase_add_test(tc, baseline_confidence);
	tcase_add_test(tc, similarity_of_site_sets);
	tcase_add_test(tc, prng_is_seeded_and_beta_mean);
	tcase_add_test(tc, selection_frequencies_paper);
	tcase_add_test(tc, baseline_share_rules);
	tcase_add_test(tc, selection_thompson_prefers_rank_and_success);
	tcase_add_test(tc, selection_rank_is_a_prior_evidence_overrides);
	tcase_add_test(tc, selection_residual_class_rides_on_its_parent);
	suite_add_tcase(s, tc);

	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, store_setup, store_teardown);
	tcase_add_test(tc, rank_of_a_small_model);
	tcase_add_test(tc, rwlock_waited_pair_through_the_model);
	tcase_add_test(tc, class_assignment);
	tcase_add_test(tc, start_serves_one_per_class_and_replays);
	tcase_add_test(tc, residual_class_on_a_decisive_contender);
	tcase_add_test(tc, constraint_judged_on_its_own_class);
	tcase_add_test(tc, snapshot_age_bounds_staleness);
	tcase_add_test(tc, bad_reports_change_nothing);
	tcase_add_test(tc, ticks_count_successes);
	tcase_add_test(tc, persists_across_reopen);
	tcase_add_test(tc, map_grows_when_full);
	tcase_add_test(tc, several_processes_share_a_store);
	tcase_add_test(tc, json_stats_round_trip);
	suite_add_tcase(s, tc);

	tc = tcase_create("json");
	tcase_add_test(tc, json_reports_strict_types);
	tcase_add_test(tc, json_plan_round_trip);
	tcase_add_test(tc, json_start_request_round_trip);
	tcase_add_test(tc, json_report_bodies_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return ck_run_main(model_suite());
}
