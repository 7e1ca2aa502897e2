/*
 * `colplaid index add|delete|compact` (cli/cmd_index_write.c), called by the `colplaid
 * index` dispatcher in cmd_index.c. argv[0] is the action name; the return value is the
 * exit status (0 ok, 1 failure, 2 bad usage).
 */
#ifndef CP_CMD_INDEX_WRITE_H
#define CP_CMD_INDEX_WRITE_H

int cp_cmd_index_add(int argc, char **argv);
int cp_cmd_index_delete(int argc, char **argv);
int cp_cmd_index_compact(int argc, char **argv);

#endif
