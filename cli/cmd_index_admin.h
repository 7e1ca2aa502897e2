/*
 * `colplaid index import|info|check|export` (cli/cmd_index_admin.c), called by the
 * `colplaid index` dispatcher in cmd_index.c. Same conventions as commands.h: argv[0] is
 * the action name; the return value is the exit status (0 ok, 1 failure, 2 bad usage).
 */
#ifndef CP_CMD_INDEX_ADMIN_H
#define CP_CMD_INDEX_ADMIN_H

int cp_cmd_index_import(int argc, char **argv);
int cp_cmd_index_info(int argc, char **argv);
int cp_cmd_index_calibrate(int argc, char **argv);
int cp_cmd_index_check(int argc, char **argv);
int cp_cmd_index_lexical(int argc, char **argv);
int cp_cmd_index_export(int argc, char **argv);
int cp_cmd_index_set_model(int argc, char **argv);

#endif
