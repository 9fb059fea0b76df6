/*
 * tracer/ private declarations: the thread and process records and the pieces of the loop.
 */
#pragma once

#include <signal.h>
#include <stdint.h>
#include <sys/user.h>

#include "breakpoints/breakpoints.h"
#include "fsm/fsm.h"
#include "model/event.h"
#include "tracer/tracer.h"

/* Breakpoint tags beside the event kinds (enum model_event_kind, >= 0). */
#define TAG_RBRK (-1)  /* the dynamic linker's _dl_debug_state: a module was (un)loaded */
#define TAG_POINT (-2) /* a sharing point from --points */
#define TAG_REENTRY (-3) /* a jump back to its own function's entry: the same call goes on */
#define TAG_TICK (-4)	 /* a --tick-at code point: a logical tick, not an event */

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
	struct rpb_ring *ring;	/* its last events; NULL until its first */
	bool stalled;		/* held by a schedule constraint until fsm says it is due */
	/*
	 * Its last event was an acquisition (a lock, a semaphore wait) at some constraint's A
	 * site that ran: it may still be blocked inside it, so its A has not happened yet
	 * (stall.c). Cleared at its next event.
	 */
	const struct site *in_a;
	/* While stalled at an acquisition: its site, its in_a once it is released (it may then
	 * block inside the acquisition: its A is still to happen) */
	const struct site *stalled_in;
	/* Its event at an A was decided before its stop was handled (stall_decide_earlier()):
	 * it has not run yet, whatever came between (in_a says where) */
	bool a_pending;
	bool stall_at_stop;	/* interrupted to be held: held from its interrupt stop on */
	/* When the loop got its current stop (0: running, or held by a constraint): the time
	 * until its resume is the tracer's, told to fsm (fsm_thread_held()) */
	uint64_t stop_ns;
	/* An activator's time spent runnable but waiting for a CPU, as of its latest B or the
	 * latest check (/proc/TID/schedstat); a delay does not count it either */
	bool timed;
	uint64_t run_delay, run_delay_at; /* ns, and when it was read */
	/* Grace given while it was runnable at a deadline (stall.c account_overdue()): in all
	 * since its latest B, and what no CPU wait read since has made up for */
	uint64_t grace_total, grace_unmatched;
	bool hit_pending;	/* detach: ran an int3 whose SIGTRAP is still pending ... */
	uint64_t hit_rewind;	/* ... and goes back to this entry once it is swallowed */
	bool hit_pad;		/* ... from a pad: r11 comes back from the red zone */
	/* Its last event drained from the ring (ring.c), for a decision at its stop after it */
	bool ring_fresh;
	const struct site *ring_site;
	enum model_event_kind ring_kind;
	uint64_t ring_ns; /* its time */
	uint64_t ring_seq; /* its slot's sequence number */
	uint64_t ring_object;
	/* Its latest slot was an activating one (ring.S), not acknowledged yet: at its stop */
	bool act_unacked;
	/* Its latest slot's time, when that slot stops it (ring.S) and its stop is not handled
	 * yet: held by the tracer since then, as stop_ns says once it is (0: neither) */
	uint64_t trap_ns;
	struct thread *hnext;	/* tid hash chain */
	struct thread *next;	/* list of all threads */
	struct thread **pprev;
};

/*
 * A site seen in a run: a calling context made stable across runs and ASLR, interned by its
 * canonical string ("prog+0x1234<prog+0x1180<libc.so.6+*") and ret0, with its symbolized frames
 * and its counts for -c. Two sites may share a string: a point planted where a call returns has
 * that address as frame 0, exact, while the call's own events have it as a return address,
 * symbolized as the call's line. Each has its own where and frames; constraints and the model
 * go by the string alone.
 */
struct site {
	char *str;
	bool ret0;		   /* frame 0 is a return address */
	char *where;		   /* frame 0 as "file.c:12 func", or NULL */
	unsigned nframes;
	struct model_frame *frames; /* every string owned */
	uint64_t counts[MODEL_EV__COUNT];
	struct site *next;	   /* hash chain */
};

/* Calling context (pcs) -> site, per address space image (cleared at exec). */
struct site_ref {
	unsigned n;
	bool ret0; /* pcs[0] is a return address */
	uint64_t pcs[TRACER_MAX_FRAMES];
	struct site *site;
	struct site_ref *next;
};

/* One event of the Recent Past Buffer. */
struct rpb_entry {
	uint64_t seq, ns, object;
	const struct site *site;
	pid_t tid, pid;
	uint32_t thread;
	enum model_event_kind kind;
};

/* A thread's ring of its last events (AVISO.md section 2). */
struct rpb_ring {
	struct rpb_entry *e;
	uint32_t cap;
	uint64_t written; /* entries ever written: the newest is e[(written - 1) % cap] */
	struct rpb_ring *next; /* in the list of rings of exited threads */
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
	struct bp_unwinder *unw;   /* created at the first unwind */
	bool sym_stale;		   /* modules changed since the symbolizer was created */
	bool unw_stale;		   /* modules changed since the unwinder was flushed */
	bool failed;		   /* a failure was reported: one per process */
	bool ring_failed;	   /* the ring could not be mapped into this image: pads stop */
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
	unsigned frames, rpb_size; /* the options, defaults applied */
	bool pads;		   /* jump pads at function entries (else int3s only) */
	struct ring *ring;	   /* the event ring (ring.c), or NULL: every event stops */
	bool ring_trap_all;	   /* ring_trap_all() */
	bool decide_all;	   /* stall.c: every event needs a decision while constraints are loaded */
	uint64_t ring_events, ring_stops; /* events from the ring; those that stopped to decide */
	bool ring_busy;		   /* events wait in the ring: drain between stops, do not block */
	struct rpb_ring *retired;  /* rings of exited threads, newest first */
	unsigned nretired;
	volatile sig_atomic_t tick; /* set by the periodic timer: time for the checks */
	uint64_t last_event_ns;	    /* progress, for --hang-timeout */
	uint64_t quiet_cpu;	    /* the program's CPU time when the quiet began, or 0 */
	struct deadlock_watch *watch; /* failure.c's state */
	int exit_override;	    /* exit status forced by a hang or deadlock, or -1 */
	struct fsm *fsm;	    /* the schedule constraints loaded, or NULL */
	unsigned nstalled;	    /* threads held by them now */
	unsigned release_deferred;  /* loop turns a due stall waited for reported stops */
	/* Deadlines moved because their activator was runnable (stall.c account_overdue()), and
	 * by how much in all (ns) */
	uint64_t graces, grace_ns;
	bool *point_found;	    /* per --points entry: resolved in some module */
	unsigned failures;	    /* failures reported in this run */
	struct rpb_entry *failure_rpb; /* the merged RPB at the first failure */
	size_t failure_rpb_n;
	struct model_event *outcome_rpb; /* the run's RPB as model events, for the model */
	size_t outcome_rpb_n;
	bool points_reported;	    /* the unresolved entries were named */
	bool *tick_found;	    /* per --tick-at entry: resolved in some module */
	/* sample.c */
	uint64_t sample_rng;	     /* the stream of sample times */
	uint64_t sample_due_ns;	     /* when the next snapshot is taken; 0: none to take */
	struct rpb_entry *sample_held; /* the snapshot held, or NULL */
	size_t sample_held_n;
	uint64_t sample_held_ns;     /* when it was taken */
	unsigned samples_sent;
	unsigned ticks_pending;	     /* ticks counted, not yet handed over */
	unsigned events_since_tick;
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

/* record.c: sites, events, the -o stream, the RPB, the -c table */
void site_free(struct site *s);
/* Frees every site of a SITE_BUCKETS-chain table and empties it. */
void site_table_clear(struct site **hash);
struct site *site_of(struct tracer *t, struct process *p, const uint64_t *pcs, unsigned n,
		     bool ret0);
/* An event seen at a stop: the ring is drained first, so that the thread's order is kept. */
void record_event(struct tracer *t, struct thread *th, enum model_event_kind kind,
		  const struct site *site, uint64_t object);
/* An event with its own timestamp (the ring's). */
void record_event_at(struct tracer *t, struct thread *th, enum model_event_kind kind,
		     const struct site *site, uint64_t object, uint64_t ns);
/* The calling context of a stopped thread: pcs[0] = regs->rip, then its callers. Unwinds when
 * more than one frame is wanted; @stack/@stack_len: a copy of its stack top, or NULL. */
unsigned capture_pcs(struct tracer *t, struct thread *th, const struct user_regs_struct *regs,
		     const void *stack, size_t stack_len, uint64_t *pcs, unsigned max);
/* The same from registers and a stack copy kept with an event (ring.c): no live read. */
unsigned capture_kept_pcs(struct tracer *t, struct process *p, const struct user_regs_struct *regs,
			  const void *stack, size_t stack_len, uint64_t *pcs, unsigned max);
uint64_t now_ns(void);

/*
 * ring.c: the event ring. Events of ring pads are appended by the program itself, with no stop
 * (DESIGN.md, "Where the time goes"); the tracer drains them at every stop and tick.
 */
struct ring;
/* Creates the ring (a memfd mapped here); the tracer's images map it in ring_map(). */
int ring_create(struct tracer *t);
void ring_destroy(struct tracer *t);
/* Maps the ring into process @p through stopped thread @tid, and has @p's pads use it. */
int ring_map(struct tracer *t, struct process *p, pid_t tid);
/* Unmaps it (detach), through stopped thread @tid. */
int ring_unmap(struct tracer *t, struct process *p, pid_t tid);
/* Turns every committed slot into its event (in sequence order); unfinished ones wait. */
void ring_drain(struct tracer *t);
/* The same for at most @max events (the loop's background draining). Returns how many. */
size_t ring_drain_some(struct tracer *t, size_t max);
/* After an exec that left no other process on the ring: slots whose writer died mid-way are
 * dropped (else they would hold the ring). */
void ring_forget_unfinished(struct tracer *t);
/* A thread stopped at the ring routine's int3 (bp_aspace_ring_trap()): drains, decides, resumes
 * (or keeps it stalled). */
int ring_on_trap(struct tracer *t, struct thread *th, enum bp_ring_trap trap);
/* Acknowledges @th's activating event (struct bp_ring_hdr acts) if it has not been: at its
 * stop, or when it is gone before. */
void ring_ack_thread(struct tracer *t, struct thread *th);
/*
 * For the stall code (tracer/stall.c, fsm decisions). A ring pad does not stop: a site whose
 * event activates (a constraint's B) must be named here, by the return address of its call
 * (frame 0 of its site, as an absolute address in the process): such an event counts itself
 * (struct bp_ring_hdr acts), is appended, then its thread stops at the routine's decision int3,
 * where ring_on_trap() calls stall_on_event() for it. Until it is handled, every event with a
 * later sequence number stops too; after, every event while trap-all is on (an instance is
 * active). An A needs no entry: with no instance active and no activation pending, nothing can
 * delay it. The table holds up to BP_RING_MAX_DECIDE addresses and is shared by every traced
 * process (an address of another process is a harmless extra stop); it replaces the previous
 * one. Returns 0, -E2BIG (too many: use ring_trap_all()), -ENOTSUP without a ring (every event
 * stops anyway).
 */
int ring_set_decision_sites(struct tracer *t, const uint64_t *ret_addrs, size_t n);
/* Every event of a ring pad stops after its slot (on), or only the decision sites (off). */
void ring_trap_all(struct tracer *t, bool on);

/* rpb.c */
void rpb_append(struct tracer *t, struct thread *th, const struct rpb_entry *e);
void rpb_retire(struct tracer *t, struct thread *th);
/* All rings merged by sequence number (a malloc'ed array the caller frees). */
int rpb_merge(struct tracer *t, struct rpb_entry **ret_entries, size_t *ret_n);
const struct rpb_entry *rpb_last(const struct thread *th);
/* The entry as an event (its strings are its site's: valid while the tracer lives). */
struct model_event rpb_event(const struct rpb_entry *e);
void rpb_free_all(struct tracer *t);

/* sample.c: correct-run samples and ticks */
void sample_start(struct tracer *t);
/* From the loop: hands over pending ticks, takes, holds and sends samples as they fall due. */
void sample_check(struct tracer *t);
/* At the end of the run: the last ticks, and a sample whose hold the end cut short. */
void sample_finish(struct tracer *t);
/* One more event (for --tick-every). */
void sample_count_event(struct tracer *t);
/* The next number of the splitmix64 stream @state. */
uint64_t splitmix64(uint64_t *state);
/* A time drawn uniformly from [0.1 s, 20 s], in ns, from the splitmix64 stream @state. */
uint64_t sample_draw_delay(uint64_t *state);

/* stall.c: schedule constraints applied (fsm/ decides) */
int stall_load(struct tracer *t, const char *path, uint64_t delay_ns);
/*
 * Before @th's decision at a ring trap: the decision events of other threads that came before
 * it in the ring (drained, their stops not handled yet) are decided first, in order. Otherwise
 * the order waitpid reports stops in would decide: an A seen before the B that preceded it
 * runs free.
 */
void stall_decide_earlier(struct tracer *t, struct thread *th);
/* Acquisitions: a thread whose event ran may still be blocked inside, its A not yet done. */
bool stall_acquires(enum model_event_kind kind);
/* An interrupt stop: whether the thread stays held there (it was interrupted to be). */
/*
 * Whether the point @th stopped at (a single instruction, @site) must have run before the
 * tracer goes on: it is at an A site (decided to run, it comes before any B handled next), or
 * @th's instances are not done (it may release the threads they hold).
 */
bool stall_point_must_run(struct tracer *t, struct thread *th, const struct site *site);
bool stall_at_interrupt(struct tracer *t, struct thread *th);
/* After an event: true when the thread must stay stopped (stalled) for now. */
bool stall_on_event(struct tracer *t, struct thread *th, enum model_event_kind kind,
		    const struct site *site, uint64_t object);
void stall_thread_gone(struct tracer *t, struct thread *th);
/* Whether a stalled thread's deadline has come (stall_release_due() would release it). */
bool stall_due(const struct tracer *t);
void stall_release_due(struct tracer *t);
uint64_t stall_next_deadline(const struct tracer *t);
void stall_fini(struct tracer *t);
/*
 * Only events that need a decision stop (DESIGN.md): those at the return address of a loaded
 * constraint's B frame 0 (the ring's decision table, refreshed when modules change), every
 * event after one of those until it is handled, and every event while an instance is active or
 * a thread stalled (ring_set_decision_sites()). decide_all: a B that a table cannot name (a
 * wildcard frame 0, too many), every event stops.
 */
void stall_refresh_decisions(struct tracer *t);
/* An event of @th drained from the ring that went on without a stop (no decision was needed):
 * an acquisition at an A site is noted (thread.in_a), as at a stop. */
void stall_on_ring_event(struct tracer *t, struct thread *th);
void stall_update_trap(struct tracer *t);

/* failure.c: detection; report.c: reports */
bool failure_is_fatal(struct thread *th, int sig);
void failure_on_signal(struct tracer *t, struct thread *th, int sig,
		       const struct user_regs_struct *regs);
void failure_on_exit(struct tracer *t, struct thread *th, int code);
void failure_tick(struct tracer *t);
void failure_fini(struct tracer *t);

struct report_cycle {
	const struct thread *th;
	uint64_t waits_for;		/* the mutex */
	const struct site *waits_at;	/* where it called lock */
	const struct site *taken_at;	/* where the owner took it */
	const struct thread *owner;
};

struct report {
	const char *kind; /* "signal", "exit", "hang", "deadlock" */
	int signal;	  /* for "signal" */
	int exit_code;	  /* for "exit" */
	const struct thread *th;
	struct process *proc;
	const struct site *backtrace; /* a site of all the failing thread's frames, or NULL */
	const struct report_cycle *cycle;
	unsigned ncycle;
};

/* Prints the report on stderr and writes it as JSON under the report directory. */
void report_failure(struct tracer *t, const struct report *r);
/* Writes @s to @f as a JSON string, quotes included. */
void json_put_string(FILE *f, const char *s);

/*
 * A directory of aviso's state, created as needed: @base/@sub, or, without @base,
 * $XDG_STATE_HOME/aviso/@sub, else ~/.local/state/aviso/@sub (@sub may be NULL). 0 or -errno.
 */
int state_dir(const char *base, const char *sub, char *buf, size_t size);

/* loop.c */
int loop_handle(struct tracer *t, pid_t tid, int status);
/*
 * A stopped thread standing in a scratch slot is put back where it stands in the real code
 * (stepped out of a pad's middle first). A thread that had trapped on its way there will hit
 * the entry again for the same call: noted in rehit_addr/rehit_sp. @regs are its registers,
 * updated. Returns 0 or -errno.
 */
int thread_leave_scratch(struct tracer *t, struct thread *th, struct user_regs_struct *regs);

/* detach.c */
int detach_all(struct tracer *t);

/* log.c: diagnostics on stderr, each line formatted once and written in one call */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
