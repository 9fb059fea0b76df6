/*
 * The endpoints of aviso-server (server/README.md): routing, the token, and each endpoint as a
 * parse -> model call -> answer. No HTTP library here (http.c), no JSON library (model/json.c):
 * this file maps the model's -errno codes to HTTP statuses and JSON errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http.h"
#include "server/internal.h"
#include "server/server.h"

struct server {
	struct server_config cfg;
	struct model *model;
	struct http_server *http;
	struct server_counters counters; /* updated with __atomic builtins */
};

static const char *const endpoint_names[EP__COUNT] = {
    [EP_START] = "/start",	   [EP_END] = "/end",
    [EP_CORRECT] = "/correct",	   [EP_TICK] = "/tick",
    [EP_API_STATS] = "/api/stats", [EP_STATS] = "/stats",
    [EP_METRICS] = "/metrics",	   [EP_HEALTHZ] = "/healthz",
    [EP_OTHER] = "other",
};

const char *
server_endpoint_name(enum server_endpoint ep)
{
	return (unsigned)ep < EP__COUNT ? endpoint_names[ep] : "other";
}

void
server_config_init(struct server_config *cfg)
{
	*cfg = (struct server_config){
	    .bind = SERVER_DEFAULT_BIND,
	    .port = SERVER_DEFAULT_PORT,
	    .threads = SERVER_DEFAULT_THREADS,
	    .max_body = SERVER_DEFAULT_MAX_BODY,
	    .refresh_s = SERVER_DEFAULT_REFRESH_S,
	};
	model_options_init(&cfg->model);
	cfg->model.snapshot_ms = SERVER_DEFAULT_SNAPSHOT_MS;
}

/* ---- answers ---- */

static void
answer(struct http_response *res, unsigned status, const char *type, char *body, size_t len)
{
	res->status = status;
	res->content_type = type;
	res->body = body;
	res->len = len;
}

static void
answer_json(struct http_response *res, unsigned status, char *json)
{
	if (!json) {
		answer(res, 500, "text/plain", NULL, 0);
		return;
	}
	answer(res, status, "application/json", json, strlen(json));
}

static void
answer_error(struct http_response *res, unsigned status, const char *msg)
{
	char *json = NULL;

	model_json_format_error(msg, &json);
	answer_json(res, status, json);
}

/* Answers the model's error @r: 400 for bad input, 404 unknown run, 409 ended, 5xx else. */
static void
answer_model_error(struct http_response *res, int r)
{
	switch (r) {
	case -EINVAL:
		answer_error(res, 400, "invalid request (bad run id or unknown constraint id)");
		break;
	case -ENAMETOOLONG:
		answer_error(res, 400, "program id and path too long");
		break;
	case -ENOENT:
		answer_error(res, 404, "unknown run");
		break;
	case -EALREADY:
		answer_error(res, 409, "the run has already ended");
		break;
	case -ENOMEM:
	case -EAGAIN:
		answer_error(res, 503, strerror(-r));
		break;
	default:
		answer_error(res, 500, strerror(-r));
	}
}

static void
answer_ok(struct http_response *res)
{
	answer_json(res, 200, strdup("{\"ok\":true}"));
}

/* ---- endpoints ---- */

static void
do_start(struct server *s, const struct http_request *req, struct http_response *res)
{
	struct model_json_doc *doc;
	struct model_start_request sr;
	struct model_plan *plan;
	const char *err;
	char *json = NULL;
	int r = model_json_parse_start(req->body, req->body_len, &doc, &sr, &err);

	if (r == -EINVAL) {
		answer_error(res, 400, err);
		return;
	}
	if (r < 0) {
		answer_model_error(res, r);
		return;
	}
	r = model_run_start(s->model, &sr.prog, sr.have_seed ? &sr.seed : NULL, &plan);
	model_json_doc_free(doc);
	if (r < 0) {
		answer_model_error(res, r);
		return;
	}
	r = model_json_format_plan(plan, &json);
	model_plan_free(plan);
	answer_json(res, r < 0 ? 500 : 200, json);
}

/* /end, /correct and /tick: parse @kind's body, apply it. */
static void
do_report(struct server *s, enum model_json_report kind, const struct http_request *req,
	  struct http_response *res)
{
	struct model_json_doc *doc;
	struct model_report rep;
	const char *err;
	int r = model_json_parse_report(req->body, req->body_len, kind, &doc, &rep, &err);

	if (r == -EINVAL) {
		answer_error(res, 400, err);
		return;
	}
	if (r < 0) {
		answer_model_error(res, r);
		return;
	}
	switch (kind) {
	case MODEL_JSON_END:
		r = model_run_end(s->model, &rep);
		break;
	case MODEL_JSON_CORRECT:
		r = model_run_correct(s->model, rep.run, rep.rpb, rep.n_rpb);
		break;
	case MODEL_JSON_TICK:
		r = model_run_tick(s->model, rep.run);
		break;
	}
	model_json_doc_free(doc);
	if (r < 0)
		answer_model_error(res, r);
	else
		answer_ok(res);
}

/* The three views of the statistics. */
static void
do_stats(struct server *s, enum server_endpoint ep, const struct http_request *req,
	 struct http_response *res)
{
	struct model_stats *st;
	char *text = NULL;
	size_t len = 0, map = 0, used = 0;
	int r = model_stats_get(s->model, http_request_query(req, "program"), &st);

	if (r < 0) {
		answer_model_error(res, r);
		return;
	}
	/* ?limit=N: the N heaviest constraints of each class and the contenders. */
	const char *limit = http_request_query(req, "limit");
	if (limit && ep == EP_API_STATS) {
		char *end;
		unsigned long n = strtoul(limit, &end, 10);
		if (end == limit || *end || limit[0] == '-') {
			model_stats_free(st);
			answer_error(res, 400, "limit must be a non-negative integer");
			return;
		}
		model_stats_trim(st, n);
	}
	switch (ep) {
	case EP_STATS:
		r = page_stats_html(st, s->cfg.refresh_s, &text, &len);
		answer(res, 200, "text/html; charset=utf-8", text, len);
		break;
	case EP_METRICS:
		model_disk_usage(s->model, &map, &used);
		r = metrics_text(st, &s->counters, map, used, &text, &len);
		answer(res, 200, "text/plain; version=0.0.4", text, len);
		break;
	default:
		r = model_json_format_stats(st, &text);
		answer_json(res, 200, text);
	}
	model_stats_free(st);
	if (r < 0)
		answer_error(res, 500, strerror(-r));
}

/* ---- routing ---- */

struct route {
	const char *path;
	const char *method;
	enum server_endpoint ep;
};

static const struct route routes[] = {
    {"/start", "POST", EP_START},	 {"/end", "POST", EP_END},
    {"/correct", "POST", EP_CORRECT},	 {"/tick", "POST", EP_TICK},
    {"/api/stats", "GET", EP_API_STATS}, {"/stats", "GET", EP_STATS},
    {"/metrics", "GET", EP_METRICS},	 {"/healthz", "GET", EP_HEALTHZ},
};

/* Compares without an early exit, so timing does not tell how much of a token matched. */
static bool
token_ok(const char *want, const char *authorization)
{
	static const char bearer[] = "Bearer ";
	size_t lw = strlen(want);
	unsigned char diff = 0;

	if (!authorization || strncmp(authorization, bearer, sizeof(bearer) - 1) != 0)
		return false;
	const char *got = authorization + sizeof(bearer) - 1;
	size_t lg = strlen(got);
	for (size_t i = 0; i < lw; i++)
		diff |= (unsigned char)want[i] ^ (unsigned char)(i < lg ? got[i] : 0);
	return diff == 0 && lg == lw;
}

static void
dispatch(struct server *s, const struct route *rt, const struct http_request *req,
	 struct http_response *res)
{
	switch (rt->ep) {
	case EP_START:
		do_start(s, req, res);
		break;
	case EP_END:
		do_report(s, MODEL_JSON_END, req, res);
		break;
	case EP_CORRECT:
		do_report(s, MODEL_JSON_CORRECT, req, res);
		break;
	case EP_TICK:
		do_report(s, MODEL_JSON_TICK, req, res);
		break;
	case EP_HEALTHZ:
		answer_ok(res);
		break;
	default:
		do_stats(s, rt->ep, req, res);
	}
}

static void
handle(void *ctx, const struct http_request *req, struct http_response *res)
{
	struct server *s = ctx;
	const struct route *rt = NULL;

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(req->path, routes[i].path) == 0)
			rt = &routes[i];
	if (!rt)
		answer_error(res, 404, "unknown path");
	else if (s->cfg.token && rt->ep != EP_HEALTHZ &&
		 !token_ok(s->cfg.token, req->authorization))
		answer_error(res, 401, "missing or wrong token (Authorization: Bearer ...)");
	else if (req->too_large)
		answer_error(res, 413, "body too large");
	else if (strcmp(req->method, rt->method) != 0 &&
		 !(strcmp(req->method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0)) {
		answer_error(res, 405, "method not allowed");
		res->allow = rt->method;
	} else
		dispatch(s, rt, req, res);

	enum server_endpoint ep = rt ? rt->ep : EP_OTHER;
	unsigned cls = res->status / 100;
	if (cls >= 1 && cls <= 5)
		__atomic_add_fetch(&s->counters.requests[ep][cls - 1], 1, __ATOMIC_RELAXED);
	if (s->cfg.verbose || res->status >= 500)
		fprintf(stderr, "aviso-server: %s %s -> %u\n", req->method, req->path, res->status);
}

/* ---- life ---- */

int
server_create(const struct server_config *cfg, struct server **ret_server)
{
	struct server *s;
	int r;

	if (!cfg->db || !cfg->bind || cfg->threads == 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	r = model_open(cfg->db, &cfg->model, &s->model);
	if (r < 0)
		goto leave;
	struct http_options ho = {
	    .bind = cfg->bind,
	    .port = cfg->port,
	    .threads = cfg->threads,
	    .max_body = cfg->max_body,
	};
	r = http_server_start(&ho, handle, s, &s->http);
leave:
	if (r < 0) {
		server_destroy(s);
		return r;
	}
	*ret_server = s;
	return 0;
}

uint16_t
server_port(const struct server *s)
{
	return http_server_port(s->http);
}

void
server_destroy(struct server *s)
{
	if (!s)
		return;
	http_server_stop(s->http);
	model_close(s->model);
	free(s);
}
