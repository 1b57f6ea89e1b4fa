/* SPDX-License-Identifier: MIT */
/*
 * A fake QEMU for the QMP unit tests: a thread on one end of a socketpair
 * plays a recorded transcript (tests/unit/transcripts/NAME.txt).
 *
 * One step per line; '#' lines and blank lines are comments:
 *   S: {json}     send the line (a reply's "id" becomes the id of the last
 *                 command read, so recordings replay whatever ids we use)
 *   C: {json}     read one command; its "execute" and "arguments" must equal
 *                 these ("id" is not compared)
 *   !split N      write the next S line in pieces of N bytes, 2 ms apart
 *   !cut N        write the first N bytes of the next S line, then close
 *   !raw TEXT     write TEXT and CR LF as they are (malformed input)
 *   !sleep MS     pause
 *   !close        close the connection (QEMU gone)
 * After the last step the fake reads until the client closes; any command
 * arriving then is a mismatch.
 */
#ifndef VMC_QMP_REPLAY_H
#define VMC_QMP_REPLAY_H

#include <pthread.h>

struct replay {
	int fd;
	char *script; /* the file, NUL-separated lines */
	pthread_t thread;
	char error[1024]; /* first mismatch, "" if none */
};

/* Start playing transcript @name; *client is our end. CU_FAIL_FATAL on setup errors. */
void replay_start(struct replay *r, const char *name, int *client);

/* Wait for the fake to finish (close the client end first); "" if it all matched. */
const char *replay_finish(struct replay *r);

#endif
