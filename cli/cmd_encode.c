/* Placeholder until this subcommand's owner replaces the file. */
#include <stdio.h>
#include "commands.h"
int cp_cmd_encode(int argc, char **argv) { (void)argc; fprintf(stderr, "colplaid %s: unavailable in this build\n", argv[0]); return 1; }
int cp_cmd_tokenize(int argc, char **argv) { (void)argc; fprintf(stderr, "colplaid %s: unavailable in this build\n", argv[0]); return 1; }
int cp_cmd_model(int argc, char **argv) { (void)argc; fprintf(stderr, "colplaid %s: unavailable in this build\n", argv[0]); return 1; }
