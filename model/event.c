/*
 * Event kinds and the event's JSON line (see event.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "model/event.h"

static const char *const kind_names[MODEL_EV__COUNT] = {
	[MODEL_EV_MUTEX_LOCK] = "mutex_lock",
	[MODEL_EV_MUTEX_TRYLOCK] = "mutex_trylock",
	[MODEL_EV_MUTEX_TIMEDLOCK] = "mutex_timedlock",
	[MODEL_EV_MUTEX_UNLOCK] = "mutex_unlock",
	[MODEL_EV_COND_WAIT] = "cond_wait",
	[MODEL_EV_COND_TIMEDWAIT] = "cond_timedwait",
	[MODEL_EV_COND_SIGNAL] = "cond_signal",
	[MODEL_EV_COND_BROADCAST] = "cond_broadcast",
	[MODEL_EV_RWLOCK_RDLOCK] = "rwlock_rdlock",
	[MODEL_EV_RWLOCK_WRLOCK] = "rwlock_wrlock",
	[MODEL_EV_RWLOCK_TRYRDLOCK] = "rwlock_tryrdlock",
	[MODEL_EV_RWLOCK_TRYWRLOCK] = "rwlock_trywrlock",
	[MODEL_EV_RWLOCK_UNLOCK] = "rwlock_unlock",
	[MODEL_EV_SPIN_LOCK] = "spin_lock",
	[MODEL_EV_SPIN_UNLOCK] = "spin_unlock",
	[MODEL_EV_SEM_WAIT] = "sem_wait",
	[MODEL_EV_SEM_TIMEDWAIT] = "sem_timedwait",
	[MODEL_EV_SEM_POST] = "sem_post",
	[MODEL_EV_BARRIER_WAIT] = "barrier_wait",
	[MODEL_EV_THREAD_CREATE] = "thread_create",
	[MODEL_EV_THREAD_JOIN] = "thread_join",
	[MODEL_EV_SIGNAL] = "signal",
	[MODEL_EV_POINT] = "point",
};

const char *
model_event_kind_name(enum model_event_kind kind)
{
	if ((unsigned)kind >= MODEL_EV__COUNT)
		return "?";
	return kind_names[kind];
}

int
model_event_kind_parse(const char *name, enum model_event_kind *ret_kind)
{
	for (unsigned i = 0; i < MODEL_EV__COUNT; i++) {
		if (strcmp(kind_names[i], name) == 0) {
			*ret_kind = (enum model_event_kind)i;
			return 0;
		}
	}
	return -EINVAL;
}

size_t
model_json_quote(const char *s, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

/* Writes one byte if it fits, always counts it; the NUL is placed at the end. */
#define PUT(c)                                                                                     \
	do {                                                                                       \
		if (n + 1 < size)                                                                  \
			buf[n] = (char)(c);                                                        \
		n++;                                                                               \
	} while (0)

	PUT('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			PUT('\\');
			PUT('"');
			break;
		case '\\':
			PUT('\\');
			PUT('\\');
			break;
		case '\n':
			PUT('\\');
			PUT('n');
			break;
		case '\t':
			PUT('\\');
			PUT('t');
			break;
		case '\r':
			PUT('\\');
			PUT('r');
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				PUT('\\');
				PUT('u');
				PUT('0');
				PUT('0');
				PUT(hex[*p >> 4]);
				PUT(hex[*p & 15]);
			} else {
				PUT(*p);
			}
		}
	}
	PUT('"');
#undef PUT
	if (size > 0)
		buf[n < size ? n : size - 1] = '\0';
	return n;
}

/* Appends formatted text at buf + n while there is room; always counts its full length. */
static size_t __attribute__((format(printf, 4, 5)))
append(char *buf, size_t size, size_t n, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(n < size ? buf + n : NULL, n < size ? size - n : 0, fmt, ap);
	va_end(ap);
	return n + (size_t)(r > 0 ? r : 0);
}

static size_t
append_quoted(char *buf, size_t size, size_t n, const char *s)
{
	return n + model_json_quote(s, n < size ? buf + n : NULL, n < size ? size - n : 0);
}

static size_t
format_frames(const struct model_event *ev, char *buf, size_t size, size_t n)
{
	n = append(buf, size, n, ",\"frames\":[");
	for (unsigned i = 0; i < ev->nframes; i++) {
		const struct model_frame *f = &ev->frames[i];

		n = append(buf, size, n, "%s{\"module\":", i ? "," : "");
		n = append_quoted(buf, size, n, f->module ? f->module : "?");
		if (f->build_id) {
			n = append(buf, size, n, ",\"build_id\":");
			n = append_quoted(buf, size, n, f->build_id);
		}
		n = append(buf, size, n, ",\"offset\":\"0x%" PRIx64 "\"", f->offset);
		if (f->file) {
			n = append(buf, size, n, ",\"file\":");
			n = append_quoted(buf, size, n, f->file);
			n = append(buf, size, n, ",\"line\":%d", f->line);
		}
		if (f->func) {
			n = append(buf, size, n, ",\"func\":");
			n = append_quoted(buf, size, n, f->func);
		}
		n = append(buf, size, n, ",\"system\":%s}", f->system ? "true" : "false");
	}
	return append(buf, size, n, "]");
}

static size_t
format(const struct model_event *ev, char *buf, size_t size, bool frames)
{
	size_t n = 0;

	n = append(buf, size, n,
		   "{\"seq\":%" PRIu64 ",\"ns\":%" PRIu64 ",\"thread\":%" PRIu32 ",\"tid\":%" PRId32
		   ",\"pid\":%" PRId32 ",\"kind\":\"%s\",\"site\":",
		   ev->seq, ev->ns, ev->thread, ev->tid, ev->pid, model_event_kind_name(ev->kind));
	n = append_quoted(buf, size, n, ev->site);
	if (ev->where) {
		n = append(buf, size, n, ",\"where\":");
		n = append_quoted(buf, size, n, ev->where);
	}
	n = append(buf, size, n, ",\"object\":\"0x%" PRIx64 "\"", ev->object);
	if (frames && ev->nframes)
		n = format_frames(ev, buf, size, n);
	n = append(buf, size, n, "}");
	if (size > 0 && n >= size)
		buf[size - 1] = '\0';
	return n;
}

size_t
model_event_format_json(const struct model_event *ev, char *buf, size_t size)
{
	return format(ev, buf, size, false);
}

size_t
model_event_format_json_frames(const struct model_event *ev, char *buf, size_t size)
{
	return format(ev, buf, size, true);
}
