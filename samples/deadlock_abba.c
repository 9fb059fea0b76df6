/* deadlock_abba.c: lock-order deadlock (AB-BA).
 *
 * The teller moves money from account a to account b, locking a then b. The auditor sums the
 * two balances, locking b then a. When the auditor takes b while the teller holds a and has
 * not yet taken b, each waits for the other forever.
 *
 *   teller:  lock(a.mu); ...fee...; lock(b.mu); ...
 *   auditor: lock(b.mu); lock(a.mu); ...
 *
 * Exit: 0 when the bug did not show; hangs when it did (the caller's timeout kills it).
 * Fix: take the locks in one global order. */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "zoo.h"

struct account {
    pthread_mutex_t mu;
    long balance;
};

static struct account a = {PTHREAD_MUTEX_INITIALIZER, 100000};
static struct account b = {PTHREAD_MUTEX_INITIALIZER, 0};
static pthread_mutex_t journal_mu = PTHREAD_MUTEX_INITIALIZER;
static long journal_entries;
static int audited; /* written with __atomic builtins */
static pthread_barrier_t start;

static void *teller(void *arg)
{
    pthread_barrier_wait(&start);
    while (!__atomic_load_n(&audited, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&a.mu); /* BUG: order a, b */
        a.balance -= 10;
        usleep(60); /* compute the fee: the window */
        pthread_mutex_lock(&b.mu);
        b.balance += 10;
        pthread_mutex_unlock(&b.mu);
        pthread_mutex_unlock(&a.mu);
        pthread_mutex_lock(&journal_mu);
        journal_entries++;
        pthread_mutex_unlock(&journal_mu);
        usleep(400); /* wait for the next transfer */
    }
    return NULL;
}

static void *auditor(void *arg)
{
    pthread_barrier_wait(&start);
    zoo_other_work(12);
    pthread_mutex_lock(&b.mu); /* BUG: order b, a */
    long sum = b.balance;
    pthread_mutex_lock(&a.mu);
    sum += a.balance;
    pthread_mutex_unlock(&a.mu);
    pthread_mutex_unlock(&b.mu);
    __atomic_store_n(&audited, 1, __ATOMIC_RELEASE);
    return (void *)sum;
}

int main(void)
{
    pthread_t t1, t2;
    void *sum;
    pthread_barrier_init(&start, NULL, 2);
    pthread_create(&t1, NULL, teller, NULL);
    pthread_create(&t2, NULL, auditor, NULL);
    pthread_join(t1, NULL);
    pthread_join(t2, &sum);
    return (long)sum == 100000 ? 0 : 1;
}
