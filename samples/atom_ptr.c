/* atom_ptr.c: atomicity violation on a shared pointer (the MySQL binlog / Apache log bug).
 *
 * The logger checks that the log is open in one critical section and appends to it in a
 * second one. If the closer closes the log (frees it, sets the pointer to NULL) between the
 * two, the append dereferences NULL.
 *
 *   logger:  lock; open = (g_log != NULL); unlock;   ...format...   lock; g_log->len ...
 *   closer:                       lock; free(g_log); g_log = NULL; unlock;
 *
 * Exit: 0 when the bug did not show, SIGSEGV when it did.
 * Fix: check and append in the same critical section. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zoo.h"

struct log {
    size_t len;
    char buf[4096];
};

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct log *g_log; /* NULL once closed */
static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long events_logged;
static pthread_barrier_t start;

static void *logger(void *arg)
{
    pthread_barrier_wait(&start);
    for (unsigned n = 0;; n++) {
        pthread_mutex_lock(&log_mu);
        int open = g_log != NULL; /* BUG: check ... */
        pthread_mutex_unlock(&log_mu);
        if (!open)
            break;
        char line[64];
        int len = snprintf(line, sizeof line, "event %u\n", n);
        usleep(100); /* format the record: the window */
        pthread_mutex_lock(&log_mu);
        memcpy(g_log->buf + g_log->len % 4000, line, (size_t)len); /* BUG: ... then use */
        g_log->len += (size_t)len;
        pthread_mutex_unlock(&log_mu);
        pthread_mutex_lock(&stats_mu);
        events_logged++;
        pthread_mutex_unlock(&stats_mu);
        usleep(400); /* wait for the next event */
    }
    return NULL;
}

static void *closer(void *arg)
{
    pthread_barrier_wait(&start);
    zoo_other_work(12);
    pthread_mutex_lock(&log_mu);
    free(g_log); /* BUG: closes the log between the logger's check and use */
    g_log = NULL;
    pthread_mutex_unlock(&log_mu);
    return NULL;
}

int main(void)
{
    pthread_t t1, t2;
    g_log = calloc(1, sizeof *g_log);
    pthread_barrier_init(&start, NULL, 2);
    pthread_create(&t1, NULL, logger, NULL);
    pthread_create(&t2, NULL, closer, NULL);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    return 0;
}
