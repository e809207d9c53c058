/* The psrec subcommands. Each takes the arguments after its name (argv[0] is the subcommand
 * name) and returns the process exit code: 0 ok, 1 runtime failure, 2 usage error.
 * Each prints its own help for --help / -h. */
#ifndef PSREC_LAUNCH_COMMANDS_H
#define PSREC_LAUNCH_COMMANDS_H

int cmd_gen(int argc, char **argv);
int cmd_prep(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_recommend(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_supervise(int argc, char **argv);
int cmd_plot(int argc, char **argv);


/* Exit codes shared by all subcommands. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#endif
