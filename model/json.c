/*
 * The JSON forms of the protocol (server/README.md documents every field): parsing request
 * bodies into the model's structs and formatting its answers. The only file that includes
 * json-c. Parsing is strict on types (a wrong type is an error with a message) and ignores
 * unknown fields, so a newer tracer can add some.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

/* Why 64: our bodies nest 4 deep; a deeper body is an attack, not a report. */
#define JSON_MAX_DEPTH 64

struct model_json_doc {
	json_object *root;
	struct model_event *events;
	const char **cids;
};

void
model_json_doc_free(struct model_json_doc *doc)
{
	if (!doc)
		return;
	json_object_put(doc->root);
	free(doc->events);
	free(doc->cids);
	free(doc);
}

/* Parses @body as one JSON value and nothing after it but whitespace. */
static int
parse_doc(const char *body, size_t len, struct model_json_doc **ret_doc, const char **ret_error)
{
	struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
	struct model_json_doc *doc;
	json_object *root;

	if (!tok)
		return -ENOMEM;
	if (len > INT32_MAX) {
		json_tokener_free(tok);
		*ret_error = "body too large";
		return -EINVAL;
	}
	root = json_tokener_parse_ex(tok, body, (int)len);
	enum json_tokener_error err = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!root || err != json_tokener_success) {
		json_object_put(root);
		*ret_error = "malformed JSON";
		return -EINVAL;
	}
	for (; end < len; end++) {
		if (!strchr(" \t\r\n", body[end])) {
			json_object_put(root);
			*ret_error = "malformed JSON: data after the value";
			return -EINVAL;
		}
	}
	doc = calloc(1, sizeof(*doc));
	if (!doc) {
		json_object_put(root);
		return -ENOMEM;
	}
	doc->root = root;
	*ret_doc = doc;
	return 0;
}

/* Field @name of object @o when it has type @type; NULL when absent (or JSON null). */
static int
field(json_object *o, const char *name, json_type type, json_object **ret)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, name, &v) || json_object_is_type(v, json_type_null)) {
		*ret = NULL;
		return 0;
	}
	if (!json_object_is_type(v, type))
		return -EINVAL;
	*ret = v;
	return 0;
}

/* A non-negative integer field; @required or 0 when absent. */
static int
field_u64(json_object *o, const char *name, bool required, uint64_t *ret)
{
	json_object *v;

	if (field(o, name, json_type_int, &v) < 0 || (!v && required))
		return -EINVAL;
	if (!v) {
		*ret = 0;
		return 0;
	}
	if (json_object_get_int64(v) < 0)
		return -EINVAL;
	*ret = json_object_get_uint64(v);
	return 0;
}

/* An event's "object": "0x..." as the tracer writes it, or a plain number. */
static int
parse_object(json_object *o, uint64_t *ret)
{
	json_object *v = NULL;

	*ret = 0;
	if (!json_object_object_get_ex(o, "object", &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		*ret = json_object_get_uint64(v);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return -EINVAL;
	const char *s = json_object_get_string(v);
	char *end;
	errno = 0;
	*ret = strtoull(s, &end, 0);
	return errno || end == s || *end ? -EINVAL : 0;
}

static int
parse_event(json_object *o, struct model_event *ev, const char **ret_error)
{
	json_object *v;
	uint64_t x;

	memset(ev, 0, sizeof(*ev));
	if (!json_object_is_type(o, json_type_object)) {
		*ret_error = "an rpb entry is not an object";
		return -EINVAL;
	}
	if (field(o, "site", json_type_string, &v) < 0 || !v) {
		*ret_error = "an event's \"site\" must be a string";
		return -EINVAL;
	}
	ev->site = json_object_get_string(v);
	if (field_u64(o, "seq", true, &ev->seq) < 0 || field_u64(o, "thread", true, &x) < 0 ||
	    x > UINT32_MAX) {
		*ret_error = "an event's \"seq\" and \"thread\" must be non-negative integers";
		return -EINVAL;
	}
	ev->thread = (uint32_t)x;
	uint64_t tid, pid;
	if (field_u64(o, "ns", false, &ev->ns) < 0 || field_u64(o, "tid", false, &tid) < 0 ||
	    field_u64(o, "pid", false, &pid) < 0 || tid > INT32_MAX || pid > INT32_MAX) {
		*ret_error = "an event's \"ns\", \"tid\" and \"pid\" must be non-negative integers";
		return -EINVAL;
	}
	ev->tid = (int32_t)tid;
	ev->pid = (int32_t)pid;
	if (field(o, "kind", json_type_string, &v) < 0 ||
	    (v && model_event_kind_parse(json_object_get_string(v), &ev->kind) < 0)) {
		*ret_error = "an event's \"kind\" must be a known kind name";
		return -EINVAL;
	}
	if (!v)
		ev->kind = MODEL_EV_POINT;
	if (field(o, "where", json_type_string, &v) < 0) {
		*ret_error = "an event's \"where\" must be a string";
		return -EINVAL;
	}
	ev->where = v ? json_object_get_string(v) : NULL;
	if (parse_object(o, &ev->object) < 0) {
		*ret_error = "an event's \"object\" must be a number or a \"0x...\" string";
		return -EINVAL;
	}
	return 0;
}

/* Parses array @arr of events into doc->events. */
static int
parse_events(struct model_json_doc *doc, json_object *arr, size_t *ret_n, const char **ret_error)
{
	size_t n = json_object_array_length(arr);

	doc->events = calloc(n ? n : 1, sizeof(*doc->events));
	if (!doc->events)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int r = parse_event(json_object_array_get_idx(arr, i), &doc->events[i], ret_error);
		if (r < 0)
			return r;
	}
	*ret_n = n;
	return 0;
}

/* Ends a parse: hands @doc over when @r is 0, frees it otherwise; returns @r. */
static int
finish(struct model_json_doc *doc, int r, struct model_json_doc **ret_doc)
{
	if (r < 0) {
		model_json_doc_free(doc);
		return r;
	}
	*ret_doc = doc;
	return 0;
}

int
model_json_parse_rpb(const char *body, size_t len, struct model_json_doc **ret_doc,
		     struct model_event **ret_events, size_t *ret_n, const char **ret_error)
{
	struct model_json_doc *doc;
	int r = parse_doc(body, len, &doc, ret_error);

	if (r < 0)
		return r;
	if (!json_object_is_type(doc->root, json_type_array)) {
		*ret_error = "an rpb must be an array of events";
		r = -EINVAL;
	} else {
		r = parse_events(doc, doc->root, ret_n, ret_error);
		*ret_events = doc->events;
	}
	return finish(doc, r, ret_doc);
}

int
model_json_parse_start(const char *body, size_t len, struct model_json_doc **ret_doc,
		       struct model_start_request *ret_req, const char **ret_error)
{
	struct model_json_doc *doc;
	json_object *prog, *id, *path, *host, *pid, *seed, *offline;
	int r = parse_doc(body, len, &doc, ret_error);

	if (r < 0)
		return r;
	r = -EINVAL;
	memset(ret_req, 0, sizeof(*ret_req));
	if (!json_object_is_type(doc->root, json_type_object)) {
		*ret_error = "the body must be an object";
		goto leave;
	}
	if (field(doc->root, "program", json_type_object, &prog) < 0 || !prog) {
		*ret_error = "\"program\" must be an object";
		goto leave;
	}
	if (field(prog, "id", json_type_string, &id) < 0 ||
	    field(prog, "path", json_type_string, &path) < 0 || (!id && !path)) {
		*ret_error = "\"program\" needs \"id\" or \"path\", strings";
		goto leave;
	}
	ret_req->prog.id = id ? json_object_get_string(id) : "";
	ret_req->prog.path = path ? json_object_get_string(path) : "";
	if (field(doc->root, "host", json_type_string, &host) < 0 ||
	    field(doc->root, "pid", json_type_int, &pid) < 0) {
		*ret_error = "\"host\" must be a string and \"pid\" an integer";
		goto leave;
	}
	ret_req->host = host ? json_object_get_string(host) : NULL;
	ret_req->pid = pid ? json_object_get_int64(pid) : 0;
	if (field(doc->root, "seed", json_type_int, &seed) < 0 ||
	    (seed && field_u64(doc->root, "seed", true, &ret_req->seed) < 0)) {
		*ret_error = "\"seed\" must be an integer from 0 to 18446744073709551615";
		goto leave;
	}
	ret_req->have_seed = seed != NULL;
	if (field(doc->root, "offline_run", json_type_string, &offline) < 0) {
		*ret_error = "\"offline_run\" must be a string";
		goto leave;
	}
	ret_req->offline_run = offline ? json_object_get_string(offline) : NULL;
	r = 0;
leave:
	return finish(doc, r, ret_doc);
}

/* Reads "constraints": an array of id strings. */
static int
parse_cids(struct model_json_doc *doc, json_object *arr, struct model_report *rep,
	   const char **ret_error)
{
	size_t n = json_object_array_length(arr);

	doc->cids = calloc(n ? n : 1, sizeof(*doc->cids));
	if (!doc->cids)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(v, json_type_string)) {
			*ret_error = "\"constraints\" must be an array of id strings";
			return -EINVAL;
		}
		doc->cids[i] = json_object_get_string(v);
	}
	rep->have_constraints = true;
	rep->constraints = doc->cids;
	rep->n_constraints = n;
	return 0;
}

/* The fields of a /end body past "run". */
static int
parse_end(struct model_json_doc *doc, struct model_report *rep, const char **ret_error)
{
	json_object *v;

	if (field(doc->root, "outcome", json_type_string, &v) < 0 || !v ||
	    (strcmp(json_object_get_string(v), "success") != 0 &&
	     strcmp(json_object_get_string(v), "failure") != 0)) {
		*ret_error = "\"outcome\" must be \"success\" or \"failure\"";
		return -EINVAL;
	}
	rep->failed = strcmp(json_object_get_string(v), "failure") == 0;
	if (field(doc->root, "constraints", json_type_array, &v) < 0) {
		*ret_error = "\"constraints\" must be an array of id strings";
		return -EINVAL;
	}
	if (v) {
		int r = parse_cids(doc, v, rep, ret_error);
		if (r < 0)
			return r;
	}
	if (field(doc->root, "failure", json_type_object, &v) < 0) {
		*ret_error = "\"failure\" must be an object";
		return -EINVAL;
	}
	return 0;
}

int
model_json_parse_report(const char *body, size_t len, enum model_json_report kind,
			struct model_json_doc **ret_doc, struct model_report *ret_report,
			const char **ret_error)
{
	struct model_json_doc *doc;
	json_object *v;
	int r = parse_doc(body, len, &doc, ret_error);

	if (r < 0)
		return r;
	r = -EINVAL;
	memset(ret_report, 0, sizeof(*ret_report));
	if (!json_object_is_type(doc->root, json_type_object)) {
		*ret_error = "the body must be an object";
		goto leave;
	}
	if (field(doc->root, "run", json_type_string, &v) < 0 || !v) {
		*ret_error = "\"run\" must be a string";
		goto leave;
	}
	ret_report->run = json_object_get_string(v);
	if (kind == MODEL_JSON_END && (r = parse_end(doc, ret_report, ret_error)) < 0)
		goto leave;
	r = -EINVAL;
	if (field(doc->root, "rpb", json_type_array, &v) < 0 ||
	    (!v && kind == MODEL_JSON_CORRECT)) {
		*ret_error = "\"rpb\" must be an array of events";
		goto leave;
	}
	if (v && kind != MODEL_JSON_TICK) {
		r = parse_events(doc, v, &ret_report->n_rpb, ret_error);
		if (r < 0)
			goto leave;
		ret_report->rpb = doc->events;
	}
	r = 0;
leave:
	return finish(doc, r, ret_doc);
}

/* ---- formatting ---- */

/* Hands the text of @o to the caller (malloc'd) and drops @o. */
static int
emit(json_object *o, char **ret_json)
{
	if (!o)
		return -ENOMEM;
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE);
	char *copy = s ? strdup(s) : NULL;
	json_object_put(o);
	if (!copy)
		return -ENOMEM;
	*ret_json = copy;
	return 0;
}

/* Adds @v to @o under @key; json-c takes ownership. A NULL @v (out of memory) is reported
 * once by the caller through emit(), so this returns whether all went well. */
static bool
add(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return false;
	json_object_object_add(o, key, v);
	return true;
}

static bool
push(json_object *arr, json_object *v)
{
	if (!v)
		return false;
	json_object_array_add(arr, v);
	return true;
}

static json_object *
served_json(const struct model_served *c)
{
	json_object *o = json_object_new_object();

	if (o && add(o, "id", json_object_new_string(c->id)) &&
	    add(o, "class", json_object_new_int64(c->class_id)) &&
	    add(o, "b", json_object_new_string(c->b)) &&
	    add(o, "a", json_object_new_string(c->a)) &&
	    add(o, "b_where", json_object_new_string(c->b_where)) &&
	    add(o, "a_where", json_object_new_string(c->a_where)) &&
	    add(o, "delay_us", json_object_new_int64(c->delay_us)))
		return o;
	json_object_put(o);
	return NULL;
}

int
model_json_format_plan(const struct model_plan *plan, char **ret_json)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	bool ok = o && arr;

	ok = ok && add(o, "run", json_object_new_string(plan->run)) &&
	     add(o, "seed", json_object_new_uint64(plan->seed)) &&
	     add(o, "baseline", json_object_new_boolean(plan->baseline));
	for (size_t i = 0; ok && i < plan->n; i++)
		ok = push(arr, served_json(&plan->constraints[i]));
	if (ok) {
		json_object_object_add(o, "constraints", arr);
		return emit(o, ret_json);
	}
	json_object_put(arr);
	json_object_put(o);
	return -ENOMEM;
}

static json_object *
constraint_json(const struct model_constraint_stats *c)
{
	json_object *o = json_object_new_object();

	if (o && add(o, "id", json_object_new_string(c->id)) &&
	    add(o, "b", json_object_new_string(c->b)) &&
	    add(o, "a", json_object_new_string(c->a)) &&
	    add(o, "b_where", json_object_new_string(c->b_where)) &&
	    add(o, "a_where", json_object_new_string(c->a_where)) &&
	    add(o, "f_ab", json_object_new_uint64(c->f_ab)) &&
	    add(o, "f_ba", json_object_new_uint64(c->f_ba)) &&
	    add(o, "failing_with", json_object_new_uint64(c->failing_with)) &&
	    add(o, "oi", json_object_new_double(c->oi)) &&
	    add(o, "ci", json_object_new_double(c->ci)) &&
	    add(o, "fc", json_object_new_double(c->fc)) &&
	    add(o, "rank", json_object_new_double(c->rank)) &&
	    add(o, "weight", json_object_new_double(c->weight)) &&
	    add(o, "runs", json_object_new_uint64(c->runs)) &&
	    add(o, "failures", json_object_new_uint64(c->failures)) &&
	    add(o, "all_failures", json_object_new_uint64(c->all_failures)) &&
	    add(o, "rate", json_object_new_double(c->rate)) &&
	    add(o, "chi2", json_object_new_double(c->chi2)) &&
	    add(o, "contender", json_object_new_boolean(c->effective)))
		return o;
	json_object_put(o);
	return NULL;
}

/* {"runs": N, "failures": N, "rate": x} */
static json_object *
group_json(uint64_t runs, uint64_t failures)
{
	json_object *o = json_object_new_object();

	if (o && add(o, "runs", json_object_new_uint64(runs)) &&
	    add(o, "failures", json_object_new_uint64(failures)) &&
	    add(o, "rate", json_object_new_double(runs ? (double)failures / (double)runs : 0)))
		return o;
	json_object_put(o);
	return NULL;
}

static json_object *
class_json(const struct model_class_stats *cs)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	bool ok = o && arr && add(o, "id", json_object_new_int64(cs->id)) &&
		  add(o, "failures", json_object_new_uint64(cs->failures)) &&
		  add(o, "sites", json_object_new_uint64(cs->n_sites)) &&
		  add(o, "base", group_json(cs->base_runs, cs->base_failures)) &&
		  (!cs->under || add(o, "under", json_object_new_int64(cs->under - 1)));

	for (size_t i = 0; ok && i < cs->n; i++)
		ok = push(arr, constraint_json(&cs->c[i]));
	if (ok) {
		json_object_object_add(o, "constraints", arr);
		return o;
	}
	json_object_put(arr);
	json_object_put(o);
	return NULL;
}

/* A curve as [[runs, cumulative failures], ...]. */
static json_object *
curve_json(const struct model_curve *c)
{
	json_object *arr = json_object_new_array();
	bool ok = arr != NULL;

	for (size_t i = 0; ok && i < c->n; i++) {
		json_object *pt = json_object_new_array();
		ok = pt && push(pt, json_object_new_uint64(c->x[i])) &&
		     push(pt, json_object_new_uint64(c->y[i]));
		ok = ok ? push(arr, pt) : (json_object_put(pt), false);
	}
	if (ok)
		return arr;
	json_object_put(arr);
	return NULL;
}

static json_object *
program_json(const struct model_program_stats *ps)
{
	json_object *o = json_object_new_object(), *classes = json_object_new_array();
	json_object *base = group_json(ps->baseline_runs, ps->baseline_failures);
	json_object *chart = json_object_new_object();
	bool ok = o && classes && base && chart &&
		  add(base, "known", json_object_new_boolean(ps->baseline_known)) &&
		  add(base, "share", json_object_new_double(ps->baseline_share)) &&
		  add(chart, "baseline", curve_json(&ps->baseline_curve)) &&
		  add(chart, "constrained", curve_json(&ps->constrained_curve));

	for (size_t k = 0; ok && k < ps->n_classes; k++)
		ok = push(classes, class_json(&ps->classes[k]));
	if (ok && add(o, "id", json_object_new_string(ps->id)) &&
	    add(o, "path", json_object_new_string(ps->path)) &&
	    add(o, "runs_started", json_object_new_uint64(ps->runs_started)) &&
	    add(o, "runs_ended", json_object_new_uint64(ps->runs_ended)) &&
	    add(o, "open_runs", json_object_new_uint64(ps->open_runs)) &&
	    add(o, "ticks", json_object_new_uint64(ps->ticks)) &&
	    add(o, "correct_samples", json_object_new_uint64(ps->correct_samples)) &&
	    add(o, "constraints", json_object_new_uint64(ps->n_constraints)) &&
	    add(o, "contenders", json_object_new_uint64(ps->n_contenders)) &&
	    add(o, "constrained", group_json(ps->constrained_runs, ps->constrained_failures))) {
		json_object_object_add(o, "baseline", base);
		json_object_object_add(o, "classes", classes);
		json_object_object_add(o, "chart", chart);
		return o;
	}
	json_object_put(o);
	json_object_put(classes);
	json_object_put(base);
	json_object_put(chart);
	return NULL;
}

int
model_json_format_stats(const struct model_stats *st, char **ret_json)
{
	json_object *o = json_object_new_object(), *arr = json_object_new_array();
	bool ok = o && arr &&
		  add(o, "selector", json_object_new_string(model_selector_name(st->selector)));

	for (size_t p = 0; ok && p < st->n; p++)
		ok = push(arr, program_json(&st->programs[p]));
	if (ok) {
		json_object_object_add(o, "programs", arr);
		return emit(o, ret_json);
	}
	json_object_put(arr);
	json_object_put(o);
	return -ENOMEM;
}

int
model_json_format_error(const char *msg, char **ret_json)
{
	json_object *o = json_object_new_object();

	if (!o || !add(o, "error", json_object_new_string(msg))) {
		json_object_put(o);
		return -ENOMEM;
	}
	return emit(o, ret_json);
}

/* Copies string field @name of @o (required) into a malloc'd *ret. */
static int
dup_field(json_object *o, const char *name, char **ret)
{
	json_object *v;

	if (field(o, name, json_type_string, &v) < 0 || !v)
		return -EINVAL;
	*ret = strdup(json_object_get_string(v));
	return *ret ? 0 : -ENOMEM;
}

static int
parse_served(json_object *o, struct model_served *c)
{
	json_object *v;
	uint64_t x;
	int r;

	if (!json_object_is_type(o, json_type_object) || field(o, "id", json_type_string, &v) < 0 ||
	    !v || strlen(json_object_get_string(v)) >= sizeof(c->id))
		return -EINVAL;
	strcpy(c->id, json_object_get_string(v));
	if ((r = dup_field(o, "b", &c->b)) < 0 || (r = dup_field(o, "a", &c->a)) < 0 ||
	    (r = dup_field(o, "b_where", &c->b_where)) < 0 ||
	    (r = dup_field(o, "a_where", &c->a_where)) < 0)
		return r;
	if (field_u64(o, "class", true, &x) < 0 || x > UINT32_MAX)
		return -EINVAL;
	c->class_id = (uint32_t)x;
	if (field_u64(o, "delay_us", true, &x) < 0 || x > UINT32_MAX)
		return -EINVAL;
	c->delay_us = (unsigned)x;
	return 0;
}

int
model_json_parse_plan(const char *body, size_t len, struct model_plan **ret_plan,
		      const char **ret_error)
{
	struct model_json_doc *doc;
	struct model_plan *p = NULL;
	json_object *v, *arr;
	int r = parse_doc(body, len, &doc, ret_error);

	if (r < 0)
		return r;
	*ret_error = "not a /start answer";
	r = -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p) {
		r = -ENOMEM;
		goto leave;
	}
	if (!json_object_is_type(doc->root, json_type_object) ||
	    field(doc->root, "run", json_type_string, &v) < 0 || !v ||
	    strlen(json_object_get_string(v)) >= sizeof(p->run))
		goto leave;
	strcpy(p->run, json_object_get_string(v));
	if (field_u64(doc->root, "seed", true, &p->seed) < 0 ||
	    field(doc->root, "baseline", json_type_boolean, &v) < 0 || !v ||
	    field(doc->root, "constraints", json_type_array, &arr) < 0 || !arr)
		goto leave;
	p->baseline = json_object_get_boolean(v);
	size_t n = json_object_array_length(arr);
	p->constraints = calloc(n ? n : 1, sizeof(*p->constraints));
	if (!p->constraints) {
		r = -ENOMEM;
		goto leave;
	}
	for (size_t i = 0; i < n; i++) {
		p->n = i + 1; /* so model_plan_free() frees a half-parsed entry */
		if ((r = parse_served(json_object_array_get_idx(arr, i), &p->constraints[i])) < 0)
			goto leave;
	}
	r = 0;
leave:
	model_json_doc_free(doc);
	if (r < 0) {
		model_plan_free(p);
		return r;
	}
	*ret_plan = p;
	return 0;
}

/* ---- the client side: request bodies, /api/stats ---- */

int
model_json_format_start(const struct model_start_request *req, char **ret_json)
{
	json_object *o = json_object_new_object(), *prog = json_object_new_object();
	bool ok = o && prog && add(prog, "id", json_object_new_string(req->prog.id)) &&
		  add(prog, "path", json_object_new_string(req->prog.path));

	if (!ok) {
		json_object_put(prog);
		json_object_put(o);
		return -ENOMEM;
	}
	json_object_object_add(o, "program", prog);
	ok = (!req->pid || add(o, "pid", json_object_new_int64(req->pid))) &&
	     (!req->host || add(o, "host", json_object_new_string(req->host))) &&
	     (!req->have_seed || add(o, "seed", json_object_new_uint64(req->seed))) &&
	     (!req->offline_run ||
	      add(o, "offline_run", json_object_new_string(req->offline_run)));
	if (!ok) {
		json_object_put(o);
		return -ENOMEM;
	}
	return emit(o, ret_json);
}

int
model_json_format_rpb(const struct model_event *ev, size_t n, char **ret_json)
{
	size_t cap = 3, len = 0;
	char *out;

	for (size_t i = 0; i < n; i++)
		cap += model_event_format_json(&ev[i], NULL, 0) + 1;
	out = malloc(cap);
	if (!out)
		return -ENOMEM;
	out[len++] = '[';
	for (size_t i = 0; i < n; i++) {
		if (i)
			out[len++] = ',';
		len += model_event_format_json(&ev[i], out + len, cap - len);
	}
	out[len++] = ']';
	out[len] = '\0';
	*ret_json = out;
	return 0;
}

int
model_json_format_report(const struct model_report *rep, enum model_json_report kind,
			 char **ret_json)
{
	json_object *o = json_object_new_object(), *arr = NULL;
	bool ok = o && add(o, "run", json_object_new_string(rep->run));
	char *head = NULL, *rpb = NULL, *out = NULL;
	int r;

	if (ok && kind == MODEL_JSON_END) {
		ok = add(o, "outcome", json_object_new_string(rep->failed ? "failure" : "success"));
		if (ok && rep->have_constraints) {
			ok = (arr = json_object_new_array()) != NULL;
			for (size_t i = 0; ok && i < rep->n_constraints; i++)
				ok = push(arr, json_object_new_string(rep->constraints[i]));
			ok = ok ? add(o, "constraints", arr) : (json_object_put(arr), false);
		}
	}
	if (!ok) {
		json_object_put(o);
		return -ENOMEM;
	}
	if ((r = emit(o, &head)) < 0)
		return r;
	bool with_rpb = kind == MODEL_JSON_CORRECT || (kind == MODEL_JSON_END && rep->failed &&
							rep->n_rpb > 0);
	if (!with_rpb) {
		*ret_json = head;
		return 0;
	}
	/*
	 * The events are written by model_event_format_json(), the one writer of their form (the
	 * tracer's -o lines and reports use it too), and spliced in before the object's '}'.
	 */
	r = model_json_format_rpb(rep->rpb, rep->n_rpb, &rpb);
	size_t hl = strlen(head);
	if (r == 0 && asprintf(&out, "%.*s,\"rpb\":%s}", (int)(hl - 1), head, rpb) < 0)
		r = -ENOMEM;
	free(head);
	free(rpb);
	if (r == 0)
		*ret_json = out;
	return r;
}

/* A number field as a double (JSON writes 0.0 and 1 alike); 0 when absent. */
static int
field_double(json_object *o, const char *name, double *ret)
{
	json_object *v = NULL;

	*ret = 0;
	if (!json_object_object_get_ex(o, name, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
		return -EINVAL;
	*ret = json_object_get_double(v);
	return 0;
}

/* A boolean field; false when absent. */
static int
field_bool(json_object *o, const char *name, bool *ret)
{
	json_object *v;

	if (field(o, name, json_type_boolean, &v) < 0)
		return -EINVAL;
	*ret = v && json_object_get_boolean(v);
	return 0;
}

/* String field @name (optional: "" when absent) into a malloc'd *ret. */
static int
dup_opt(json_object *o, const char *name, char **ret)
{
	json_object *v;

	if (field(o, name, json_type_string, &v) < 0)
		return -EINVAL;
	*ret = strdup(v ? json_object_get_string(v) : "");
	return *ret ? 0 : -ENOMEM;
}

static int
parse_constraint_stats(json_object *o, struct model_constraint_stats *c)
{
	char *b = NULL, *a = NULL, *bw = NULL, *aw = NULL;
	json_object *v;
	int r;

	if (!json_object_is_type(o, json_type_object))
		return -EINVAL;
	r = dup_opt(o, "b", &b);
	if (r == 0)
		r = dup_opt(o, "a", &a);
	if (r == 0)
		r = dup_opt(o, "b_where", &bw);
	if (r == 0)
		r = dup_opt(o, "a_where", &aw);
	/* Owned by the stats from here on, so model_stats_free() frees them whatever follows. */
	c->b = b;
	c->a = a;
	c->b_where = bw;
	c->a_where = aw;
	if (r < 0)
		return r;
	if (field(o, "id", json_type_string, &v) < 0 || !v ||
	    strlen(json_object_get_string(v)) >= sizeof(c->id))
		return -EINVAL;
	strcpy(c->id, json_object_get_string(v));
	if (field_u64(o, "f_ab", false, &c->f_ab) < 0 ||
	    field_u64(o, "f_ba", false, &c->f_ba) < 0 ||
	    field_u64(o, "failing_with", false, &c->failing_with) < 0 ||
	    field_u64(o, "runs", false, &c->runs) < 0 ||
	    field_u64(o, "failures", false, &c->failures) < 0 ||
	    field_u64(o, "all_failures", false, &c->all_failures) < 0 ||
	    field_double(o, "oi", &c->oi) < 0 || field_double(o, "ci", &c->ci) < 0 ||
	    field_double(o, "fc", &c->fc) < 0 || field_double(o, "rank", &c->rank) < 0 ||
	    field_double(o, "weight", &c->weight) < 0 || field_double(o, "rate", &c->rate) < 0 ||
	    field_double(o, "chi2", &c->chi2) < 0 || field_bool(o, "contender", &c->effective) < 0)
		return -EINVAL;
	return 0;
}

static int
parse_class_stats(json_object *o, struct model_class_stats *cs)
{
	json_object *arr, *under, *base;
	uint64_t id, sites, u;

	if (!json_object_is_type(o, json_type_object) || field_u64(o, "id", true, &id) < 0 ||
	    id > UINT32_MAX || field_u64(o, "failures", false, &cs->failures) < 0 ||
	    field_u64(o, "sites", false, &sites) < 0 ||
	    field(o, "base", json_type_object, &base) < 0 ||
	    (base && (field_u64(base, "runs", true, &cs->base_runs) < 0 ||
		      field_u64(base, "failures", true, &cs->base_failures) < 0)) ||
	    field(o, "under", json_type_int, &under) < 0 || field_u64(o, "under", false, &u) < 0 ||
	    u >= UINT32_MAX || field(o, "constraints", json_type_array, &arr) < 0)
		return -EINVAL;
	cs->id = (uint32_t)id;
	cs->under = under ? (uint32_t)u + 1 : 0;
	cs->n_sites = (size_t)sites;
	size_t n = arr ? json_object_array_length(arr) : 0;
	cs->c = calloc(n ? n : 1, sizeof(*cs->c));
	if (!cs->c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		cs->n = i + 1; /* so model_stats_free() frees a half-parsed entry */
		int r = parse_constraint_stats(json_object_array_get_idx(arr, i), &cs->c[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* {"runs": N, "failures": N, ...} under @name. */
static int
parse_group(json_object *o, const char *name, uint64_t *ret_runs, uint64_t *ret_failures,
	    json_object **ret_group)
{
	json_object *g;

	if (field(o, name, json_type_object, &g) < 0 || !g ||
	    field_u64(g, "runs", true, ret_runs) < 0 ||
	    field_u64(g, "failures", true, ret_failures) < 0)
		return -EINVAL;
	*ret_group = g;
	return 0;
}

static int
parse_program_stats(json_object *o, struct model_program_stats *ps)
{
	json_object *base, *cons, *arr;
	uint64_t n_constraints, n_contenders;
	int r;

	if (!json_object_is_type(o, json_type_object))
		return -EINVAL;
	if ((r = dup_opt(o, "id", &ps->id)) < 0 || (r = dup_opt(o, "path", &ps->path)) < 0)
		return r;
	if (field_u64(o, "runs_started", true, &ps->runs_started) < 0 ||
	    field_u64(o, "runs_ended", true, &ps->runs_ended) < 0 ||
	    field_u64(o, "open_runs", false, &ps->open_runs) < 0 ||
	    field_u64(o, "ticks", false, &ps->ticks) < 0 ||
	    field_u64(o, "correct_samples", false, &ps->correct_samples) < 0 ||
	    field_u64(o, "constraints", false, &n_constraints) < 0 ||
	    field_u64(o, "contenders", false, &n_contenders) < 0 ||
	    parse_group(o, "baseline", &ps->baseline_runs, &ps->baseline_failures, &base) < 0 ||
	    field_double(base, "rate", &ps->baseline_rate) < 0 ||
	    field_bool(base, "known", &ps->baseline_known) < 0 ||
	    field_double(base, "share", &ps->baseline_share) < 0 ||
	    parse_group(o, "constrained", &ps->constrained_runs, &ps->constrained_failures,
			&cons) < 0 ||
	    field(o, "classes", json_type_array, &arr) < 0)
		return -EINVAL;
	ps->n_constraints = (size_t)n_constraints;
	ps->n_contenders = (size_t)n_contenders;
	size_t n = arr ? json_object_array_length(arr) : 0;
	ps->classes = calloc(n ? n : 1, sizeof(*ps->classes));
	if (!ps->classes)
		return -ENOMEM;
	for (size_t k = 0; k < n; k++) {
		ps->n_classes = k + 1;
		if ((r = parse_class_stats(json_object_array_get_idx(arr, k), &ps->classes[k])) < 0)
			return r;
	}
	return 0;
}

int
model_json_parse_stats(const char *body, size_t len, struct model_stats **ret_stats,
		       const char **ret_error)
{
	struct model_json_doc *doc;
	struct model_stats *st;
	json_object *v, *arr;
	int r = parse_doc(body, len, &doc, ret_error);

	if (r < 0)
		return r;
	st = calloc(1, sizeof(*st));
	if (!st) {
		model_json_doc_free(doc);
		return -ENOMEM;
	}
	r = -EINVAL;
	*ret_error = "not an /api/stats answer";
	if (!json_object_is_type(doc->root, json_type_object) ||
	    field(doc->root, "selector", json_type_string, &v) < 0 ||
	    (v && model_selector_parse(json_object_get_string(v), &st->selector) < 0) ||
	    field(doc->root, "programs", json_type_array, &arr) < 0 || !arr)
		goto leave;
	size_t n = json_object_array_length(arr);
	st->programs = calloc(n ? n : 1, sizeof(*st->programs));
	if (!st->programs) {
		r = -ENOMEM;
		goto leave;
	}
	for (size_t p = 0; p < n; p++) {
		st->n = p + 1;
		if ((r = parse_program_stats(json_object_array_get_idx(arr, p), &st->programs[p])) < 0)
			goto leave;
	}
	r = 0;
leave:
	model_json_doc_free(doc);
	if (r < 0) {
		model_stats_free(st);
		return r;
	}
	*ret_stats = st;
	return 0;
}
