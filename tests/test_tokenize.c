/* Tokenizer suite. Expected token lists are written out by hand; they agree with the
 * reference's re.findall(r"[a-z0-9_\u0080-\U0010ffff]+|[.,!?;|]", ascii_lower(text)). */
#include "common/tokenize.h"
#include "testutil/testutil.h"

#include <stdlib.h>
#include <string.h>

/* Lower text[0..n) into a fresh buffer, tokenize it, compare with the NULL-terminated list. */
static void check_tokens_n(const char *text, size_t n, const char *const *want)
{
    char *buf = malloc(n + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    tokenize_lower(buf, text, n);
    size_t pos = 0, k = 0;
    const char *tok;
    size_t len;
    while (tokenize_next(buf, n, &pos, &tok, &len)) {
        CU_ASSERT_PTR_NOT_NULL(want[k]);
        if (!want[k])
            break;
        CU_ASSERT_EQUAL(len, strlen(want[k]));
        CU_ASSERT(len == strlen(want[k]) && memcmp(tok, want[k], len) == 0);
        CU_ASSERT(tok >= buf && tok + len <= buf + n);
        CU_ASSERT(pos == (size_t)(tok - buf) + len);
        k++;
    }
    CU_ASSERT_PTR_NULL(want[k]);
    CU_ASSERT_EQUAL(pos, n);
    free(buf);
}

static void check_tokens(const char *text, const char *const *want)
{
    check_tokens_n(text, strlen(text), want);
}

static void test_punctuation(void)
{
    check_tokens("U.S.", (const char *const[]){"u", ".", "s", ".", NULL});
    check_tokens("a.b,c!d?e;f|g", (const char *const[]){
        "a", ".", "b", ",", "c", "!", "d", "?", "e", ";", "f", "|", "g", NULL});
    check_tokens("Wait...what?!", (const char *const[]){
        "wait", ".", ".", ".", "what", "?", "!", NULL});
    check_tokens("Price: $5.99 (50% off) & more / less", (const char *const[]){
        "price", "5", ".", "99", "50", "off", "more", "less", NULL});
}

static void test_apostrophes_hyphens(void)
{
    check_tokens("don't", (const char *const[]){"don", "t", NULL});
    check_tokens("Don't Stop!", (const char *const[]){"don", "t", "stop", "!", NULL});
    check_tokens("state-of-the-art e-mail", (const char *const[]){
        "state", "of", "the", "art", "e", "mail", NULL});
    check_tokens("COVID-19: 2020's top 10", (const char *const[]){
        "covid", "19", "2020", "s", "top", "10", NULL});
}

static void test_digits_underscores_case(void)
{
    check_tokens("snake_case __init__ x_1", (const char *const[]){
        "snake_case", "__init__", "x_1", NULL});
    check_tokens("MiXeD CaSe WoRdS", (const char *const[]){"mixed", "case", "words", NULL});
    check_tokens("Top10 ABC123xyz 007", (const char *const[]){"top10", "abc123xyz", "007", NULL});
}

static void test_non_ascii(void)
{
    /* Non-ASCII letters are word characters and keep their case: only ASCII is lowered. */
    check_tokens("Caf\xc3\xa9 \xc3\x9c" "ber na\xc3\xafve", (const char *const[]){
        "caf\xc3\xa9", "\xc3\x9c" "ber", "na\xc3\xafve", NULL});
    check_tokens("\xc3\x89" "COLE \xc3\xa9l\xc3\xa8ve", (const char *const[]){
        "\xc3\x89" "cole", "\xc3\xa9l\xc3\xa8ve", NULL});
    /* 日本語 text */
    check_tokens("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e text", (const char *const[]){
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "text", NULL});
    /* "Fire 🔥emoji🎉!": emoji are word characters and glue to adjacent letters. */
    check_tokens("Fire \xf0\x9f\x94\xa5" "emoji\xf0\x9f\x8e\x89!", (const char *const[]){
        "fire", "\xf0\x9f\x94\xa5" "emoji\xf0\x9f\x8e\x89", "!", NULL});
    /* A no-break space (U+00A0) is a non-ASCII character, so a word character too. */
    check_tokens("a\xc2\xa0" "b c", (const char *const[]){"a\xc2\xa0" "b", "c", NULL});
}

static void test_pipe_and_edges(void)
{
    check_tokens("Sports | NFL", (const char *const[]){"sports", "|", "nfl", NULL});
    check_tokens("  ,hello world;  ", (const char *const[]){",", "hello", "world", ";", NULL});
    check_tokens("", (const char *const[]){NULL});
    check_tokens(" \t-:'\"()$%&/\\@#*+=<>[]^`{}~\r\x7f", (const char *const[]){NULL});
    check_tokens("word", (const char *const[]){"word", NULL});
    check_tokens("!", (const char *const[]){"!", NULL});
    /* Control bytes, NUL included, separate. */
    check_tokens_n("\x01" "a\0b\x1f", 5, (const char *const[]){"a", "b", NULL});
}

static void test_empty_and_null(void)
{
    size_t pos = 0, len = 99;
    const char *tok = "unchanged";
    CU_ASSERT_EQUAL(tokenize_next(NULL, 0, &pos, &tok, &len), 0);
    CU_ASSERT_EQUAL(pos, 0);
    CU_ASSERT_EQUAL(len, 99);
    CU_ASSERT_STRING_EQUAL(tok, "unchanged");
    /* Iterating past the end keeps returning 0. */
    const char *s = "x";
    pos = 0;
    CU_ASSERT_EQUAL(tokenize_next(s, 1, &pos, &tok, &len), 1);
    CU_ASSERT_EQUAL(tokenize_next(s, 1, &pos, &tok, &len), 0);
    CU_ASSERT_EQUAL(tokenize_next(s, 1, &pos, &tok, &len), 0);
    CU_ASSERT_EQUAL(pos, 1);
}

/* n bounds the scan: bytes past n are never part of a token. */
static void test_length_bound(void)
{
    const char *s = "abc def";
    size_t pos = 0, len;
    const char *tok;
    CU_ASSERT_EQUAL(tokenize_next(s, 2, &pos, &tok, &len), 1);
    CU_ASSERT_EQUAL(len, 2);
    CU_ASSERT_EQUAL(tokenize_next(s, 2, &pos, &tok, &len), 0);
}

/* Every byte value, classified against the spec written out independently of the table. */
static void test_byte_classes(void)
{
    for (int b = 1; b < 256; b++) {
        int lower = b >= 'A' && b <= 'Z' ? b + 32 : b;
        int word = (lower >= 'a' && lower <= 'z') || (b >= '0' && b <= '9') || b == '_' || b >= 0x80;
        int punct = b && strchr(".,!?;|", b) != NULL;
        char in[3] = {'x', (char)b, 'y'}, buf[3];
        tokenize_lower(buf, in, 3);
        CU_ASSERT_EQUAL((unsigned char)buf[1], (unsigned)lower);
        size_t pos = 0, len, ntok = 0;
        const char *tok;
        while (tokenize_next(buf, 3, &pos, &tok, &len))
            ntok++;
        /* "x?y" is one word, or "x" "?" "y", or "x" "y". */
        size_t want = word ? 1 : punct ? 3 : 2;
        CU_ASSERT_EQUAL(ntok, want);
    }
}

/* Unlowered text splits at the same places; only the token bytes keep their case. */
static void test_unlowered_input(void)
{
    const char *s = "Hello, World";
    size_t n = strlen(s), pos = 0, len;
    const char *tok;
    CU_ASSERT_EQUAL(tokenize_next(s, n, &pos, &tok, &len), 1);
    CU_ASSERT(len == 5 && memcmp(tok, "Hello", 5) == 0);
    CU_ASSERT_EQUAL(tokenize_next(s, n, &pos, &tok, &len), 1);
    CU_ASSERT(len == 1 && *tok == ',');
    CU_ASSERT_EQUAL(tokenize_next(s, n, &pos, &tok, &len), 1);
    CU_ASSERT(len == 5 && memcmp(tok, "World", 5) == 0);
    CU_ASSERT_EQUAL(tokenize_next(s, n, &pos, &tok, &len), 0);
}

static void test_lower_in_place(void)
{
    char s[] = "ABC xyz \xc3\x89Z_09";
    tokenize_lower(s, s, strlen(s));
    CU_ASSERT_STRING_EQUAL(s, "abc xyz \xc3\x89z_09");
}

static void test_long_input(void)
{
    /* 200000 x "Word, " -> 400000 tokens alternating "word" ",". */
    const char *unit = "Word, ";
    size_t reps = 200000, ul = strlen(unit), n = reps * ul;
    char *s = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (size_t i = 0; i < reps; i++)
        memcpy(s + i * ul, unit, ul);
    tokenize_lower(s, s, n);
    size_t pos = 0, len, k = 0, bad = 0;
    const char *tok;
    while (tokenize_next(s, n, &pos, &tok, &len)) {
        if (k % 2 == 0)
            bad += !(len == 4 && memcmp(tok, "word", 4) == 0);
        else
            bad += !(len == 1 && *tok == ',');
        k++;
    }
    CU_ASSERT_EQUAL(k, 2 * reps);
    CU_ASSERT_EQUAL(bad, 0);

    /* One 1 MB word is one token. */
    memset(s, 'Q', 1u << 20);
    tokenize_lower(s, s, 1u << 20);
    pos = 0;
    CU_ASSERT_EQUAL(tokenize_next(s, 1u << 20, &pos, &tok, &len), 1);
    CU_ASSERT_EQUAL(len, 1u << 20);
    CU_ASSERT_EQUAL(tok[0], 'q');
    CU_ASSERT_EQUAL(tok[len - 1], 'q');
    CU_ASSERT_EQUAL(tokenize_next(s, 1u << 20, &pos, &tok, &len), 0);
    free(s);
}

int main(void)
{
    static const TuTest tests[] = {
        {"punctuation", test_punctuation},
        {"apostrophes and hyphens", test_apostrophes_hyphens},
        {"digits, underscores, case", test_digits_underscores_case},
        {"non-ASCII UTF-8", test_non_ascii},
        {"pipe and edges", test_pipe_and_edges},
        {"empty and NULL", test_empty_and_null},
        {"length bound", test_length_bound},
        {"every byte class", test_byte_classes},
        {"unlowered input", test_unlowered_input},
        {"lower in place", test_lower_in_place},
        {"long input", test_long_input},
        {NULL, NULL},
    };
    tu_add_suite("tokenize", tests);
    return tu_run_all();
}
