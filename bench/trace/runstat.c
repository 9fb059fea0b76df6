/*
 * runstat: run one command and report its wall time, peak memory and start-up delay, for
 * bench/trace/run.sh.
 *
 *   runstat PROG [ARGS...]
 *
 * Prints one line on stdout:
 *
 *   wall_ns=N maxrss_kb=N status=S startup_ns=N|- out=FIRST_LINE
 *
 * wall_ns    from just before fork to the end of wait4 (CLOCK_MONOTONIC)
 * maxrss_kb  wait4's ru_maxrss: the peak resident set of PROG, or of a process it waited for
 *            if larger (under a tracer: max(tracer, tracee); the tracee alone is measured by
 *            running it untraced)
 * status     exit code, or "sigN" when killed by signal N
 * startup_ns the program printed a line "startup-ns T" (see startup.cpp): T minus CLOCK_MONOTONIC
 *            taken in the child just before execvp; "-" when no such line
 * out        the first line PROG wrote to stdout that is not a startup-ns line (lockloop's
 *            checksum), "-" when none
 *
 * PROG's stdout is read through a pipe; its stderr is left alone. The child gets PDEATHSIG
 * SIGKILL, so it dies with runstat.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	volatile int64_t *exec_ns;
	int fds[2], status;
	int64_t t0, t1, startup = -1;
	struct rusage ru;
	char first[256] = "-", line[4096];
	FILE *in;
	pid_t pid;

	if (argc < 2) {
		fprintf(stderr, "usage: runstat PROG [ARGS...]\n");
		return 2;
	}
	exec_ns =
	    mmap(NULL, sizeof(*exec_ns), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (exec_ns == MAP_FAILED || pipe(fds) != 0) {
		perror("runstat");
		return 1;
	}
	fflush(NULL);
	t0 = now_ns();
	pid = fork();
	if (pid < 0) {
		perror("runstat: fork");
		return 1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		*exec_ns = now_ns();
		execvp(argv[1], argv + 1);
		fprintf(stderr, "runstat: %s: %s\n", argv[1], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	while (in && fgets(line, sizeof(line), in)) {
		long long t;

		if (sscanf(line, "startup-ns %lld", &t) == 1) {
			if (startup < 0)
				startup = t - *exec_ns;
		} else if (strcmp(first, "-") == 0) {
			line[strcspn(line, "\n")] = '\0';
			for (char *p = line; *p; p++)
				if (*p == ' ' || *p == '\t')
					*p = '_';
			snprintf(first, sizeof(first), "%.255s", line[0] ? line : "-");
		}
	}
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			perror("runstat: wait4");
			return 1;
		}
	}
	t1 = now_ns();
	printf("wall_ns=%lld maxrss_kb=%ld status=", (long long)(t1 - t0), ru.ru_maxrss);
	if (WIFSIGNALED(status))
		printf("sig%d", WTERMSIG(status));
	else
		printf("%d", WEXITSTATUS(status));
	if (startup >= 0)
		printf(" startup_ns=%lld", (long long)startup);
	else
		printf(" startup_ns=-");
	printf(" out=%s\n", first);
	return 0;
}
