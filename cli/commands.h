/*
 * The subcommands of the colplaid binary. Each takes the arguments after its own name
 * (argv[0] is the subcommand name) and returns the process exit status: 0 success,
 * 1 runtime failure, 2 bad usage (CLI.md).
 */
#ifndef CP_COMMANDS_H
#define CP_COMMANDS_H

int cp_cmd_index(int argc, char **argv);    /* cli/cmd_index.c: build train merge import info
                                               add delete compact check export */
int cp_cmd_search(int argc, char **argv);   /* cli/cmd_search.c */
int cp_cmd_eval(int argc, char **argv);     /* cli/cmd_search.c */
int cp_cmd_encode(int argc, char **argv);   /* cli/cmd_encode.c */
int cp_cmd_tokenize(int argc, char **argv); /* cli/cmd_encode.c */
int cp_cmd_model(int argc, char **argv);    /* cli/cmd_encode.c: model convert */
int cp_cmd_serve(int argc, char **argv);    /* cli/cmd_serve.c */

#endif
