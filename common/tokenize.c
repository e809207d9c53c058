/* Title tokenizer: a 256-entry byte class table and a cursor walk, nothing else.
 *
 * Invariants: a token is either one punctuation byte or a maximal run of word bytes; the
 * tokenizer never reads outside [s, s+n) and never writes to s. Equivalence with the
 * reference's regex holds for valid UTF-8: every byte of a non-ASCII character is >= 0x80, and
 * every non-ASCII code point matches \u0080-\U0010ffff, so both see the same word runs.
 *
 * It does not validate UTF-8 (invalid bytes >= 0x80 are word bytes too), does not fold
 * non-ASCII case, and does not cut titles to title_len: callers stop iterating. */
#include "common/tokenize.h"

enum { SEP = 0, WORD = 1, PUNCT = 2 };

/* Byte -> class. Uppercase letters are WORD so that unlowered text splits like lowered text. */
static const unsigned char tok_class[256] = {
    /* 0x00..0x1f: control bytes (tab, CR, NUL, ...) */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x20: space ! " # $ % & ' ( ) * + , - . / */
    0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0,
    /* 0x30: 0..9 : ; < = > ? */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 2, 0, 0, 0, 2,
    /* 0x40: @ A..O */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x50: P..Z [ \ ] ^ _ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,
    /* 0x60: ` a..o */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x70: p..z { | } ~ DEL */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 2, 0, 0, 0,
    /* 0x80..0xff: bytes of non-ASCII UTF-8 characters */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

void tokenize_lower(char *dst, const char *src, size_t n)
{
    /* Branch-free form so the compiler can vectorise it. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (char)(c | (unsigned char)(((unsigned)(c - 'A') < 26u) << 5));
    }
}

int tokenize_next(const char *s, size_t n, size_t *pos, const char **tok, size_t *tok_len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = *pos;
    while (i < n && tok_class[u[i]] == SEP)
        i++;
    if (i >= n) {
        *pos = n;
        return 0;
    }
    size_t start = i;
    if (tok_class[u[i]] == PUNCT) {
        i++;
    } else {
        while (i < n && tok_class[u[i]] == WORD)
            i++;
    }
    *tok = s + start;
    *tok_len = i - start;
    *pos = i;
    return 1;
}
