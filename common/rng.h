/* Seeded random numbers: xoshiro256** seeded through splitmix64. The whole state is the
 * Rng struct, so a checkpoint saves a worker's stream by copying it. Not thread-safe:
 * one Rng per thread. */
#ifndef PSREC_COMMON_RNG_H
#define PSREC_COMMON_RNG_H

#include <stdint.h>

typedef struct Rng {
    uint64_t s[4];
} Rng;

/* Same seed, same stream, on every platform. */
void rng_seed(Rng *rng, uint64_t seed);
uint64_t rng_u64(Rng *rng);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t rng_below(Rng *rng, uint64_t n);
/* Uniform double in [0, 1), 53 random bits. */
double rng_uniform(Rng *rng);
/* Standard normal (Box-Muller; one value per call, the pair's twin is discarded for a
 * state that is a pure function of the call count). */
double rng_normal(Rng *rng);
/* splitmix64 step: a good 64-bit mixer, also used to derive seeds and hashes. */
uint64_t rng_mix64(uint64_t x);

#endif
