/*
 * sigstorm: signals with handlers delivered during heavy locking (sigstorm.h).
 */
#include <pthread.h>
#include <signal.h>

#include "progutil.h"
#include "sigstorm.h"

struct worker {
	pthread_t th;
	atomic_int acks;
	atomic_int started; /* its handler can acknowledge: self is set */
};

static struct worker workers[SS_WORKERS];
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static long sum;
static atomic_int stop;
static atomic_int sigs_seen[NSIG];
static __thread struct worker *self;

static void
on_signal(int sig)
{
	atomic_fetch_add(&sigs_seen[sig], 1);
	if (self)
		atomic_fetch_add(&self->acks, 1);
}

static void *
worker_main(void *arg)
{
	self = arg;
	atomic_store(&self->started, 1);
	for (int i = 0; i < SS_LOCKS; i++) {
		PROG_EXPECT(pthread_mutex_lock(&m), 0);
		sum++;
		PROG_EXPECT(pthread_mutex_unlock(&m), 0);
	}
	prog_spin_until(&stop, 1, "main's last signal");
	return NULL;
}

int
main(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) || sigaction(SIGUSR2, &sa, NULL))
		prog_die("sigaction: %s", strerror(errno));

	for (int i = 0; i < SS_WORKERS; i++)
		PROG_EXPECT(pthread_create(&workers[i].th, NULL, worker_main, &workers[i]), 0);
	for (int i = 0; i < SS_WORKERS; i++)
		prog_spin_until(&workers[i].started, 1, "a worker to start");
	for (int s = 0; s < SS_SIGNALS; s++) {
		for (int i = 0; i < SS_WORKERS; i++) {
			PROG_EXPECT(pthread_kill(workers[i].th, s % 2 ? SIGUSR2 : SIGUSR1), 0);
			prog_spin_until(&workers[i].acks, s + 1, "a signal handler");
		}
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < SS_WORKERS; i++)
		PROG_EXPECT(pthread_join(workers[i].th, NULL), 0);

	for (int i = 0; i < SS_WORKERS; i++)
		if (atomic_load(&workers[i].acks) != SS_SIGNALS)
			prog_die("sigstorm: worker %d handled %d signals, sent %d", i,
				 atomic_load(&workers[i].acks), SS_SIGNALS);
	if (atomic_load(&sigs_seen[SIGUSR1]) != SS_WORKERS * SS_SIGNALS / 2 ||
	    atomic_load(&sigs_seen[SIGUSR2]) != SS_WORKERS * SS_SIGNALS / 2)
		prog_die("sigstorm: SIGUSR1 %d, SIGUSR2 %d", atomic_load(&sigs_seen[SIGUSR1]),
			 atomic_load(&sigs_seen[SIGUSR2]));
	if (sum != SS_WORKERS * SS_LOCKS)
		prog_die("sigstorm: sum %ld, expected %d", sum, SS_WORKERS * SS_LOCKS);
	printf("sigstorm: ok signals=%d locks=%ld\n", SS_WORKERS * SS_SIGNALS, sum);
	return 0;
}
