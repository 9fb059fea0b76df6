/*
 * Events in the same order at every run, for the tests that compare the model's choices
 * between two stores (tests/integration/test_client.c): main and a worker take turns on a
 * mutex, handing the turn over through plain atomic flags (no pthread call, so no event, and
 * no blocking call whose entry could race with the other thread's events). With the argument
 * "crash" the worker then dereferences NULL (the line marked CRASH) while main spins: the
 * failure's Recent Past Buffer is the same at every run. Without it, main joins the worker and
 * the program exits 0.
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>

#define ROUNDS 3

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int turn; /* whose turn: even main's, odd the worker's */
static volatile int *volatile nowhere;
static int crash, shared;

static void
wait_turn(int t)
{
	while (__atomic_load_n(&turn, __ATOMIC_ACQUIRE) != t)
		sched_yield();
}

static void
step(int t)
{
	wait_turn(t);
	pthread_mutex_lock(&mu);
	shared++;
	pthread_mutex_unlock(&mu);
	__atomic_store_n(&turn, t + 1, __ATOMIC_RELEASE);
}

static void *
worker(void *arg)
{
	for (int i = 0; i < ROUNDS; i++)
		step(2 * i + 1);
	if (crash) {
		wait_turn(2 * ROUNDS + 1);
		*nowhere = shared; /* CRASH */
	}
	return arg;
}

int
main(int argc, char **argv)
{
	pthread_t t;

	crash = argc > 1 && strcmp(argv[1], "crash") == 0;
	turn = 1;
	pthread_create(&t, NULL, worker, NULL);
	for (int i = 1; i <= ROUNDS; i++)
		step(2 * i);
	/* Crash: the worker's turn comes and main spins until the process dies. */
	while (crash)
		sched_yield();
	pthread_join(t, NULL);
	return 0;
}
