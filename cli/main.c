/*
 * colplaid: one binary, many subcommands (CLI.md). This file only dispatches; each
 * subcommand lives in its own file.
 */
#include <stdio.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "cp_cpu.h"

#ifndef CP_VERSION
#define CP_VERSION "dev"
#endif

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"index", cp_cmd_index, "build, import, inspect, update, check or export an index"},
    {"search", cp_cmd_search, "search an index from the command line"},
    {"eval", cp_cmd_eval, "measure retrieval quality against BEIR qrels"},
    {"serve", cp_cmd_serve, "serve indexes over HTTP"},
    {"encode", cp_cmd_encode, "encode texts into token embeddings"},
    {"tokenize", cp_cmd_tokenize, "show the token ids a model sees"},
    {"model", cp_cmd_model, "convert word vectors into a static model"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: colplaid <command> [options]   (colplaid <command> --help)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    cp_runtime_prepare(argc, argv);
    if (argc < 2) {
        usage(stderr);
        return CP_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CP_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("colplaid %s\n", CP_VERSION);
        return CP_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "colplaid: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CP_EXIT_USAGE;
}
