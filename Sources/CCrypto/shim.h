// OpenSSL's libcrypto (Debian libssl-dev): SHA-256 digests and HMAC tags.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
