/* keys.c — see include/rebuy/keys.h */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "rebuy/keys.h"

static const char base32[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char base62[] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

bool
keys_random(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* Uniform characters from alphabet: reject bytes that would bias it. */
static bool
random_chars(char *out, size_t n, const char *alphabet, unsigned size)
{
	unsigned char buf[64];
	unsigned limit = 256 - 256 % size;
	size_t have = 0;

	while (have < n) {
		if (!keys_random(buf, sizeof buf))
			return false;
		for (size_t i = 0; i < sizeof buf && have < n; i++)
			if (buf[i] < limit)
				out[have++] = alphabet[buf[i] % size];
	}
	return true;
}

bool
keys_generate(char out[KEYS_LEN + 1])
{
	memcpy(out, "rb_", 3);
	if (!random_chars(out + 3, KEYS_PREFIX_LEN, base32, 32))
		return false;
	out[3 + KEYS_PREFIX_LEN] = '_';
	if (!random_chars(out + 4 + KEYS_PREFIX_LEN, KEYS_SECRET_LEN, base62, 62))
		return false;
	out[KEYS_LEN] = '\0';
	return true;
}

bool
keys_parse(const char *key, char prefix[KEYS_PREFIX_LEN + 1])
{
	if (strlen(key) != KEYS_LEN || strncmp(key, "rb_", 3) != 0 ||
	    key[3 + KEYS_PREFIX_LEN] != '_')
		return false;
	for (size_t i = 3; i < 3 + KEYS_PREFIX_LEN; i++)
		if (!strchr(base32, key[i]) || key[i] == '\0')
			return false;
	for (size_t i = 4 + KEYS_PREFIX_LEN; i < KEYS_LEN; i++)
		if (!strchr(base62, key[i]) || key[i] == '\0')
			return false;
	memcpy(prefix, key + 3, KEYS_PREFIX_LEN);
	prefix[KEYS_PREFIX_LEN] = '\0';
	return true;
}

/* OpenSSL 3 looks the algorithm up on every EVP_sha256() use: do it once */
static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void
keys_sha256_hex(const void *data, size_t len, char out[KEYS_HASH_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int mdlen = 0;

	pthread_once(&sha256_once, sha256_fetch);
	if (!sha256 || !EVP_Digest(data, len, md, &mdlen, sha256, NULL) || mdlen != 32)
		memset(md, 0, sizeof md); /* never matches a stored key hash */
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[KEYS_HASH_HEX] = '\0';
}

void
keys_hash_hex(const char *key, char out[KEYS_HASH_HEX + 1])
{
	keys_sha256_hex(key, strlen(key), out);
}

bool
keys_hash_equal(const char *a, const char *b)
{
	if (strlen(a) != KEYS_HASH_HEX || strlen(b) != KEYS_HASH_HEX)
		return false;
	return CRYPTO_memcmp(a, b, KEYS_HASH_HEX) == 0;
}
