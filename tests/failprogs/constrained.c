/*
 * For the delay tests: two threads leave a barrier together; "first" locks and unlocks m1 (the
 * line marked B), "second" waits until B's lock has returned, sleeps 2 ms and locks m2 (the line
 * marked A). first notes the time as its lock call begins, second right after its lock
 * returns; the program prints "B-ns A-ns" (CLOCK_MONOTONIC). Untraced, A comes about 2 ms after
 * B. With the argument "join", first joins second right after B: an activator that waits for
 * the thread its constraint would delay. With "busy", first locks and unlocks m1 once more right
 * after B (two more events) before it sleeps. With "spin", first computes for 200 ms after B
 * instead of sleeping: runnable all along, and no event.
 *
 * With "point" (and the lines marked PB and PE as --points): first's B is the store at PB; it
 * then locks and unlocks m1 twice (four events), sleeps 50 ms and stores again at PE.
 *
 * With "held": first locks m3 and leaves the barrier holding it; second leaves it and calls
 * lock(m3) (the line marked A2), blocked until first unlocks m3 (B2) 20 ms later. The times
 * printed are then B2's and A2's (A2's noted when its lock returns).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t m1 = PTHREAD_MUTEX_INITIALIZER, m2 = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t m3 = PTHREAD_MUTEX_INITIALIZER;
static int held;
static volatile int b_done; /* B has run: A waits for it, so that A follows B even under load */
static pthread_barrier_t go;
static long long t_b, t_a;

static long long
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *
second(void *arg)
{
	pthread_barrier_wait(&go);
	if (held) {
		pthread_mutex_lock(&m3); /* A2 */
		t_a = now();
		pthread_mutex_unlock(&m3);
		return arg;
	}
	while (!b_done)
		usleep(100);
	usleep(2000);
	pthread_mutex_lock(&m2); /* A */
	t_a = now();
	pthread_mutex_unlock(&m2);
	return arg;
}

int
main(int argc, char **argv)
{
	int join = argc > 1 && strcmp(argv[1], "join") == 0;
	int busy = argc > 1 && strcmp(argv[1], "busy") == 0;
	int spin = argc > 1 && strcmp(argv[1], "spin") == 0;
	int point = argc > 1 && strcmp(argv[1], "point") == 0;
	pthread_t t;

	held = argc > 1 && strcmp(argv[1], "held") == 0;
	pthread_barrier_init(&go, NULL, 2);
	pthread_create(&t, NULL, second, NULL);
	if (held) {
		pthread_mutex_lock(&m3);
		pthread_barrier_wait(&go);
		usleep(20000);
		t_b = now();
		pthread_mutex_unlock(&m3); /* B2 */
		usleep(300000);
		pthread_join(t, NULL);
		printf("%lld %lld\n", t_b, t_a);
		return 0;
	}
	pthread_barrier_wait(&go);
	if (point) {
		t_b = now();
		b_done = 1; /* PB */
		for (int i = 0; i < 2; i++) {
			pthread_mutex_lock(&m1);
			pthread_mutex_unlock(&m1);
		}
		usleep(50000);
		b_done = 2; /* PE */
		usleep(300000);
		pthread_join(t, NULL);
		printf("%lld %lld\n", t_b, t_a);
		return 0;
	}
	t_b = now(); /* as B's call begins: the tracer activates B at its entry, right after */
	pthread_mutex_lock(&m1); /* B */
	b_done = 1;
	pthread_mutex_unlock(&m1);
	if (busy) {
		pthread_mutex_lock(&m1);
		pthread_mutex_unlock(&m1);
	}
	if (join) {
		pthread_join(t, NULL);
	} else if (spin) {
		long long end = now() + 200000000LL;
		while (now() < end) /* clock_gettime is a vDSO call: no event, no syscall */
			;
	} else {
		usleep(300000); /* stays alive (and not waiting for second) past any delay */
	}
	if (!join)
		pthread_join(t, NULL);
	printf("%lld %lld\n", t_b, t_a);
	return 0;
}
