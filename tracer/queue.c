/*
 * The on-disk queue of requests for an aviso-server (queue.h): writing a request atomically,
 * and replaying the queue in order, at most once deleted and only after the server took it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "model/model.h"
#include "tracer/internal.h"
#include "tracer/queue.h"

/* Why 64 MiB: the server's default body limit; a bigger file is not one of ours. */
#define QUEUE_MAX_FILE (64u << 20)

struct queue {
	char dir[4096];
	unsigned n;	  /* requests queued by this process */
	uint64_t last_ns; /* the last name's time: names never go back when the clock does */
};

int
queue_open(const char *dir, struct queue **ret_queue)
{
	struct queue *q = calloc(1, sizeof(*q));
	int r;

	if (!q)
		return -ENOMEM;
	r = state_dir(dir, NULL, q->dir, sizeof(q->dir));
	if (r < 0) {
		free(q);
		return r;
	}
	*ret_queue = q;
	return 0;
}

void
queue_close(struct queue *q)
{
	free(q);
}

const char *
queue_dir(const struct queue *q)
{
	return q->dir;
}

/* Writes @len bytes of @data to @dir/@name whole or not at all: a dot-file, then rename. */
static int
write_atomic(const char *dir, const char *name, const char *data, size_t len)
{
	char tmp[4400], path[4400];
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < len && r == 0;) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno != EINTR)
			r = -errno;
		else if (w > 0)
			off += (size_t)w;
	}
	/* No fsync: like the model's --no-sync, this survives a crash of aviso-trace, not
	 * necessarily a power cut; an offline series would otherwise pay one per request. */
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

int
queue_put(struct queue *q, const char *endpoint, const char *body)
{
	struct timespec ts;
	char name[128];

	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (ns <= q->last_ns)
		ns = q->last_ns + 1;
	q->last_ns = ns;
	snprintf(name, sizeof(name), "%020" PRIu64 "-%d-%u.%s.json", ns, (int)getpid(), q->n++,
		 endpoint);
	return write_atomic(q->dir, name, body, strlen(body));
}

/* A request's file: a name that is not a dot-file and ends in ".json". */
static int
is_request(const struct dirent *d)
{
	size_t len = strlen(d->d_name);

	return d->d_name[0] != '.' && len > 5 && strcmp(d->d_name + len - 5, ".json") == 0;
}

int
queue_count(struct queue *q)
{
	struct dirent **names;
	int n = scandir(q->dir, &names, is_request, NULL);

	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return n;
}

/* The endpoint of a request's file name: "start" of "...-7.start.json", in @buf. */
static const char *
endpoint_of(const char *name, char *buf, size_t size)
{
	const char *end = name + strlen(name) - 5; /* the ".json" */
	const char *dot = end;

	while (dot > name && dot[-1] != '.')
		dot--;
	snprintf(buf, size, "%.*s", dot > name ? (int)(end - dot) : 0, dot);
	return buf;
}

/* Reads @dir/@name (malloc'd, NUL-terminated). */
static int
read_file(const char *dir, const char *name, char **ret)
{
	char path[4400];
	FILE *f;
	char *buf;
	long len;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		return -EIO;
	}
	if ((unsigned long)len > QUEUE_MAX_FILE) {
		fclose(f);
		return -EFBIG;
	}
	buf = malloc((size_t)len + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	size_t got = fread(buf, 1, (size_t)len, f);
	fclose(f);
	buf[got] = '\0';
	*ret = buf;
	return 0;
}

static void
remove_file(const char *dir, const char *name)
{
	char path[4400];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
}

/* After /start of offline run @offline was delivered: its server run id, from @answer. */
static int
map_put(struct queue *q, const char *offline, const char *answer)
{
	struct model_plan *plan;
	const char *err;
	char name[128];
	int r = model_json_parse_plan(answer, strlen(answer), &plan, &err);

	if (r < 0)
		return r;
	snprintf(name, sizeof(name), "%s.map", offline);
	r = write_atomic(q->dir, name, plan->run, strlen(plan->run));
	model_plan_free(plan);
	return r;
}

/*
 * The body to send for request @body of @endpoint: as it is, unless it names an offline run,
 * which is sent under the server's id for it (*ret_offline: that offline id, or "").
 * -ENOENT: an offline run whose /start was never delivered.
 */
static int
resolve_run(struct queue *q, const char *endpoint, const char *body, char **ret_body,
	    char *ret_offline, size_t size)
{
	enum model_json_report kind = strcmp(endpoint, "end") == 0	 ? MODEL_JSON_END
				      : strcmp(endpoint, "correct") == 0 ? MODEL_JSON_CORRECT
									 : MODEL_JSON_TICK;
	struct model_json_doc *doc;
	struct model_report rep;
	const char *err;
	char name[128], *run = NULL;
	int r;

	ret_offline[0] = '\0';
	*ret_body = NULL;
	if (strcmp(endpoint, "start") == 0 || !strstr(body, "\"run\":\"offline-"))
		return 0;
	r = model_json_parse_report(body, strlen(body), kind, &doc, &rep, &err);
	if (r < 0)
		return 0; /* sent as it is: the server's 400 says what is wrong with it */
	if (strncmp(rep.run, "offline-", 8) == 0) {
		snprintf(ret_offline, size, "%s", rep.run);
		snprintf(name, sizeof(name), "%s.map", rep.run);
		r = read_file(q->dir, name, &run);
		if (r == 0) {
			rep.run = run;
			r = model_json_format_report(&rep, kind, ret_body);
		}
	}
	model_json_doc_free(doc);
	free(run);
	return r;
}

/* Sends one request; 1 delivered, 0 dropped, -errno kept. */
static int
flush_one(struct queue *q, const char *name, queue_send_fn send, void *ctx)
{
	char ep[16], offline[64], *body = NULL, *resolved = NULL, *answer = NULL;
	struct model_json_doc *doc = NULL;
	struct model_start_request sr = {0};
	const char *err;
	int r;

	endpoint_of(name, ep, sizeof(ep));
	r = read_file(q->dir, name, &body);
	if (r == -ENOENT)
		return 0; /* taken by a flush that did not hold the lock (an older one) */
	if (r < 0)
		return r;
	r = resolve_run(q, ep, body, &resolved, offline, sizeof(offline));
	if (r == -ENOENT) {
		log_msg("queued /%s of %s dropped: its /start never reached the server", ep, offline);
		remove_file(q->dir, name);
		r = 0;
		goto leave;
	}
	if (r < 0)
		goto leave;
	r = send(ctx, ep, resolved ? resolved : body, &answer);
	if (r < 0)
		goto leave;
	if (r >= 400 && r < 500) {
		log_msg("queued /%s dropped: the server answered %d %s", ep, r, answer ? answer : "");
		r = 0;
	} else if (r < 200 || r >= 300) {
		r = -EIO;
		goto leave;
	} else {
		if (strcmp(ep, "start") == 0 &&
		    model_json_parse_start(body, strlen(body), &doc, &sr, &err) == 0 &&
		    sr.offline_run) {
			r = map_put(q, sr.offline_run, answer);
			if (r == -EINVAL)
				log_msg("queued /start of %s: the answer is not a plan", sr.offline_run);
			else if (r < 0)
				goto leave; /* the start is sent again: one more open run */
		}
		r = 1;
	}
	remove_file(q->dir, name);
	if (strcmp(ep, "end") == 0 && offline[0]) {
		char map[128];
		snprintf(map, sizeof(map), "%s.map", offline);
		remove_file(q->dir, map);
	}
leave:
	model_json_doc_free(doc);
	free(body);
	free(resolved);
	free(answer);
	return r;
}

int
queue_flush(struct queue *q, queue_send_fn send, void *ctx)
{
	struct dirent **names = NULL;
	char lock[4400];
	int fd, n, r = 0, sent = 0;

	/* One flush at a time per queue, or two processes would send the same request. */
	snprintf(lock, sizeof(lock), "%s/.lock", q->dir);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? 0 : -errno;
		close(fd);
		return r;
	}
	n = scandir(q->dir, &names, is_request, alphasort);
	if (n < 0)
		r = -errno;
	for (int i = 0; i < n; i++) {
		if (r >= 0) {
			r = flush_one(q, names[i]->d_name, send, ctx);
			sent += r > 0;
		}
		free(names[i]);
	}
	free(names);
	close(fd); /* and the lock with it */
	return r < 0 ? r : sent;
}
