/* The parameter schema of LSTM-NR as the parameter server sees it: which tables exist, their
 * shapes and how their rows are initialised. Workers (to pull and push) and server shards (to
 * create tables) both derive it from the same function, so they cannot disagree.
 *
 * Sparse tables: word (V x E), category (C x H), user (U x H), rows created on first touch.
 * Dense tables: the two LSTMs' weights, one table per tensor, one row per input unit (4H
 * floats: the stacked gates), so a weight matrix is cut into row chunks; biases are one row. */
#ifndef PSREC_COMMON_PARAMS_H
#define PSREC_COMMON_PARAMS_H

#include <stdint.h>

typedef enum TableInit {
    TABLE_INIT_NORMAL,       /* N(0, scale^2): embeddings (scale 0.1) */
    TABLE_INIT_UNIFORM,      /* U(-scale, scale): LSTM weights (scale 1/sqrt(H)) */
    TABLE_INIT_UNIFORM_SUM2, /* sum of two U(-scale, scale): the LSTM bias, which stands for
                                PyTorch's b_ih + b_hh */
    TABLE_INIT_ZERO,
} TableInit;

typedef struct TableSpec {
    uint32_t id;        /* table id (also mixed into the init seed) */
    const char *name;   /* static string, for messages and checkpoints */
    uint32_t width;     /* floats per row */
    uint64_t rows;      /* key range: keys must be < rows */
    int dense;          /* 1: all rows exist from the start, stored flat */
    TableInit init;
    float scale;
} TableSpec;

/* Table ids; the dense ones are in the order of the model's dense arena (worker/model.h). */
typedef enum ParamTable {
    PARAM_WORD,
    PARAM_CAT,
    PARAM_USER,
    PARAM_NEWS_WIH,
    PARAM_NEWS_WHH,
    PARAM_NEWS_B,
    PARAM_USER_WIH,
    PARAM_USER_WHH,
    PARAM_USER_B,
    PARAM_TABLES
} ParamTable;

#define PARAM_FIRST_DENSE PARAM_NEWS_WIH

/* Sizes the schema depends on: model dims and the id spaces of the training dataset. */
typedef struct ParamShape {
    uint32_t E, H;
    uint64_t vocab_rows, category_rows, user_rows;
} ParamShape;

/* Fill specs[PARAM_TABLES] for shape. */
void params_specs(const ParamShape *shape, TableSpec specs[PARAM_TABLES]);

#endif
