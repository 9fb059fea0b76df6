/*
 * attachee: a long-running multithreaded program to attach to and detach from, many times.
 *
 * At start each thread runs a fixed job (a hash chain, locking every step) whose result is part
 * of the output; then, until stdin reaches EOF, the threads keep synchronizing without end:
 * AT_MOVERS threads move amounts between accounts under a mutex (the total never changes), an
 * auditor checks the total under the same mutex and, under a rwlock's read side, a config
 * pair that a mover rewrites under the write side, and two threads play ping-pong on a
 * condition variable. Every loop sleeps a little so the program is light on the CPU.
 * Once all threads run it prints "attachee: ready threads=N" (main included), and at EOF
 * prints a result that does not depend on how long it ran:
 *   "attachee: total=T errors=0 pingpong=ok chk=X" and exits 0.
 * Anything a tracer breaks (a register, a flag, a lost unlock) shows as errors or a hang.
 */
#include <pthread.h>
#include <stdint.h>

#include "progutil.h"

#define AT_MOVERS 3
#define AT_ACCOUNTS 16
#define AT_START_BALANCE 10000
#define AT_JOB_STEPS 2000
#define AT_THREADS (1 + AT_MOVERS + 1 + 2) /* main, movers, auditor, ping, pong */

static pthread_mutex_t acc_m = PTHREAD_MUTEX_INITIALIZER;
static long accounts[AT_ACCOUNTS];
static pthread_rwlock_t cfg_rw = PTHREAD_RWLOCK_INITIALIZER;
static long cfg_a, cfg_b = 100; /* cfg_a + cfg_b == 100 under cfg_rw */
static pthread_mutex_t pp_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pp_c = PTHREAD_COND_INITIALIZER;
static int pp_turn;
static long pings, pongs;
static pthread_mutex_t job_m = PTHREAD_MUTEX_INITIALIZER;
static uint64_t job_chk;
static atomic_int stop, errors, running;

/* The fixed job: a hash chain of AT_JOB_STEPS steps, each folded in under job_m. */
static void
fixed_job(uint64_t seed)
{
	uint64_t h = seed * 0x9e3779b97f4a7c15ull;

	for (int i = 0; i < AT_JOB_STEPS; i++) {
		h ^= h >> 29;
		h *= 0xbf58476d1ce4e5b9ull;
		PROG_EXPECT(pthread_mutex_lock(&job_m), 0);
		job_chk += h; /* commutative: the order of threads does not matter */
		PROG_EXPECT(pthread_mutex_unlock(&job_m), 0);
	}
}

static void
nap(long us)
{
	struct timespec ts = {0, us * 1000};

	nanosleep(&ts, NULL);
}

static void *
mover(void *arg)
{
	uint64_t x = (uint64_t)(long)arg + 1;

	fixed_job((uint64_t)(long)arg);
	atomic_fetch_add(&running, 1);
	for (unsigned long i = 0; !atomic_load(&stop); i++) {
		int from, to;
		long amount;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		from = (int)(x % AT_ACCOUNTS);
		to = (int)((x >> 8) % AT_ACCOUNTS);
		amount = (long)((x >> 16) % 50);
		PROG_EXPECT(pthread_mutex_lock(&acc_m), 0);
		if (accounts[from] >= amount) {
			accounts[from] -= amount;
			accounts[to] += amount;
		}
		PROG_EXPECT(pthread_mutex_unlock(&acc_m), 0);
		if ((long)arg == 0 && i % 8 == 0) {
			PROG_EXPECT(pthread_rwlock_wrlock(&cfg_rw), 0);
			cfg_a = (long)(x % 101);
			cfg_b = 100 - cfg_a;
			PROG_EXPECT(pthread_rwlock_unlock(&cfg_rw), 0);
		}
		if (i % 4 == 3)
			nap(200);
	}
	return NULL;
}

static void *
auditor(void *arg)
{
	(void)arg;
	fixed_job(100);
	atomic_fetch_add(&running, 1);
	while (!atomic_load(&stop)) {
		long total = 0;

		PROG_EXPECT(pthread_mutex_lock(&acc_m), 0);
		for (int i = 0; i < AT_ACCOUNTS; i++)
			total += accounts[i];
		PROG_EXPECT(pthread_mutex_unlock(&acc_m), 0);
		if (total != (long)AT_ACCOUNTS * AT_START_BALANCE)
			atomic_fetch_add(&errors, 1);
		PROG_EXPECT(pthread_rwlock_rdlock(&cfg_rw), 0);
		if (cfg_a + cfg_b != 100)
			atomic_fetch_add(&errors, 1);
		PROG_EXPECT(pthread_rwlock_unlock(&cfg_rw), 0);
		nap(300);
	}
	return NULL;
}

/* Ping-pong: player p waits for its turn, counts, passes the turn. Stops at its turn. */
static void *
player(void *arg)
{
	int me = (int)(long)arg;

	fixed_job(200 + (uint64_t)me);
	atomic_fetch_add(&running, 1);
	for (;;) {
		PROG_EXPECT(pthread_mutex_lock(&pp_m), 0);
		while (pp_turn != me && pp_turn != 2)
			PROG_EXPECT(pthread_cond_wait(&pp_c, &pp_m), 0);
		if (pp_turn == 2) {
			PROG_EXPECT(pthread_mutex_unlock(&pp_m), 0);
			return NULL;
		}
		if (me == 0)
			pings++;
		else
			pongs++;
		pp_turn = atomic_load(&stop) && me == 1 ? 2 : 1 - me;
		PROG_EXPECT(pthread_cond_broadcast(&pp_c), 0);
		PROG_EXPECT(pthread_mutex_unlock(&pp_m), 0);
		nap(250);
	}
}

int
main(void)
{
	pthread_t th[AT_THREADS - 1];
	char buf[256];
	long total = 0;
	int n = 0;

	for (int i = 0; i < AT_ACCOUNTS; i++)
		accounts[i] = AT_START_BALANCE;
	for (long i = 0; i < AT_MOVERS; i++)
		PROG_EXPECT(pthread_create(&th[n++], NULL, mover, (void *)i), 0);
	PROG_EXPECT(pthread_create(&th[n++], NULL, auditor, NULL), 0);
	PROG_EXPECT(pthread_create(&th[n++], NULL, player, (void *)0L), 0);
	PROG_EXPECT(pthread_create(&th[n++], NULL, player, (void *)1L), 0);
	prog_spin_until(&running, AT_THREADS - 1, "threads to start");
	printf("attachee: ready threads=%d\n", AT_THREADS);
	fflush(stdout);

	/* Run until EOF on stdin (a line or anything else is ignored). */
	for (;;) {
		ssize_t r = read(0, buf, sizeof(buf));

		if (r == 0)
			break;
		if (r < 0 && errno != EINTR)
			prog_die("attachee: read: %s", strerror(errno));
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < n; i++)
		PROG_EXPECT(pthread_join(th[i], NULL), 0);

	for (int i = 0; i < AT_ACCOUNTS; i++)
		total += accounts[i];
	printf("attachee: total=%ld errors=%d pingpong=%s chk=%016llx\n", total,
	       atomic_load(&errors), pings == pongs ? "ok" : "BAD", (unsigned long long)job_chk);
	return total == (long)AT_ACCOUNTS * AT_START_BALANCE && atomic_load(&errors) == 0 &&
			       pings == pongs
		       ? 0
		       : 1;
}
