/* psrec entry point: dispatches to a subcommand. The only place (with launch/) that exits. */
#include "launch/commands.h"

#include <malloc.h>
#include <stdio.h>
#include <string.h>

typedef struct Command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command commands[] = {
    {"gen", cmd_gen, "write synthetic MIND-format data with a planted ground truth and oracle metrics"},
    {"prep", cmd_prep, "convert MIND news.tsv + behaviors.tsv into an LMDB dataset"},
    {"train", cmd_train, "train LSTM-NR from an experiment config (plain or under mpirun)"},
    {"eval", cmd_eval, "score a dataset with a checkpoint: AUC, MRR, nDCG, predictions"},
    {"recommend", cmd_recommend, "rank news for a user, or an impression's candidates, with a checkpoint"},
    {"bench", cmd_bench, "time training steps, sgemm and prep; JSON for the README's speed claims"},
    {"inspect", cmd_inspect, "print a dataset's or checkpoint's meta and counts (--json)"},
    {"supervise", cmd_supervise, "run a training command; on failure run it again with --resume"},
    {"plot", cmd_plot, "draw runs' loss and dev AUC/nDCG@10 curves into one PNG (gnuplot)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: psrec <command> [options]\n\n"
               "psrec trains an LSTM news recommender on a parameter server.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-9s %s\n", "help", "this text; `psrec <command> --help` for one command");
}

int main(int argc, char **argv)
{
    /* Parameter-server messages are tens of MB, allocated and freed every step (by ZeroMQ and
     * by us). Above glibc's default threshold each one is a fresh mmap whose pages fault in
     * again; keeping large blocks in the heap makes their reuse free. */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
        if (argc >= 3) {
            for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
                if (!strcmp(argv[2], commands[i].name)) {
                    char *args[] = {argv[2], "--help", NULL};
                    return commands[i].run(2, args);
                }
        }
        usage(stdout);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "psrec: unknown command '%s'\n\n", name);
    usage(stderr);
    return EXIT_USAGE;
}
