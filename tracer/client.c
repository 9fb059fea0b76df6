/*
 * The aviso-server backend (backend.h): the model's operations over HTTP, as server/README.md
 * documents them, with libcurl (the only file of tracer/ that includes curl.h) and the bodies
 * of model/json.c.
 *
 * A server that cannot be reached never stops the program: the run is a baseline run with a
 * local id ("offline-<pid>-<time>-<n>"), and its /start (with its seed), /correct and /end wait
 * in the queue (queue.h) to be sent later; so do the outcomes of runs the server started but
 * could not take at their end. The queue is sent when the backend opens and before each start
 * while the server answers. After a request finds no server, the process stops asking for a
 * while (RETRY_AFTER_STARTS starts or RETRY_AFTER_NS, whichever comes first): a series against
 * a dead server costs at most a connect timeout now and then, not one per run.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tracer/backend.h"
#include "tracer/internal.h"
#include "tracer/queue.h"

/* Why these: on a LAN a connect takes well under a millisecond, and a run waits for it; the
 * longest request, a failure's /end with a large RPB, takes a second or two on a busy server
 * (server/README.md, "Benchmark"). A request cut short is queued and sent again. */
#define CONNECT_TIMEOUT_MS 1000L
#define REQUEST_TIMEOUT_MS 5000L
/* After a request found no server: how many starts, or how long, before asking again. */
#define RETRY_AFTER_STARTS 8
#define RETRY_AFTER_NS (30ull * 1000000000ull)
/* Why 64 MiB: an answer past that is not one of aviso-server's (it trims /api/stats). */
#define MAX_ANSWER (64u << 20)
#define URL_MAX 2048

struct client {
	struct backend b; /* first: the backend is the client */
	CURL *h;
	struct curl_slist *headers;
	char base[URL_MAX]; /* "http://host[:port][/prefix]", no trailing '/' */
	char error[CURL_ERROR_SIZE];
	char host[256];	  /* this machine, for /start */
	struct queue *q;  /* NULL: nowhere to keep what the server did not take */
	bool down;	  /* the last request had no answer: back off */
	bool told_down;	  /* the one line about it, until the server answers again */
	unsigned skipped; /* starts made offline since then */
	uint64_t retry_ns;
	unsigned offline;    /* offline runs made */
	long long epoch;     /* this process's start, in offline run ids */
	bool told_refused;   /* the one line about a /start refused */
	bool told_no_queue;  /* the one line about outcomes that cannot be kept */
};

static struct client *
client_of(struct backend *b)
{
	return (struct client *)b;
}

/* ---- the URL ---- */

static bool
host_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '-' || ch == '_';
}

int
backend_server_url_check(const char *url, const char **ret_why)
{
	const char *p, *host;

	if (strncasecmp(url, "https://", 8) == 0) {
		*ret_why = "only http:// is supported";
		return -EINVAL;
	}
	if (strncasecmp(url, "http://", 7) != 0) {
		*ret_why = "it must start with http://";
		return -EINVAL;
	}
	if (strlen(url) >= URL_MAX - 32) {
		*ret_why = "it is too long";
		return -EINVAL;
	}
	host = p = url + 7;
	if (*p == '[') { /* an IPv6 literal */
		while (*++p && (host_char(*p) || *p == ':'))
			;
		if (*p++ != ']' || p - host < 4) {
			*ret_why = "malformed IPv6 address (http://[::1]:PORT)";
			return -EINVAL;
		}
	} else {
		while (host_char(*p))
			p++;
		if (p == host) {
			*ret_why = "no host (http://HOST[:PORT])";
			return -EINVAL;
		}
	}
	if (*p == ':') {
		char *end;
		unsigned long port = strtoul(p + 1, &end, 10);
		if (end == p + 1 || end - p > 6 || port == 0 || port > 65535) {
			*ret_why = "the port must be a number from 1 to 65535";
			return -EINVAL;
		}
		p = end;
	}
	if (*p && *p != '/') {
		*ret_why = *p == '@' ? "user names are not supported"
				     : "unexpected character after the host (http://HOST[:PORT][/PATH])";
		return -EINVAL;
	}
	for (; *p; p++) {
		if (*p == '?' || *p == '#' || (unsigned char)*p <= ' ' || *p == 0x7f) {
			*ret_why = "the path may not have a query, a fragment or spaces";
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- HTTP ---- */

struct sink {
	char *p;
	size_t len;
	bool too_big;
};

static size_t
on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;
	char *p;

	if (s->len + n > MAX_ANSWER || !(p = realloc(s->p, s->len + n + 1))) {
		s->too_big = true;
		return 0; /* ends the transfer */
	}
	memcpy(p + s->len, data, n);
	s->len += n;
	p[s->len] = '\0';
	s->p = p;
	return n;
}

/* The connection must not leak into the traced program (a fork and exec per run). */
static int
on_socket(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	return CURL_SOCKOPT_OK;
}

static int
errno_of(CURLcode e)
{
	switch (e) {
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static void
went_down(struct client *c, int r)
{
	if (!c->told_down)
		log_msg("no answer from %s (%s): runs are baseline runs until it answers%s%s",
			c->base, c->error[0] ? c->error : strerror(-r),
			c->q ? "; their outcomes wait in " : "", c->q ? queue_dir(c->q) : "");
	c->told_down = true;
	c->down = true;
	c->skipped = 0;
	c->retry_ns = now_ns() + RETRY_AFTER_NS;
}

/*
 * POSTs @body to @base@path, or GETs it when @body is NULL. Returns the HTTP status with the answer in
 * *ret_answer (malloc'd; NULL when not wanted), or -errno when none came; either way the
 * server is marked up or down.
 */
static int
request(struct client *c, const char *path, const char *body, char **ret_answer)
{
	struct sink sink = {0};
	char url[URL_MAX + 512];
	long status = 0;
	int r;

	snprintf(url, sizeof(url), "%s%s", c->base, path);
	c->error[0] = '\0';
	curl_easy_setopt(c->h, CURLOPT_URL, url);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &sink);
	if (body) {
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	} else {
		curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
	}
	CURLcode e = curl_easy_perform(c->h);
	if (e == CURLE_OK) {
		curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
		r = (int)status;
		c->down = c->told_down = false;
	} else {
		r = sink.too_big ? -EFBIG : errno_of(e);
		if (!sink.too_big)
			went_down(c, r);
	}
	if (r > 0 && ret_answer)
		*ret_answer = sink.p ? sink.p : strdup("");
	else
		free(sink.p);
	if (r > 0 && ret_answer && !*ret_answer)
		r = -ENOMEM;
	return r;
}

/* An answer's status as the model's -errno (server/handlers.c maps them the other way). */
static int
status_errno(int status)
{
	switch (status) {
	case 400:
		return -EINVAL;
	case 401:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 409:
		return -EALREADY;
	case 413:
		return -E2BIG;
	default:
		return status >= 500 ? -EIO : -EPROTO;
	}
}

static int
send_queued(void *ctx, const char *endpoint, const char *body, char **ret_answer)
{
	char path[32];

	snprintf(path, sizeof(path), "/%s", endpoint);
	return request(ctx, path, body, ret_answer);
}

/* Sends what waits in the queue. */
static void
flush(struct client *c)
{
	if (!c->q)
		return;
	int n = queue_flush(c->q, send_queued, c);
	if (n > 0)
		log_msg("sent %d queued request%s to %s", n, n == 1 ? "" : "s", c->base);
}

/*
 * Whether a start asks the server: always while it answers, else now and then; a try clears
 * the back-off, and the first request without an answer sets it again.
 */
static bool
may_try(struct client *c)
{
	if (c->down && ++c->skipped < RETRY_AFTER_STARTS && now_ns() < c->retry_ns)
		return false;
	c->down = false;
	return true;
}

/* Keeps @body for @endpoint in the queue. */
static int
enqueue(struct client *c, const char *endpoint, const char *body)
{
	int r = c->q ? queue_put(c->q, endpoint, body) : -ENOTDIR;

	if (r < 0 && !c->told_no_queue) {
		c->told_no_queue = true;
		log_msg("cannot keep a /%s for %s: %s", endpoint, c->base, strerror(-r));
	}
	return r;
}

/* ---- the operations ---- */

/* A baseline run the server will hear of later: a local plan, its /start queued. */
static int
offline_start(struct client *c, struct model_start_request *req, struct model_plan **ret_plan)
{
	struct model_plan *plan = calloc(1, sizeof(*plan));
	char *body = NULL;

	if (!plan)
		return -ENOMEM;
	snprintf(plan->run, sizeof(plan->run), "offline-%d-%lld-%u", (int)getpid(), c->epoch,
		 c->offline++);
	plan->seed = req->seed;
	plan->baseline = true;
	req->offline_run = plan->run;
	if (model_json_format_start(req, &body) == 0)
		enqueue(c, "start", body);
	free(body);
	*ret_plan = plan;
	return 0;
}

static int
client_start(struct backend *b, const struct model_program *prog, const uint64_t *seed,
	     struct model_plan **ret_plan)
{
	struct client *c = client_of(b);
	struct model_start_request req = {
		.prog = *prog,
		.pid = getpid(),
		.host = c->host[0] ? c->host : NULL,
		.have_seed = seed != NULL,
		.seed = seed ? *seed : 0,
	};
	char *body = NULL, *answer = NULL;
	const char *err;
	int r;

	if (!may_try(c))
		return offline_start(c, &req, ret_plan);
	flush(c);
	if (c->down)
		return offline_start(c, &req, ret_plan);
	r = model_json_format_start(&req, &body);
	if (r < 0)
		return r;
	r = request(c, "/start", body, &answer);
	free(body);
	if (r >= 200 && r < 300) {
		r = model_json_parse_plan(answer, strlen(answer), ret_plan, &err);
		if (r < 0)
			log_msg("%s/start answered something else than a plan: %s", c->base, err);
	} else if (r >= 400 && r < 500) {
		/* It would be refused again: a baseline run the server never hears of. */
		if (!c->told_refused)
			log_msg("%s/start refused (%d %s): runs are not reported", c->base, r,
				answer ? answer : "");
		c->told_refused = true;
		r = status_errno(r);
	} else {
		r = offline_start(c, &req, ret_plan); /* a 5xx, or no answer */
	}
	free(answer);
	return r;
}

/* Sends @body for @run to @endpoint, or queues it: a run made offline, a server that does not
 * answer (or fails: 5xx). */
static int
deliver(struct client *c, const char *endpoint, const char *run, const char *body)
{
	char path[32];
	int r;

	if (strncmp(run, "offline-", 8) == 0 || c->down)
		return enqueue(c, endpoint, body);
	snprintf(path, sizeof(path), "/%s", endpoint);
	r = request(c, path, body, NULL);
	if (r >= 200 && r < 300)
		return 0;
	if (r >= 400 && r < 500)
		return status_errno(r);
	return enqueue(c, endpoint, body);
}

static int
client_report(struct backend *b, const struct model_report *rep, enum model_json_report kind,
	      const char *endpoint)
{
	char *body;
	int r = model_json_format_report(rep, kind, &body);

	if (r < 0)
		return r;
	r = deliver(client_of(b), endpoint, rep->run, body);
	free(body);
	return r;
}

static int
client_end(struct backend *b, const struct model_report *rep)
{
	return client_report(b, rep, MODEL_JSON_END, "end");
}

static int
client_correct(struct backend *b, const char *run, const struct model_event *rpb, size_t n)
{
	struct model_report rep = {.run = run, .rpb = rpb, .n_rpb = n};

	return client_report(b, &rep, MODEL_JSON_CORRECT, "correct");
}

static int
client_tick(struct backend *b, const char *run)
{
	struct model_report rep = {.run = run};

	return client_report(b, &rep, MODEL_JSON_TICK, "tick");
}

static int
client_stats(struct backend *b, const char *program, struct model_stats **ret_stats)
{
	struct client *c = client_of(b);
	char *esc, *path = NULL, *answer = NULL;
	const char *err;
	int r;

	if (c->down)
		return -EHOSTDOWN; /* asked again at the next start, not here */
	esc = curl_easy_escape(c->h, program, 0);
	/* limit=0: the counts and the contenders, not every candidate (there may be thousands). */
	if (!esc || asprintf(&path, "/api/stats?program=%s&limit=0", esc) < 0) {
		curl_free(esc);
		return -ENOMEM;
	}
	curl_free(esc);
	r = request(c, path, NULL, &answer);
	free(path);
	if (r == 200)
		r = model_json_parse_stats(answer, strlen(answer), ret_stats, &err);
	else if (r > 0)
		r = status_errno(r);
	free(answer);
	return r;
}

static void
client_close(struct backend *b)
{
	struct client *c = client_of(b);

	if (!c->down)
		flush(c); /* what the last run queued, if the server came back for it */
	queue_close(c->q);
	curl_slist_free_all(c->headers);
	curl_easy_cleanup(c->h);
	curl_global_cleanup();
	free(c);
}

static const struct backend_ops client_ops = {
	.start = client_start,
	.end = client_end,
	.correct = client_correct,
	.tick = client_tick,
	.stats = client_stats,
	.close = client_close,
};

/* ---- opening ---- */

/* The queue's directory for this server: @root/<host:port/path, '/' and odd bytes as '_'>. */
static void
queue_path(const char *root, const char *base, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/", root);

	for (const char *p = base + 7; *p && n + 1 < (int)size; p++)
		buf[n++] = host_char(*p) || *p == ':' ? *p : '_';
	buf[n] = '\0';
}

static int
setup_handle(struct client *c)
{
	const char *token = getenv("AVISO_TOKEN");
	struct curl_slist *h = NULL;

	c->h = curl_easy_init();
	if (!c->h)
		return -ENOMEM;
	/* No "Expect: 100-continue" round trip before a large /end. */
	h = curl_slist_append(h, "Expect:");
	if (h)
		h = curl_slist_append(h, "Content-Type: application/json");
	if (h && token && *token) {
		char auth[1024];
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	if (!h)
		return -ENOMEM;
	c->headers = h;
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
	/* No SIGALRM for timeouts: the tracer's signals are its own. */
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	/* The server is reached directly: http_proxy and the like are for the web. */
	curl_easy_setopt(c->h, CURLOPT_PROXY, "");
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c->h, CURLOPT_SOCKOPTFUNCTION, on_socket);
	curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, c->error);
	return 0;
}

int
backend_open_server(const char *url, const char *queue_root, struct backend **ret_backend)
{
	struct client *c;
	const char *why;
	char dir[4096];
	int r;

	if (backend_server_url_check(url, &why) < 0)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->b.ops = &client_ops;
	snprintf(c->base, sizeof(c->base), "%s", url);
	for (size_t n = strlen(c->base); n > 7 && c->base[n - 1] == '/'; n--)
		c->base[n - 1] = '\0';
	snprintf(c->b.where, sizeof(c->b.where), "%s/stats", c->base);
	if (gethostname(c->host, sizeof(c->host)) < 0)
		c->host[0] = '\0';
	c->epoch = (long long)time(NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(c);
		return -ENOMEM;
	}
	r = setup_handle(c);
	if (r < 0) {
		client_close(&c->b);
		return r;
	}
	if (queue_root) {
		queue_path(queue_root, c->base, dir, sizeof(dir));
		r = queue_open(dir, &c->q);
		if (r < 0) /* the server still gets what it can be sent at once */
			log_msg("no queue for %s (%s): %s", c->base, dir, strerror(-r));
	}
	flush(c);
	*ret_backend = &c->b;
	return 0;
}
