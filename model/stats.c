/*
 * The statistics of AVISO.md sections 4 and 5 as pure functions: ordering and co-occurrence
 * invariance, failure correlation, the paper's feedback weight, the 2x2 chi-square test and the
 * baseline's confidence. No state, no I/O: the unit tests check them on hand-computed values.
 */
#include <math.h>

#include "model/internal.h"

double
model_stat_oi(uint64_t f_ab, uint64_t f_ba)
{
	/* One pseudo-count each way (0.5 when both are 0, as AVISO.md has it): the rank is a
	 * prior, not a veto. Under a tracer an event is a call's entry and its effect comes
	 * later, so correct runs show "racy-looking" orders of a culprit that did no harm, and
	 * a plain f(A,B) / (f(A,B) + f(B,A)) of 0 would keep it from ever being tried. */
	return ((double)f_ab + 1.0) / ((double)(f_ab + f_ba) + 2.0);
}

double
model_stat_rank(double oi, double ci, double fc)
{
	return (RANK_OI_FLOOR + (1.0 - RANK_OI_FLOOR) * oi) * ci * fc;
}

double
model_stat_ci(uint64_t f_ba, uint64_t row_b, uint64_t col_a)
{
	/* sum_{y != A} f(B,y) = row(B) - f(B,A); sum_{x != B} f(x,A) = col(A) - f(B,A). The sums
	 * come from the same counts, so they are never below f(B,A); guard anyway. */
	uint64_t others_b = row_b > f_ba ? row_b - f_ba : 0;
	uint64_t others_a = col_a > f_ba ? col_a - f_ba : 0;
	uint64_t denom = others_b + others_a;

	if (denom == 0)
		return 0.5;
	double ci = 1.0 - (double)f_ba / (double)denom;
	/* The paper's formula goes below 0 when B->A outnumbers every other pair of B and A:
	 * that is the most co-occurring pair there is, so 0. */
	return ci < 0 ? 0 : ci;
}

double
model_stat_fc(uint64_t failing_with, uint64_t class_failures)
{
	if (class_failures == 0)
		return 0;
	return (double)failing_with / (double)class_failures;
}

double
model_stat_weight_paper(double rank, uint64_t runs, uint64_t failures)
{
	if (runs == 0)
		return rank;
	double fr = (double)failures / (double)runs;
	return rank * exp(8.0 * (1.0 - fr) - 0.7) + 0.001;
}

double
model_stat_chi2(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
	double r1 = (double)(a + b), r2 = (double)(c + d);
	double c1 = (double)(a + c), c2 = (double)(b + d);
	double n = r1 + r2;

	if (r1 == 0 || r2 == 0 || c1 == 0 || c2 == 0)
		return 0;
	double det = (double)a * (double)d - (double)b * (double)c;
	return n * det * det / (r1 * r2 * c1 * c2);
}

bool
model_stat_effective(uint64_t base_runs, uint64_t base_fail, uint64_t runs, uint64_t fail,
		     double *ret_chi2)
{
	double chi2 = model_stat_chi2(base_fail, base_runs - base_fail, fail, runs - fail);

	if (ret_chi2)
		*ret_chi2 = chi2;
	if (runs == 0 || base_runs == 0)
		return false;
	/* rate < base rate, compared without division: fail/runs < base_fail/base_runs. */
	bool lower = (double)fail * (double)base_runs < (double)base_fail * (double)runs;
	return chi2 > 3.84 && lower;
}

bool
model_stat_decisive(uint64_t base_runs, uint64_t base_fail, uint64_t runs, uint64_t fail)
{
	double chi2 = model_stat_chi2(base_fail, base_runs - base_fail, fail, runs - fail);

	return runs && base_runs && chi2 > SELECT_DECISIVE_CHI2 &&
	       2.0 * (double)fail * (double)base_runs <= (double)base_fail * (double)runs;
}

bool
model_stat_baseline_known(uint64_t runs, uint64_t failures)
{
	const double z = 2.0, half = 0.05;
	double n = (double)runs + z * z;
	double p = ((double)failures + z * z / 2) / n;

	return z * sqrt(p * (1 - p) / n) <= half;
}
