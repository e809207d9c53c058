/* Title tokenizer (DESIGN.md, "Tokens"): the C twin of the reference's
 *   re.findall(r"[a-z0-9_\u0080-\U0010ffff]+|[.,!?;|]", ascii_lower(text)).
 *
 * Byte classes: ASCII letters (lowered), digits, '_' and every byte >= 0x80 are word bytes (a
 * UTF-8 multi-byte character is all such bytes, so non-ASCII characters are word characters);
 * each of . , ! ? ; | is a token by itself; every other byte separates.
 *
 * Allocation-free by design: the caller lowers the text once into a buffer it owns (or in
 * place) with tokenize_lower(), then walks it with tokenize_next(), whose tokens point into
 * that buffer. Lowering is separate because the tokens must be the lowered bytes and the
 * tokenizer itself never writes. Thread-safe: no state besides the caller's cursor. */
#ifndef PSREC_COMMON_TOKENIZE_H
#define PSREC_COMMON_TOKENIZE_H

#include <stddef.h>

/* Copy n bytes from src to dst with ASCII 'A'..'Z' lowered to 'a'..'z'; every other byte
 * (non-ASCII UTF-8 included) is copied unchanged. dst == src lowers in place; otherwise the
 * two must not overlap. dst must hold n bytes. */
void tokenize_lower(char *dst, const char *src, size_t n);

/* Find the next token of s[0..n) at or after *pos.
 *   s, n     the text, normally lowered by tokenize_lower() (uppercase ASCII is still
 *            classed as a word byte, so unlowered text splits at the same places, but its
 *            tokens then keep their case)
 *   pos      cursor: start with 0; advanced past the token returned
 *   tok      set to the token's first byte, which points into s (valid as long as s is)
 *   tok_len  set to the token's length in bytes (>= 1)
 * Returns 1 when a token was found, 0 when none remains (then *pos == n and *tok, *tok_len
 * are left unchanged). s may be NULL when n == 0. */
int tokenize_next(const char *s, size_t n, size_t *pos, const char **tok, size_t *tok_len);

#endif
