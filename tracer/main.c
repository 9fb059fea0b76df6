/*
 * aviso-trace: run or attach to an unmodified pthread program and record every
 * synchronization event. Options, errors and the exit status; the work is in tracer/.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "breakpoints/breakpoints.h"
#include "tracer/backend.h"
#include "tracer/tracer.h"

#define EXIT_USAGE 2
#define EXIT_NOEXEC 126
#define EXIT_NOTFOUND 127

enum {
	OPT_FRAMES = 256,
	OPT_RPB_SIZE,
	OPT_POINTS,
	OPT_FAIL_ON_EXIT,
	OPT_HANG_TIMEOUT,
	OPT_REPORT_DIR,
	OPT_NO_PADS,
	OPT_NO_RING,
	OPT_RUNS,
	OPT_SEED,
	OPT_STATE_DIR,
	OPT_NO_AVOID,
	OPT_BASELINE_RULE,
	OPT_NO_MODEL,
	OPT_RELEASE_AFTER,
	OPT_SAMPLES,
	OPT_SAMPLE_AT,
	OPT_SAMPLE_HOLD,
	OPT_TICK_EVERY,
	OPT_TICK_AT,
	OPT_RUNS_LOG,
	OPT_CONSTRAINTS,
	OPT_DELAY_US,
	OPT_SERVER,
};

static struct tracer *the_tracer;

static void __attribute__((format(printf, 2, 3), noreturn))
die(int status, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = snprintf(buf, sizeof(buf), "aviso-trace: ");
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)!write(STDERR_FILENO, buf, (size_t)n);
	exit(status);
}

static void __attribute__((noreturn))
usage(int status)
{
	FILE *f = status ? stderr : stdout;

	fprintf(f, "usage: aviso-trace [options] -- PROG [ARGS...]\n"
		   "       aviso-trace [options] -p PID\n"
		   "\n"
		   "Records every synchronization event of an unmodified pthread program, and\n"
		   "reports its failures with the events that led to them.\n"
		   "\n"
		   "  -o, --output FILE     write one JSON object per event per line to FILE\n"
		   "  -c, --summary         print a table of kinds and sites with counts at exit\n"
		   "  -f, --follow-forks    trace forked children and their threads too\n"
		   "  -p, --pid PID         attach to every thread of running process PID;\n"
		   "                        SIGINT, SIGTERM or SIGHUP detach cleanly\n"
		   "      --frames N        frames of calling context per site (1-%d, default %d)\n"
		   "      --rpb-size N      events kept per thread for reports (default %d)\n"
		   "      --points FILE     sharing events at the AVISOPOINTS file's code points\n"
		   "      --fail-on-exit    a non-zero exit status is a failure\n"
		   "      --hang-timeout S  no progress for S seconds is a failure (a hang)\n"
		   "      --report-dir DIR  failure reports go to DIR (default\n"
		   "                        $XDG_STATE_HOME/aviso/reports)\n"
		   "      --no-pads         an int3 at every function entry: no jump pads\n"
		   "      --no-ring         every event stops the thread (by default a jump pad\n"
		   "                        appends its event to a shared ring, with no stop)\n"
		   "      --constraints FILE  schedule constraints to apply, one per line:\n"
		   "                        B-SITE A-SITE [DELAY-US]: after a thread runs B, another\n"
		   "                        thread about to run A waits until the delay has passed\n"
		   "      --delay-us N      the delay of constraints that give none (default 1000)\n"
		   "      --release-after N a delayed thread goes on once the thread that activated\n"
		   "                        the constraint reaches its Nth event after B (default %d;\n"
		   "                        0: only at the end of the delay)\n"
		   "\n"
		   "Avoidance (not with -p): each run asks the model which constraints to load,\n"
		   "and reports its outcome. The model is an aviso-server with --server, else\n"
		   "embedded, in a store under the state directory (aviso-server --db DIR/model\n"
		   "shows its statistics).\n"
		   "      --server URL      the model of the aviso-server at URL (http://HOST:PORT;\n"
		   "                        default $AVISO_SERVER). A server that does not answer\n"
		   "                        makes baseline runs, whose outcomes wait in\n"
		   "                        DIR/queue (below) until it answers\n"
		   "      --runs N          run the program N times in a row, with a summary\n"
		   "      --runs-log FILE   one JSON line per run: what it loaded, how it ended\n"
		   "      --seed S          the series' seed: every choice repeatable (default:\n"
		   "                        random, printed in the summary)\n"
		   "      --state-dir DIR   the store goes in DIR/model, the queue in DIR/queue\n"
		   "                        (default $XDG_STATE_HOME/aviso, else\n"
		   "                        ~/.local/state/aviso)\n"
		   "      --no-avoid        report outcomes, never load constraints\n"
		   "      --baseline-rule R when the embedded model's baseline runs fall from\n"
		   "                        10%% to 1%%: paper (the baseline rate known within 5\n"
		   "                        points) or contender (that, or a contender in every\n"
		   "                        major failure class; the default)\n"
		   "      --no-model        no model at all: a pure trace\n"
		   "      --samples N       correct-run samples per run (default 1): the events\n"
		   "                        kept at a time drawn from 0.1-20 s after the start, sent\n"
		   "                        if nothing fails within 5 s; a run that ends before gives\n"
		   "                        its last events instead\n"
		   "      --sample-at MS    take the first sample MS ms after the start instead\n"
		   "      --sample-hold MS  hold a sample MS ms instead of 5000\n"
		   "      --tick-every N    for long-running programs: every N events is a tick,\n"
		   "                        one success for the constraints the run loaded\n"
		   "      --tick-at FILE:LINE  a tick each time the program reaches that line\n"
		   "                        (repeatable)\n"
		   "  -h, --help            this text\n",
		TRACER_MAX_FRAMES, TRACER_DEFAULT_FRAMES, TRACER_DEFAULT_RPB, TRACER_DEFAULT_RELEASE);
	exit(status);
}

static unsigned
number(const char *arg, const char *name, unsigned lo, unsigned hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (*arg == '\0' || *arg == '-' || *end != '\0' || errno || v < lo || v > hi)
		die(EXIT_USAGE, "%s takes a whole number from %u to %u, not '%s'", name, lo, hi, arg);
	return (unsigned)v;
}

/* PATH search as execvp would do it, with errors a shell would give. */
static int
resolve(const char *prog, char *buf, size_t size)
{
	const char *path = getenv("PATH");
	struct stat st;
	int found_noexec = 0;

	if (strchr(prog, '/')) {
		if (stat(prog, &st) < 0)
			return -errno;
		if (!S_ISREG(st.st_mode) || access(prog, X_OK) < 0)
			return -EACCES;
		snprintf(buf, size, "%s", prog);
		return 0;
	}
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t len = strcspn(path, ":");

		snprintf(buf, size, "%.*s%s%s", (int)len, path, len ? "/" : "", prog);
		if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(buf, X_OK) == 0)
				return 0;
			found_noexec = 1;
		}
		path += len + (path[len] == ':');
	}
	return found_noexec ? -EACCES : -ENOENT;
}

/* A static executable without a symbol table: its pthread functions cannot be found. */
static bool
static_without_symbols(const char *path)
{
	struct bp_elf *elf;
	bool r;

	if (bp_elf_open(path, &elf) < 0)
		return false; /* not ELF (a script): the kernel will find its interpreter */
	r = bp_elf_is_static(elf) && bp_elf_symbol_count(elf) == 0;
	bp_elf_close(elf);
	return r;
}

/* Reads and parses an AVISOPOINTS file; a malformed entry is reported with its position. */
/* --tick-at FILE:LINE, appended to @opt's tick points. */
static void
add_tick_at(const char *arg, struct tracer_options *opt)
{
	const char *colon = strrchr(arg, ':');
	struct bp_point *v;
	char *end;
	long line;

	if (!colon || colon == arg)
		die(EXIT_USAGE, "--tick-at takes FILE:LINE, not '%s'", arg);
	errno = 0;
	line = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno || line < 1 || line > INT_MAX)
		die(EXIT_USAGE, "--tick-at: '%s' is not a line number", colon + 1);
	v = realloc((void *)opt->tick_at, (opt->ntick_at + 1) * sizeof(*v));
	if (!v)
		die(EXIT_FAILURE, "out of memory");
	v[opt->ntick_at] = (struct bp_point){
		.file = strndup(arg, (size_t)(colon - arg)),
		.line = (int)line,
	};
	if (!v[opt->ntick_at].file)
		die(EXIT_FAILURE, "out of memory");
	opt->tick_at = v; /* lives until exit */
	opt->ntick_at++;
}

static void
read_points(const char *path, struct tracer_options *opt)
{
	struct bp_point *points;
	struct bp_points_error err;
	size_t n, len = 0;
	char *text = NULL;
	FILE *f = fopen(path, "re");
	int r;

	if (!f)
		die(EXIT_FAILURE, "cannot read '%s': %s", path, strerror(errno));
	FILE *m = open_memstream(&text, &len);
	char buf[8192];
	size_t got;
	while (m && (got = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, got, m);
	if (!m || ferror(f))
		die(EXIT_FAILURE, "cannot read '%s': %s", path, strerror(errno));
	fclose(f);
	fclose(m);
	r = bp_points_parse(text, &points, &n, &err);
	free(text);
	if (r == -EINVAL)
		die(EXIT_FAILURE, "%s:%d:%d: %s", path, err.line, err.column, err.reason);
	if (r < 0)
		die(EXIT_FAILURE, "cannot parse '%s': %s", path, strerror(-r));
	if (n == 0)
		die(EXIT_FAILURE, "'%s' lists no code points", path);
	opt->points = points; /* lives until exit */
	opt->npoints = n;
}

static void
on_detach_signal(int sig)
{
	(void)sig;
	tracer_request_detach(the_tracer);
}

static void
handle(int sig, void (*fn)(int))
{
	struct sigaction sa = {.sa_handler = fn, .sa_flags = SA_RESTART};

	/* SA_RESTART: no syscall fails with EINTR; the detach request wakes the loop itself. */
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static void mirror(int status) __attribute__((noreturn));

/* -p PID: attach, trace until the program ends or a signal asks us to detach. */
static int
attach_mode(struct tracer_options *opt, pid_t pid, const char *constraints, unsigned delay_us,
	    const char *output)
{
	int r, status;

	r = tracer_create(opt, &the_tracer);
	if (r < 0)
		die(EXIT_FAILURE, "%s", strerror(-r));
	if (constraints) {
		r = tracer_load_constraints(the_tracer, constraints, (uint64_t)delay_us * 1000);
		if (r < 0)
			die(EXIT_FAILURE, "cannot load constraints from '%s': %s", constraints,
			    strerror(-r));
	}
	r = tracer_attach(the_tracer, pid);
	if (r == -EPERM)
		die(EXIT_FAILURE,
		    "cannot attach to %d: %s (already traced, not ours, or forbidden by "
		    "kernel.yama.ptrace_scope)",
		    pid, strerror(-r));
	if (r == -ENOEXEC)
		die(EXIT_FAILURE, "cannot attach to %d: no pthread functions found to trace", pid);
	if (r < 0)
		die(EXIT_FAILURE, "cannot attach to %d: %s", pid, strerror(-r));
	handle(SIGINT, on_detach_signal);
	handle(SIGTERM, on_detach_signal);
	handle(SIGHUP, on_detach_signal);
	fprintf(stderr, "aviso-trace: attached to %d (%d threads)\n", pid, r);

	r = tracer_run(the_tracer, &status);
	if (r < 0)
		fprintf(stderr, "aviso-trace: %s\n", strerror(-r));
	if (opt->output && fclose(opt->output) != 0)
		fprintf(stderr, "aviso-trace: writing '%s': %s\n", output, strerror(errno));
	if (opt->summary)
		tracer_print_summary(the_tracer, stderr);
	tracer_destroy(the_tracer);
	if (status == -1) {
		fprintf(stderr, "aviso-trace: detached from %d\n", pid);
		return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	}
	if (r < 0)
		return EXIT_FAILURE;
	mirror(status);
}

/* Ends the way the program ended: its exit code, or death by its signal (without a core). */
static void __attribute__((noreturn))
mirror(int status)
{
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		struct rlimit no_core = {0, 0};
		sigset_t set;

		setrlimit(RLIMIT_CORE, &no_core);
		signal(sig, SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, sig);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		raise(sig);
		exit(128 + sig);
	}
	exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"output", required_argument, NULL, 'o'},
		{"summary", no_argument, NULL, 'c'},
		{"follow-forks", no_argument, NULL, 'f'},
		{"pid", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{"frames", required_argument, NULL, OPT_FRAMES},
		{"rpb-size", required_argument, NULL, OPT_RPB_SIZE},
		{"points", required_argument, NULL, OPT_POINTS},
		{"fail-on-exit", no_argument, NULL, OPT_FAIL_ON_EXIT},
		{"hang-timeout", required_argument, NULL, OPT_HANG_TIMEOUT},
		{"report-dir", required_argument, NULL, OPT_REPORT_DIR},
		{"no-pads", no_argument, NULL, OPT_NO_PADS},
		{"no-ring", no_argument, NULL, OPT_NO_RING},
		{"runs", required_argument, NULL, OPT_RUNS},
		{"seed", required_argument, NULL, OPT_SEED},
		{"state-dir", required_argument, NULL, OPT_STATE_DIR},
		{"no-avoid", no_argument, NULL, OPT_NO_AVOID},
		{"baseline-rule", required_argument, NULL, OPT_BASELINE_RULE},
		{"no-model", no_argument, NULL, OPT_NO_MODEL},
		{"runs-log", required_argument, NULL, OPT_RUNS_LOG},
		{"constraints", required_argument, NULL, OPT_CONSTRAINTS},
		{"delay-us", required_argument, NULL, OPT_DELAY_US},
		{"release-after", required_argument, NULL, OPT_RELEASE_AFTER},
		{"samples", required_argument, NULL, OPT_SAMPLES},
		{"sample-at", required_argument, NULL, OPT_SAMPLE_AT},
		{"sample-hold", required_argument, NULL, OPT_SAMPLE_HOLD},
		{"tick-every", required_argument, NULL, OPT_TICK_EVERY},
		{"tick-at", required_argument, NULL, OPT_TICK_AT},
		{"server", required_argument, NULL, OPT_SERVER},
		{NULL, 0, NULL, 0},
	};
	struct tracer_options opt = {
		.release_after = -1,
		.samples = 1,
		.sample_hold_ns = 5000000000ULL,
	};
	struct tracer_runs_options ro = {.runs = 1, .baseline_rule = MODEL_BASELINE_DEFAULT};
	bool no_model = false;
	const char *runs_log = NULL, *server = NULL, *why;
	const char *output = NULL, *points_path = NULL, *constraints = NULL;
	unsigned delay_us = 0;
	char path[PATH_MAX];
	pid_t pid = 0;
	int c, r, status;

	opterr = 0; /* our own one-line messages */
	while ((c = getopt_long(argc, argv, "+:o:cfp:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			output = optarg;
			break;
		case 'c':
			opt.summary = true;
			break;
		case 'f':
			opt.follow_forks = true;
			break;
		case 'p': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v <= 0 || v > INT_MAX)
				die(EXIT_USAGE, "invalid PID '%s'", optarg);
			pid = (pid_t)v;
			break;
		}
		case OPT_FRAMES:
			opt.frames = number(optarg, "--frames", 1, TRACER_MAX_FRAMES);
			break;
		case OPT_RPB_SIZE:
			opt.rpb_size = number(optarg, "--rpb-size", 1, 1000000);
			break;
		case OPT_POINTS:
			points_path = optarg;
			break;
		case OPT_FAIL_ON_EXIT:
			opt.fail_on_exit = true;
			break;
		case OPT_HANG_TIMEOUT:
			opt.hang_timeout = number(optarg, "--hang-timeout", 1, 1000000);
			break;
		case OPT_REPORT_DIR:
			opt.report_dir = optarg;
			break;
		case OPT_NO_PADS:
			opt.no_pads = true;
			break;
		case OPT_NO_RING:
			opt.no_ring = true;
			break;
		case OPT_RUNS:
			ro.runs = number(optarg, "--runs", 1, 10000000);
			break;
		case OPT_SEED: {
			char *end;
			errno = 0;
			ro.seed = strtoull(optarg, &end, 0);
			if (*optarg == '\0' || *optarg == '-' || *end != '\0' || errno)
				die(EXIT_USAGE, "--seed takes a whole number, not '%s'", optarg);
			ro.have_seed = true;
			break;
		}
		case OPT_STATE_DIR:
			ro.state_dir = optarg;
			break;
		case OPT_NO_AVOID:
			ro.no_avoid = true;
			break;
		case OPT_BASELINE_RULE:
			if (model_baseline_parse(optarg, &ro.baseline_rule) < 0) {
				fprintf(stderr,
					"aviso-trace: --baseline-rule: '%s' is not paper or contender\n",
					optarg);
				return 2;
			}
			break;
		case OPT_NO_MODEL:
			no_model = true;
			break;
		case OPT_RUNS_LOG:
			runs_log = optarg;
			break;
		case OPT_CONSTRAINTS:
			constraints = optarg;
			break;
		case OPT_SAMPLES:
			opt.samples = number(optarg, "--samples", 0, 1000000);
			break;
		case OPT_SAMPLE_AT:
			opt.sample_at_ns = (uint64_t)number(optarg, "--sample-at", 1, 86400000) * 1000000;
			break;
		case OPT_SAMPLE_HOLD:
			opt.sample_hold_ns = (uint64_t)number(optarg, "--sample-hold", 0, 86400000) * 1000000;
			break;
		case OPT_TICK_EVERY:
			opt.tick_every = number(optarg, "--tick-every", 1, UINT_MAX);
			break;
		case OPT_TICK_AT:
			add_tick_at(optarg, &opt);
			break;
		case OPT_RELEASE_AFTER:
			opt.release_after = (int)number(optarg, "--release-after", 0, 1000);
			break;
		case OPT_DELAY_US:
			delay_us = number(optarg, "--delay-us", 1, 60000000);
			break;
		case OPT_SERVER:
			server = optarg;
			if (backend_server_url_check(server, &why) < 0)
				die(EXIT_USAGE, "--server '%s': %s", server, why);
			break;
		case 'h':
			usage(0);
		case ':':
			die(EXIT_USAGE, "option '%s' needs an argument (see --help)", argv[optind - 1]);
		default:
			die(EXIT_USAGE, "unknown option '%s' (see --help)", argv[optind - 1]);
		}
	}
	if ((pid != 0) == (optind < argc))
		die(EXIT_USAGE, pid ? "give either -p PID or a program, not both"
				    : "no program to run (usage: aviso-trace [opts] -- PROG ARGS)");

	if (!pid) {
		r = resolve(argv[optind], path, sizeof(path));
		if (r == -ENOENT || r == -ENOTDIR)
			die(EXIT_NOTFOUND, "cannot find '%s': %s", argv[optind], strerror(-r));
		if (r < 0)
			die(EXIT_NOEXEC, "cannot run '%s': %s", argv[optind], strerror(-r));
		if (static_without_symbols(path))
			die(EXIT_FAILURE,
			    "'%s' is a static binary without symbols: its pthread functions cannot be "
			    "found",
			    argv[optind]);
	}
	opt.argv = pid ? NULL : argv + optind;
	if (points_path)
		read_points(points_path, &opt);
	if (output) {
		opt.output = fopen(output, "we");
		if (!opt.output)
			die(EXIT_FAILURE, "cannot open '%s' for writing: %s", output, strerror(errno));
		setvbuf(opt.output, NULL, _IOFBF, 1 << 20);
	}
	if (constraints && access(constraints, R_OK) < 0)
		die(EXIT_FAILURE, "cannot read '%s': %s", constraints, strerror(errno));
	if (pid)
		return attach_mode(&opt, pid, constraints, delay_us, output);

	/* Like strace: the terminal's SIGINT and SIGQUIT reach the program by themselves; SIGTERM
	 * and SIGHUP sent to us are passed on. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	handle(SIGTERM, tracer_runs_forward);
	handle(SIGHUP, tracer_runs_forward);
	ro.constraints = constraints;
	/* In a series, each failure is one line on stderr; the report file has the rest. */
	opt.brief_reports = ro.runs > 1;
	/* Explicit constraints replace the model. */
	ro.no_model = no_model || constraints != NULL;
	if (!server && !ro.no_model && (server = getenv("AVISO_SERVER")) && *server &&
	    backend_server_url_check(server, &why) < 0)
		die(EXIT_USAGE, "AVISO_SERVER '%s': %s", server, why);
	ro.server = server && *server ? server : NULL;
	if (runs_log) {
		ro.runs_log = fopen(runs_log, "we");
		if (!ro.runs_log)
			die(EXIT_FAILURE, "cannot open '%s' for writing: %s", runs_log,
			    strerror(errno));
	}
	ro.delay_us = delay_us;
	r = tracer_runs(&opt, &ro, path, argv + optind, &status);
	if (r == -ENOENT)
		die(EXIT_NOTFOUND, "cannot run '%s': %s", argv[optind], strerror(-r));
	if (r == -EACCES || r == -ENOEXEC)
		die(EXIT_NOEXEC, "cannot run '%s': %s", argv[optind], strerror(-r));
	if (r == -EINVAL && constraints)
		die(EXIT_FAILURE, "cannot load constraints from '%s'", constraints);
	if (r < 0)
		die(EXIT_FAILURE, "cannot run '%s': %s", argv[optind], strerror(-r));
	if (opt.output && fclose(opt.output) != 0)
		die(EXIT_FAILURE, "writing '%s': %s", output, strerror(errno));
	if (ro.runs_log && fclose(ro.runs_log) != 0)
		die(EXIT_FAILURE, "writing '%s': %s", runs_log, strerror(errno));
	if (ro.runs > 1)
		return EXIT_SUCCESS; /* a series ends with its summary, not as its last run did */
	mirror(status);
}
