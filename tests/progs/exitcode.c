/*
 * exitcode: ends in a chosen way, after one lock/unlock (so a tracer has something to see).
 *   exitcode N       exit(N)
 *   exitcode -s SIG  raise(SIG) with the default action (SIG's death, core or not)
 *   exitcode -f      a real SIGSEGV (a store to address 0)
 *   exitcode -t N    a second thread calls exit(N) while main waits in pthread_join
 * Also built static and stripped (exitcode-static), which aviso-trace must refuse.
 */
#include <pthread.h>
#include <signal.h>

#include "progutil.h"

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;

static void *
exiter(void *arg)
{
	PROG_EXPECT(pthread_mutex_lock(&m), 0);
	PROG_EXPECT(pthread_mutex_unlock(&m), 0);
	exit((int)(long)arg);
}

int
main(int argc, char **argv)
{
	PROG_EXPECT(pthread_mutex_lock(&m), 0);
	PROG_EXPECT(pthread_mutex_unlock(&m), 0);
	if (argc == 2 && strcmp(argv[1], "-f") == 0) {
		*(volatile int *)(long)(argc - 2) = 1;
		return 1;
	}
	if (argc == 3 && strcmp(argv[1], "-s") == 0) {
		signal(atoi(argv[2]), SIG_DFL);
		raise(atoi(argv[2]));
		return 1; /* a signal that does not kill */
	}
	if (argc == 3 && strcmp(argv[1], "-t") == 0) {
		pthread_t t;

		PROG_EXPECT(pthread_create(&t, NULL, exiter, (void *)(long)atoi(argv[2])), 0);
		pthread_join(t, NULL);
		return 1;
	}
	if (argc == 2)
		return atoi(argv[1]);
	fprintf(stderr, "usage: exitcode N | -s SIG | -f | -t N\n");
	return 2;
}
