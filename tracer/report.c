/*
 * Failure reports. For people, on stderr: the failure in one line, the failing thread's
 * backtrace, and the last events as a timeline with one column per thread, so that the
 * interleaving can be seen at a glance. As data: one JSON file per failure under the report
 * directory, {"program":..,"failure":..,"rpb":[events with their frames]}, whose path is
 * printed. Everything is written in as few write(2) calls as possible, once formatted.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tracer/internal.h"

#define TIMELINE_EVENTS 24
#define TIMELINE_COLUMNS 4
#define COLUMN_WIDTH 40

static const char *
signal_name(int sig)
{
	static char buf[16];
	const char *abbrev = sigabbrev_np(sig);

	if (!abbrev) {
		snprintf(buf, sizeof(buf), "SIG%d", sig);
		return buf;
	}
	snprintf(buf, sizeof(buf), "SIG%s", abbrev);
	return buf;
}

/* The first frame with a source file: where a person would look. */
static const struct model_frame *
first_source_frame(const struct site *s)
{
	if (!s)
		return NULL;
	for (unsigned i = 0; i < s->nframes; i++)
		if (s->frames[i].file && !s->frames[i].system)
			return &s->frames[i];
	for (unsigned i = 0; i < s->nframes; i++)
		if (s->frames[i].file)
			return &s->frames[i];
	return s->nframes ? &s->frames[0] : NULL;
}

static void
put_place(FILE *f, const struct model_frame *fr)
{
	if (!fr)
		fprintf(f, "an unknown place");
	else if (fr->file)
		fprintf(f, "%s:%d in %s", fr->file, fr->line, fr->func ? fr->func : "??");
	else
		fprintf(f, "%s+0x%" PRIx64 " in %s", fr->module ? fr->module : "?", fr->offset,
			fr->func ? fr->func : "??");
}

static void
headline(FILE *f, const struct report *r)
{
	const struct model_frame *where = first_source_frame(r->backtrace);

	fprintf(f, "aviso-trace: ");
	if (strcmp(r->kind, "signal") == 0)
		fprintf(f, "%s in thread %u at ", signal_name(r->signal), r->th->index);
	else if (strcmp(r->kind, "exit") == 0)
		fprintf(f, "exit status %d in thread %u at ", r->exit_code, r->th->index);
	else if (strcmp(r->kind, "hang") == 0)
		fprintf(f, "hang: no thread made progress; thread %u last at ", r->th->index);
	else
		fprintf(f, "deadlock of %u threads; thread %u waits at ", r->ncycle, r->th->index);
	put_place(f, where);
	fputc('\n', f);
}

static void
put_frames(FILE *f, const struct site *s, const char *indent)
{
	for (unsigned i = 0; s && i < s->nframes; i++) {
		const struct model_frame *fr = &s->frames[i];
		char place[512];

		if (fr->file)
			snprintf(place, sizeof(place), "%s:%d %s", fr->file, fr->line,
				 fr->func ? fr->func : "??");
		else
			snprintf(place, sizeof(place), "%s", fr->func ? fr->func : "??");
		fprintf(f, "%s#%-2u %-40s %s+0x%" PRIx64 "\n", indent, i, place,
			fr->module ? fr->module : "?", fr->offset);
	}
}

static void
put_cycle(FILE *f, const struct report *r)
{
	for (unsigned i = 0; i < r->ncycle; i++) {
		const struct report_cycle *c = &r->cycle[i];
		const struct model_frame *w = first_source_frame(c->waits_at);
		const struct model_frame *tk = first_source_frame(c->taken_at);

		fprintf(f, "  thread %u waits for mutex 0x%" PRIx64 " at ", c->th->index, c->waits_for);
		put_place(f, w);
		fprintf(f, ",\n    held by thread %u, which took it at ", c->owner->index);
		put_place(f, tk);
		fputc('\n', f);
	}
}

/* One cell: "kind file:line", cut to the column. */
static void
cell(char *buf, size_t size, const struct rpb_entry *e)
{
	const char *where = e->site && e->site->where ? e->site->where : e->site ? e->site->str : "?";
	char kind[24];

	if (e->kind == MODEL_EV_SIGNAL)
		snprintf(kind, sizeof(kind), "%s", signal_name((int)e->object));
	else
		snprintf(kind, sizeof(kind), "%s", model_event_kind_name(e->kind));
	snprintf(buf, size, "%s %s", kind, where);
	if (strlen(buf) >= COLUMN_WIDTH - 1)
		buf[COLUMN_WIDTH - 2] = '\0';
}

static void
put_timeline(FILE *f, const struct rpb_entry *v, size_t n, const struct report *r)
{
	size_t first = n > TIMELINE_EVENTS ? n - TIMELINE_EVENTS : 0;
	uint32_t cols[TIMELINE_COLUMNS];
	unsigned ncols = 0;
	bool others = false;

	/* Columns: the failing thread first, then threads in order of appearance. */
	cols[ncols++] = r->th->index;
	for (size_t i = first; i < n; i++) {
		bool known = false;
		for (unsigned c = 0; c < ncols; c++)
			known |= cols[c] == v[i].thread;
		if (known)
			continue;
		if (ncols < TIMELINE_COLUMNS - 1)
			cols[ncols++] = v[i].thread;
		else
			others = true;
	}
	fprintf(f, "  last %zu events before the failure (one column per thread):\n", n - first);
	fprintf(f, "  %8s", "seq");
	for (unsigned c = 0; c < ncols; c++) {
		char head[32];
		snprintf(head, sizeof(head), "thread %u%s", cols[c], cols[c] == r->th->index ? " *" : "");
		fprintf(f, "  %-*s", COLUMN_WIDTH - 2, head);
	}
	if (others)
		fprintf(f, "  %s", "other threads");
	fputc('\n', f);
	for (size_t i = first; i < n; i++) {
		char text[COLUMN_WIDTH + 32];
		unsigned col = ncols;

		for (unsigned c = 0; c < ncols; c++)
			if (cols[c] == v[i].thread)
				col = c;
		cell(text, sizeof(text), &v[i]);
		fprintf(f, "  %8" PRIu64, v[i].seq);
		for (unsigned c = 0; c < ncols; c++)
			fprintf(f, "  %-*s", COLUMN_WIDTH - 2, c == col ? text : "");
		if (col == ncols)
			fprintf(f, "  [thread %u] %s", v[i].thread, text);
		fputc('\n', f);
	}
}

static const char *
prog_name(const struct report *r)
{
	const struct bp_module *m = r->proc->as ? bp_aspace_main_module(r->proc->as) : NULL;
	return m ? m->name : "program";
}

void
json_put_string(FILE *f, const char *s)
{
	size_t n = model_json_quote(s ? s : "", NULL, 0);
	char *q = malloc(n + 1);

	if (!q)
		return;
	model_json_quote(s ? s : "", q, n + 1);
	fputs(q, f);
	free(q);
}

static void
put_event_json(FILE *f, const struct rpb_entry *e)
{
	struct model_event ev = rpb_event(e);
	size_t n = model_event_format_json_frames(&ev, NULL, 0);
	char *buf = malloc(n + 1);

	if (!buf)
		return;
	model_event_format_json_frames(&ev, buf, n + 1);
	fputs(buf, f);
	free(buf);
}

static void
put_frames_json(FILE *f, const struct site *s)
{
	fputc('[', f);
	for (unsigned i = 0; s && i < s->nframes; i++) {
		const struct model_frame *fr = &s->frames[i];

		fprintf(f, "%s{\"file\":", i ? "," : "");
		if (fr->file)
			json_put_string(f, fr->file);
		else
			fputs("null", f);
		fprintf(f, ",\"line\":%d,\"func\":", fr->line);
		if (fr->func)
			json_put_string(f, fr->func);
		else
			fputs("null", f);
		fputs(",\"module\":", f);
		json_put_string(f, fr->module);
		fprintf(f, ",\"offset\":\"0x%" PRIx64 "\"}", fr->offset);
	}
	fputc(']', f);
}

static void
put_program_json(FILE *f, const struct tracer *t, const struct report *r)
{
	const struct bp_module *m = r->proc->as ? bp_aspace_main_module(r->proc->as) : NULL;

	fputs("{\"path\":", f);
	json_put_string(f, m ? m->path : "");
	fputs(",\"build_id\":", f);
	if (m && m->build_id)
		json_put_string(f, m->build_id);
	else
		fputs("null", f);
	fprintf(f, ",\"pid\":%d,\"argv\":[", r->proc->pid);
	for (char *const *a = t->opt.argv; a && *a; a++) {
		if (a != t->opt.argv)
			fputc(',', f);
		json_put_string(f, *a);
	}
	fputs("]}", f);
}

static void
put_failure_json(FILE *f, const struct report *r)
{
	fputs("{\"kind\":", f);
	json_put_string(f, r->kind);
	if (strcmp(r->kind, "signal") == 0) {
		fputs(",\"signal\":", f);
		json_put_string(f, signal_name(r->signal));
	}
	if (strcmp(r->kind, "exit") == 0)
		fprintf(f, ",\"exit_code\":%d", r->exit_code);
	fprintf(f, ",\"thread\":%u,\"tid\":%d,\"site\":", r->th->index, r->th->tid);
	json_put_string(f, r->backtrace ? r->backtrace->str : "");
	fputs(",\"backtrace\":", f);
	put_frames_json(f, r->backtrace);
	if (r->ncycle) {
		fputs(",\"cycle\":[", f);
		for (unsigned i = 0; i < r->ncycle; i++) {
			const struct report_cycle *c = &r->cycle[i];
			fprintf(f, "%s{\"thread\":%u,\"waits_for\":\"0x%" PRIx64 "\",\"waits_at\":",
				i ? "," : "", c->th->index, c->waits_for);
			put_frames_json(f, c->waits_at);
			fprintf(f, ",\"held_by\":%u,\"taken_at\":", c->owner->index);
			put_frames_json(f, c->taken_at);
			fputc('}', f);
		}
		fputc(']', f);
	}
	fputc('}', f);
}

static int
write_json(const struct tracer *t, const struct report *r, const struct rpb_entry *v, size_t n,
	   char *path, size_t size)
{
	char dir[4096], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	FILE *f;
	int err;

	err = state_dir(t->opt.report_dir, t->opt.report_dir ? NULL : "reports", dir, sizeof(dir));
	if (err < 0)
		return err;
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	snprintf(path, size, "%s/%s-%s-%d.json", dir, prog_name(r), stamp, r->proc->pid);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	fputs("{\"program\":", f);
	put_program_json(f, t, r);
	fputs(",\"failure\":", f);
	put_failure_json(f, r);
	fputs(",\"rpb\":[", f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputs(",\n", f);
		put_event_json(f, &v[i]);
	}
	fputs("]}\n", f);
	err = ferror(f) ? -EIO : 0;
	if (fclose(f) != 0 && !err)
		err = -errno;
	return err;
}

void
report_failure(struct tracer *t, const struct report *r)
{
	struct rpb_entry *v = NULL;
	size_t n = 0, len = 0;
	char path[4096 + 128], *text = NULL;
	FILE *f;
	int err;

	rpb_merge(t, &v, &n);
	t->failures++;
	err = write_json(t, r, v, n, path, sizeof(path));
	f = open_memstream(&text, &len);
	if (!f) {
		free(v);
		return;
	}
	if (t->opt.brief_reports && isatty(STDERR_FILENO))
		fputs("\r\033[K", f); /* over the series' progress line */
	headline(f, r);
	if (t->opt.brief_reports) /* one line, and where the whole report is */
		goto tail;
	if (r->ncycle)
		put_cycle(f, r);
	if (r->backtrace) {
		fprintf(f, "  %s of thread %u (tid %d):\n",
			strcmp(r->kind, "signal") == 0 || strcmp(r->kind, "exit") == 0
				? "backtrace"
				: "last call site",
			r->th->index, r->th->tid);
		put_frames(f, r->backtrace, "    ");
	}
	put_timeline(f, v, n, r);
tail:
	if (err < 0)
		fprintf(f, "aviso-trace: cannot write the report: %s\n", strerror(-err));
	else
		fprintf(f, "aviso-trace: report: %s\n", path);
	fclose(f);
	(void)!write(STDERR_FILENO, text, len);
	free(text);
	if (!t->failure_rpb) { /* the run's outcome: kept for the model */
		t->failure_rpb = v;
		t->failure_rpb_n = n;
	} else {
		free(v);
	}
}
