/* connect.h - `tether connect` (SPEC "tether connect"): the visitor's command, on libtether's
 * tether_connect API (tether.h). */
#ifndef TT_CLI_CONNECT_H
#define TT_CLI_CONNECT_H

/* Runs `tether connect` with argv[0] == "connect". Returns the exit status: 0, 1 (refused,
 * failed, or could not listen), 2 (usage). */
int tt_connect_main(int argc, char **argv);

#endif
