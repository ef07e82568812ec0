/*
 * keys.h — API key material: generation, parsing, hashing.
 *
 * A key reads rb_<prefix>_<secret>: an 8-character base32 prefix that
 * names the key (stored in clear, shown in listings) and a 43-character
 * base62 secret (~256 bits).  Only SHA-256 of the whole key is stored;
 * because the secret is long and random, a fast hash is enough (there is
 * nothing to brute-force), and comparison is constant-time.
 */
#ifndef REBUY_KEYS_H
#define REBUY_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#define KEYS_PREFIX_LEN 8
#define KEYS_SECRET_LEN 43
/* "rb_" + prefix + "_" + secret */
#define KEYS_LEN (3 + KEYS_PREFIX_LEN + 1 + KEYS_SECRET_LEN)
#define KEYS_HASH_HEX 64

/* Fill out (KEYS_LEN + 1 bytes) with a new random key. */
bool keys_generate(char out[KEYS_LEN + 1]) __attribute__((warn_unused_result));

/*
 * Check the shape of a presented key and copy its prefix
 * (KEYS_PREFIX_LEN + 1 bytes).  False if it is not a well-formed key.
 */
bool keys_parse(const char *key, char prefix[KEYS_PREFIX_LEN + 1]);

/* Lowercase hex SHA-256 of the whole key. */
void keys_hash_hex(const char *key, char out[KEYS_HASH_HEX + 1]);

/* Constant-time comparison of two hex digests of KEYS_HASH_HEX chars. */
bool keys_hash_equal(const char *a, const char *b);

/* Lowercase hex SHA-256 of arbitrary bytes, for request fingerprints. */
void keys_sha256_hex(const void *data, size_t len, char out[KEYS_HASH_HEX + 1]);

/* Random bytes from the kernel; false if unavailable. */
bool keys_random(void *buf, size_t len) __attribute__((warn_unused_result));

#endif
