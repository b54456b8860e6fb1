/* test_base64.c - RFC 4648 vectors, round trips and strict rejection. */
#include "core/base64.h"

#include "testing.h"

static char *enc(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(cel__base64_encoded_len(n) + 1);
    ASSERT(out != NULL);
    cel__base64_encode((const unsigned char *)s, n, out);
    return out;
}

static void check_vector(const char *plain, const char *coded)
{
    char *e = enc(plain);
    ASSERT_STREQ(e, coded);
    ASSERT_EQ(strlen(e), cel__base64_encoded_len(strlen(plain)));
    free(e);

    size_t n = 12345;
    unsigned char *d = cel__base64_decode(coded, strlen(coded), &n);
    ASSERT(d != NULL);
    ASSERT_EQ(n, strlen(plain));
    ASSERT(memcmp(d, plain, n) == 0);
    ASSERT_EQ(d[n], '\0');
    free(d);
}

static void test_rfc4648_vectors(void)
{
    check_vector("", "");
    check_vector("f", "Zg==");
    check_vector("fo", "Zm8=");
    check_vector("foo", "Zm9v");
    check_vector("foob", "Zm9vYg==");
    check_vector("fooba", "Zm9vYmE=");
    check_vector("foobar", "Zm9vYmFy");
}

static void test_captured_body(void)
{
    /* The body of the captured add.delay(2, 3) message. */
    const char *b64 = "W1syLCAzXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNo"
                      "YWluIjogbnVsbCwgImNob3JkIjogbnVsbH1d";
    size_t n;
    unsigned char *d = cel__base64_decode(b64, strlen(b64), &n);
    ASSERT(d != NULL);
    ASSERT_STREQ((char *)d, "[[2, 3], {}, {\"callbacks\": null, \"errbacks\": null, \"chain\": "
                            "null, \"chord\": null}]");
    ASSERT_EQ(n, strlen((char *)d));
    char *again = enc((char *)d);
    ASSERT_STREQ(again, b64);
    free(again);
    free(d);
}

static void test_round_trip_all_bytes(void)
{
    unsigned char in[300];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof in; i++) {
        x = x * 1103515245u + 12345u;
        in[i] = (unsigned char)(x >> 16);
    }
    in[0] = 0;
    in[1] = 0xff;
    for (size_t len = 0; len <= sizeof in; len++) {
        char *e = malloc(cel__base64_encoded_len(len) + 1);
        ASSERT(e != NULL);
        cel__base64_encode(in, len, e);
        ASSERT_EQ(strlen(e), cel__base64_encoded_len(len));
        size_t n;
        unsigned char *d = cel__base64_decode(e, strlen(e), &n);
        ASSERT(d != NULL);
        ASSERT_EQ(n, len);
        ASSERT(len == 0 || memcmp(d, in, len) == 0);
        free(d);
        free(e);
    }
}

static void test_rejects_malformed(void)
{
    static const char *bad[] = {
        "Zg",       /* missing padding: Python refuses it too */
        "Zg=",      /* short padding */
        "Zm9v\n",   /* whitespace */
        "Zm 9v",    /* whitespace inside */
        "Zm9v!A==", /* outside the alphabet */
        "Z===",     /* three pad characters */
        "====",     /* nothing but padding */
        "Zg==Zg==", /* padding in the middle */
        "Zm=v",     /* pad followed by data */
        "Zm9-",     /* URL-safe alphabet is not ours */
        "Zm9_",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = 777;
        unsigned char *d = cel__base64_decode(bad[i], strlen(bad[i]), &n);
        if (d != NULL)
            cel_test_fail(__FILE__, __LINE__, "accepted malformed base64 \"%s\"", bad[i]);
        ASSERT_EQ(n, 777); /* untouched on failure */
    }
    /* an embedded NUL is not alphabet either */
    ASSERT(cel__base64_decode("Zm\0v", 4, NULL) == NULL);
}

static void test_length_arg_is_respected(void)
{
    /* Only n bytes are read: the decoder never runs to a NUL. */
    size_t n;
    unsigned char *d = cel__base64_decode("Zm9vYmFyGARBAGE", 8, &n);
    ASSERT(d != NULL);
    ASSERT_EQ(n, 6);
    ASSERT_STREQ((char *)d, "foobar");
    free(d);
}

int main(void)
{
    TEST_RUN(test_rfc4648_vectors);
    TEST_RUN(test_captured_body);
    TEST_RUN(test_round_trip_all_bytes);
    TEST_RUN(test_rejects_malformed);
    TEST_RUN(test_length_arg_is_respected);
    return 0;
}
