/*
 * The requests an aviso-server has not taken yet, on disk (client.c's queue): one file per
 * request, its HTTP body as it would have been sent, in a directory of its own per server.
 * A file is written whole or not at all (a temporary name, then rename), and named
 *
 *	<CLOCK_REALTIME ns, 20 digits>-<pid>-<n>.<endpoint>.json
 *
 * so that sorting the names replays the requests in the order they were made, across the
 * processes that share the directory.
 *
 * Runs made while the server could not be reached have local ids ("offline-..."): their /start
 * is queued with the id as "offline_run", and their /correct and /end name that id as their
 * "run". When the /start is delivered, the server's run id is kept in "<offline id>.map" until
 * the run's /end is delivered, and the later requests are sent under it.
 */
#pragma once

#include <stddef.h>

struct queue;

/* Opens (mkdir -p) the queue in directory @dir. *ret_queue lives until queue_close(). */
int queue_open(const char *dir, struct queue **ret_queue);
void queue_close(struct queue *q);
const char *queue_dir(const struct queue *q);

/* Queues @body for endpoint @endpoint ("start", "end", "correct", "tick"). */
int queue_put(struct queue *q, const char *endpoint, const char *body);

/* Requests in the queue now (a directory listing), or -errno. */
int queue_count(struct queue *q);

/*
 * Sends @body to @endpoint. Returns the HTTP status with the answer in *ret_answer (malloc'd,
 * NUL-terminated), or -errno when no answer came (connection refused, timeout).
 */
typedef int (*queue_send_fn)(void *ctx, const char *endpoint, const char *body,
			     char **ret_answer);

/*
 * Sends the queued requests in order through @send, deleting each one after a 2xx answer, and
 * each one answered 4xx (it would never succeed; one line on stderr says so). Stops at the
 * first request answered 5xx or not at all, which stays queued with all after it. Returns the
 * number of requests delivered, or -EIO (a 5xx), the sender's -errno, or another -errno; 0
 * at once when another process is flushing the same queue.
 */
int queue_flush(struct queue *q, queue_send_fn send, void *ctx);
