/*
 * Stalling threads for schedule constraints (AVISO.md section 3, DESIGN.md "Stalling"). The
 * decisions are fsm/'s; this file applies them: a thread whose event fsm stalls is simply not
 * resumed from its stop, and is resumed when fsm says it is due. The facts fsm needs to cut a
 * stall short (an activator exiting, joining the stalled thread, or waiting for a mutex it
 * holds) are read here from the program: the tid glibc keeps in a struct pthread and in a
 * mutex's __owner.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm/fsm.h"
#include "tracer/internal.h"

/* glibc 2.36, x86_64: offsetof(struct pthread, tid) (the %fs:0x2d0 its own code reads), and
 * offsetof(struct __pthread_mutex_s, __owner). */
#define PTHREAD_TID_OFFSET 0x2d0
#define MUTEX_OWNER_OFFSET 8

int
tracer_load_constraint_set(struct tracer *t, const struct fsm_constraint *c, size_t n,
			   uint64_t delay_ns)
{
	struct fsm_options opt = {.delay_ns = delay_ns};

	stall_fini(t);
	return n ? fsm_create(c, n, &opt, &t->fsm) : 0;
}

int
tracer_load_constraints(struct tracer *t, const char *path, uint64_t delay_ns)
{
	return stall_load(t, path, delay_ns);
}

int
stall_load(struct tracer *t, const char *path, uint64_t delay_ns)
{
	struct fsm_constraint *c = NULL;
	char line[8192];
	size_t n = 0, cap = 0;
	int lineno = 0, r = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char b[4096], a[4096];
		unsigned long long us = 0;
		int got;

		lineno++;
		if (line[strspn(line, " \t\r\n")] == '\0' || line[strspn(line, " \t")] == '#')
			continue;
		got = sscanf(line, "%4095s %4095s %llu", b, a, &us);
		if (got < 2) {
			log_msg("%s:%d: expected \"B-site A-site [delay-us]\"", path, lineno);
			r = -EINVAL;
			break;
		}
		if (n == cap) {
			struct fsm_constraint *g = realloc(c, (cap = cap ? 2 * cap : 8) * sizeof(*c));
			if (!g) {
				r = -ENOMEM;
				break;
			}
			c = g;
		}
		c[n].before = strdup(b);
		c[n].after = strdup(a);
		c[n].delay_ns = (uint64_t)us * 1000;
		n++;
		if (!c[n - 1].before || !c[n - 1].after) {
			r = -ENOMEM;
			break;
		}
	}
	fclose(f);
	if (r == 0 && n == 0) {
		log_msg("%s: no constraint", path);
		r = -EINVAL;
	}
	if (r == 0)
		r = tracer_load_constraint_set(t, c, n, delay_ns);
	for (size_t i = 0; i < n; i++) {
		free((char *)c[i].before);
		free((char *)c[i].after);
	}
	free(c);
	return r;
}

static struct thread *
thread_of_tid(struct tracer *t, struct process *p, pid_t tid)
{
	struct thread *th = tid > 0 ? thread_find(t, tid) : NULL;

	return th && th->proc == p ? th : NULL;
}

/* What the thread now waits for, told to fsm: the thread it joins, or a mutex's owner. */
static void
note_wait(struct tracer *t, struct thread *th, enum model_event_kind kind, uint64_t object)
{
	struct process *p = th->proc;
	struct thread *on = NULL;
	int32_t tid;

	if (kind == MODEL_EV_THREAD_JOIN) {
		if (bp_mem_read(bp_aspace_memfd(p->as), object + PTHREAD_TID_OFFSET, &tid,
				sizeof(tid)) == 0)
			on = thread_of_tid(t, p, tid);
	} else if (kind == MODEL_EV_MUTEX_LOCK || kind == MODEL_EV_MUTEX_TIMEDLOCK) {
		if (bp_mem_read(bp_aspace_memfd(p->as), object + MUTEX_OWNER_OFFSET, &tid,
				sizeof(tid)) == 0 &&
		    tid != th->tid)
			on = thread_of_tid(t, p, tid);
	}
	if (on && on->index && on != th)
		fsm_thread_blocked_on(t->fsm, th->index, on->index, now_ns());
}

bool
stall_on_event(struct tracer *t, struct thread *th, enum model_event_kind kind,
	       const struct site *site, uint64_t object)
{
	uint64_t until;
	int r;

	if (!t->fsm || !site || !th->index)
		return false;
	r = fsm_on_event(t->fsm, th->index, site->str, now_ns(), &until);
	if (r == FSM_STALL) {
		th->stalled = true;
		t->nstalled++;
		return true;
	}
	note_wait(t, th, kind, object);
	return false;
}

void
stall_thread_gone(struct tracer *t, struct thread *th)
{
	if (!t->fsm || !th->index)
		return;
	fsm_thread_exited(t->fsm, th->index, now_ns());
	if (th->stalled) {
		th->stalled = false;
		t->nstalled--;
	}
}

void
stall_release_due(struct tracer *t)
{
	uint32_t due[64];
	size_t n;

	if (!t->fsm)
		return;
	do {
		n = fsm_due(t->fsm, now_ns(), due, 64);
		for (size_t i = 0; i < n; i++) {
			for (struct thread *th = t->threads; th; th = th->next) {
				if (th->index != due[i] || !th->stalled)
					continue;
				th->stalled = false;
				t->nstalled--;
				thread_resume(t, th, 0);
			}
		}
	} while (n == 64);
}

uint64_t
stall_next_deadline(const struct tracer *t)
{
	return t->fsm ? fsm_next_deadline(t->fsm) : 0;
}

void
stall_fini(struct tracer *t)
{
	fsm_destroy(t->fsm);
	t->fsm = NULL;
}
