/*
 * The event: one thread reaching an instrumented code point (AVISO.md section 1), and its JSON
 * form, shared by the tracer (which writes it: -o, reports, RPBs) and the model/server (which
 * reads it). Pure: no I/O beyond the caller's buffer.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Kinds, in the order of the list. The names are part of the wire format. */
enum model_event_kind {
	MODEL_EV_MUTEX_LOCK,
	MODEL_EV_MUTEX_TRYLOCK,
	MODEL_EV_MUTEX_TIMEDLOCK,
	MODEL_EV_MUTEX_UNLOCK,
	MODEL_EV_COND_WAIT,
	MODEL_EV_COND_TIMEDWAIT,
	MODEL_EV_COND_SIGNAL,
	MODEL_EV_COND_BROADCAST,
	MODEL_EV_RWLOCK_RDLOCK,
	MODEL_EV_RWLOCK_WRLOCK,
	MODEL_EV_RWLOCK_TRYRDLOCK,
	MODEL_EV_RWLOCK_TRYWRLOCK,
	MODEL_EV_RWLOCK_UNLOCK,
	MODEL_EV_SPIN_LOCK,
	MODEL_EV_SPIN_UNLOCK,
	MODEL_EV_SEM_WAIT,
	MODEL_EV_SEM_TIMEDWAIT,
	MODEL_EV_SEM_POST,
	MODEL_EV_BARRIER_WAIT,
	MODEL_EV_THREAD_CREATE,
	MODEL_EV_THREAD_JOIN,
	MODEL_EV_SIGNAL,
	MODEL_EV_POINT,
	MODEL_EV__COUNT
};

/* One frame of an event's calling context, symbolized (report form). */
struct model_frame {
	const char *module;   /* module name ("prog", "libc.so.6") */
	const char *build_id; /* hex, or NULL */
	uint64_t offset;      /* from the module's base */
	const char *file;     /* source file (basename), or NULL */
	int line;	      /* 0 if unknown */
	const char *func;     /* or NULL */
	bool system;	      /* in a system library: a wildcard when sites are matched */
};

struct model_event {
	uint64_t seq;	/* global sequence number: a total order over all threads */
	uint64_t ns;	/* CLOCK_MONOTONIC, ns */
	uint32_t thread; /* index in creation order, main = 1, never reused in a run */
	int32_t tid;	/* kernel tid */
	int32_t pid;	/* kernel tgid (several when forks are followed) */
	enum model_event_kind kind;
	uint64_t object; /* first argument (mutex, cond, ...) or the signal number; 0 if none */
	const char *site;  /* canonical site string (AVISO.md section 1); never NULL */
	const char *where; /* symbolized "file.c:12 func", or NULL without debug info */
	const struct model_frame *frames; /* written only by the report form; may be NULL */
	unsigned nframes;
};

/* The wire name of @kind ("mutex_lock", ...); "?" for a value out of range. */
const char *model_event_kind_name(enum model_event_kind kind);

/* Parses a wire name. Returns 0, or -EINVAL for an unknown name (*ret_kind untouched). */
int model_event_kind_parse(const char *name, enum model_event_kind *ret_kind);

/*
 * Writes @ev as one JSON object without a newline into @buf (NUL-terminated when @size > 0).
 * Returns the length the full text needs (like snprintf): the output was cut when >= @size.
 */
size_t model_event_format_json(const struct model_event *ev, char *buf, size_t size);

/* The same, with the event's symbolized frames as a "frames" array (failure reports). */
size_t model_event_format_json_frames(const struct model_event *ev, char *buf, size_t size);

/*
 * Appends @s to @buf as a JSON string literal (quotes included), escaping as RFC 8259 requires.
 * Returns the length the literal needs; writes at most @size bytes, NUL-terminated when room.
 */
size_t model_json_quote(const char *s, char *buf, size_t size);
