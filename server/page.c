/*
 * The /stats page (AVISO.md section 6): per program the baseline and constrained failure
 * rates, a chart of cumulative failures over runs (inline SVG, no JavaScript), and per class
 * the contenders apart and the constraints by weight. Every string that came from a report is
 * escaped; the page refreshes itself.
 */
#include <errno.h>
#include <inttypes.h>

#include "server/buf.h"
#include "server/internal.h"

/* Why 30: the page is read by a person; the JSON at /api/stats has every constraint. */
#define PAGE_TOP_CONSTRAINTS 30

#define SVG_W 640
#define SVG_H 260
#define SVG_PAD 44

static const char style[] = "body{font-family:sans-serif;margin:1.5em;color:#222}"
			    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
			    "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}"
			    "th{background:#eee}td.n{text-align:right}"
			    "code{font-size:90%}.c{background:#e6f6e6}";

/* A site as the page shows it: its symbolized form when known, else the raw site. */
static void
site_html(struct buf *b, const char *site, const char *where)
{
	buf_puts(b, "<code title=\"");
	buf_html(b, site);
	buf_puts(b, "\">");
	buf_html(b, where && where[0] ? where : site);
	buf_puts(b, "</code>");
}

static void
polyline(struct buf *b, const struct model_curve *c, double xmax, double ymax, const char *color)
{
	double w = SVG_W - 2 * SVG_PAD, h = SVG_H - 2 * SVG_PAD;

	buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%d,%d",
		   color, SVG_PAD, SVG_H - SVG_PAD);
	for (size_t i = 0; i < c->n; i++)
		buf_printf(b, " %.1f,%.1f", SVG_PAD + w * (double)c->x[i] / xmax,
			   SVG_H - SVG_PAD - h * (double)c->y[i] / ymax);
	buf_puts(b, "\"/>");
}

static uint64_t
last(const struct model_curve *c, const uint64_t *v)
{
	return c->n ? v[c->n - 1] : 0;
}

/* Cumulative failures against runs, each group over its own runs (the slopes are the rates). */
static void
chart(struct buf *b, const struct model_program_stats *ps)
{
	const struct model_curve *bc = &ps->baseline_curve, *cc = &ps->constrained_curve;
	uint64_t xm = last(bc, bc->x) > last(cc, cc->x) ? last(bc, bc->x) : last(cc, cc->x);
	uint64_t ym = last(bc, bc->y) > last(cc, cc->y) ? last(bc, bc->y) : last(cc, cc->y);
	double xmax = xm ? (double)xm : 1, ymax = ym ? (double)ym : 1;

	buf_printf(b,
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		   "role=\"img\" aria-label=\"cumulative failures over runs\">",
		   SVG_W, SVG_H);
	buf_printf(b,
		   "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fafafa\" "
		   "stroke=\"#999\"/>",
		   SVG_PAD, SVG_PAD, SVG_W - 2 * SVG_PAD, SVG_H - 2 * SVG_PAD);
	polyline(b, bc, xmax, ymax, "#c0392b");
	polyline(b, cc, xmax, ymax, "#2471a3");
	buf_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"12\">0</text>", SVG_PAD - 12,
		   SVG_H - SVG_PAD + 4);
	buf_printf(
	    b, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\">%" PRIu64 "</text>",
	    SVG_PAD - 4, SVG_PAD + 4, ym);
	buf_printf(b,
		   "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\">%" PRIu64
		   " runs</text>",
		   SVG_W - SVG_PAD, SVG_H - SVG_PAD + 16, xm);
	buf_printf(b, "<text x=\"%d\" y=\"%d\" font-size=\"12\">cumulative failures</text>", 4,
		   SVG_PAD - 10);
	buf_printf(b,
		   "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#c0392b\">baseline (no "
		   "constraint)</text>",
		   SVG_PAD + 10, SVG_H - 10);
	buf_printf(b,
		   "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#2471a3\">with "
		   "constraints</text>",
		   SVG_PAD + 220, SVG_H - 10);
	buf_puts(b, "</svg>");
}

static void
constraint_row(struct buf *b, const struct model_constraint_stats *c)
{
	buf_printf(b, "<tr%s><td>", c->effective ? " class=\"c\"" : "");
	buf_html(b, c->id);
	buf_puts(b, "</td><td>");
	site_html(b, c->b, c->b_where);
	buf_puts(b, " &rarr; ");
	site_html(b, c->a, c->a_where);
	buf_printf(b,
		   "</td><td class=n>%" PRIu64 "</td><td class=n>%" PRIu64
		   "</td><td class=n>%" PRIu64
		   "</td><td class=n>%.3f</td><td class=n>%.2f</td><td class=n>%.4g</td>"
		   "<td class=n>%.3f</td><td class=n>%.2f&middot;%.2f&middot;%.2f</td></tr>",
		   c->runs, c->failures, c->all_failures, c->rate, c->chi2, c->weight, c->rank,
		   c->oi, c->ci, c->fc);
}

static void
table_head(struct buf *b)
{
	buf_puts(b, "<table><tr><th>id</th><th>after B &rarr; delay A</th><th>runs</th>"
		    "<th>failures of the class</th><th>all failures</th><th>rate</th>"
		    "<th>&chi;&sup2;</th><th>weight</th>"
		    "<th>rank</th><th>OI&middot;CI&middot;FC</th></tr>");
}

static void
class_html(struct buf *b, const struct model_class_stats *cs)
{
	size_t contenders = 0;

	for (size_t i = 0; i < cs->n; i++)
		contenders += cs->c[i].effective;
	buf_printf(b,
		   "<h3>Class %" PRIu32 ": %" PRIu64 " failures, %zu sites, %zu constraints"
		   "</h3>",
		   cs->id, cs->failures, cs->n_sites, cs->n);
	buf_printf(b,
		   "<p>Its constraints are judged on their runs' failures of its kind (a residual "
		   "class's kind is its parent's class), against %" PRIu64
		   " such failures in %" PRIu64 " %s (rate %.3f).</p>",
		   cs->base_failures, cs->base_runs,
		   cs->under ? "runs of its parent constraint" : "baseline runs",
		   cs->base_runs ? (double)cs->base_failures / (double)cs->base_runs : 0.0);
	if (cs->under)
		buf_printf(b,
			   "<p>Residual class: failures of runs that loaded constraint %" PRIu32
			   ". Its constraints are loaded on top of that one, and compared with "
			   "its failure rate instead of the baseline's.</p>",
			   cs->under - 1);
	buf_printf(b, "<h4>Contenders (%zu)</h4>", contenders);
	if (contenders) {
		table_head(b);
		for (size_t i = 0; i < cs->n; i++)
			if (cs->c[i].effective)
				constraint_row(b, &cs->c[i]);
		buf_puts(b, "</table>");
	} else {
		buf_puts(b, cs->under ? "<p>None yet: no constraint is significantly below the "
					"failure rate of the one it is loaded on.</p>"
				      : "<p>None yet: no constraint is significantly below the "
					"baseline.</p>");
	}
	size_t shown = cs->n < PAGE_TOP_CONSTRAINTS ? cs->n : PAGE_TOP_CONSTRAINTS;
	buf_printf(b, "<h4>Constraints by weight (%zu of %zu)</h4>", shown, cs->n);
	table_head(b);
	for (size_t i = 0; i < shown; i++)
		constraint_row(b, &cs->c[i]);
	buf_puts(b, "</table>");
}

static void
program_html(struct buf *b, const struct model_program_stats *ps)
{
	buf_puts(b, "<h2>");
	buf_html(b, ps->path[0] ? ps->path : "(no path)");
	buf_puts(b, " <small><code>");
	buf_html(b, ps->id);
	buf_puts(b, "</code></small></h2>");
	buf_printf(b,
		   "<p>Baseline: <b>%" PRIu64 "</b> failures in <b>%" PRIu64 "</b> runs "
		   "(rate %.3f, %s; baseline runs now %.0f%% of runs). With constraints: %" PRIu64 " failures in %" PRIu64
		   " runs (rate %.3f). Runs started %" PRIu64 ", ended %" PRIu64 ", open %" PRIu64
		   "; ticks %" PRIu64 "; correct-run samples %" PRIu64 ".</p>",
		   ps->baseline_failures, ps->baseline_runs, ps->baseline_rate,
		   ps->baseline_known ? "known within &plusmn;5 points" : "not yet known within &plusmn;5 points",
		   100 * ps->baseline_share,
		   ps->constrained_failures, ps->constrained_runs,
		   ps->constrained_runs
		       ? (double)ps->constrained_failures / (double)ps->constrained_runs
		       : 0.0,
		   ps->runs_started, ps->runs_ended, ps->open_runs, ps->ticks, ps->correct_samples);
	chart(b, ps);
	for (size_t k = 0; k < ps->n_classes; k++)
		class_html(b, &ps->classes[k]);
}

int
page_stats_html(const struct model_stats *st, unsigned refresh_s, char **ret_html, size_t *ret_len)
{
	struct buf b = {0};

	buf_printf(&b,
		   "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
		   "<meta http-equiv=\"refresh\" content=\"%u\"><title>aviso-server</title>"
		   "<style>%s</style></head><body><h1>aviso-server</h1>",
		   refresh_s, style);
	buf_printf(&b,
		   "<p>Selector: <code>%s</code>. Contenders (green) are constraints whose "
		   "failure rate is below the baseline's with &chi;&sup2; &gt; 3.84.</p>",
		   model_selector_name(st->selector));
	if (st->n == 0)
		buf_puts(&b, "<p>No program has reported yet.</p>");
	for (size_t p = 0; p < st->n; p++)
		program_html(&b, &st->programs[p]);
	buf_puts(&b, "</body></html>\n");
	*ret_html = buf_take(&b, ret_len);
	return *ret_html ? 0 : -ENOMEM;
}
