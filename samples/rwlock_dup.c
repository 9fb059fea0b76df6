/* rwlock_dup.c: check-then-insert under a read-write lock (lookup under the read lock,
 * insert under the write lock, no re-check).
 *
 * The request thread looks the "codec" entry up in the registry and, when it is missing,
 * builds it and inserts it. The reloader removes the entry, rebuilds it and inserts it, also
 * without looking again. When the request thread's lookup falls between the reloader's removal
 * and its insertion, both build and both insert: the registry holds the key twice.
 *
 *   get_or_create: rdlock; e = lookup(k); unlock;  if (!e) { ...build...; wrlock; insert(k); unlock; }
 *   reloader:      wrlock; remove(k); unlock;  ...build...;  wrlock; insert(k); unlock;
 *
 * Exit: 0 when the bug did not show, exit code 2 (duplicate entry) when it did.
 * Fix: look up again under the write lock before inserting. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zoo.h"

#define MAXENT 64

struct entry {
    const char *key;
    unsigned value;
};

static pthread_rwlock_t reg_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct entry reg[MAXENT];
static int nreg;
static int reloaded;
static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static long requests_served;
static pthread_barrier_t start;

static struct entry *lookup(const char *key)
{
    for (int i = 0; i < nreg; i++)
        if (strcmp(reg[i].key, key) == 0)
            return &reg[i];
    return NULL;
}

static void insert(const char *key, unsigned value)
{
    if (nreg < MAXENT) {
        reg[nreg].key = key;
        reg[nreg].value = value;
        nreg++;
    }
}

static unsigned get_or_create(const char *key)
{
    pthread_rwlock_rdlock(&reg_lock);
    struct entry *e = lookup(key); /* BUG: look up ... */
    unsigned v = e ? e->value : 0;
    pthread_rwlock_unlock(&reg_lock);
    if (e)
        return v;
    v = zoo_crunch(3000);
    usleep(100); /* build the entry: the window */
    pthread_rwlock_wrlock(&reg_lock);
    insert(key, v); /* BUG: ... insert without looking again */
    pthread_rwlock_unlock(&reg_lock);
    return v;
}

static void *requests(void *arg)
{
    pthread_barrier_wait(&start);
    unsigned sum = 0;
    while (!__atomic_load_n(&reloaded, __ATOMIC_ACQUIRE)) {
        sum += get_or_create("codec");
        pthread_mutex_lock(&stats_mu);
        requests_served++;
        pthread_mutex_unlock(&stats_mu);
        usleep(800); /* next request */
    }
    return (void *)(unsigned long)sum;
}

static void *reloader(void *arg)
{
    pthread_barrier_wait(&start);
    zoo_other_work(12);
    pthread_rwlock_wrlock(&reg_lock);
    struct entry *e = lookup("codec");
    if (e)
        *e = reg[--nreg]; /* remove the stale entry */
    pthread_rwlock_unlock(&reg_lock);
    unsigned v = zoo_crunch(3000);
    usleep(250); /* rebuild the entry: the window */
    pthread_rwlock_wrlock(&reg_lock);
    insert("codec", v); /* BUG: races with the request thread's get_or_create */
    pthread_rwlock_unlock(&reg_lock);
    __atomic_store_n(&reloaded, 1, __ATOMIC_RELEASE);
    return NULL;
}

int main(void)
{
    pthread_t t1, t2;
    pthread_barrier_init(&start, NULL, 2);
    pthread_create(&t1, NULL, requests, NULL);
    pthread_create(&t2, NULL, reloader, NULL);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    int copies = 0;
    for (int i = 0; i < nreg; i++)
        copies += strcmp(reg[i].key, "codec") == 0;
    if (copies != 1) {
        fprintf(stderr, "rwlock_dup: %d entries for \"codec\"\n", copies);
        return 2;
    }
    return 0;
}
