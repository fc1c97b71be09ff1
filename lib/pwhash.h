/*
 * pwhash.h - password hashing for pool users.
 *
 * PBKDF2-HMAC-SHA256 (OpenSSL), a random 16-byte salt, stored as
 *   "pbkdf2-sha256$ITERATIONS$SALT_BASE64$HASH_BASE64"
 * so the cost can be raised later without breaking stored hashes.
 * Verification compares in constant time.
 */
#ifndef PWHASH_H
#define PWHASH_H

#include <stdbool.h>
#include <stddef.h>

#define PWHASH_DEFAULT_ITERATIONS 200000

/* Hash password into a malloc'ed string; NULL on failure. */
char *pwhash_make(const char *password, unsigned iterations);
/* true when password matches the stored string; false for a mismatch or a
 * malformed stored string. */
bool pwhash_verify(const char *password, const char *stored);

#endif
