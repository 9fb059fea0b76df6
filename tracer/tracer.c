/*
 * The tracer object: thread and process records, and the run loop
 * (while (next stop) dispatch it), in the shape of strace's main loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "tracer/internal.h"

int
tracer_create(const struct tracer_options *opt, struct tracer **ret_tracer)
{
	struct tracer *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->opt = *opt;
	t->line_size = 8192;
	t->line = malloc(t->line_size);
	if (!t->line) {
		free(t);
		return -ENOMEM;
	}
	*ret_tracer = t;
	return 0;
}

void
tracer_destroy(struct tracer *t)
{
	if (!t)
		return;
	while (t->threads)
		thread_remove(t, t->threads);
	while (t->procs)
		process_remove(t, t->procs);
	for (size_t i = 0; i < SITE_BUCKETS; i++) {
		while (t->site_hash[i]) {
			struct site *s = t->site_hash[i];
			t->site_hash[i] = s->next;
			free(s->str);
			free(s->where);
			free(s);
		}
	}
	free(t->line);
	free(t);
}

static size_t
thash(pid_t tid)
{
	return (size_t)tid & (THREAD_BUCKETS - 1);
}

struct thread *
thread_find(struct tracer *t, pid_t tid)
{
	for (struct thread *th = t->thash[thash(tid)]; th; th = th->hnext)
		if (th->tid == tid)
			return th;
	return NULL;
}

static void
thash_unlink(struct tracer *t, struct thread *th)
{
	for (struct thread **pp = &t->thash[thash(th->tid)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == th) {
			*pp = th->hnext;
			return;
		}
	}
}

static void
thash_link(struct tracer *t, struct thread *th)
{
	th->hnext = t->thash[thash(th->tid)];
	t->thash[thash(th->tid)] = th;
}

struct thread *
thread_add(struct tracer *t, pid_t tid, struct process *proc)
{
	struct thread *th = calloc(1, sizeof(*th));

	if (!th)
		return NULL;
	th->tid = tid;
	th->proc = proc;
	th->state = TS_RUNNING;
	thash_link(t, th);
	th->next = t->threads;
	if (t->threads)
		t->threads->pprev = &th->next;
	th->pprev = &t->threads;
	t->threads = th;
	t->nthreads++;
	if (proc)
		proc->nthreads++;
	return th;
}

void
thread_remove(struct tracer *t, struct thread *th)
{
	thash_unlink(t, th);
	*th->pprev = th->next;
	if (th->next)
		th->next->pprev = th->pprev;
	if (th->proc)
		th->proc->nthreads--;
	t->nthreads--;
	if (t->wake_tid == th->tid)
		t->wake_tid = t->threads ? t->threads->tid : 0;
	free(th);
}

void
thread_rename(struct tracer *t, struct thread *th, pid_t tid)
{
	thash_unlink(t, th);
	th->tid = tid;
	thash_link(t, th);
}

struct process *
process_add(struct tracer *t, pid_t pid, struct bp_aspace *as)
{
	struct process *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->pid = pid;
	p->as = as;
	p->next = t->procs;
	t->procs = p;
	return p;
}

static void
clear_sites(struct process *p)
{
	for (size_t i = 0; i < SITE_BUCKETS; i++) {
		while (p->sites[i]) {
			struct site_ref *r = p->sites[i];
			p->sites[i] = r->next;
			free(r);
		}
	}
}

void
process_reset_image(struct process *p)
{
	clear_sites(p);
	bp_symbolizer_destroy(p->sym);
	p->sym = NULL;
	p->sym_stale = false;
	bp_aspace_unref(p->as);
	p->as = NULL;
}

void
process_remove(struct tracer *t, struct process *p)
{
	for (struct process **pp = &t->procs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	for (struct thread *th = t->threads; th; th = th->next)
		if (th->proc == p)
			th->proc = NULL;
	process_reset_image(p);
	free(p);
}

/*
 * Resumes a stopped thread, delivering @sig (or the signal it held). A thread that vanished
 * meanwhile (ESRCH) is not an error: its exit will be reported.
 */
int
thread_resume(struct tracer *t, struct thread *th, int sig)
{
	if (!sig) {
		sig = th->pending_sig;
	}
	th->pending_sig = 0;
	th->state = TS_RUNNING;
	if (ptrace(PTRACE_CONT, th->tid, 0, (long)sig) < 0 && errno != ESRCH)
		return -errno;
	return 0;
}

pid_t
tracer_main_pid(const struct tracer *t)
{
	return t->main_pid;
}

void
tracer_request_detach(struct tracer *t)
{
	int saved = errno;
	pid_t tid = t->wake_tid;

	t->detach_requested = 1;
	/* Ends a waitpid() that would otherwise wait for the program's next event. */
	if (tid > 0)
		ptrace(PTRACE_INTERRUPT, tid, 0, 0);
	errno = saved;
}

int
tracer_run(struct tracer *t, int *ret_status)
{
	for (;;) {
		int status, r;
		pid_t tid;

		if (t->detach_requested && t->attached) {
			r = detach_all(t);
			*ret_status = -1;
			return r;
		}
		if (!t->threads)
			break;
		tid = waitpid(-1, &status, __WALL);
		if (tid < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECHILD)
				break;
			return -errno;
		}
		r = loop_handle(t, tid, status);
		if (r < 0)
			return r;
	}
	*ret_status = t->main_done ? t->main_status : 0;
	return 0;
}
