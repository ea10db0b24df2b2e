// Keyed BLAKE2b-256 of several messages at once: four independent BLAKE2b instances, one per
// 64-bit lane of AVX2 registers, run the compression function in lockstep. A lane whose
// message ends takes the next message, so lanes stay busy until the last few blocks. Each
// lane computes exactly RFC 7693's BLAKE2b (the tests compare every length class with
// libsodium's and libb2's); nothing here changes a digest, only how many are made per
// instruction. libsodium's single-message BLAKE2b is the fallback.
//
// This is the one file with vector intrinsics. Everything else stays in Swift.

#include "blake2b_lanes.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define COFFER_HAVE_X86_LANES 1
#include <immintrin.h>
#endif

static const uint64_t IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static void hash_one(coffer_hash_job *job, const uint8_t *key, size_t key_length) {
    crypto_generichash(job->out, 32, job->data, job->length, key_length ? key : NULL, key_length);
}

static void hash_serially(coffer_hash_job *jobs, size_t count, const uint8_t *key, size_t key_length) {
    for (size_t i = 0; i < count; i++) hash_one(&jobs[i], key, key_length);
}

#ifdef COFFER_HAVE_X86_LANES

static const uint8_t SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

#define LANES 4
#define BLOCK 128

// The chaining values of four instances, word i of lane j at h[i][j], and what each lane is
// hashing. Kept in memory between compressions; loaded into registers for each one.
typedef struct {
    uint64_t h[8][LANES] __attribute__((aligned(32)));
    uint64_t t[LANES] __attribute__((aligned(32)));       // bytes compressed so far, this block included
    uint64_t f[LANES] __attribute__((aligned(32)));       // all ones for a message's last block
    const uint8_t *next[LANES];                          // where the lane's next block starts
    size_t left[LANES];                                  // message bytes not yet compressed
    int key_pending[LANES];                              // the key block comes first
    coffer_hash_job *job[LANES];                         // NULL for an idle lane
    uint8_t tail[LANES][BLOCK] __attribute__((aligned(32)));  // a last partial block, zero-padded
} lanes_state;

// The four-lane compression, defined twice: with AVX2 shuffles for the rotations, and with
// AVX-512VL's rotate instruction. The ROTR macros in force where it is defined pick which.
#define DEFINE_COMPRESS(NAME, TARGET)                                                                      \
    __attribute__((target(TARGET))) static void NAME(lanes_state *s, const uint8_t *const block[LANES]) { \
        const __m256i rot24 = _mm256_setr_epi8(3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10,     \
                                               3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10);    \
        const __m256i rot16 = _mm256_setr_epi8(2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9,     \
                                               2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9);    \
        (void)rot24; (void)rot16;                                                                        \
        __m256i m[16];                                                                                   \
        for (int k = 0; k < 4; k++) {                                                                    \
            __m256i r0 = _mm256_loadu_si256((const __m256i *)(block[0] + 32 * k));                       \
            __m256i r1 = _mm256_loadu_si256((const __m256i *)(block[1] + 32 * k));                       \
            __m256i r2 = _mm256_loadu_si256((const __m256i *)(block[2] + 32 * k));                       \
            __m256i r3 = _mm256_loadu_si256((const __m256i *)(block[3] + 32 * k));                       \
            __m256i t0 = _mm256_unpacklo_epi64(r0, r1), t1 = _mm256_unpackhi_epi64(r0, r1);              \
            __m256i t2 = _mm256_unpacklo_epi64(r2, r3), t3 = _mm256_unpackhi_epi64(r2, r3);              \
            m[4 * k + 0] = _mm256_permute2x128_si256(t0, t2, 0x20);                                     \
            m[4 * k + 1] = _mm256_permute2x128_si256(t1, t3, 0x20);                                     \
            m[4 * k + 2] = _mm256_permute2x128_si256(t0, t2, 0x31);                                     \
            m[4 * k + 3] = _mm256_permute2x128_si256(t1, t3, 0x31);                                     \
        }                                                                                                \
        __m256i v[16];                                                                                   \
        for (int i = 0; i < 8; i++) v[i] = _mm256_load_si256((const __m256i *)s->h[i]);                  \
        for (int i = 0; i < 4; i++) v[8 + i] = _mm256_set1_epi64x((long long)IV[i]);                      \
        v[12] = _mm256_xor_si256(_mm256_set1_epi64x((long long)IV[4]), _mm256_load_si256((const __m256i *)s->t)); \
        v[13] = _mm256_set1_epi64x((long long)IV[5]); /* the counter's high word: messages < 2^64 bytes */ \
        v[14] = _mm256_xor_si256(_mm256_set1_epi64x((long long)IV[6]), _mm256_load_si256((const __m256i *)s->f)); \
        v[15] = _mm256_set1_epi64x((long long)IV[7]); /* f1: not a tree's last node */                   \
        for (int r = 0; r < 12; r++) {                                                                   \
            const uint8_t *z = SIGMA[r];                                                                 \
            G(0, 4, 8, 12, z[0], z[1]); G(1, 5, 9, 13, z[2], z[3]);                                      \
            G(2, 6, 10, 14, z[4], z[5]); G(3, 7, 11, 15, z[6], z[7]);                                    \
            G(0, 5, 10, 15, z[8], z[9]); G(1, 6, 11, 12, z[10], z[11]);                                  \
            G(2, 7, 8, 13, z[12], z[13]); G(3, 4, 9, 14, z[14], z[15]);                                  \
        }                                                                                                \
        for (int i = 0; i < 8; i++) {                                                                    \
            __m256i h = _mm256_load_si256((const __m256i *)s->h[i]);                                     \
            _mm256_store_si256((__m256i *)s->h[i], _mm256_xor_si256(h, _mm256_xor_si256(v[i], v[i + 8]))); \
        }                                                                                                \
    }

#define G(a, b, c, d, x, y)                                                   \
    do {                                                                      \
        v[a] = _mm256_add_epi64(_mm256_add_epi64(v[a], v[b]), m[x]);          \
        v[d] = ROTR32(_mm256_xor_si256(v[d], v[a]));                          \
        v[c] = _mm256_add_epi64(v[c], v[d]);                                  \
        v[b] = ROTR24(_mm256_xor_si256(v[b], v[c]));                          \
        v[a] = _mm256_add_epi64(_mm256_add_epi64(v[a], v[b]), m[y]);          \
        v[d] = ROTR16(_mm256_xor_si256(v[d], v[a]));                          \
        v[c] = _mm256_add_epi64(v[c], v[d]);                                  \
        v[b] = ROTR63(_mm256_xor_si256(v[b], v[c]));                          \
    } while (0)

#define AVX2_ROTR32(x) _mm256_shuffle_epi32((x), _MM_SHUFFLE(2, 3, 0, 1))
#define AVX2_ROTR24(x) _mm256_shuffle_epi8((x), rot24)
#define AVX2_ROTR16(x) _mm256_shuffle_epi8((x), rot16)
#define AVX2_ROTR63(x) _mm256_xor_si256(_mm256_srli_epi64((x), 63), _mm256_add_epi64((x), (x)))
#define VL_ROTR32(x) _mm256_ror_epi64((x), 32)
#define VL_ROTR24(x) _mm256_ror_epi64((x), 24)
#define VL_ROTR16(x) _mm256_ror_epi64((x), 16)
#define VL_ROTR63(x) _mm256_ror_epi64((x), 63)

#define ROTR32 AVX2_ROTR32
#define ROTR24 AVX2_ROTR24
#define ROTR16 AVX2_ROTR16
#define ROTR63 AVX2_ROTR63
DEFINE_COMPRESS(compress_avx2, "avx2")
#undef ROTR32
#undef ROTR24
#undef ROTR16
#undef ROTR63
#define ROTR32 VL_ROTR32
#define ROTR24 VL_ROTR24
#define ROTR16 VL_ROTR16
#define ROTR63 VL_ROTR63
DEFINE_COMPRESS(compress_avx512vl, "avx2,avx512f,avx512vl")
#undef ROTR32
#undef ROTR24
#undef ROTR16
#undef ROTR63

typedef void (*compress_fn)(lanes_state *, const uint8_t *const[LANES]);

// Puts the next job into lane j: a fresh chaining value for BLAKE2b-256 with this key length.
static void start_lane(lanes_state *s, int j, coffer_hash_job *job, size_t key_length) {
    s->job[j] = job;
    for (int i = 0; i < 8; i++) s->h[i][j] = IV[i];
    s->h[0][j] ^= 0x01010000ULL ^ ((uint64_t)key_length << 8) ^ 32;
    s->t[j] = 0;
    s->next[j] = job->data;
    s->left[j] = job->length;
    s->key_pending[j] = key_length > 0;
}

static void finish_lane(lanes_state *s, int j) {
    uint8_t *out = s->job[j]->out;
    for (int i = 0; i < 4; i++) {
        uint64_t w = s->h[i][j];
        for (int b = 0; b < 8; b++) out[8 * i + b] = (uint8_t)(w >> (8 * b));
    }
    s->job[j] = NULL;
}

typedef struct {
    size_t length;
    size_t index;
} by_length;

static int longer_first(const void *a, const void *b) {
    size_t x = ((const by_length *)a)->length, y = ((const by_length *)b)->length;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void hash_in_lanes(compress_fn compress, coffer_hash_job *jobs, size_t count, const uint8_t *key, size_t key_length) {
    // Longest first, so the last lanes to run alone have the least left.
    by_length order_storage[64];
    by_length *order = count <= 64 ? order_storage : malloc(count * sizeof(by_length));
    if (!order) { hash_serially(jobs, count, key, key_length); return; }
    for (size_t i = 0; i < count; i++) order[i] = (by_length){jobs[i].length, i};
    qsort(order, count, sizeof(by_length), longer_first);

    lanes_state s;
    uint8_t key_block[BLOCK] __attribute__((aligned(32)));
    static const uint8_t idle_block[BLOCK] __attribute__((aligned(32)));
    memset(key_block, 0, sizeof key_block);
    if (key_length) memcpy(key_block, key, key_length);
    memset(&s, 0, sizeof s);
    size_t taken = 0;
    for (int j = 0; j < LANES && taken < count; j++) start_lane(&s, j, &jobs[order[taken++].index], key_length);

    for (;;) {
        const uint8_t *block[LANES];
        int active = 0;
        for (int j = 0; j < LANES; j++) {
            s.f[j] = 0;
            if (!s.job[j]) { block[j] = idle_block; continue; }
            active++;
            if (s.key_pending[j]) {
                s.key_pending[j] = 0;
                block[j] = key_block;
                s.t[j] += BLOCK;
                if (s.left[j] == 0) s.f[j] = ~0ULL;
            } else if (s.left[j] > BLOCK) {
                block[j] = s.next[j];
                s.next[j] += BLOCK;
                s.left[j] -= BLOCK;
                s.t[j] += BLOCK;
            } else {  // the last block, possibly short (or empty for an unkeyed empty message)
                memset(s.tail[j], 0, BLOCK);
                if (s.left[j]) memcpy(s.tail[j], s.next[j], s.left[j]);
                block[j] = s.tail[j];
                s.t[j] += s.left[j];
                s.left[j] = 0;
                s.f[j] = ~0ULL;
            }
        }
        if (active == 0) break;
        compress(&s, block);
        for (int j = 0; j < LANES; j++) {
            if (s.job[j] && s.f[j]) {
                finish_lane(&s, j);
                if (taken < count) start_lane(&s, j, &jobs[order[taken++].index], key_length);
            }
        }
    }
    if (order != order_storage) free(order);
    sodium_memzero(key_block, sizeof key_block);
    sodium_memzero(&s, sizeof s);  // chaining values of keyed hashes
    // The compression's spilled message words and state (the key block among them) are
    // in the dead stack below this frame.
    sodium_stackzero(4096);
}

// What the CPU has, found once (pthread_once: any thread may hash first).
static int have_avx2, have_avx512vl;

static void detect_cpu(void) {
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2");
    have_avx512vl = have_avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
}

static compress_fn kernel_named(int kernel) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, detect_cpu);
    switch (kernel) {
    case COFFER_BLAKE2B_AVX2: return have_avx2 ? compress_avx2 : NULL;
    case COFFER_BLAKE2B_AVX512VL: return have_avx512vl ? compress_avx512vl : NULL;
    default: return NULL;
    }
}

static compress_fn best_compress(void) {
    compress_fn f = kernel_named(COFFER_BLAKE2B_AVX512VL);
    return f ? f : kernel_named(COFFER_BLAKE2B_AVX2);
}

#endif  // COFFER_HAVE_X86_LANES

int coffer_blake2b_lanes(void) {
#ifdef COFFER_HAVE_X86_LANES
    return best_compress() ? LANES : 1;
#else
    return 1;
#endif
}

int coffer_blake2b256_many_with(int kernel, coffer_hash_job *jobs, size_t count, const uint8_t *key, size_t key_length) {
    if (key_length > 64) return -1;
    if (kernel == COFFER_BLAKE2B_SERIAL) { hash_serially(jobs, count, key, key_length); return 0; }
#ifdef COFFER_HAVE_X86_LANES
    compress_fn f = kernel_named(kernel);
    if (f) { hash_in_lanes(f, jobs, count, key, key_length); return 0; }
#endif
    return -1;
}

int coffer_blake2b256_many(coffer_hash_job *jobs, size_t count, const uint8_t *key, size_t key_length) {
    if (key_length > 64) return -1;
#ifdef COFFER_HAVE_X86_LANES
    // One message alone runs faster through libsodium than in one lane of four.
    compress_fn f = count >= 2 ? best_compress() : NULL;
    if (f) { hash_in_lanes(f, jobs, count, key, key_length); return 0; }
#endif
    hash_serially(jobs, count, key, key_length);
    return 0;
}
