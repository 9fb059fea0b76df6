/*
 * counts: 8 worker threads and main make known numbers of every synchronization call aviso-trace
 * records (counts.h derives the totals). Every count is exact by construction:
 *  - try and timed variants act on the caller's own objects, free or held by the caller, so
 *    their result (0, EBUSY, ETIMEDOUT) never depends on other threads; the program checks it;
 *  - a condition wait happens exactly once per hand-off: the waiter publishes "armed" (an atomic,
 *    no pthread call) while holding the mutex, and the signaller takes the mutex only after
 *    seeing it, which it can only get once the waiter sits inside pthread_cond_wait; the
 *    predicate is then already true when the waiter wakes. One waiter per condvar per
 *    hand-off, one signal: no stolen or spurious wake-up is possible in glibc's condvar;
 *  - signals go to one worker at a time while it spins on an atomic (no blocking call that a
 *    handler could interrupt with EINTR), and each is acknowledged by the handler before the
 *    next is sent, so none coalesce.
 * The program also counts its own calls (and signal handler runs) and compares them with
 * counts.h at exit: status 0 and "counts: ok" when equal, 1 with the differences otherwise,
 * 2 (PROG_EXIT_BROKEN) when a call returned something unexpected.
 */
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>

#include "counts.h"
#include "progutil.h"

#define W COUNTS_WORKERS

static atomic_long counted[PK__COUNT];
#define EV(k) atomic_fetch_add_explicit(&counted[k], 1, memory_order_relaxed)

/* A one-waiter, one-signaller hand-off; "armed" and "pred" carry the round number + 1. */
struct handoff {
	pthread_mutex_t m;
	pthread_cond_t c;
	atomic_int armed;
	int pred;
};

struct worker {
	int id;
	pthread_t th;
	pthread_mutex_t own_m; /* trylock/timedlock and the timed out cond wait */
	pthread_cond_t own_c;
	pthread_rwlock_t own_rw;
	sem_t own_sem;
	sem_t ring_sem;
	atomic_int acks;      /* signal handler runs */
	atomic_int sig_ready; /* round + 1 when spinning, ready for signals */
	atomic_int sig_done;  /* round + 1 when main has sent this round's signals */
};

static struct worker workers[W];
static struct handoff pair_ab[W / 2], pair_ba[W / 2];
static pthread_mutex_t shared_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t shared_rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_spinlock_t shared_spin;
static pthread_barrier_t barrier;
static pthread_mutex_t bcast_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bcast_c = PTHREAD_COND_INITIALIZER;
static int bcast_gen;
static atomic_int bcast_arrived;
static long shared_sum; /* under shared_m, checked at the end */
static long spin_sum;   /* under shared_spin */
static long rw_sum;     /* under shared_rw (write) */
static atomic_int sigs_seen[NSIG];

static __thread struct worker *self;

static void
on_signal(int sig)
{
	EV(PK_SIGNAL);
	atomic_fetch_add(&sigs_seen[sig], 1);
	if (self)
		atomic_fetch_add(&self->acks, 1);
}

static void
handoff_init(struct handoff *h)
{
	PROG_EXPECT(pthread_mutex_init(&h->m, NULL), 0);
	PROG_EXPECT(pthread_cond_init(&h->c, NULL), 0);
	atomic_init(&h->armed, 0);
	h->pred = 0;
}

/* Waits once for round @r's hand-off, with pthread_cond_wait or a far pthread_cond_timedwait. */
static void
handoff_wait(struct handoff *h, int r, int timed)
{
	struct timespec far = prog_deadline(60);

	EV(PK_MUTEX_LOCK);
	PROG_EXPECT(pthread_mutex_lock(&h->m), 0);
	atomic_store(&h->armed, r + 1);
	while (h->pred < r + 1) {
		if (timed) {
			EV(PK_COND_TIMEDWAIT);
			PROG_EXPECT(pthread_cond_timedwait(&h->c, &h->m, &far), 0);
		} else {
			EV(PK_COND_WAIT);
			PROG_EXPECT(pthread_cond_wait(&h->c, &h->m), 0);
		}
	}
	EV(PK_MUTEX_UNLOCK);
	PROG_EXPECT(pthread_mutex_unlock(&h->m), 0);
}

static void
handoff_signal(struct handoff *h, int r)
{
	prog_spin_until(&h->armed, r + 1, "a condvar waiter");
	EV(PK_MUTEX_LOCK);
	PROG_EXPECT(pthread_mutex_lock(&h->m), 0);
	h->pred = r + 1;
	EV(PK_COND_SIGNAL);
	PROG_EXPECT(pthread_cond_signal(&h->c), 0);
	EV(PK_MUTEX_UNLOCK);
	PROG_EXPECT(pthread_mutex_unlock(&h->m), 0);
}

static void *
helper_main(void *arg)
{
	(void)arg;
	for (int i = 0; i < COUNTS_HELPER_PAIRS; i++) {
		EV(PK_MUTEX_LOCK);
		PROG_EXPECT(pthread_mutex_lock(&shared_m), 0);
		shared_sum++;
		EV(PK_MUTEX_UNLOCK);
		PROG_EXPECT(pthread_mutex_unlock(&shared_m), 0);
	}
	return NULL;
}

static void
barrier_wait(void)
{
	int rc;

	EV(PK_BARRIER_WAIT);
	rc = pthread_barrier_wait(&barrier);
	if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD)
		prog_die("pthread_barrier_wait: %d", rc);
}

static void
round_body(struct worker *w, int r)
{
	struct timespec far = prog_deadline(60), past = prog_deadline(-10);
	pthread_t helper;

	barrier_wait();

	for (int i = 0; i < COUNTS_MUTEX_PAIRS; i++) {
		EV(PK_MUTEX_LOCK);
		PROG_EXPECT(pthread_mutex_lock(&shared_m), 0);
		shared_sum++;
		EV(PK_MUTEX_UNLOCK);
		PROG_EXPECT(pthread_mutex_unlock(&shared_m), 0);
	}

	/* trylock: free, then held by ourselves. */
	EV(PK_MUTEX_TRYLOCK);
	PROG_EXPECT(pthread_mutex_trylock(&w->own_m), 0);
	EV(PK_MUTEX_UNLOCK);
	PROG_EXPECT(pthread_mutex_unlock(&w->own_m), 0);
	EV(PK_MUTEX_LOCK);
	PROG_EXPECT(pthread_mutex_lock(&w->own_m), 0);
	EV(PK_MUTEX_TRYLOCK);
	PROG_EXPECT(pthread_mutex_trylock(&w->own_m), EBUSY);
	EV(PK_MUTEX_UNLOCK);
	PROG_EXPECT(pthread_mutex_unlock(&w->own_m), 0);

	/* timedlock: free (succeeds at once), then held by ourselves with a past deadline. */
	EV(PK_MUTEX_TIMEDLOCK);
	PROG_EXPECT(pthread_mutex_timedlock(&w->own_m, &far), 0);
	EV(PK_MUTEX_UNLOCK);
	PROG_EXPECT(pthread_mutex_unlock(&w->own_m), 0);
	EV(PK_MUTEX_LOCK);
	PROG_EXPECT(pthread_mutex_lock(&w->own_m), 0);
	EV(PK_MUTEX_TIMEDLOCK);
	PROG_EXPECT(pthread_mutex_timedlock(&w->own_m, &past), ETIMEDOUT);
	EV(PK_MUTEX_UNLOCK);
	PROG_EXPECT(pthread_mutex_unlock(&w->own_m), 0);

	/* rwlocks: the shared one contended, our own one for the try variants. */
	for (int i = 0; i < COUNTS_RD_PAIRS; i++) {
		EV(PK_RWLOCK_RDLOCK);
		PROG_EXPECT(pthread_rwlock_rdlock(&shared_rw), 0);
		EV(PK_RWLOCK_UNLOCK);
		PROG_EXPECT(pthread_rwlock_unlock(&shared_rw), 0);
	}
	for (int i = 0; i < COUNTS_WR_PAIRS; i++) {
		EV(PK_RWLOCK_WRLOCK);
		PROG_EXPECT(pthread_rwlock_wrlock(&shared_rw), 0);
		rw_sum++;
		EV(PK_RWLOCK_UNLOCK);
		PROG_EXPECT(pthread_rwlock_unlock(&shared_rw), 0);
	}
	EV(PK_RWLOCK_TRYRDLOCK);
	PROG_EXPECT(pthread_rwlock_tryrdlock(&w->own_rw), 0);
	EV(PK_RWLOCK_UNLOCK);
	PROG_EXPECT(pthread_rwlock_unlock(&w->own_rw), 0);
	EV(PK_RWLOCK_TRYWRLOCK);
	PROG_EXPECT(pthread_rwlock_trywrlock(&w->own_rw), 0);
	EV(PK_RWLOCK_UNLOCK);
	PROG_EXPECT(pthread_rwlock_unlock(&w->own_rw), 0);
	EV(PK_RWLOCK_RDLOCK);
	PROG_EXPECT(pthread_rwlock_rdlock(&w->own_rw), 0);
	EV(PK_RWLOCK_TRYWRLOCK);
	PROG_EXPECT(pthread_rwlock_trywrlock(&w->own_rw), EBUSY);
	EV(PK_RWLOCK_UNLOCK);
	PROG_EXPECT(pthread_rwlock_unlock(&w->own_rw), 0);
	EV(PK_RWLOCK_WRLOCK);
	PROG_EXPECT(pthread_rwlock_wrlock(&w->own_rw), 0);
	EV(PK_RWLOCK_TRYRDLOCK);
	PROG_EXPECT(pthread_rwlock_tryrdlock(&w->own_rw), EBUSY);
	EV(PK_RWLOCK_UNLOCK);
	PROG_EXPECT(pthread_rwlock_unlock(&w->own_rw), 0);

	for (int i = 0; i < COUNTS_SPIN_PAIRS; i++) {
		EV(PK_SPIN_LOCK);
		PROG_EXPECT(pthread_spin_lock(&shared_spin), 0);
		spin_sum++;
		EV(PK_SPIN_UNLOCK);
		PROG_EXPECT(pthread_spin_unlock(&shared_spin), 0);
	}

	/* Our own semaphore (value 0): each wait finds a token, the last one times out. */
	EV(PK_SEM_POST);
	PROG_EXPECT_SEM(sem_post(&w->own_sem), 0);
	EV(PK_SEM_WAIT);
	PROG_EXPECT_SEM(sem_wait(&w->own_sem), 0);
	EV(PK_SEM_POST);
	PROG_EXPECT_SEM(sem_post(&w->own_sem), 0);
	EV(PK_SEM_TIMEDWAIT);
	PROG_EXPECT_SEM(sem_timedwait(&w->own_sem, &far), 0);
	EV(PK_SEM_TIMEDWAIT);
	PROG_EXPECT_SEM(sem_timedwait(&w->own_sem, &past), ETIMEDOUT);

	/* A token goes once around the ring of workers (blocking waits, no signals meanwhile). */
	if (w->id == 0) {
		EV(PK_SEM_POST);
		PROG_EXPECT_SEM(sem_post(&workers[1].ring_sem), 0);
		EV(PK_SEM_WAIT);
		PROG_EXPECT_SEM(sem_wait(&w->ring_sem), 0);
	} else {
		EV(PK_SEM_WAIT);
		PROG_EXPECT_SEM(sem_wait(&w->ring_sem), 0);
		EV(PK_SEM_POST);
		PROG_EXPECT_SEM(sem_post(&workers[(w->id + 1) % W].ring_sem), 0);
	}

	/* Condvar hand-offs within the pair: even waits then signals, odd the other way round. */
	if (w->id % 2 == 0) {
		handoff_wait(&pair_ab[w->id / 2], r, 0);
		handoff_signal(&pair_ba[w->id / 2], r);
	} else {
		handoff_signal(&pair_ab[w->id / 2], r);
		handoff_wait(&pair_ba[w->id / 2], r, 1);
	}

	/* A condition wait that times out: nobody signals own_c. */
	EV(PK_MUTEX_LOCK);
	PROG_EXPECT(pthread_mutex_lock(&w->own_m), 0);
	EV(PK_COND_TIMEDWAIT);
	PROG_EXPECT(pthread_cond_timedwait(&w->own_c, &w->own_m, &past), ETIMEDOUT);
	EV(PK_MUTEX_UNLOCK);
	PROG_EXPECT(pthread_mutex_unlock(&w->own_m), 0);

	EV(PK_THREAD_CREATE);
	PROG_EXPECT(pthread_create(&helper, NULL, helper_main, NULL), 0);
	EV(PK_THREAD_JOIN);
	PROG_EXPECT(pthread_join(helper, NULL), 0);

	/* Broadcast: every worker is inside pthread_cond_wait before main can take bcast_m. */
	EV(PK_MUTEX_LOCK);
	PROG_EXPECT(pthread_mutex_lock(&bcast_m), 0);
	atomic_fetch_add(&bcast_arrived, 1);
	while (bcast_gen < r + 1) {
		EV(PK_COND_WAIT);
		PROG_EXPECT(pthread_cond_wait(&bcast_c, &bcast_m), 0);
	}
	EV(PK_MUTEX_UNLOCK);
	PROG_EXPECT(pthread_mutex_unlock(&bcast_m), 0);

	barrier_wait();

	/* Signals: spin (no blocking call) while main sends this round's signals to us. */
	atomic_store(&w->sig_ready, r + 1);
	prog_spin_until(&w->sig_done, r + 1, "main's signals");
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	self = w;
	for (int r = 0; r < COUNTS_ROUNDS; r++)
		round_body(w, r);
	return NULL;
}

int
main(void)
{
	struct sigaction sa;
	int bad = 0;
	long total = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) || sigaction(SIGUSR2, &sa, NULL))
		prog_die("sigaction: %s", strerror(errno));

	/* glibc's pthread_spin_init is pthread_spin_unlock under another name (counts.h). */
	EV(PK_SPIN_UNLOCK);
	PROG_EXPECT(pthread_spin_init(&shared_spin, PTHREAD_PROCESS_PRIVATE), 0);
	PROG_EXPECT(pthread_barrier_init(&barrier, NULL, W), 0);
	for (int i = 0; i < W / 2; i++) {
		handoff_init(&pair_ab[i]);
		handoff_init(&pair_ba[i]);
	}
	for (int i = 0; i < W; i++) {
		struct worker *w = &workers[i];

		w->id = i;
		PROG_EXPECT(pthread_mutex_init(&w->own_m, NULL), 0);
		PROG_EXPECT(pthread_cond_init(&w->own_c, NULL), 0);
		PROG_EXPECT(pthread_rwlock_init(&w->own_rw, NULL), 0);
		PROG_EXPECT_SEM(sem_init(&w->own_sem, 0, 0), 0);
		PROG_EXPECT_SEM(sem_init(&w->ring_sem, 0, 0), 0);
	}
	for (int i = 0; i < W; i++) {
		EV(PK_THREAD_CREATE);
		PROG_EXPECT(pthread_create(&workers[i].th, NULL, worker_main, &workers[i]), 0);
	}

	for (int r = 0; r < COUNTS_ROUNDS; r++) {
		prog_spin_until(&bcast_arrived, W * (r + 1), "workers at the broadcast");
		EV(PK_MUTEX_LOCK);
		PROG_EXPECT(pthread_mutex_lock(&bcast_m), 0);
		bcast_gen = r + 1;
		EV(PK_COND_BROADCAST);
		PROG_EXPECT(pthread_cond_broadcast(&bcast_c), 0);
		EV(PK_MUTEX_UNLOCK);
		PROG_EXPECT(pthread_mutex_unlock(&bcast_m), 0);

		for (int i = 0; i < W; i++) {
			struct worker *w = &workers[i];

			prog_spin_until(&w->sig_ready, r + 1, "a worker ready for signals");
			for (int s = 0; s < COUNTS_SIGS; s++) {
				int want = atomic_load(&w->acks) + 1;

				PROG_EXPECT(pthread_kill(w->th, s % 2 ? SIGUSR2 : SIGUSR1), 0);
				prog_spin_until(&w->acks, want, "a signal handler");
			}
			atomic_store(&w->sig_done, r + 1);
		}
	}

	for (int i = 0; i < W; i++) {
		EV(PK_THREAD_JOIN);
		PROG_EXPECT(pthread_join(workers[i].th, NULL), 0);
	}

	if (shared_sum != (long)COUNTS_WR_ * (COUNTS_MUTEX_PAIRS + COUNTS_HELPER_PAIRS) ||
	    spin_sum != (long)COUNTS_WR_ * COUNTS_SPIN_PAIRS ||
	    rw_sum != (long)COUNTS_WR_ * COUNTS_WR_PAIRS)
		prog_die("counts: lost updates: %ld %ld %ld", shared_sum, spin_sum, rw_sum);
	if (atomic_load(&sigs_seen[SIGUSR1]) != COUNTS_WR_ * COUNTS_SIGS / 2 ||
	    atomic_load(&sigs_seen[SIGUSR2]) != COUNTS_WR_ * COUNTS_SIGS / 2)
		prog_die("counts: signals seen: SIGUSR1 %d, SIGUSR2 %d",
			 atomic_load(&sigs_seen[SIGUSR1]), atomic_load(&sigs_seen[SIGUSR2]));
	for (int k = 0; k < PK__COUNT; k++) {
		long n = atomic_load(&counted[k]);

		total += n;
		if (n != counts_expected[k]) {
			fprintf(stderr, "counts: %s: made %ld calls, counts.h says %ld\n",
				prog_kind_names[k], n, counts_expected[k]);
			bad = 1;
		}
	}
	if (bad)
		return 1;
	printf("counts: ok events=%ld\n", total);
	return 0;
}
