/*
 * The model's seeded PRNG: xoshiro256** (Blackman and Vigna), seeded through splitmix64, and the
 * Gamma and Beta draws Thompson sampling needs. Every random choice of the model comes from here,
 * so a seed replays a choice.
 */
#include <math.h>

#include "model/internal.h"

uint64_t
model_prng_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void
model_prng_seed(struct prng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++) {
		seed = model_prng_mix(seed);
		r->s[i] = seed;
	}
	/* An all-zero state would stay zero; splitmix64 cannot give four zeros, but be sure. */
	if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
		r->s[0] = 1;
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t
model_prng_next(struct prng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double
model_prng_unit(struct prng *r)
{
	return (double)(model_prng_next(r) >> 11) * 0x1.0p-53;
}

/* Standard normal by the polar method (one value per call; the second is dropped). */
static double
normal(struct prng *r)
{
	double u, v, s;

	do {
		u = 2.0 * model_prng_unit(r) - 1.0;
		v = 2.0 * model_prng_unit(r) - 1.0;
		s = u * u + v * v;
	} while (s >= 1.0 || s == 0.0);
	return u * sqrt(-2.0 * log(s) / s);
}

double
model_prng_gamma(struct prng *r, double shape)
{
	/* Shape < 1: Gamma(shape) = Gamma(shape + 1) * U^(1/shape). */
	if (shape < 1.0) {
		double u = model_prng_unit(r);
		return model_prng_gamma(r, shape + 1.0) * pow(u > 0 ? u : 0x1.0p-53, 1.0 / shape);
	}
	double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
	for (;;) {
		double x = normal(r), v = 1.0 + c * x;
		if (v <= 0)
			continue;
		v = v * v * v;
		double u = model_prng_unit(r);
		if (u < 1.0 - 0.0331 * x * x * x * x)
			return d * v;
		if (u > 0 && log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
			return d * v;
	}
}

double
model_prng_beta(struct prng *r, double a, double b)
{
	double x = model_prng_gamma(r, a), y = model_prng_gamma(r, b);
	return x + y > 0 ? x / (x + y) : 0.5;
}
