/* `psrec gen`: a synthetic MIND-format data set whose click probabilities are known.
 *
 * The world.
 *   Topics: T of them (category = topic name; MIND's names first, then "topicNN"), each with
 *   5 sub-topics (subcategory "<topic>_<word>"), a Zipf-ranked vocabulary of made-up words
 *   and, per sub-topic, a small vocabulary of its own. Topic sizes are Zipf-ish as well.
 *   News: one topic and sub-topic each, a popularity (lognormal), and a title of ~12 tokens
 *   (6..20): 60% topic words (a third of them sub-topic words; a word already in the text
 *   is redrawn), 40% background (shared stop words, numbers), some words capitalised, an
 *   occasional "," ":" "?" "!", and in ~4% of titles a non-ASCII word ("café", "Zürich",
 *   "東京", ...) so the tokenizer's lowering and UTF-8 paths are exercised. An
 *   abstract (empty for ~3% of news), a URL and MIND-style entity lists go with it. The last
 *   20% of news are "fresh": published in the dev period, so only dev impressions show them.
 *   Users: a fixed taste theta (1..3 favourite topics, Dirichlet(1) weights, plus a 10% floor
 *   spread over all topics), a click propensity b_u ~ N(0, 0.4^2) and an activity level. The
 *   history (empty for ~4%, else ~1..50 clicks, oldest first) is simulated click by click from
 *   an interest state s that starts at theta: the topic of a click is drawn from s (or, with
 *   probability EXPLORE, from the topic sizes), then s = (1 - LAMBDA) s + LAMBDA onehot(topic).
 *   So recent clicks weigh more, and an order-aware model can beat an order-blind one.
 *   After the history the user's affinity is aff = (1 - BETA) s + BETA theta, and the true
 *   click probability of a candidate news n is sigmoid(A aff[topic(n)] + B + b_u).
 *   Impressions: a user drawn by activity (dev: 10% from the ~5% of users who never get a
 *   train impression, as MIND's dev has new users), 5..40 distinct candidates that are not in
 *   the user's history (20% drawn from the user's affinity, 80% from the topic sizes; within a
 *   topic by popularity; dev draws half of them from fresh news), labels ~ Bernoulli(p).
 *   Labels are redrawn (up to LABEL_TRIES times) until the impression has a click and a
 *   non-click, which samples exactly "Bernoulli labels conditioned on both classes" (MIND only
 *   logs such impressions); if that still fails, the most probable candidate is set clicked
 *   (or the least probable not clicked) and the impression is counted in forced_labels.
 *   Every impression of a user uses the same history and affinity (as MIND's histories are
 *   fixed per user), in both splits.
 *
 * Files: each split's news.tsv holds exactly the news its behaviors.tsv references (history
 * and candidates), in news-id order; behaviors.tsv ids are 1-based per split; train times lie
 * in 11/9/2019..11/14/2019, dev times on 11/15/2019 (UTC, MIND's 12-hour format), increasing
 * with the impression id. oracle.json holds the metrics of the dev impressions ranked by the
 * true click probability (common/metrics, as `psrec eval` computes them).
 *
 * Invariants: the output is a pure function of the options (every random draw comes from an
 * Rng seeded from opt->seed; each news article's text from its own stream, so both splits
 * write the same text); every referenced id is in that split's news.tsv; every impression has
 * >= 2 candidates, >= 1 click and >= 1 non-click; no field contains a tab or a newline. */
#include "launch/gen.h"

#include "common/error.h"
#include "common/fsutil.h"
#include "common/rng.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* World parameters (see the top comment). Tuned with the default sizes so that the oracle AUC
 * is ~0.85, an impression of ~22 candidates has ~2.3 clicks, and scoring candidates by the
 * recency-weighted count of their category in the history (AUC ~0.82) clearly beats the plain
 * count (~0.77): the order of the history carries signal. */
#define SUBTOPICS 5
#define SUB_VOCAB 40
#define LAMBDA 0.4          /* interest drift per click */
#define EXPLORE 0.35        /* share of history clicks on a topic drawn by topic size */
#define BETA 0.1            /* weight of the fixed taste theta in the final affinity */
#define CLICK_A 6.5         /* logit slope on the affinity */
#define CLICK_B (-5.2)      /* logit intercept */
#define BIAS_SD 0.4         /* sd of the per-user click propensity b_u */
#define PERSONAL_CANDS 0.2  /* share of candidates drawn from the user's affinity */
#define LABEL_TRIES 50      /* label redraws before forcing both classes */
#define DEV_ONLY_USERS 0.05 /* share of users who never get a train impression */
#define DEV_NEW_USER_IMPS 0.1 /* share of dev impressions from those users */
#define FRESH_NEWS 0.2      /* share of news published in the dev period */
#define DEV_FRESH_CANDS 0.5 /* share of dev candidates drawn from fresh news */
#define CAND_MIN 5
#define CAND_MAX 40
#define HIS_MAX 50
#define TOKEN_REDRAWS 3     /* redraws of a topic word already in the same text */
#define TEXT_CAP 2048

/* MIND's days: train 11/9/2019..11/14/2019, dev 11/15/2019, as UTC seconds. */
#define TRAIN_T0 1573257600LL
#define TRAIN_SPAN (6LL * 86400)
#define DEV_T0 1573776000LL
#define DEV_SPAN 86400LL

enum { SPLIT_TRAIN = 0, SPLIT_DEV = 1, POOL_OLD = 0, POOL_FRESH = 1 };

/* Independent streams derived from the seed. */
enum {
    STREAM_WORLD = 1,
    STREAM_NEWS = 2,
    STREAM_USERS = 3,
    STREAM_TRAIN = 4,
    STREAM_DEV = 5,
    STREAM_TEXT = 6,
    STREAM_ENTITY = 7,
};

static const char *const topic_names[] = {
    "news",   "sports", "finance", "lifestyle", "foodanddrink",  "weather",
    "travel", "autos",  "health",  "music",     "movies",        "tv",
    "video",  "kids",   "games",   "middleeast", "entertainment", "northamerica",
};

static const char *const stop_words[] = {
    "the",   "to",     "of",    "in",    "a",     "and",   "for",    "on",    "is",    "with",
    "at",    "after",  "from",  "how",   "by",    "this",  "new",    "what",  "you",   "your",
    "be",    "are",    "it",    "that",  "why",   "over",  "as",     "his",   "her",   "about",
    "up",    "will",   "out",   "can",   "more",  "who",   "first",  "just",  "says",  "into",
    "has",   "have",   "not",   "all",   "one",   "best",  "could",  "they",  "their", "now",
    "day",   "year",   "week",  "time",  "back",  "get",   "make",   "may",   "here",  "off",
    "most",  "when",   "we",    "were",  "said",  "top",   "before", "its",   "no",    "so",
    "people", "while", "last",  "man",   "woman", "two",   "three",  "home",  "big",   "old",
    "these", "things", "game",  "our",   "was",   "an",    "or",     "win",
};
#define N_STOP (sizeof stop_words / sizeof stop_words[0])

static const char *const nonascii_words[] = {
    "café",   "über",     "naïve",  "jalapeño", "résumé",  "señor",  "crème",  "Zürich",
    "São",    "Ångström", "piñata", "façade",   "fiancée", "Björk",  "Pokémon", "Québec",
    "Curaçao", "Škoda",   "Kraków", "Δέλτα",    "東京",    "doppelgänger",
};
#define N_NONASCII (sizeof nonascii_words / sizeof nonascii_words[0])

/* Made-up words are sequences of consonant-vowel syllables; a code names one word:
 * [0, 4900) two syllables, then three, then four. Distinct codes give distinct words. */
static const char CONSONANTS[] = "bdfgklmnprstvz";
static const char VOWELS[] = "aeiou";
#define SYL 70u
#define CODES2 (SYL * SYL)
#define CODES3 (SYL * SYL * SYL)
#define CODES4 (SYL * SYL * SYL * SYL)
#define CODES (CODES2 + CODES3 + CODES4)

typedef struct Topic {
    char name[24];
    char sub[SUBTOPICS][48];
    uint32_t first_word;     /* topic words: first_word + rank, rank < World.topic_vocab */
    uint32_t first_sub_word; /* sub-topic k words: first_sub_word + k*SUB_VOCAB + rank */
    uint32_t *pool[2];       /* (npool[p]) news of this topic in pool p (old, fresh) */
    double *cum[2];          /* (npool[p]) cumulative popularity over pool[p] */
    uint32_t npool[2];
} Topic;

typedef struct World {
    uint32_t T, N, U, n_old;
    uint64_t seed;
    Topic *topics;        /* (T) */
    double *topic_cum;    /* (T) cumulative topic sizes */
    uint32_t topic_vocab; /* words per topic */
    double *zipf_topic;   /* (topic_vocab) cumulative Zipf weights */
    double zipf_sub[SUB_VOCAB];
    double zipf_stop[N_STOP];
    char *wtext;          /* word arena: NUL-terminated words */
    size_t wtext_len, wtext_cap;
    uint32_t *woff;       /* (nwords) offset of word i in wtext */
    uint32_t nwords, wcap;
    uint8_t *news_topic;  /* (N) */
    uint8_t *news_sub;    /* (N) */
    float *aff;           /* (U, T) affinity after the history */
    float *bias;          /* (U) click propensity b_u */
    uint8_t *dev_only;    /* (U) 1: never gets a train impression */
    uint32_t *his_off;    /* (U + 1) history of u is his[his_off[u] .. his_off[u+1]) */
    uint32_t *his;        /* news indices, oldest first */
    uint32_t *act_user;   /* (n_act) users eligible for train, with */
    double *act_cum;      /* (n_act) cumulative activity */
    uint32_t n_act;
    uint32_t *new_user;   /* (n_new) dev-only users */
    uint32_t n_new;
    uint32_t *stamp;      /* (N) scratch marks, compared with stamp_next */
    uint32_t stamp_next;
    uint8_t *ref[2];      /* (N) referenced by split */
    uint8_t *seen[2];     /* (U) user appears in split */
} World;

/* ---------------------------------------------------------------- small helpers */

static void stream(Rng *r, uint64_t seed, uint64_t tag, uint64_t index)
{
    rng_seed(r, rng_mix64(rng_mix64(seed ^ (tag * 0x9e3779b97f4a7c15ULL)) + index));
}

/* Index of the first cum[i] > u * cum[n-1]; n >= 1, cum increasing. */
static uint32_t pick_cum(const double *cum, uint32_t n, Rng *r)
{
    double x = rng_uniform(r) * cum[n - 1];
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Draw from a probability vector p (T entries summing to ~1). */
static uint32_t pick_vec(const float *p, uint32_t T, Rng *r)
{
    double x = rng_uniform(r), acc = 0.0;
    for (uint32_t t = 0; t + 1 < T; t++) {
        acc += p[t];
        if (x < acc)
            return t;
    }
    return T - 1;
}

static void zipf_cum(double *cum, uint32_t n, double expo)
{
    double acc = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        acc += 1.0 / pow((double)i + 1.0, expo);
        cum[i] = acc;
    }
}

static double clampd(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

/* Growable line buffer; a failed allocation sets oom and drops further text. */
typedef struct Buf {
    char *p;
    size_t len, cap;
    int oom;
} Buf;

static void buf_need(Buf *b, size_t more)
{
    if (b->oom || b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void buf_putn(Buf *b, const char *s, size_t n)
{
    buf_need(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void buf_puts(Buf *b, const char *s)
{
    buf_putn(b, s, strlen(s));
}

static void buf_putc(Buf *b, char c)
{
    buf_putn(b, &c, 1);
}

static void buf_putu(Buf *b, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_putn(b, tmp + sizeof tmp - n, (size_t)n);
}

static void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(Buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_putn(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* ---------------------------------------------------------------- output files */

typedef struct OutFile {
    FILE *f;
    char path[4096];
    char tmp[4100];
} OutFile;

static int out_open(OutFile *o, const char *dir, const char *name)
{
    o->f = NULL;
    int n = snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof o->path)
        return psrec_errf(PSREC_E_USAGE, "gen: output path too long: %s/%s", dir, name);
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp", o->path);
    o->f = fopen(o->tmp, "wb");
    if (!o->f)
        return psrec_errf(errno, "gen: cannot create %s: %s", o->tmp, strerror(errno));
    setvbuf(o->f, NULL, _IOFBF, 1 << 20);
    return 0;
}

static int out_write(OutFile *o, const Buf *b)
{
    if (b->oom)
        return psrec_errf(PSREC_E_NOMEM, "gen: out of memory writing %s", o->path);
    if (fwrite(b->p, 1, b->len, o->f) != b->len)
        return psrec_errf(errno ? errno : EIO, "gen: cannot write %s: %s", o->tmp,
                          strerror(errno ? errno : EIO));
    return 0;
}

/* Close; on success (rc == 0) rename the temporary file into place, else remove it. */
static int out_close(OutFile *o, int rc)
{
    if (!o->f)
        return rc;
    int bad = ferror(o->f);
    int e = fclose(o->f) ? errno : 0;
    o->f = NULL;
    if (!rc && (bad || e))
        rc = psrec_errf(e ? e : EIO, "gen: cannot write %s: %s", o->tmp, strerror(e ? e : EIO));
    if (!rc && rename(o->tmp, o->path))
        rc = psrec_errf(errno, "gen: cannot rename %s to %s: %s", o->tmp, o->path,
                        strerror(errno));
    if (rc)
        remove(o->tmp);
    return rc;
}

/* ---------------------------------------------------------------- the world */

static const char *word(const World *w, uint32_t id)
{
    return w->wtext + w->woff[id];
}

static void code_word(uint64_t code, char *out)
{
    int syl = 2;
    if (code >= CODES2) {
        code -= CODES2;
        syl = 3;
        if (code >= CODES3) {
            code -= CODES3;
            syl = 4;
        }
    }
    for (int k = 0; k < syl; k++) {
        unsigned s = (unsigned)(code % SYL);
        code /= SYL;
        *out++ = CONSONANTS[s / 5];
        *out++ = VOWELS[s % 5];
    }
    *out = '\0';
}

static int is_reserved_word(const char *s)
{
    for (size_t i = 0; i < N_STOP; i++)
        if (!strcmp(s, stop_words[i]))
            return 1;
    return 0;
}

/* A new made-up word, distinct from every word before it and from the stop words. Two-syllable
 * words are kept for the first half of their space so the draw never crawls. */
static int new_word(World *w, Rng *r, uint8_t *used, uint32_t *used2, uint32_t *id)
{
    char s[16];
    for (;;) {
        double u = rng_uniform(r);
        uint64_t code;
        if (u < 0.15 && *used2 < CODES2 / 2)
            code = rng_below(r, CODES2);
        else if (u < 0.8)
            code = CODES2 + rng_below(r, CODES3);
        else
            code = CODES2 + CODES3 + rng_below(r, CODES4);
        if (used[code >> 3] & (1u << (code & 7)))
            continue;
        used[code >> 3] |= (uint8_t)(1u << (code & 7));
        if (code < CODES2)
            (*used2)++;
        code_word(code, s);
        if (is_reserved_word(s))
            continue;
        size_t n = strlen(s) + 1;
        if (w->wtext_len + n > w->wtext_cap) {
            size_t cap = w->wtext_cap ? w->wtext_cap * 2 : 1 << 16;
            char *p = realloc(w->wtext, cap);
            if (!p)
                return PSREC_E_NOMEM;
            w->wtext = p;
            w->wtext_cap = cap;
        }
        if (w->nwords == w->wcap) {
            uint32_t cap = w->wcap ? w->wcap * 2 : 4096;
            uint32_t *p = realloc(w->woff, cap * sizeof *p);
            if (!p)
                return PSREC_E_NOMEM;
            w->woff = p;
            w->wcap = cap;
        }
        memcpy(w->wtext + w->wtext_len, s, n);
        w->woff[w->nwords] = (uint32_t)w->wtext_len;
        w->wtext_len += n;
        *id = w->nwords++;
        return 0;
    }
}

static void world_free(World *w)
{
    if (w->topics)
        for (uint32_t t = 0; t < w->T; t++)
            for (int p = 0; p < 2; p++) {
                free(w->topics[t].pool[p]);
                free(w->topics[t].cum[p]);
            }
    free(w->topics);
    free(w->topic_cum);
    free(w->zipf_topic);
    free(w->wtext);
    free(w->woff);
    free(w->news_topic);
    free(w->news_sub);
    free(w->aff);
    free(w->bias);
    free(w->dev_only);
    free(w->his_off);
    free(w->his);
    free(w->act_user);
    free(w->act_cum);
    free(w->new_user);
    free(w->stamp);
    for (int s = 0; s < 2; s++) {
        free(w->ref[s]);
        free(w->seen[s]);
    }
    memset(w, 0, sizeof *w);
}

/* Topics, their names and vocabularies. */
static int build_topics(World *w)
{
    Rng r;
    stream(&r, w->seed, STREAM_WORLD, 0);
    w->topics = calloc(w->T, sizeof *w->topics);
    w->topic_cum = malloc(w->T * sizeof *w->topic_cum);
    w->topic_vocab = (uint32_t)clampd(w->N / 8.0, 200, 4000);
    w->zipf_topic = malloc(w->topic_vocab * sizeof *w->zipf_topic);
    uint8_t *used = calloc(CODES / 8 + 1, 1);
    if (!w->topics || !w->topic_cum || !w->zipf_topic || !used) {
        free(used);
        return PSREC_E_NOMEM;
    }
    zipf_cum(w->topic_cum, w->T, 0.7);
    zipf_cum(w->zipf_topic, w->topic_vocab, 1.0);
    zipf_cum(w->zipf_sub, SUB_VOCAB, 0.8);
    zipf_cum(w->zipf_stop, N_STOP, 0.8);
    uint32_t used2 = 0, id;
    int rc = 0;
    for (uint32_t t = 0; t < w->T && !rc; t++) {
        Topic *tp = &w->topics[t];
        if (t < sizeof topic_names / sizeof topic_names[0])
            snprintf(tp->name, sizeof tp->name, "%s", topic_names[t]);
        else
            snprintf(tp->name, sizeof tp->name, "topic%02u", (unsigned)t);
        for (int k = 0; k < SUBTOPICS && !rc; k++) {
            rc = new_word(w, &r, used, &used2, &id);
            if (rc)
                break;
            char sub[sizeof tp->sub[0]]; /* built aside: -Wrestrict cannot see tp's fields apart */
            snprintf(sub, sizeof sub, "%s_%s", tp->name, word(w, id));
            memcpy(tp->sub[k], sub, sizeof sub);
        }
        for (uint32_t i = 0; i < w->topic_vocab && !rc; i++) {
            rc = new_word(w, &r, used, &used2, &id);
            if (i == 0)
                tp->first_word = id;
        }
        for (uint32_t i = 0; i < SUBTOPICS * SUB_VOCAB && !rc; i++) {
            rc = new_word(w, &r, used, &used2, &id);
            if (i == 0)
                tp->first_sub_word = id;
        }
    }
    free(used);
    return rc;
}

/* News topics, popularity, and the per-topic pools with cumulative popularity. */
static int build_news(World *w)
{
    Rng r;
    stream(&r, w->seed, STREAM_NEWS, 0);
    w->n_old = w->N - (uint32_t)(w->N * FRESH_NEWS);
    w->news_topic = malloc(w->N);
    w->news_sub = malloc(w->N);
    double *pop = malloc(w->N * sizeof *pop);
    if (!w->news_topic || !w->news_sub || !pop) {
        free(pop);
        return PSREC_E_NOMEM;
    }
    for (uint32_t n = 0; n < w->N; n++) {
        w->news_topic[n] = (uint8_t)pick_cum(w->topic_cum, w->T, &r);
        /* sub-topic sizes: the first SUBTOPICS entries of a Zipf cumulative sum */
        w->news_sub[n] = (uint8_t)pick_cum(w->zipf_sub, SUBTOPICS, &r);
        pop[n] = exp(0.8 * rng_normal(&r));
        int p = n >= w->n_old;
        w->topics[w->news_topic[n]].npool[p]++;
    }
    int rc = 0;
    for (uint32_t t = 0; t < w->T && !rc; t++)
        for (int p = 0; p < 2; p++) {
            Topic *tp = &w->topics[t];
            uint32_t k = tp->npool[p];
            tp->pool[p] = malloc((k ? k : 1) * sizeof *tp->pool[p]);
            tp->cum[p] = malloc((k ? k : 1) * sizeof *tp->cum[p]);
            tp->npool[p] = 0;
            if (!tp->pool[p] || !tp->cum[p])
                rc = PSREC_E_NOMEM;
        }
    for (uint32_t n = 0; n < w->N && !rc; n++) {
        Topic *tp = &w->topics[w->news_topic[n]];
        int p = n >= w->n_old;
        uint32_t k = tp->npool[p]++;
        tp->pool[p][k] = n;
        tp->cum[p][k] = (k ? tp->cum[p][k - 1] : 0.0) + pop[n];
    }
    free(pop);
    return rc;
}

/* A news article of topic t from pool p by popularity, or UINT32_MAX when the pool is empty. */
static uint32_t pick_news(const World *w, uint32_t t, int p, Rng *r)
{
    const Topic *tp = &w->topics[t];
    if (!tp->npool[p])
        return UINT32_MAX;
    return tp->pool[p][pick_cum(tp->cum[p], tp->npool[p], r)];
}

/* Users: taste, bias, activity, history by sequential simulation, final affinity. */
static int build_users(World *w)
{
    Rng r;
    stream(&r, w->seed, STREAM_USERS, 0);
    uint32_t T = w->T, U = w->U;
    w->aff = malloc((size_t)U * T * sizeof *w->aff);
    w->bias = malloc(U * sizeof *w->bias);
    w->dev_only = calloc(U, 1);
    w->his_off = malloc(((size_t)U + 1) * sizeof *w->his_off);
    w->act_user = malloc(U * sizeof *w->act_user);
    w->act_cum = malloc(U * sizeof *w->act_cum);
    w->new_user = malloc(U * sizeof *w->new_user);
    w->stamp = calloc(w->N, sizeof *w->stamp);
    size_t his_cap = (size_t)U * 16 + 64;
    w->his = malloc(his_cap * sizeof *w->his);
    double *theta = malloc(T * sizeof *theta), *s = malloc(T * sizeof *s);
    int rc = 0;
    if (!w->aff || !w->bias || !w->dev_only || !w->his_off || !w->act_user || !w->act_cum ||
        !w->new_user || !w->stamp || !w->his || !theta || !s) {
        rc = PSREC_E_NOMEM;
        goto out;
    }
    size_t nhis = 0;
    for (uint32_t u = 0; u < U; u++) {
        /* theta: 1..3 favourite topics drawn by topic size (a repeat adds to its weight),
         * Exp(1) weights (Dirichlet(1) once normalised), plus a 10% floor over all topics. */
        for (uint32_t t = 0; t < T; t++)
            theta[t] = 0.0;
        uint32_t k = 1 + (uint32_t)rng_below(&r, 3);
        double wsum = 0.0;
        for (uint32_t j = 0; j < k; j++) {
            uint32_t t = pick_cum(w->topic_cum, T, &r);
            double x = -log(1.0 - rng_uniform(&r));
            theta[t] += x;
            wsum += x;
        }
        for (uint32_t t = 0; t < T; t++) {
            theta[t] = 0.9 * theta[t] / wsum + 0.1 / T;
            s[t] = theta[t];
        }
        w->bias[u] = (float)(BIAS_SD * rng_normal(&r));
        double activity = exp(0.8 * rng_normal(&r));
        w->dev_only[u] = u > 0 && rng_uniform(&r) < DEV_ONLY_USERS;
        if (w->dev_only[u]) {
            w->new_user[w->n_new++] = u;
        } else {
            w->act_user[w->n_act] = u;
            w->act_cum[w->n_act] = (w->n_act ? w->act_cum[w->n_act - 1] : 0.0) + activity;
            w->n_act++;
        }

        uint32_t len = 0;
        if (rng_uniform(&r) >= 0.04)
            len = (uint32_t)clampd(floor(exp(2.3 + 0.8 * rng_normal(&r))), 1, HIS_MAX);
        w->his_off[u] = (uint32_t)nhis;
        if (nhis + len > his_cap) {
            his_cap = (nhis + len) * 2;
            uint32_t *p = realloc(w->his, his_cap * sizeof *p);
            if (!p) {
                rc = PSREC_E_NOMEM;
                goto out;
            }
            w->his = p;
        }
        uint32_t mark = ++w->stamp_next;
        for (uint32_t i = 0; i < len; i++) {
            uint32_t t;
            if (rng_uniform(&r) < EXPLORE) {
                t = pick_cum(w->topic_cum, T, &r);
            } else {
                double x = rng_uniform(&r), acc = 0.0;
                for (t = 0; t + 1 < T; t++) {
                    acc += s[t];
                    if (x < acc)
                        break;
                }
            }
            uint32_t n = UINT32_MAX;
            for (int tries = 0; tries < 8; tries++) {
                uint32_t c = pick_news(w, t, POOL_OLD, &r);
                if (c != UINT32_MAX && w->stamp[c] != mark) {
                    n = c;
                    break;
                }
            }
            if (n == UINT32_MAX)
                continue; /* the topic has no unread old news: this click did not happen */
            w->stamp[n] = mark;
            w->his[nhis++] = n;
            for (uint32_t j = 0; j < T; j++)
                s[j] *= 1.0 - LAMBDA;
            s[t] += LAMBDA;
        }
        for (uint32_t t = 0; t < T; t++)
            w->aff[(size_t)u * T + t] = (float)((1.0 - BETA) * s[t] + BETA * theta[t]);
    }
    w->his_off[U] = (uint32_t)nhis;
out:
    free(theta);
    free(s);
    return rc;
}

/* ---------------------------------------------------------------- behaviors.tsv */

static void put_time(Buf *b, long long t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    int h12 = tm.tm_hour % 12 ? tm.tm_hour % 12 : 12;
    buf_printf(b, "%d/%d/%d %d:%02d:%02d %s", tm.tm_mon + 1, tm.tm_mday, tm.tm_year + 1900, h12,
               tm.tm_min, tm.tm_sec, tm.tm_hour < 12 ? "AM" : "PM");
}

typedef struct ImpScratch {
    uint32_t cand[CAND_MAX];
    double logit[CAND_MAX];
    double prob[CAND_MAX];
    float score[CAND_MAX];
    uint8_t label[CAND_MAX];
} ImpScratch;

/* Candidates for user u into sc->cand; returns how many (2..CAND_MAX). */
static uint32_t draw_candidates(World *w, int split, uint32_t u, Rng *r, ImpScratch *sc)
{
    uint32_t want = CAND_MIN + (uint32_t)rng_below(r, CAND_MAX - CAND_MIN + 1);
    uint32_t his_mark = ++w->stamp_next, cand_mark = ++w->stamp_next;
    for (uint32_t i = w->his_off[u]; i < w->his_off[u + 1]; i++)
        w->stamp[w->his[i]] = his_mark;
    const float *aff = w->aff + (size_t)u * w->T;
    uint32_t n = 0;
    for (uint32_t tries = 0; n < want && tries < 64 * want; tries++) {
        uint32_t t = rng_uniform(r) < PERSONAL_CANDS ? pick_vec(aff, w->T, r)
                                                     : pick_cum(w->topic_cum, w->T, r);
        int pool = split == SPLIT_DEV && rng_uniform(r) < DEV_FRESH_CANDS ? POOL_FRESH : POOL_OLD;
        uint32_t c = pick_news(w, t, pool, r);
        if (c == UINT32_MAX || w->stamp[c] == his_mark || w->stamp[c] == cand_mark)
            continue;
        w->stamp[c] = cand_mark;
        sc->cand[n++] = c;
    }
    /* A tiny world may run out of unread news: then complete to two candidates from the whole
     * pool, read or not (the pool always has >= 16 news). */
    uint32_t pool_n = split == SPLIT_DEV ? w->N : w->n_old;
    uint32_t start = (uint32_t)rng_below(r, pool_n);
    for (uint32_t k = 0; n < 2 && k < pool_n; k++) {
        uint32_t c = (start + k) % pool_n;
        if (w->stamp[c] == cand_mark)
            continue;
        w->stamp[c] = cand_mark;
        sc->cand[n++] = c;
    }
    return n;
}

static int write_behaviors(World *w, int split, uint32_t count, const char *dir, GenStats *st,
                           MetricsAcc *oracle)
{
    Rng r;
    stream(&r, w->seed, split == SPLIT_TRAIN ? STREAM_TRAIN : STREAM_DEV, 0);
    OutFile o;
    int rc = out_open(&o, dir, "behaviors.tsv");
    if (rc)
        return rc;
    Buf b = {0};
    ImpScratch sc;
    MetricsScratch ms;
    metrics_scratch_init(&ms);
    long long t0 = split == SPLIT_TRAIN ? TRAIN_T0 : DEV_T0;
    long long span = split == SPLIT_TRAIN ? TRAIN_SPAN : DEV_SPAN;
    for (uint32_t i = 0; i < count && !rc; i++) {
        uint32_t u;
        if (split == SPLIT_DEV && w->n_new && rng_uniform(&r) < DEV_NEW_USER_IMPS)
            u = w->new_user[rng_below(&r, w->n_new)];
        else
            u = w->act_user[pick_cum(w->act_cum, w->n_act, &r)];
        w->seen[split][u] = 1;
        uint32_t n = draw_candidates(w, split, u, &r, &sc);

        const float *aff = w->aff + (size_t)u * w->T;
        uint32_t best = 0, worst = 0, clicks = 0;
        for (uint32_t j = 0; j < n; j++) {
            sc.logit[j] = CLICK_A * aff[w->news_topic[sc.cand[j]]] + CLICK_B + w->bias[u];
            sc.score[j] = (float)sc.logit[j];
            sc.prob[j] = 1.0 / (1.0 + exp(-sc.logit[j]));
            if (sc.logit[j] > sc.logit[best])
                best = j;
            if (sc.logit[j] < sc.logit[worst])
                worst = j;
        }
        for (int tries = 0; tries < LABEL_TRIES; tries++) {
            clicks = 0;
            for (uint32_t j = 0; j < n; j++) {
                sc.label[j] = rng_uniform(&r) < sc.prob[j];
                clicks += sc.label[j];
            }
            if (clicks > 0 && clicks < n)
                break;
        }
        if (clicks == 0) {
            sc.label[best] = 1;
            clicks = 1;
            st->forced_labels++;
        } else if (clicks == n) {
            sc.label[worst] = 0;
            clicks = n - 1;
            st->forced_labels++;
        }
        st->clicks += clicks;
        st->candidates += n;

        long long t = t0 + (long long)(((double)i + rng_uniform(&r)) / count * (double)span);
        b.len = 0;
        buf_putu(&b, (uint64_t)i + 1);
        buf_puts(&b, "\tU");
        buf_putu(&b, (uint64_t)u + 1);
        buf_putc(&b, '\t');
        put_time(&b, t);
        buf_putc(&b, '\t');
        uint32_t h0 = w->his_off[u], h1 = w->his_off[u + 1];
        if (h0 == h1)
            st->empty_histories++;
        for (uint32_t k = h0; k < h1; k++) {
            if (k > h0)
                buf_putc(&b, ' ');
            buf_putc(&b, 'N');
            buf_putu(&b, (uint64_t)w->his[k] + 1);
            w->ref[split][w->his[k]] = 1;
        }
        buf_putc(&b, '\t');
        for (uint32_t j = 0; j < n; j++) {
            if (j)
                buf_putc(&b, ' ');
            buf_putc(&b, 'N');
            buf_putu(&b, (uint64_t)sc.cand[j] + 1);
            buf_putc(&b, '-');
            buf_putc(&b, (char)('0' + sc.label[j]));
            w->ref[split][sc.cand[j]] = 1;
        }
        buf_putc(&b, '\n');
        rc = out_write(&o, &b);
        if (!rc && oracle)
            rc = metrics_impression(sc.score, sc.label, n, oracle, &ms);
    }
    metrics_scratch_fini(&ms);
    free(b.p);
    return out_close(&o, rc);
}

/* ---------------------------------------------------------------- news.tsv */

/* One line of text being composed, with its length in characters (code points), which is what
 * MIND's entity OccurrenceOffsets count. */
typedef struct Text {
    char s[TEXT_CAP];
    size_t len;
    uint32_t chars;
} Text;

/* The first topic word of a text: the one an entity is made of. */
typedef struct Entity {
    int have;
    uint32_t word;
    uint32_t offset;
    char surface[32];
} Entity;

static void text_word(Text *t, const char *wd, int cap, int space)
{
    size_t n = strlen(wd);
    if (t->len + n + 2 >= sizeof t->s)
        return; /* unreachable: texts are at most 50 words of < 32 bytes */
    if (space) {
        t->s[t->len++] = ' ';
        t->chars++;
    }
    for (size_t i = 0; i < n; i++) {
        char c = wd[i];
        if (i == 0 && cap && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        t->s[t->len++] = c;
        if (((unsigned char)c & 0xC0) != 0x80)
            t->chars++;
    }
    t->s[t->len] = '\0';
}

static void text_punct(Text *t, char c)
{
    if (t->len + 2 < sizeof t->s) {
        t->s[t->len++] = c;
        t->s[t->len] = '\0';
        t->chars++;
    }
}

/* Draw one token for news n: a topic, sub-topic or background word (or a number into num).
 * Returns the text and sets *topic_word to the word id of a topic/sub-topic word, else
 * UINT32_MAX. */
static const char *draw_token(const World *w, uint32_t n, Rng *r, char *num, size_t numcap,
                              uint32_t *topic_word)
{
    const Topic *tp = &w->topics[w->news_topic[n]];
    *topic_word = UINT32_MAX;
    if (rng_uniform(r) < 0.6) {
        uint32_t id;
        if (rng_uniform(r) < 1.0 / 3.0)
            id = tp->first_sub_word + w->news_sub[n] * SUB_VOCAB +
                 pick_cum(w->zipf_sub, SUB_VOCAB, r);
        else
            id = tp->first_word + pick_cum(w->zipf_topic, w->topic_vocab, r);
        *topic_word = id;
        return word(w, id);
    }
    double u = rng_uniform(r);
    if (u < 0.9)
        return stop_words[pick_cum(w->zipf_stop, N_STOP, r)];
    u = rng_uniform(r);
    if (u < 0.4)
        snprintf(num, numcap, "%u", 1 + (unsigned)rng_below(r, 30));
    else if (u < 0.6)
        snprintf(num, numcap, "2019");
    else if (u < 0.8)
        snprintf(num, numcap, "%u", 100 + (unsigned)rng_below(r, 900));
    else
        snprintf(num, numcap, "$%u", 1 + (unsigned)rng_below(r, 99));
    return num;
}

/* Compose a title (sentence = 0) or an abstract (sentence = 1) of ntok tokens. */
static void make_text(const World *w, uint32_t n, Rng *r, uint32_t ntok, int sentence, Text *t,
                      Entity *e)
{
    t->len = 0;
    t->chars = 0;
    t->s[0] = '\0';
    e->have = 0;
    uint32_t nonascii_at = !sentence && ntok > 1 && rng_uniform(r) < 0.04
                               ? 1 + (uint32_t)rng_below(r, ntok - 1)
                               : UINT32_MAX;
    int cap_next = 1;
    uint32_t used[64], nused = 0;
    for (uint32_t k = 0; k < ntok; k++) {
        char num[16];
        uint32_t tw = UINT32_MAX;
        const char *wd;
        if (k == nonascii_at) {
            wd = nonascii_words[rng_below(r, N_NONASCII)];
        } else {
            for (int redraw = 0;; redraw++) {
                wd = draw_token(w, n, r, num, sizeof num, &tw);
                uint32_t j = 0;
                while (tw != UINT32_MAX && j < nused && used[j] != tw)
                    j++;
                if (tw == UINT32_MAX || j == nused || redraw == TOKEN_REDRAWS)
                    break;
            }
            if (tw != UINT32_MAX && nused < sizeof used / sizeof used[0])
                used[nused++] = tw;
        }
        int cap = cap_next || (!sentence && rng_uniform(r) < 0.3);
        cap_next = 0;
        uint32_t offset = t->chars + (k > 0);
        text_word(t, wd, cap, k > 0);
        if (tw != UINT32_MAX && !e->have) {
            e->have = 1;
            e->word = tw;
            e->offset = offset;
            snprintf(e->surface, sizeof e->surface, "%s", t->s + t->len - strlen(wd));
        }
        if (k + 1 == ntok)
            break;
        double u = rng_uniform(r);
        if (sentence && u < 0.08) {
            text_punct(t, '.');
            cap_next = 1;
        } else if (u < 0.04) {
            text_punct(t, ',');
        } else if (!sentence && k == 2 && u < 0.12) {
            text_punct(t, ':');
        }
    }
    double u = rng_uniform(r);
    if (sentence)
        text_punct(t, '.');
    else if (u < 0.08)
        text_punct(t, '?');
    else if (u < 0.11)
        text_punct(t, '!');
}

/* MIND's entity list: "[]" or one entity made of the text's first topic word. */
static void put_entities(Buf *b, const World *w, const Entity *e, int keep, Rng *r)
{
    if (!e->have || !keep) {
        buf_puts(b, "[]");
        return;
    }
    uint64_t h = rng_mix64(w->seed ^ ((uint64_t)STREAM_ENTITY << 40) ^ e->word);
    char label[32];
    snprintf(label, sizeof label, "%s", word(w, e->word));
    label[0] = (char)(label[0] - 'a' + 'A');
    buf_printf(b,
               "[{\"Label\": \"%s\", \"Type\": \"%c\", \"WikidataId\": \"Q%llu\", "
               "\"Confidence\": %.3f, \"OccurrenceOffsets\": [%u], \"SurfaceForms\": [\"%s\"]}]",
               label, "POGCJ"[h % 5], (unsigned long long)(100 + (h >> 8) % 60000000),
               0.5 + 0.5 * rng_uniform(r), (unsigned)e->offset, e->surface);
}

static int write_news(const World *w, int split, const char *dir, uint64_t *lines)
{
    OutFile o;
    int rc = out_open(&o, dir, "news.tsv");
    if (rc)
        return rc;
    Buf b = {0};
    Text title, abstract;
    Entity te, ae;
    *lines = 0;
    for (uint32_t n = 0; n < w->N && !rc; n++) {
        if (!w->ref[split][n])
            continue;
        Rng r;
        stream(&r, w->seed, STREAM_TEXT, n);
        const Topic *tp = &w->topics[w->news_topic[n]];
        uint32_t tlen = (uint32_t)clampd(lround(12.0 + 3.2 * rng_normal(&r)), 6, 20);
        make_text(w, n, &r, tlen, 0, &title, &te);
        int empty_abstract = rng_uniform(&r) < 0.03;
        uint32_t alen = (uint32_t)clampd(lround(24.0 + 8.0 * rng_normal(&r)), 8, 50);
        make_text(w, n, &r, alen, 1, &abstract, &ae);
        if (empty_abstract) {
            abstract.len = 0;
            abstract.s[0] = '\0';
            ae.have = 0;
        }
        b.len = 0;
        buf_putc(&b, 'N');
        buf_putu(&b, (uint64_t)n + 1);
        buf_putc(&b, '\t');
        buf_puts(&b, tp->name);
        buf_putc(&b, '\t');
        buf_puts(&b, tp->sub[w->news_sub[n]]);
        buf_putc(&b, '\t');
        buf_putn(&b, title.s, title.len);
        buf_putc(&b, '\t');
        buf_putn(&b, abstract.s, abstract.len);
        buf_puts(&b, "\thttps://assets.example.com/mind/N");
        buf_putu(&b, (uint64_t)n + 1);
        buf_puts(&b, ".html\t");
        int keep_t = rng_uniform(&r) < 0.6, keep_a = rng_uniform(&r) < 0.4;
        put_entities(&b, w, &te, keep_t, &r);
        buf_putc(&b, '\t');
        put_entities(&b, w, &ae, keep_a, &r);
        buf_putc(&b, '\n');
        rc = out_write(&o, &b);
        (*lines)++;
    }
    free(b.p);
    return out_close(&o, rc);
}

/* The truth file (gen.h): every user's top GEN_TRUTH_TOPICS topics by affinity. */
static int write_truth(const World *w, const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    OutFile o;
    int rc = out_open(&o, dir, slash ? slash + 1 : path);
    if (rc)
        return rc;
    Buf b = {0};
    const uint32_t top = GEN_TRUTH_TOPICS < w->T ? GEN_TRUTH_TOPICS : w->T;
    for (uint32_t u = 0; u < w->U && !rc; u++) {
        const float *aff = w->aff + (size_t)u * w->T;
        uint64_t taken = 0; /* bit t: topic t already printed (T <= 64) */
        b.len = 0;
        buf_putc(&b, 'U');
        buf_putu(&b, (uint64_t)u + 1);
        for (uint32_t k = 0; k < top; k++) {
            uint32_t best = UINT32_MAX;
            for (uint32_t t = 0; t < w->T; t++)
                if (!(taken >> t & 1) && (best == UINT32_MAX || aff[t] > aff[best]))
                    best = t;
            taken |= 1ULL << best;
            buf_printf(&b, "\t%s\t%.4f", w->topics[best].name, (double)aff[best]);
        }
        buf_putc(&b, '\n');
        rc = out_write(&o, &b);
    }
    free(b.p);
    return out_close(&o, rc);
}

/* ---------------------------------------------------------------- entry points */

void gen_options_default(GenOptions *opt)
{
    opt->out = NULL;
    opt->seed = 1;
    opt->news = 3000;
    opt->users = 2000;
    opt->train_impressions = 16000;
    opt->dev_impressions = 3000;
    opt->topics = 12;
    opt->truth = NULL;
}

void gen_oracle_json(const MetricsResult *oracle, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "{\"auc\": %.6f, \"mrr\": %.6f, \"ndcg5\": %.6f, \"ndcg10\": %.6f, "
             "\"impressions\": %llu}",
             oracle->auc, oracle->mrr, oracle->ndcg5, oracle->ndcg10,
             (unsigned long long)oracle->impressions);
}

static int check_range(const char *name, uint64_t v, uint64_t lo, uint64_t hi)
{
    if (v < lo || v > hi)
        return psrec_errf(PSREC_E_USAGE, "gen: %s = %llu is out of range %llu..%llu", name,
                          (unsigned long long)v, (unsigned long long)lo, (unsigned long long)hi);
    return 0;
}

static int check_options(const GenOptions *opt)
{
    if (!opt->out || !*opt->out)
        return psrec_errf(PSREC_E_USAGE, "gen: no output directory given");
    int rc = check_range("news", opt->news, GEN_NEWS_MIN, GEN_NEWS_MAX);
    if (!rc)
        rc = check_range("users", opt->users, GEN_USERS_MIN, GEN_USERS_MAX);
    if (!rc)
        rc = check_range("train-impressions", opt->train_impressions, GEN_IMPRESSIONS_MIN,
                         GEN_IMPRESSIONS_MAX);
    if (!rc)
        rc = check_range("dev-impressions", opt->dev_impressions, GEN_IMPRESSIONS_MIN,
                         GEN_IMPRESSIONS_MAX);
    if (!rc)
        rc = check_range("topics", opt->topics, GEN_TOPICS_MIN, GEN_TOPICS_MAX);
    return rc;
}

int gen_run(const GenOptions *opt, GenStats *stats)
{
    GenStats local;
    GenStats *st = stats ? stats : &local;
    memset(st, 0, sizeof *st);
    int rc = check_options(opt);
    if (rc)
        return rc;

    char dirs[2][4096];
    const char *names[2] = {"train", "dev"};
    for (int s = 0; s < 2; s++) {
        int n = snprintf(dirs[s], sizeof dirs[s], "%s/%s", opt->out, names[s]);
        if (n < 0 || (size_t)n >= sizeof dirs[s])
            return psrec_errf(PSREC_E_USAGE, "gen: output path too long: %s", opt->out);
        if ((rc = fs_mkdir_p(dirs[s])))
            return rc;
    }

    World w;
    memset(&w, 0, sizeof w);
    w.seed = opt->seed;
    w.T = opt->topics;
    w.N = opt->news;
    w.U = opt->users;
    for (int s = 0; s < 2 && !rc; s++) {
        w.ref[s] = calloc(w.N, 1);
        w.seen[s] = calloc(w.U, 1);
        if (!w.ref[s] || !w.seen[s])
            rc = PSREC_E_NOMEM;
    }
    if (!rc)
        rc = build_topics(&w);
    if (!rc)
        rc = build_news(&w);
    if (!rc)
        rc = build_users(&w);
    if (rc == PSREC_E_NOMEM)
        psrec_errf(rc, "gen: out of memory building a world of %u news and %u users", w.N, w.U);

    MetricsAcc oracle;
    metrics_acc_init(&oracle);
    if (!rc)
        rc = write_behaviors(&w, SPLIT_TRAIN, opt->train_impressions, dirs[0], st, NULL);
    if (!rc)
        rc = write_behaviors(&w, SPLIT_DEV, opt->dev_impressions, dirs[1], st, &oracle);
    if (!rc)
        rc = write_news(&w, SPLIT_TRAIN, dirs[0], &st->news_train);
    if (!rc)
        rc = write_news(&w, SPLIT_DEV, dirs[1], &st->news_dev);

    if (!rc && opt->truth)
        rc = write_truth(&w, opt->truth);
    if (!rc) {
        metrics_result(&oracle, &st->oracle);
        st->impressions_train = opt->train_impressions;
        st->impressions_dev = opt->dev_impressions;
        for (uint32_t u = 0; u < w.U; u++) {
            st->users_train += w.seen[SPLIT_TRAIN][u];
            st->users_dev += w.seen[SPLIT_DEV][u];
            st->users_dev_only += w.seen[SPLIT_DEV][u] && !w.seen[SPLIT_TRAIN][u];
        }
        char json[256];
        gen_oracle_json(&st->oracle, json, sizeof json);
        OutFile o;
        rc = out_open(&o, opt->out, "oracle.json");
        if (!rc) {
            Buf b = {0};
            buf_puts(&b, json);
            buf_putc(&b, '\n');
            rc = out_close(&o, out_write(&o, &b));
            free(b.p);
        }
    }
    world_free(&w);
    return rc;
}
