/* The table schema (see params.h). Initial scales follow PyTorch: nn.Embedding is re-drawn
 * N(0, 0.1^2) by the peer, nn.LSTM draws every weight U(-1/sqrt(H), 1/sqrt(H)). */
#include "common/params.h"

#include <math.h>

void params_specs(const ParamShape *s, TableSpec specs[PARAM_TABLES])
{
    const float k = 1.0f / sqrtf((float)s->H);
    const uint32_t G = 4 * s->H;
    specs[PARAM_WORD] = (TableSpec){PARAM_WORD, "word", s->E, s->vocab_rows, 0, TABLE_INIT_NORMAL, 0.1f};
    specs[PARAM_CAT] = (TableSpec){PARAM_CAT, "category", s->H, s->category_rows, 0, TABLE_INIT_NORMAL, 0.1f};
    specs[PARAM_USER] = (TableSpec){PARAM_USER, "user", s->H, s->user_rows, 0, TABLE_INIT_NORMAL, 0.1f};
    specs[PARAM_NEWS_WIH] = (TableSpec){PARAM_NEWS_WIH, "news_Wih", G, s->E, 1, TABLE_INIT_UNIFORM, k};
    specs[PARAM_NEWS_WHH] = (TableSpec){PARAM_NEWS_WHH, "news_Whh", G, s->H, 1, TABLE_INIT_UNIFORM, k};
    specs[PARAM_NEWS_B] = (TableSpec){PARAM_NEWS_B, "news_b", G, 1, 1, TABLE_INIT_UNIFORM_SUM2, k};
    specs[PARAM_USER_WIH] = (TableSpec){PARAM_USER_WIH, "user_Wih", G, s->H, 1, TABLE_INIT_UNIFORM, k};
    specs[PARAM_USER_WHH] = (TableSpec){PARAM_USER_WHH, "user_Whh", G, s->H, 1, TABLE_INIT_UNIFORM, k};
    specs[PARAM_USER_B] = (TableSpec){PARAM_USER_B, "user_b", G, 1, 1, TABLE_INIT_UNIFORM_SUM2, k};
}
