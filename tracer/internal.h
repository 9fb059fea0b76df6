/*
 * tracer/ private declarations: the thread and process records and the pieces of the loop.
 */
#pragma once

#include <signal.h>
#include <stdint.h>
#include <sys/user.h>

#include "breakpoints/breakpoints.h"
#include "model/event.h"
#include "tracer/tracer.h"

/* Breakpoint tags beside the event kinds (enum model_event_kind, >= 0). */
#define TAG_RBRK (-1) /* the dynamic linker's _dl_debug_state: a module was (un)loaded */

enum thread_state {
	TS_RUNNING,   /* resumed; a stop will be reported */
	TS_HELD,      /* in a ptrace stop that we have not resumed yet */
	TS_LISTENING, /* in a group-stop (job control), restarted with PTRACE_LISTEN */
};

/*
 * One traced thread. Who sets what: the loop (state, pending_sig), clone handling (index,
 * proc), exec handling (tid of an exec'ing non-leader).
 */
struct thread {
	pid_t tid;
	uint32_t index;		/* creation order, main = 1; 0 until its creator's event is seen */
	struct process *proc;	/* NULL while an orphan: its first stop came before its creator's
				   clone event */
	enum thread_state state;
	int pending_sig;	/* delivered at the next resume (a signal held while stopped) */
	/*
	 * A signal came before the thread ran its displaced instruction: it was moved back onto
	 * the int3 at rehit_addr, to hit it again with this rsp once the handler returns. That
	 * hit is the same call, not an event. Set by on_signal(), cleared at the next hit.
	 */
	uint64_t rehit_addr, rehit_sp;
	struct thread *hnext;	/* tid hash chain */
	struct thread *next;	/* list of all threads */
	struct thread **pprev;
};

/* A site seen in a run: interned by its canonical string, with its counts for -c. */
struct site {
	char *str;	 /* "prog+0x1234" */
	char *where;	 /* "file.c:12 func" or NULL */
	uint64_t counts[MODEL_EV__COUNT];
	struct site *next; /* hash chain */
};

/* Address -> site, per address space image (cleared at exec). */
struct site_ref {
	uint64_t addr;
	struct site *site;
	struct site_ref *next;
};

#define SITE_BUCKETS 1024

/* One traced process: one address space, its threads, its symbolizer. */
struct process {
	pid_t pid;
	struct bp_aspace *as;
	bool record;	      /* its events are recorded (the program, or a followed child) */
	bool detach_at_exec;  /* an unfollowed vfork child: traced only until it execs */
	bool detach_at_stop;  /* an unfollowed fork child: cleaned and detached at its first stop */
	unsigned nthreads;
	struct bp_symbolizer *sym; /* created at the first symbolization */
	bool sym_stale;		   /* modules changed since it was created */
	struct site_ref *sites[SITE_BUCKETS];
	struct process *next;
};

#define THREAD_BUCKETS 1024

struct tracer {
	struct tracer_options opt;
	pid_t main_pid;		/* the launched or attached process */
	int main_status;	/* its wait status once gone */
	bool main_done;
	bool attached;		/* attach mode: detach on request */
	volatile sig_atomic_t detach_requested;
	volatile pid_t wake_tid; /* interrupted by tracer_request_detach() to end a waitpid() */
	struct thread *threads;
	struct thread *thash[THREAD_BUCKETS];
	unsigned nthreads;
	struct process *procs;
	uint32_t next_index;
	uint64_t seq;
	struct site *site_hash[SITE_BUCKETS];
	char *line;		/* one JSON event */
	size_t line_size;
};

/* tracer.c: records */
struct thread *thread_find(struct tracer *t, pid_t tid);
struct thread *thread_add(struct tracer *t, pid_t tid, struct process *proc);
void thread_remove(struct tracer *t, struct thread *th);
void thread_rename(struct tracer *t, struct thread *th, pid_t tid);
struct process *process_add(struct tracer *t, pid_t pid, struct bp_aspace *as);
void process_remove(struct tracer *t, struct process *p);
void process_reset_image(struct process *p);
int thread_resume(struct tracer *t, struct thread *th, int sig);

/* image.c: scans the modules of an address space and plants breakpoints in new ones;
 * returns the number planted or -errno */
int image_refresh(struct tracer *t, struct process *p, pid_t stopped_tid);

/* record.c: events, the -o stream, the -c table */
void record_event(struct tracer *t, struct thread *th, enum model_event_kind kind,
		  uint64_t code_addr, bool is_return, uint64_t object);

/* loop.c */
int loop_handle(struct tracer *t, pid_t tid, int status);

/* detach.c */
int detach_all(struct tracer *t);

/* log.c: diagnostics on stderr, each line formatted once and written in one call */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
