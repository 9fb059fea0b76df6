/*
 * The test and benchmark HTTP client over libcurl (see httpc.h). One easy handle per thread,
 * kept for the thread's life, so requests reuse their connection.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/server/httpc.h"

struct sink {
	char *p;
	size_t len;
	bool oom;
};

static size_t
on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;
	char *p = realloc(s->p, s->len + n + 1);

	if (!p) {
		s->oom = true;
		return 0;
	}
	memcpy(p + s->len, data, n);
	s->len += n;
	p[s->len] = '\0';
	s->p = p;
	return n;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t handle_key;

static void
handle_free(void *h)
{
	curl_easy_cleanup(h);
}

static void
init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	pthread_key_create(&handle_key, handle_free);
}

/* This thread's handle, reset for a new request. */
static CURL *
handle(void)
{
	pthread_once(&once, init_once);
	CURL *h = pthread_getspecific(handle_key);
	if (!h) {
		h = curl_easy_init();
		if (h)
			pthread_setspecific(handle_key, h);
	} else {
		curl_easy_reset(h);
	}
	return h;
}

int
httpc_request(const char *method, const char *url, const char *token, const char *body, size_t len,
	      long *ret_status, char **ret_body)
{
	struct curl_slist *hdr = NULL;
	struct sink sink = {0};
	char auth[512];
	CURL *h = handle();
	int ret = -EIO;

	if (!h)
		return -ENOMEM;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
	}
	/* No "Expect: 100-continue" round trip for large bodies. */
	hdr = curl_slist_append(hdr, "Expect:");
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		hdr = curl_slist_append(hdr, auth);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	if (curl_easy_perform(h) == CURLE_OK && !sink.oom) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, ret_status);
		ret = 0;
	}
	curl_slist_free_all(hdr);
	if (ret == 0 && ret_body)
		*ret_body = sink.p ? sink.p : strdup("");
	else
		free(sink.p);
	return ret;
}

/* POSTs @body to @base@path; 0 on a 200, -EIO otherwise; the answer in *ret_body if wanted. */
static int
post(const char *base, const char *path, const char *body, char **ret_body)
{
	char url[256];
	long status = 0;
	char *answer = NULL;

	snprintf(url, sizeof(url), "%s%s", base, path);
	int r = httpc_request("POST", url, NULL, body, strlen(body), &status, &answer);
	if (r == 0 && status != 200) {
		fprintf(stderr, "sim: %s -> %ld %s\n", path, status, answer ? answer : "");
		r = -EIO;
	}
	if (r == 0 && ret_body)
		*ret_body = answer;
	else
		free(answer);
	return r;
}

static int
http_start(void *ctx, const struct model_program *prog, struct model_plan **ret_plan)
{
	char body[1024], *answer = NULL, id[256], path[256];
	const char *err;

	model_json_quote(prog->id, id, sizeof(id));
	model_json_quote(prog->path, path, sizeof(path));
	snprintf(body, sizeof(body), "{\"program\":{\"id\":%s,\"path\":%s},\"pid\":1}", id, path);
	int r = post(ctx, "/start", body, &answer);
	if (r == 0)
		r = model_json_parse_plan(answer, strlen(answer), ret_plan, &err);
	free(answer);
	return r;
}

/* POSTs a report with @fields before the rpb. */
static int
http_report(const char *base, const char *path, const char *run, const char *fields,
	    const struct model_event *rpb, size_t n)
{
	char *events = sim_rpb_json(rpb, n), *body = NULL;
	int r = -ENOMEM;

	if (events && asprintf(&body, "{\"run\":\"%s\"%s,\"rpb\":%s}", run, fields, events) >= 0)
		r = post(base, path, body, NULL);
	free(events);
	free(body);
	return r;
}

static int
http_end(void *ctx, const char *run, bool failed, const struct model_event *rpb, size_t n)
{
	return http_report(ctx, "/end", run,
			   failed ? ",\"outcome\":\"failure\",\"failure\":{\"signal\":11}"
				  : ",\"outcome\":\"success\"",
			   rpb, failed ? n : 0);
}

static int
http_correct(void *ctx, const char *run, const struct model_event *rpb, size_t n)
{
	return http_report(ctx, "/correct", run, "", rpb, n);
}

void
sim_backend_http(const char *base, struct sim_backend *ret)
{
	*ret = (struct sim_backend){
	    .ctx = (void *)base,
	    .start = http_start,
	    .end = http_end,
	    .correct = http_correct,
	};
}
