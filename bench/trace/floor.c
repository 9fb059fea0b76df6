/*
 * floor: the bare cost of a breakpoint hit under ptrace, the yardstick of issue 2.
 *
 * A child (forked, PTRACE_TRACEME, PTRACE_O_EXITKILL | PTRACE_O_TRACECLONE) runs, in 1 or 2
 * threads, a loop of K calls to bench_target(), a function whose first byte is a one-byte `nop`.
 * The tracer plants an int3 over that nop with PTRACE_POKEDATA and handles each hit in one of two
 * ways:
 *
 *   cont  the floor: int3 and nop are both one byte, so after the trap rip already points at the
 *         next instruction: waitpid(-1, __WALL) + PTRACE_CONT, nothing else.
 *   step  the classic step-over (not allowed in aviso-trace): restore the original byte, rewind
 *         rip, PTRACE_SINGLESTEP, wait for the step, re-insert the int3, PTRACE_CONT. While the
 *         byte is restored, other threads run past the breakpoint unseen: missed hits.
 *
 * Before it is traced, the same child runs the same loop untraced (100 times longer, same number
 * of threads), so the native cost of an iteration is measured in the same run and subtracted:
 *
 *   ns per hit = (traced wall time - untraced time per iteration * iterations) / hits seen
 *
 * where the wall time runs from the first thread's start to the last thread's end (the threads
 * time themselves with CLOCK_MONOTONIC, a vDSO call that does not stop them). Each thread counts
 * its own iterations into shared memory; missed = iterations - hits seen by the tracer.
 *
 * CPU placement: `none` leaves the scheduler alone; `same` pins the tracer and every child thread
 * to one CPU (a stop is a context switch on that CPU); `diff` pins the tracer to one CPU and the
 * child's threads to another (every stop and every resume is a wake-up across CPUs).
 *
 * Output: a header (machine, date, CPUs), then one row per configuration with the median over R
 * repetitions and every raw value. Rows start with "floor " so scripts can grep them; -q prints
 * only the rows.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 2
#define MAX_REPS 101
/* The untraced loop runs this many times more iterations than the traced one: it is ~1 ns per
 * iteration, and K of them alone would be too short to time. */
#define UNTRACED_FACTOR 100

/*
 * The function the breakpoint is planted on. Written in assembly so its first byte is certainly
 * a one-byte nop (no endbr64, no frame setup), and aligned so the 8-byte word PTRACE_POKEDATA
 * rewrites stays inside .text.
 */
void bench_target(void);
__asm__(".text\n"
	".globl bench_target\n"
	".type bench_target, @function\n"
	".p2align 4\n"
	"bench_target:\n"
	"	nop\n"
	"	ret\n"
	".size bench_target, .-bench_target\n");

enum mode { MODE_CONT, MODE_STEP };
enum place { PLACE_NONE, PLACE_SAME, PLACE_DIFF };
static const char *const mode_names[] = {"cont", "step"};
static const char *const place_names[] = {"none", "same", "diff"};

/* Shared between the tracer and the child (MAP_SHARED, created before fork). */
struct shared {
	long iterations[MAX_THREADS]; /* traced loop: iterations each thread executed */
	int64_t t_start[MAX_THREADS]; /* traced loop: CLOCK_MONOTONIC ns at each thread's start */
	int64_t t_end[MAX_THREADS];
	int64_t untraced_wall_ns; /* untraced loop: wall time of UNTRACED_FACTOR * K per thread */
	bool done;		  /* the child finished both loops */
};

struct child_args {
	struct shared *sh;
	pthread_barrier_t *barrier;
	long k;
	int index;
	bool traced;
};

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One thread's loop: the calls the breakpoint catches (or not, when untraced). */
static void *
loop_thread(void *arg)
{
	struct child_args *a = arg;
	long i, n = 0;
	int64_t t0, t1;

	pthread_barrier_wait(a->barrier);
	t0 = now_ns();
	for (i = 0; i < a->k; i++) {
		bench_target();
		n++;
	}
	t1 = now_ns();
	/* Untraced, t_start/t_end are scratch: run_loop folds them into one wall time. */
	a->sh->t_start[a->index] = t0;
	a->sh->t_end[a->index] = t1;
	if (a->traced)
		a->sh->iterations[a->index] = n;
	return NULL;
}

/* Run the loop in `threads` threads (the calling thread is thread 0); returns the wall time. */
static int64_t
run_loop(struct shared *sh, int threads, long k, bool traced)
{
	pthread_t tid[MAX_THREADS];
	struct child_args args[MAX_THREADS];
	pthread_barrier_t barrier;
	int64_t start, end;
	int i;

	pthread_barrier_init(&barrier, NULL, (unsigned)threads);
	for (i = 0; i < threads; i++)
		args[i] = (struct child_args){sh, &barrier, k, i, traced};
	for (i = 1; i < threads; i++)
		if (pthread_create(&tid[i], NULL, loop_thread, &args[i]) != 0)
			_exit(3);
	loop_thread(&args[0]);
	for (i = 1; i < threads; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&barrier);
	start = sh->t_start[0];
	end = sh->t_end[0];
	for (i = 1; i < threads; i++) {
		if (sh->t_start[i] < start)
			start = sh->t_start[i];
		if (sh->t_end[i] > end)
			end = sh->t_end[i];
	}
	return end - start;
}

/* The tracee: untraced loop, then stop for the tracer, then the same loop traced. */
static void __attribute__((noreturn))
child_main(struct shared *sh, int threads, long k, const cpu_set_t *cpus)
{
	/* Die with the tracer (EXITKILL covers ptrace; this covers death before PTRACE_TRACEME). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(2);
	if (cpus && sched_setaffinity(0, sizeof(*cpus), cpus) != 0)
		_exit(4);
	sh->untraced_wall_ns = run_loop(sh, threads, k * UNTRACED_FACTOR, false);
	if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
		_exit(5);
	raise(SIGSTOP);
	run_loop(sh, threads, k, true);
	sh->done = true;
	_exit(0);
}

struct result {
	double ns_per_hit;
	long hits;
	long iterations;
};

static int
fail(pid_t pid, const char *what)
{
	fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(-1, NULL, __WALL) > 0)
			;
	}
	return -1;
}

/*
 * Classic step-over of the breakpoint at `addr` for thread `tid`, stopped just after the int3.
 * Other threads keep running meanwhile: that is the point of measuring it.
 */
static int
step_over(pid_t tid, uintptr_t addr, long orig_word, long trap_word)
{
	struct user_regs_struct regs;
	int status;

	if (ptrace(PTRACE_GETREGS, tid, NULL, &regs) != 0)
		return -1;
	if (regs.rip - 1 != addr) {
		errno = EPROTO;
		return -1;
	}
	if (ptrace(PTRACE_POKEDATA, tid, (void *)addr, (void *)orig_word) != 0)
		return -1;
	regs.rip = addr;
	if (ptrace(PTRACE_SETREGS, tid, NULL, &regs) != 0)
		return -1;
	if (ptrace(PTRACE_SINGLESTEP, tid, NULL, NULL) != 0)
		return -1;
	if (waitpid(tid, &status, __WALL) != tid)
		return -1;
	if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP) {
		errno = EPROTO;
		return -1;
	}
	if (ptrace(PTRACE_POKEDATA, tid, (void *)addr, (void *)trap_word) != 0)
		return -1;
	return ptrace(PTRACE_CONT, tid, NULL, NULL);
}

/* One repetition of one configuration. */
static int
run_once(enum mode mode, int threads, long k, const cpu_set_t *tracer_cpus,
	 const cpu_set_t *child_cpus, const cpu_set_t *all_cpus, struct result *res)
{
	struct shared *sh;
	uintptr_t addr = (uintptr_t)&bench_target;
	long orig_word = 0, trap_word = 0, hits = 0, iterations = 0;
	bool planted = false;
	pid_t pid, tid;
	int status, i, rc = -1;
	int64_t wall, start, end;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return fail(0, "mmap");
	memset(sh, 0, sizeof(*sh));
	if (tracer_cpus && sched_setaffinity(0, sizeof(*tracer_cpus), tracer_cpus) != 0) {
		fail(0, "sched_setaffinity");
		goto leave;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fail(0, "fork");
		goto leave;
	}
	if (pid == 0)
		child_main(sh, threads, k, child_cpus);

	for (;;) {
		tid = waitpid(-1, &status, __WALL);
		if (tid < 0) {
			fail(pid, "waitpid");
			goto leave;
		}
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			if (tid != pid)
				continue; /* a non-leader thread ended */
			if (WIFSIGNALED(status) || WEXITSTATUS(status) != 0 || !sh->done) {
				fprintf(stderr, "floor: child ended badly (status 0x%x)\n", status);
				goto leave;
			}
			break;
		}
		if (!WIFSTOPPED(status))
			continue;
		if (status >> 8 == (SIGTRAP | (PTRACE_EVENT_CLONE << 8))) {
			ptrace(PTRACE_CONT, tid, NULL, NULL);
		} else if (WSTOPSIG(status) == SIGSTOP) {
			/* The leader's stop after PTRACE_TRACEME, or a new thread's first stop. */
			if (tid == pid && !planted) {
				if (ptrace(PTRACE_SETOPTIONS, pid, NULL,
					   (void *)(PTRACE_O_EXITKILL | PTRACE_O_TRACECLONE)) !=
				    0) {
					fail(pid, "PTRACE_SETOPTIONS");
					goto leave;
				}
				errno = 0;
				orig_word = ptrace(PTRACE_PEEKDATA, pid, (void *)addr, NULL);
				if (errno != 0) {
					fail(pid, "PTRACE_PEEKDATA");
					goto leave;
				}
				if ((orig_word & 0xff) != 0x90) {
					errno = EPROTO;
					fail(pid, "bench_target does not start with nop");
					goto leave;
				}
				trap_word = (orig_word & ~0xffL) | 0xcc;
				if (ptrace(PTRACE_POKEDATA, pid, (void *)addr, (void *)trap_word) !=
				    0) {
					fail(pid, "PTRACE_POKEDATA");
					goto leave;
				}
				planted = true;
			}
			ptrace(PTRACE_CONT, tid, NULL, NULL);
		} else if (WSTOPSIG(status) == SIGTRAP && status >> 16 == 0) {
			/* A breakpoint hit: the only traps this child makes. */
			hits++;
			if (mode == MODE_CONT) {
				ptrace(PTRACE_CONT, tid, NULL, NULL);
			} else if (step_over(tid, addr, orig_word, trap_word) != 0) {
				fail(pid, "step over");
				goto leave;
			}
		} else {
			/* Anything else: deliver it, as a tracer should. */
			ptrace(PTRACE_CONT, tid, NULL, (void *)(long)WSTOPSIG(status));
		}
	}

	start = sh->t_start[0];
	end = sh->t_end[0];
	for (i = 0; i < threads; i++) {
		iterations += sh->iterations[i];
		if (sh->t_start[i] < start)
			start = sh->t_start[i];
		if (sh->t_end[i] > end)
			end = sh->t_end[i];
	}
	wall = end - start;
	res->hits = hits;
	res->iterations = iterations;
	res->ns_per_hit =
	    hits == 0
		? 0.0
		: ((double)wall - (double)sh->untraced_wall_ns / UNTRACED_FACTOR) / (double)hits;
	rc = 0;
leave:
	if (tracer_cpus)
		sched_setaffinity(0, sizeof(*all_cpus), all_cpus);
	munmap(sh, sizeof(*sh));
	return rc;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(const double *v, int n)
{
	double s[MAX_REPS];

	memcpy(s, v, sizeof(*v) * (size_t)n);
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void
print_header(const cpu_set_t *all, int cpu_a, int cpu_b, long k, int reps)
{
	struct utsname u;
	char date[64];
	time_t t = time(NULL);
	FILE *f;
	char line[256], model[256] = "?";
	int i;

	uname(&u);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S %z", localtime(&t));
	f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10) == 0) {
			char *p = strchr(line, ':');
			snprintf(model, sizeof(model), "%s", p ? p + 2 : line);
			model[strcspn(model, "\n")] = '\0';
			break;
		}
	}
	if (f)
		fclose(f);
	printf("# floor: ns per breakpoint hit under ptrace (bench/trace/floor.c)\n");
	printf("# date %s; host %s %s %s; nproc %ld; cpu %s\n", date, u.nodename, u.sysname,
	       u.release, sysconf(_SC_NPROCESSORS_ONLN), model);
	printf("# allowed cpus:");
	for (i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, all))
			printf(" %d", i);
	printf("; same = tracer and child on cpu %d; diff = tracer on cpu %d, child on cpu %d\n",
	       cpu_a, cpu_a, cpu_b);
	printf("# %ld loop iterations per thread per repetition, %d repetitions; no randomness (no "
	       "seed)\n",
	       k, reps);
	printf("# ns/hit = (traced wall - untraced wall for the same iterations) / hits seen\n");
	printf(
	    "#     mode threads place  median_ns/hit  median_missed  raw_ns/hit ... | raw_missed "
	    "...\n");
}

static void __attribute__((noreturn)) usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: floor [-k ITERATIONS] [-r REPS] [-t 1|2|all] [-m cont|step|all]\n"
		"             [-p none|same|diff|all] [-q]\n"
		"  -k  loop iterations per thread per repetition (default 3000)\n"
		"  -r  repetitions, the median is printed (default 7)\n"
		"  -t  threads in the child (default all: 1 then 2)\n"
		"  -m  cont: int3 over nop + PTRACE_CONT (the floor); step: classic step-over\n"
		"      (default all)\n"
		"  -p  CPU placement: none (scheduler's choice), same (tracer and child pinned to\n"
		"      one CPU), diff (pinned to two CPUs) (default all)\n"
		"  -q  print only the result rows\n");
	exit(status);
}

static int
parse_choice(const char *s, const char *const *names, int n)
{
	int i;

	if (strcmp(s, "all") == 0)
		return -1;
	for (i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	usage(2);
}

int
main(int argc, char **argv)
{
	long k = 3000;
	int reps = 7, only_threads = 0, only_mode = -1, only_place = -1, opt, cpu_a = -1,
	    cpu_b = -1, i;
	bool quiet = false, failed = false;
	cpu_set_t all, one_a, one_b;
	static const char *const thread_names[] = {"1", "2"};

	while ((opt = getopt(argc, argv, "k:r:t:m:p:qh")) != -1) {
		switch (opt) {
		case 'k':
			k = strtol(optarg, NULL, 10);
			break;
		case 'r':
			reps = atoi(optarg);
			break;
		case 't':
			only_threads = parse_choice(optarg, thread_names, 2) + 1;
			break;
		case 'm':
			only_mode = parse_choice(optarg, mode_names, 2);
			break;
		case 'p':
			only_place = parse_choice(optarg, place_names, 3);
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (k < 1 || reps < 1 || reps > MAX_REPS || optind != argc)
		usage(2);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (sched_getaffinity(0, sizeof(all), &all) != 0) {
		perror("floor: sched_getaffinity");
		return 1;
	}
	for (i = 0; i < CPU_SETSIZE; i++) {
		if (!CPU_ISSET(i, &all))
			continue;
		if (cpu_a < 0)
			cpu_a = i;
		else if (cpu_b < 0)
			cpu_b = i;
	}
	CPU_ZERO(&one_a);
	CPU_SET(cpu_a, &one_a);
	CPU_ZERO(&one_b);
	if (cpu_b >= 0)
		CPU_SET(cpu_b, &one_b);
	if (!quiet)
		print_header(&all, cpu_a, cpu_b, k, reps);

	for (int m = 0; m < 2; m++) {
		if (only_mode >= 0 && m != only_mode)
			continue;
		for (int t = 1; t <= MAX_THREADS; t++) {
			if (only_threads && t != only_threads)
				continue;
			for (int p = 0; p < 3; p++) {
				double ns[MAX_REPS], missed[MAX_REPS];
				const cpu_set_t *tc = NULL, *cc = NULL;

				if (only_place >= 0 && p != only_place)
					continue;
				if (p == PLACE_SAME) {
					tc = &one_a;
					cc = &one_a;
				} else if (p == PLACE_DIFF) {
					if (cpu_b < 0) {
						printf("# diff skipped: only one CPU allowed\n");
						continue;
					}
					tc = &one_a;
					cc = &one_b;
				}
				for (i = 0; i < reps; i++) {
					struct result r;

					if (run_once((enum mode)m, t, k, tc, cc, &all, &r) != 0) {
						failed = true;
						break;
					}
					ns[i] = r.ns_per_hit;
					missed[i] = (double)(r.iterations - r.hits);
					if (r.iterations != (long)t * k)
						fprintf(stderr,
							"floor: %ld iterations, expected %ld\n",
							r.iterations, (long)t * k);
				}
				if (i < reps)
					continue;
				printf("floor %4s %7d %5s %14.0f %14.0f ", mode_names[m], t,
				       place_names[p], median(ns, reps), median(missed, reps));
				for (i = 0; i < reps; i++)
					printf(" %.0f", ns[i]);
				printf(" |");
				for (i = 0; i < reps; i++)
					printf(" %.0f", missed[i]);
				printf("\n");
			}
		}
	}
	return failed ? 1 : 0;
}
