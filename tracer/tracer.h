/*
 * tracer/: process control. Launch or attach, follow every thread (and, when asked, forked
 * children) from birth to exit, turn each stop into an event or a state change, keep signals
 * and job control as they would be untraced, detach cleanly, mirror the program's exit status.
 *
 * One thread, one loop (DESIGN.md, "The tracer loop"): tracer_run() waits for the next stop,
 * decodes it into a small enum and dispatches it, until no traced thread is left.
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>

#include "breakpoints/points.h"
#include "model/model.h"

struct tracer;
struct model_event;

/* What a run hands over while it runs (runs.c: to the model). Called from the loop, never
 * while a thread waits in a stop. */
struct tracer_hooks {
	void *ctx;
	/* A correct-run sample: the RPB snapshot, held without failure (AVISO.md section 2). */
	void (*sample)(void *ctx, const struct model_event *rpb, size_t n);
	/* A logical tick: one unit of work done (AVISO.md section 6). */
	void (*tick)(void *ctx);
};

struct tracer_options {
	bool follow_forks;     /* -f: trace forked children and their threads too */
	bool summary;	       /* -c: a table of kinds and sites with counts at exit, on stderr */
	FILE *output;	       /* -o: one JSON event per line, or NULL; owned by the caller */
	unsigned frames;       /* --frames: frames per site, 1..TRACER_MAX_FRAMES (0: default) */
	unsigned rpb_size;     /* --rpb-size: events kept per thread (0: default) */
	bool fail_on_exit;     /* --fail-on-exit: a non-zero exit is a failure */
	unsigned hang_timeout; /* --hang-timeout: seconds without progress that make a hang; 0 off */
	const char *report_dir; /* --report-dir: where failure reports go (NULL: default) */
	const struct bp_point *points; /* --points: parsed AVISOPOINTS entries (caller's) */
	size_t npoints;
	char *const *argv;     /* the program's command line, for reports */
	bool no_pads;	       /* --no-pads: an int3 at every function entry, no jump pad */
	/* --release-after N: a delayed thread goes at its activator's Nth event after B (or at
	 * the deadline); 0: at the deadline only; -1 (the default): TRACER_DEFAULT_RELEASE */
	int release_after;
	bool brief_reports;	   /* a failure's headline and report path only (series) */
	const struct tracer_hooks *hooks; /* NULL: nothing handed over */
	unsigned samples;	   /* --samples: correct-run samples per run (0: none) */
	uint64_t sample_at_ns;	   /* the first this long after the start (0: drawn, 0.1-20 s) */
	uint64_t sample_hold_ns;   /* held this long without failure before it is handed over */
	uint64_t sample_seed;	   /* the draws of the sample times */
	unsigned tick_every;	   /* --tick-every: a tick every N events (0: none) */
	const struct bp_point *tick_at; /* --tick-at: a tick at each hit of these code points */
	size_t ntick_at;
	bool no_ring;	       /* --no-ring: pads stop the thread; no event ring */
	/* Symbolized sites kept across the runs of one program (caller's), or NULL. */
	struct site_memo *site_memo;
};

/* What the runs of a series share: each site's frames, symbolized once. */
struct site_memo;
struct site_memo *site_memo_create(void);
void site_memo_destroy(struct site_memo *memo);

#define TRACER_DEFAULT_FRAMES 5
#define TRACER_MAX_FRAMES 16
#define TRACER_DEFAULT_RPB 1000
#define TRACER_DEFAULT_RELEASE 2

/* Exit status of aviso-trace after a hang or a deadlock (the program was killed). */
#define TRACER_EXIT_HANG 124

int tracer_create(const struct tracer_options *opt, struct tracer **ret_tracer);
void tracer_destroy(struct tracer *t);

/*
 * Starts @path with @argv under the tracer and stops it at its first instruction (the exec
 * stop), with the dynamic linker's rendezvous watched. Returns 0, or: -ENOENT / -EACCES /
 * -ENOEXEC (the exec failed: the program's own errno), -errno.
 */
int tracer_launch(struct tracer *t, const char *path, char *const argv[]);

/*
 * Attaches to every thread of running process @pid and plants the breakpoints. Returns the
 * number of threads, or -ESRCH (no such process), -EPERM (not ours, already traced, or
 * ptrace_scope), -ENOEXEC (nothing to trace: no pthread functions found), -errno.
 */
int tracer_attach(struct tracer *t, pid_t pid);

/*
 * Loads schedule constraints from @path: one per line, "B-site A-site [delay-us]" (sites as -o
 * writes them; '#' starts a comment line), @delay_ns for those without a delay (0: 1 ms).
 * Returns 0, -EINVAL (a malformed line, named on stderr), -errno.
 */
int tracer_load_constraints(struct tracer *t, const char *path, uint64_t delay_ns);

/*
 * Runs until no traced thread is left, or until a requested detach is done. *ret_status gets
 * the initial process's wait status (as waitpid() gives it); -1 after a detach.
 */
int tracer_run(struct tracer *t, int *ret_status);

/*
 * Asks the loop to detach (attach mode). Async-signal-safe: meant for a signal handler.
 */
void tracer_request_detach(struct tracer *t);

/*
 * The outcome of a finished run: whether a failure was reported, and the Recent Past Buffer as
 * model events (valid until tracer_destroy()): as it was at the first failure, or, without a
 * failure, as the run ended.
 */
struct model_event;
int tracer_outcome(struct tracer *t, bool *ret_failed, const struct model_event **ret_rpb,
		   size_t *ret_n);

/*
 * Loads the constraints of @n (B, A, delay) triples (sites as -o writes them); @delay_ns for
 * those with none. Replaces any loaded before. Returns 0 or -errno.
 */
struct fsm_constraint;
int tracer_load_constraint_set(struct tracer *t, const struct fsm_constraint *c, size_t n,
			       uint64_t delay_ns);

/* ---- Runs under avoidance (runs.c) ---- */

struct tracer_runs_options {
	unsigned runs;		/* >= 1: the program is run that many times in a row */
	const char *state_dir;	/* --state-dir: the model's store goes in DIR/model (NULL: default) */
	const char *server;	/* --server URL: an aviso-server (checked), else the model embedded */
	bool no_avoid;		/* --no-avoid: outcomes are reported, constraints never loaded */
	bool no_model;		/* no model at all (constraints come from a file, or none) */
	const char *constraints; /* --constraints FILE, loaded into every run */
	unsigned delay_us;	/* --delay-us (0: the default, 1000) */
	enum model_baseline_rule baseline_rule; /* the embedded model's (a server has its own) */
	bool have_seed;		/* --seed S: every choice of the model repeatable (else random) */
	uint64_t seed;
	FILE *runs_log;		/* --runs-log: one JSON line per run (caller's), or NULL */
};

/*
 * Runs @path with @argv under the tracer ro->runs times: each run asks the model (embedded, or
 * an aviso-server) which constraints to load, and reports its outcome. *ret_status gets the last run's wait
 * status. Returns 0, or a launch error as tracer_launch() does.
 */
int tracer_runs(const struct tracer_options *opt, const struct tracer_runs_options *ro,
		const char *path, char *const argv[], int *ret_status);

/* Sends @sig to the program of the run in progress (for SIGTERM and SIGHUP handlers). */
void tracer_runs_forward(int sig);

/* Correct-run samples handed over by this run so far. */
unsigned tracer_samples_sent(const struct tracer *t);

/* The launched or attached process. */
pid_t tracer_main_pid(const struct tracer *t);

/* Writes the -c table to @f. */
void tracer_print_summary(struct tracer *t, FILE *f);
