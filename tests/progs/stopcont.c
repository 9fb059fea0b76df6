/*
 * stopcont: job control from outside during locking (stopcont.h).
 */
#include <pthread.h>
#include <signal.h>

#include "progutil.h"
#include "stopcont.h"

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static long sum;
static atomic_int conts;

static void
on_cont(int sig)
{
	(void)sig;
	atomic_fetch_add(&conts, 1);
}

static void *
worker(void *arg)
{
	struct timespec ms = {0, 1000000};

	(void)arg;
	for (int i = 0; i < SC_LOCKS; i++) {
		PROG_EXPECT(pthread_mutex_lock(&m), 0);
		sum += i;
		PROG_EXPECT(pthread_mutex_unlock(&m), 0);
		nanosleep(&ms, NULL);
	}
	return NULL;
}

int
main(void)
{
	struct timespec ms = {0, 1000000};
	struct sigaction sa;
	pthread_t th[SC_THREADS];
	double end;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_cont;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGCONT, &sa, NULL))
		prog_die("sigaction: %s", strerror(errno));
	for (int i = 0; i < SC_THREADS; i++)
		PROG_EXPECT(pthread_create(&th[i], NULL, worker, NULL), 0);
	printf("stopcont: pid=%d ready\n", (int)getpid());
	fflush(stdout);

	end = prog_now() + PROG_SPIN_TIMEOUT_S;
	while (atomic_load(&conts) == 0) {
		if (prog_now() > end)
			prog_die("stopcont: no SIGCONT within %d s", PROG_SPIN_TIMEOUT_S);
		nanosleep(&ms, NULL);
	}
	for (int i = 0; i < SC_THREADS; i++)
		PROG_EXPECT(pthread_join(th[i], NULL), 0);
	if (sum != (long)SC_THREADS * SC_LOCKS * (SC_LOCKS - 1) / 2)
		prog_die("stopcont: sum %ld", sum);
	printf("stopcont: ok sum=%ld conts=%d\n", sum, atomic_load(&conts));
	return 0;
}
