/*
 * Commands for people at a terminal, run as `tollgate logs ...` and `tollgate stats ...` (doc/logs.md): recent log
 * records as a table or JSON lines, and the analytics summary, read straight from the log store (read-only, so
 * they can run next to a live gateway). Each returns the process exit code: 0, 1 (cannot read), 2 (bad usage).
 */
#ifndef TOLLGATE_CLI_H
#define TOLLGATE_CLI_H

int tg_cli_logs(int argc, char **argv);
int tg_cli_stats(int argc, char **argv);

#endif
