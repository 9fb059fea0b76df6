/*
 * A growable text buffer for the server's answers (HTML, Prometheus text), with the escapes
 * each needs. Out of memory is sticky: buf_take() then returns NULL.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

__attribute__((format(printf, 2, 3))) void buf_printf(struct buf *b, const char *fmt, ...);
void buf_puts(struct buf *b, const char *s);
/* Appends @s with & < > " ' escaped for HTML text and attribute values. */
void buf_html(struct buf *b, const char *s);
/* Appends @s escaped for a Prometheus label value (\\, \", \n). */
void buf_label(struct buf *b, const char *s);
/* Hands the text over (malloc'd, NUL-terminated, *ret_len without the NUL); NULL after OOM,
 * the buffer freed either way. */
char *buf_take(struct buf *b, size_t *ret_len);
