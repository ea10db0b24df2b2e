#ifndef COFFER_BLAKE2B_LANES_H
#define COFFER_BLAKE2B_LANES_H

#include <stddef.h>
#include <stdint.h>

/// One message to hash: `length` bytes at `data`, 32-byte digest written to `out`.
typedef struct {
    const uint8_t *data;
    size_t length;
    uint8_t *out;
} coffer_hash_job;

/// Keyed BLAKE2b-256 (RFC 7693; a key of 0...64 bytes) of every job's message, byte for
/// byte what a one-message BLAKE2b gives. Where the CPU has AVX2, four messages run at once,
/// one per 64-bit lane of the vector registers; otherwise, and for a single job, one at a
/// time. Returns 0, or -1 (nothing hashed) for a longer key.
int coffer_blake2b256_many(coffer_hash_job *jobs, size_t count, const uint8_t *key, size_t key_length);

/// Messages hashed at once by `coffer_blake2b256_many` on this CPU (4 with AVX2, else 1).
int coffer_blake2b_lanes(void);

/// Kernels, for tests and benchmarks that compare them.
enum { COFFER_BLAKE2B_SERIAL = 0, COFFER_BLAKE2B_AVX2 = 1, COFFER_BLAKE2B_AVX512VL = 2 };

/// `coffer_blake2b256_many` through one kernel: 0 when done, -1 when this CPU lacks it (or
/// the key is longer than 64 bytes).
int coffer_blake2b256_many_with(int kernel, coffer_hash_job *jobs, size_t count, const uint8_t *key, size_t key_length);

#endif
