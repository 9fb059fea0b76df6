/*
 * Getting hold of a program: launching it (fork, seize, exec) or attaching to every thread of
 * a running one. Both end with the breakpoints planted and every thread running.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tracer/internal.h"

#define TRACE_OPTIONS                                                                              \
	(PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC |     \
	 PTRACE_O_TRACEEXIT)

static void
read_all(int fd, void *buf, size_t len, ssize_t *ret_n)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	*ret_n = n;
}

/* The child: wait until seized, then exec; an exec failure's errno goes back through @err. */
static void __attribute__((noreturn))
child(int sync_fd, int err_fd, const char *path, char *const argv[])
{
	char c;
	ssize_t n;
	int e;

	read_all(sync_fd, &c, 1, &n);
	/* The tracer ignores the terminal's SIGINT and SIGQUIT; the program must not inherit that. */
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	execv(path, argv);
	e = errno;
	(void)!write(err_fd, &e, sizeof(e));
	_exit(127);
}

/* Waits for the launched child's exec stop; signals before it are passed on. */
static int
wait_exec(pid_t pid, int err_fd)
{
	for (;;) {
		int status, e = 0;
		ssize_t n;

		if (waitpid(pid, &status, __WALL) < 0)
			return -errno;
		if (!WIFSTOPPED(status)) {
			read_all(err_fd, &e, sizeof(e), &n);
			return n == sizeof(e) && e > 0 ? -e : -ECHILD;
		}
		if ((status >> 16) == PTRACE_EVENT_EXEC)
			return 0;
		int sig = (status >> 16) == 0 ? WSTOPSIG(status) : 0;
		if (ptrace(PTRACE_CONT, pid, 0, (long)sig) < 0)
			return -errno;
	}
}

int
tracer_launch(struct tracer *t, const char *path, char *const argv[])
{
	int sync[2] = {-1, -1}, err[2] = {-1, -1}, r;
	struct bp_aspace *as = NULL;
	struct process *p;
	struct thread *th;
	pid_t pid;

	if (pipe2(sync, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		r = -errno;
		goto leave;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto leave;
	}
	if (pid == 0)
		child(sync[0], err[1], path, argv);
	close(err[1]);
	err[1] = -1;
	/* EXITKILL: if the tracer dies, the program dies with it rather than trap on an int3. */
	if (ptrace(PTRACE_SEIZE, pid, 0, TRACE_OPTIONS | PTRACE_O_EXITKILL) < 0) {
		r = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto leave;
	}
	(void)!write(sync[1], "x", 1);
	r = wait_exec(pid, err[0]);
	if (r < 0)
		goto leave;

	r = bp_aspace_create(pid, &as);
	if (r < 0)
		goto kill;
	p = process_add(t, pid, as);
	th = p ? thread_add(t, pid, p) : NULL;
	if (!th) {
		r = -ENOMEM;
		goto kill;
	}
	as = NULL;
	p->record = true;
	th->index = ++t->next_index;
	th->state = TS_HELD;
	t->main_pid = pid;
	t->wake_tid = pid;
	r = image_refresh(t, p, pid);
	if (r < 0)
		goto kill;
	r = thread_resume(t, th, 0);
	goto leave;
kill:
	kill(pid, SIGKILL);
	bp_aspace_unref(as);
leave:
	for (int i = 0; i < 2; i++) {
		if (sync[i] >= 0)
			close(sync[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	return r;
}

/* Seizes and interrupts every thread of @pid not yet known; returns how many were new. */
static int
seize_new_threads(struct tracer *t, pid_t pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int added = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return errno == ENOENT ? -ESRCH : -errno;
	while ((d = readdir(dir)) != NULL) {
		pid_t tid = (pid_t)atoi(d->d_name);

		if (tid <= 0 || thread_find(t, tid))
			continue;
		if (ptrace(PTRACE_SEIZE, tid, 0, TRACE_OPTIONS) < 0) {
			int e = errno;
			if (e == ESRCH && tid != pid)
				continue; /* exited meanwhile */
			closedir(dir);
			return -e;
		}
		ptrace(PTRACE_INTERRUPT, tid, 0, 0);
		if (!thread_add(t, tid, NULL)) {
			closedir(dir);
			return -ENOMEM;
		}
		added++;
	}
	closedir(dir);
	return added;
}

/*
 * Waits until every seized thread is in a stop we hold. Signals that arrive first are kept to
 * be delivered at resume; threads created meanwhile were seized by the kernel with their
 * creator and are waited for too.
 */
static int
wait_all_held(struct tracer *t)
{
	for (;;) {
		struct thread *th = t->threads;
		int status;

		while (th && th->state != TS_RUNNING)
			th = th->next;
		if (!th)
			return 0;
		if (waitpid(th->tid, &status, __WALL) < 0) {
			if (errno == EINTR)
				continue;
			if (errno != ECHILD)
				return -errno;
			thread_remove(t, th);
			continue;
		}
		if (!WIFSTOPPED(status)) {
			thread_remove(t, th);
			continue;
		}
		th->state = TS_HELD;
		int event = status >> 16, sig = WSTOPSIG(status);
		if (event == 0)
			th->pending_sig = sig;
		else if (event == PTRACE_EVENT_STOP && sig != SIGTRAP)
			th->state = TS_LISTENING; /* the process was stopped by job control */
		else if (event == PTRACE_EVENT_CLONE) {
			unsigned long msg;
			if (ptrace(PTRACE_GETEVENTMSG, th->tid, 0, &msg) == 0 &&
			    !thread_find(t, (pid_t)msg) && !thread_add(t, (pid_t)msg, NULL))
				return -ENOMEM;
		}
	}
}

static int
cmp_tid(const void *a, const void *b)
{
	pid_t x = (*(struct thread *const *)a)->tid, y = (*(struct thread *const *)b)->tid;

	return (x > y) - (x < y);
}

/* Thread indices for threads that existed before us: main = 1, then by tid. */
static int
number_threads(struct tracer *t, struct process *p)
{
	struct thread **v = calloc(t->nthreads, sizeof(*v));
	size_t n = 0;

	if (!v)
		return -ENOMEM;
	for (struct thread *th = t->threads; th; th = th->next) {
		th->proc = p;
		p->nthreads++;
		v[n++] = th;
	}
	qsort(v, n, sizeof(*v), cmp_tid);
	for (size_t i = 0; i < n; i++)
		if (v[i]->tid == p->pid)
			v[i]->index = ++t->next_index;
	for (size_t i = 0; i < n; i++)
		if (v[i]->tid != p->pid)
			v[i]->index = ++t->next_index;
	free(v);
	return 0;
}

/* Threads that stood inside bytes a pad now displaces go on from the pad's copy of them. */
static void
move_into_pads(struct tracer *t, struct process *p)
{
	for (struct thread *th = t->threads; th; th = th->next) {
		struct user_regs_struct regs;
		uint64_t rip;

		if (th->state == TS_RUNNING || ptrace(PTRACE_GETREGS, th->tid, 0, &regs) < 0)
			continue;
		if (bp_aspace_patched_fixup(p->as, regs.rip, &rip) == 0) {
			regs.rip = rip;
			ptrace(PTRACE_SETREGS, th->tid, 0, &regs);
		}
	}
}

static void
resume_all(struct tracer *t)
{
	for (struct thread *th = t->threads; th; th = th->next) {
		if (th->state == TS_LISTENING)
			ptrace(PTRACE_LISTEN, th->tid, 0, 0);
		else if (th->state == TS_HELD)
			thread_resume(t, th, 0);
	}
}

int
tracer_attach(struct tracer *t, pid_t pid)
{
	struct bp_aspace *as;
	struct process *p;
	pid_t hands = 0;
	int r;

	if (pid == getpid())
		return -EINVAL;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return -ESRCH;
	do {
		r = seize_new_threads(t, pid);
		if (r < 0)
			goto fail;
		int w = wait_all_held(t);
		if (w < 0) {
			r = w;
			goto fail;
		}
	} while (r > 0); /* threads created while we seized the others */
	if (!t->threads) {
		r = -ESRCH;
		goto fail;
	}

	r = bp_aspace_create(pid, &as);
	if (r < 0)
		goto fail;
	p = process_add(t, pid, as);
	if (!p) {
		bp_aspace_unref(as);
		r = -ENOMEM;
		goto fail;
	}
	p->record = true;
	r = number_threads(t, p);
	if (r < 0)
		goto fail;
	/* Any held thread can run the injected mmap; the leader may be a zombie. */
	for (struct thread *th = t->threads; th && !hands; th = th->next)
		if (th->state == TS_HELD)
			hands = th->tid;
	r = image_refresh(t, p, hands ? hands : pid);
	if (r == 0)
		r = -ENOEXEC; /* nothing to trace: a static binary without symbols */
	if (r < 0)
		goto fail;
	move_into_pads(t, p);
	t->attached = true;
	t->main_pid = pid;
	t->wake_tid = pid;
	resume_all(t);
	return (int)t->nthreads;
fail:
	/* Let go of whatever was seized, exactly as it was. */
	for (struct process *q = t->procs; q; q = q->next)
		bp_aspace_remove_all(q->as);
	while (t->threads) {
		ptrace(PTRACE_DETACH, t->threads->tid, 0, (long)t->threads->pending_sig);
		thread_remove(t, t->threads);
	}
	while (t->procs)
		process_remove(t, t->procs);
	return r;
}
