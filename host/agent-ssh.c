/* SPDX-License-Identifier: MIT */
/*
 * ssh://USER@HOST[:PORT][/PATH]: the agent as an SSH exec target, through
 * libssh. The session is set up here: the host key checked against
 * known_hosts, key authentication only (--ssh-key, then ssh-agent), then
 * "PATH --stdio" on an exec channel. From then on a pump thread owns the
 * session and moves the channel's bytes to and from one end of a
 * socketpair; the other end is the transport's fd, so the client polls and
 * reads a plain stream as with every other transport. libssh is never used
 * by two threads at once: the opener, then the pump, then (once the pump is
 * joined) the closer.
 *
 * The pump ends when the agent's stdout ends (its exit status is then
 * waited for briefly), when the connection is lost (a guest that was reset
 * answers the next write with a TCP reset) or when the client closes its
 * end. It records why and only then closes its end of the pair, so
 * describe_eof() joins it before reading the reason.
 */
#include <errno.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "agent-client.h"
#include "clock.h"
#include "escape.h"

#define DEFAULT_AGENT "vmcheck-agent"
/* Connect, key exchange and every blocking libssh call until the pump runs. */
#define SESSION_TIMEOUT_S 10
/* How long the agent's exit status may trail the end of its output. */
#define EXIT_WAIT_MS 200
#define STDERR_KEEP 256

struct vmc_agent_ssh_opts vmc_agent_ssh_opts;

enum end {
	END_NONE,
	END_EOF,
	END_LOST
};

struct ssh_link {
	ssh_session session;
	ssh_channel chan;
	struct ssh_channel_callbacks_struct cb;
	char *cmd;  /* the remote command */
	char *path; /* the agent's, for messages */
	int mine;   /* the pump's end of the pair; -1 once closed */
	pthread_t thread;
	bool running; /* the pump is not joined yet */

	/* Written by the pump before it closes @mine. */
	enum end end;
	bool closed;      /* the server closed the channel */
	bool client_gone; /* the client closed its end, or stopped reading */
	int exit_status;  /* -1: none received */
	char exit_signal[32];
	char lost[160];
	char tail[STDERR_KEEP]; /* the end of the agent's stderr */
	size_t tail_len;
};

static int bad_spec(struct vmc_error *err, const char *spec, const char *why)
{
	return vmc_error_set(err, -EINVAL,
			     "agent spec \"%s\": %s (expected ssh://USER@HOST[:PORT][/PATH])", spec,
			     why);
}

void vmc_agent_ssh_target_free(struct vmc_agent_ssh_target *t)
{
	free(t->user);
	free(t->host);
	free(t->path);
	*t = (struct vmc_agent_ssh_target){ 0 };
}

int vmc_agent_ssh_parse(const char *spec, struct vmc_agent_ssh_target *out, struct vmc_error *err)
{
	struct vmc_agent_ssh_target t = { .port = 22 };
	const char *p, *at, *host, *rest;
	size_t user_len, host_len;

	if (strncmp(spec, "ssh://", strlen("ssh://")))
		return bad_spec(err, spec, "no \"ssh://\"");
	p = spec + strlen("ssh://");
	user_len = strcspn(p, "@/");
	at = p + user_len;
	if (*at != '@' || !user_len)
		return bad_spec(err, spec, "no USER@ before the host");
	host = at + 1;
	if (*host == '[') {
		const char *close = strchr(host, ']');

		if (!close)
			return bad_spec(err, spec, "no ']' after the IPv6 address");
		host++;
		host_len = (size_t)(close - host);
		rest = close + 1;
	} else {
		host_len = strcspn(host, ":/");
		rest = host + host_len;
	}
	if (!host_len)
		return bad_spec(err, spec, "no host");
	if (memchr(host, '@', host_len) || memchr(host, '[', host_len) ||
	    memchr(host, ']', host_len))
		return bad_spec(err, spec, "'@', '[' or ']' in the host");
	if (*rest == ':') {
		size_t n = strcspn(++rest, "/");
		unsigned long port = n && n <= 5 && strspn(rest, "0123456789") == n
					     ? strtoul(rest, NULL, 10)
					     : 0;

		if (port < 1 || port > 65535)
			return bad_spec(err, spec, "the port is not a number from 1 to 65535");
		t.port = (unsigned)port;
		rest += n;
	}
	if (*rest && *rest != '/')
		return bad_spec(err, spec, "unexpected characters after the host");
	if (*rest == '/' && !rest[1])
		return bad_spec(err, spec, "an empty agent path");
	t.user = strndup(p, user_len);
	t.host = strndup(host, host_len);
	t.path = strdup(*rest ? rest : DEFAULT_AGENT);
	if (!t.user || !t.host || !t.path) {
		vmc_agent_ssh_target_free(&t);
		return vmc_error_set(err, -ENOMEM, "agent spec \"%s\": out of memory", spec);
	}
	*out = t;
	return 0;
}

/*
 * "exec 'PATH' --stdio", PATH quoted for the remote shell; exec, so that the
 * agent is the session's process: its exit status and signals are its own.
 */
static char *agent_command(const char *path)
{
	size_t n = 0;
	char *cmd, *o;

	for (const char *s = path; *s; s++)
		n += *s == '\'' ? 4 : 1;
	cmd = malloc(n + sizeof("exec '' --stdio"));
	if (!cmd)
		return NULL;
	o = stpcpy(cmd, "exec '");
	for (const char *s = path; *s; s++) {
		if (*s == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *s;
		}
	}
	strcpy(o, "' --stdio");
	return cmd;
}

/* "[host]:port" as known_hosts names it, or plain "host" on port 22. */
static void host_name(const struct vmc_agent_ssh_target *t, char *buf, size_t size)
{
	if (t->port == 22)
		snprintf(buf, size, "%s", t->host);
	else
		snprintf(buf, size, "[%s]:%u", t->host, t->port);
}

/*
 * Compare the server's key with known_hosts. A changed key is always
 * refused; an unknown one is recorded only with accept_new.
 */
static int verify_host(ssh_session s, const char *spec, const struct vmc_agent_ssh_target *t,
		       struct vmc_error *err)
{
	const struct vmc_agent_ssh_opts *o = &vmc_agent_ssh_opts;
	ssh_key key = NULL;
	unsigned char *hash = NULL;
	size_t hash_len;
	char *fp = NULL, *file = NULL, name[300];
	const char *type;
	int r = 0;

	if (ssh_get_server_publickey(s, &key) < 0)
		return vmc_error_set(err, -EPROTO, "%s: no host key from the server: %s", spec,
				     ssh_get_error(s));
	type = ssh_key_type_to_char(ssh_key_type(key));
	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hash_len) == 0)
		fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hash_len);
	ssh_options_get(s, SSH_OPTIONS_KNOWNHOSTS, &file);
	host_name(t, name, sizeof(name));
	switch (ssh_session_is_known_server(s)) {
	case SSH_KNOWN_HOSTS_OK:
		break;
	case SSH_KNOWN_HOSTS_CHANGED:
	case SSH_KNOWN_HOSTS_OTHER:
		r = vmc_error_set(err, -EACCES,
				  "%s: the host key of %s has CHANGED: the server offers %s %s, "
				  "%s holds another key for it; refusing to connect (remove the "
				  "old line if the guest was rebuilt)",
				  spec, name, type, fp ? fp : "?", file ? file : "known_hosts");
		break;
	case SSH_KNOWN_HOSTS_UNKNOWN:
	case SSH_KNOWN_HOSTS_NOT_FOUND:
		if (!o->accept_new) {
			r = vmc_error_set(
				err, -EACCES,
				"%s: the host key of %s (%s %s) is not in %s; refusing to "
				"connect: check the fingerprint, then pass --ssh-accept-new "
				"to record it",
				spec, name, type, fp ? fp : "?", file ? file : "known_hosts");
			break;
		}
		if (ssh_session_update_known_hosts(s) != SSH_OK) {
			r = vmc_error_set(err, -EIO, "%s: recording the host key of %s in %s: %s",
					  spec, name, file ? file : "known_hosts",
					  ssh_get_error(s));
			break;
		}
		fprintf(stderr, "vmcheck: recorded the host key of %s (%s %s) in %s\n", name, type,
			fp ? fp : "?", file ? file : "known_hosts");
		break;
	default:
		r = vmc_error_set(err, -EIO, "%s: checking the host key of %s in %s: %s", spec,
				  name, file ? file : "known_hosts", ssh_get_error(s));
	}
	ssh_string_free_char(fp);
	ssh_string_free_char(file);
	ssh_clean_pubkey_hash(&hash);
	ssh_key_free(key);
	return r;
}

/* Public key authentication: the --ssh-key file, then the ssh-agent's keys. */
static int authenticate(ssh_session s, const char *spec, const struct vmc_agent_ssh_target *t,
			struct vmc_error *err)
{
	const struct vmc_agent_ssh_opts *o = &vmc_agent_ssh_opts;
	const char *sock = getenv("SSH_AUTH_SOCK");
	char tried[128] = "";
	int r;

	if (o->key) {
		ssh_key key = NULL;

		if (ssh_pki_import_privkey_file(o->key, NULL, NULL, NULL, &key) != SSH_OK)
			return vmc_error_set(err, -EACCES,
					     "%s: cannot read the private key %s (missing, not a "
					     "key, or protected by a passphrase: use ssh-agent)",
					     spec, o->key);
		r = ssh_userauth_publickey(s, NULL, key);
		ssh_key_free(key);
		if (r == SSH_AUTH_SUCCESS)
			return 0;
		if (r == SSH_AUTH_ERROR)
			return vmc_error_set(err, -EIO, "%s: authenticating with %s: %s", spec,
					     o->key, ssh_get_error(s));
		snprintf(tried, sizeof(tried), "the key %.100s", o->key);
	}
	if (sock && *sock) {
		r = ssh_userauth_agent(s, NULL);
		if (r == SSH_AUTH_SUCCESS)
			return 0;
		if (r == SSH_AUTH_ERROR)
			return vmc_error_set(err, -EIO, "%s: authenticating with ssh-agent: %s",
					     spec, ssh_get_error(s));
		snprintf(tried + strlen(tried), sizeof(tried) - strlen(tried),
			 "%sthe ssh-agent's keys", *tried ? " and " : "");
	}
	if (!*tried)
		return vmc_error_set(err, -EACCES,
				     "%s: no key to authenticate with: give --ssh-key FILE or run "
				     "an ssh-agent (SSH_AUTH_SOCK)",
				     spec);
	return vmc_error_set(err, -EACCES, "%s: authentication as %s failed with %s", spec, t->user,
			     tried);
}

static void on_exit_status(ssh_session s, ssh_channel c, int status, void *userdata)
{
	struct ssh_link *l = userdata;

	l->exit_status = status;
}

static void on_exit_signal(ssh_session s, ssh_channel c, const char *sig, int core,
			   const char *errmsg, const char *lang, void *userdata)
{
	struct ssh_link *l = userdata;

	snprintf(l->exit_signal, sizeof(l->exit_signal), "%s", sig ? sig : "?");
}

static void on_eof(ssh_session s, ssh_channel c, void *userdata)
{
	struct ssh_link *l = userdata;

	l->end = END_EOF;
}

static void on_close(ssh_session s, ssh_channel c, void *userdata)
{
	struct ssh_link *l = userdata;

	l->closed = true;
	if (l->end == END_NONE)
		l->end = END_EOF;
}

static void keep_stderr(struct ssh_link *l, const char *p, size_t n)
{
	size_t room = sizeof(l->tail);

	if (n >= room) {
		p += n - room;
		n = room;
	}
	if (l->tail_len + n > room) {
		size_t drop = l->tail_len + n - room;

		memmove(l->tail, l->tail + drop, l->tail_len - drop);
		l->tail_len -= drop;
	}
	memcpy(l->tail + l->tail_len, p, n);
	l->tail_len += n;
}

/*
 * The agent's output, as libssh decodes it: stdout to the client (blocking
 * while the client's buffer is full: that is the flow control), stderr to
 * the tail kept for messages. Everything is consumed.
 */
static int on_data(ssh_session s, ssh_channel c, void *data, uint32_t len, int is_stderr,
		   void *userdata)
{
	struct ssh_link *l = userdata;
	const char *p = data;

	if (is_stderr) {
		keep_stderr(l, p, len);
		return (int)len;
	}
	for (uint32_t left = len; left > 0 && !l->client_gone;) {
		ssize_t w = send(l->mine, p, left, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			l->client_gone = true;
			break;
		}
		p += w;
		left -= (uint32_t)w;
	}
	return (int)len;
}

/* A request from the client, to the agent's stdin. */
static int on_client(socket_t fd, int revents, void *userdata)
{
	struct ssh_link *l = userdata;
	char buf[65536];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		/* The client closed: EOF on the agent's stdin makes it exit. */
		l->client_gone = true;
		ssh_channel_send_eof(l->chan);
	} else if (ssh_channel_write(l->chan, buf, (uint32_t)n) != n) {
		l->end = END_LOST;
	}
	return 0;
}

static void *pump(void *arg)
{
	struct ssh_link *l = arg;
	uint64_t exit_by = 0;
	ssh_event ev = ssh_event_new();

	if (!ev || ssh_event_add_session(ev, l->session) != SSH_OK ||
	    ssh_event_add_fd(ev, l->mine, POLLIN, on_client, l) != SSH_OK) {
		snprintf(l->lost, sizeof(l->lost), "setting up the pump: out of memory");
		l->end = END_LOST;
	}
	while (!l->client_gone) {
		int timeout = -1;

		if (l->end == END_NONE &&
		    ssh_get_status(l->session) & (SSH_CLOSED | SSH_CLOSED_ERROR))
			l->end = END_LOST;
		if (l->end == END_LOST) {
			if (!*l->lost)
				snprintf(l->lost, sizeof(l->lost), "%s", ssh_get_error(l->session));
			break;
		}
		if (l->end == END_EOF) {
			/* The exit status follows the end of the output closely, if at all. */
			if (l->exit_status >= 0 || *l->exit_signal || l->closed)
				break;
			if (!exit_by)
				exit_by = vmc_mono_ns() + EXIT_WAIT_MS * 1000000ull;
			if (vmc_mono_ns() >= exit_by)
				break;
			timeout = (int)((exit_by - vmc_mono_ns()) / 1000000) + 1;
		}
		/* SSH_ERROR also stands for "the socket closed": the next round tells. */
		if (ssh_event_dopoll(ev, timeout) == SSH_ERROR && l->end == END_NONE &&
		    !(ssh_get_status(l->session) & (SSH_CLOSED | SSH_CLOSED_ERROR))) {
			snprintf(l->lost, sizeof(l->lost), "poll: %s", strerror(errno));
			l->end = END_LOST;
		}
	}
	if (ev) {
		ssh_event_remove_fd(ev, l->mine);
		ssh_event_remove_session(ev, l->session);
		ssh_event_free(ev);
	}
	close(l->mine);
	l->mine = -1;
	return NULL;
}

static void link_free(struct ssh_link *l)
{
	if (l->chan)
		ssh_channel_free(l->chan);
	if (l->session) {
		ssh_disconnect(l->session);
		ssh_free(l->session);
	}
	if (l->mine >= 0)
		close(l->mine);
	free(l->cmd);
	free(l->path);
	free(l);
}

/* The pump, started with every signal blocked: they are the main thread's. */
static int start_pump(struct ssh_link *l)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&l->thread, NULL, pump, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	l->running = r == 0;
	return -r;
}

/* Exec the agent on a new channel; the session is connected and authenticated. */
static int exec_agent(struct ssh_link *l, const char *spec, struct vmc_error *err)
{
	l->chan = ssh_channel_new(l->session);
	if (!l->chan)
		return vmc_error_set(err, -ENOMEM, "%s: %s", spec, ssh_get_error(l->session));
	ssh_callbacks_init(&l->cb);
	l->cb.userdata = l;
	l->cb.channel_data_function = on_data;
	l->cb.channel_eof_function = on_eof;
	l->cb.channel_close_function = on_close;
	l->cb.channel_exit_status_function = on_exit_status;
	l->cb.channel_exit_signal_function = on_exit_signal;
	ssh_set_channel_callbacks(l->chan, &l->cb);
	if (ssh_channel_open_session(l->chan) != SSH_OK)
		return vmc_error_set(err, -EIO, "%s: opening a session channel: %s", spec,
				     ssh_get_error(l->session));
	if (ssh_channel_request_exec(l->chan, l->cmd) != SSH_OK)
		return vmc_error_set(err, -EIO, "%s: running %s: %s", spec, l->cmd,
				     ssh_get_error(l->session));
	return 0;
}

static int ssh_open(struct vmc_agent_transport *t, const char *arg, struct vmc_error *err)
{
	const struct vmc_agent_ssh_opts *o = &vmc_agent_ssh_opts;
	struct vmc_agent_ssh_target tg;
	_cleanup_free_ char *spec = NULL;
	struct ssh_link *l;
	long timeout = SESSION_TIMEOUT_S;
	_cleanup_close_ int theirs = -1;
	bool off = false;
	int sv[2], r;

	if (asprintf(&spec, "ssh:%s", arg) < 0)
		return vmc_error_set(err, -ENOMEM, "connecting to ssh:%s: out of memory", arg);
	r = vmc_agent_ssh_parse(spec, &tg, err);
	if (r < 0)
		return r;
	l = calloc(1, sizeof(*l));
	if (!l || !(l->cmd = agent_command(tg.path)) || !(l->path = strdup(tg.path)) ||
	    !(l->session = ssh_new())) {
		r = vmc_error_set(err, -ENOMEM, "connecting to %s: out of memory", spec);
		goto fail;
	}
	l->mine = -1;
	l->exit_status = -1;
	/* Only what the spec and our options say: no ~/.ssh/config surprises. */
	if (ssh_options_set(l->session, SSH_OPTIONS_PROCESS_CONFIG, &off) < 0 ||
	    ssh_options_set(l->session, SSH_OPTIONS_HOST, tg.host) < 0 ||
	    ssh_options_set(l->session, SSH_OPTIONS_PORT, &tg.port) < 0 ||
	    ssh_options_set(l->session, SSH_OPTIONS_USER, tg.user) < 0 ||
	    ssh_options_set(l->session, SSH_OPTIONS_TIMEOUT, &timeout) < 0 ||
	    (o->known_hosts &&
	     ssh_options_set(l->session, SSH_OPTIONS_KNOWNHOSTS, o->known_hosts) < 0)) {
		r = vmc_error_set(err, -EINVAL, "connecting to %s: %s", spec,
				  ssh_get_error(l->session));
		goto fail;
	}
	if (ssh_connect(l->session) != SSH_OK) {
		r = vmc_error_set(err, -ECONNREFUSED, "connecting to %s: %s", spec,
				  ssh_get_error(l->session));
		goto fail;
	}
	r = verify_host(l->session, spec, &tg, err);
	if (r == 0)
		r = authenticate(l->session, spec, &tg, err);
	if (r < 0)
		goto fail;
	/* The pair first: output may come while the exec request is answered. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = vmc_error_set(err, -errno, "connecting to %s: socketpair: %s", spec,
				  strerror(errno));
		goto fail;
	}
	theirs = sv[0];
	l->mine = sv[1];
	r = exec_agent(l, spec, err);
	if (r < 0)
		goto fail;
	r = start_pump(l);
	if (r < 0) {
		vmc_error_set(err, r, "connecting to %s: starting a thread: %s", spec,
			      strerror(-r));
		goto fail;
	}
	t->fd = TAKE_FD(theirs);
	t->priv = l;
	vmc_agent_ssh_target_free(&tg);
	return 0;
fail:
	if (l)
		link_free(l);
	vmc_agent_ssh_target_free(&tg);
	return r;
}

static void join(struct ssh_link *l)
{
	if (l->running)
		pthread_join(l->thread, NULL);
	l->running = false;
}

/* The last line of the agent's stderr, into @buf (empty if none). */
static void last_line(struct ssh_link *l, char *buf, size_t size)
{
	size_t end = l->tail_len, start;

	while (end > 0 && (l->tail[end - 1] == '\n' || l->tail[end - 1] == '\r'))
		end--;
	start = end;
	while (start > 0 && l->tail[start - 1] != '\n')
		start--;
	snprintf(buf, size, "%.*s", (int)(end - start), l->tail + start);
}

static void ssh_describe_eof(struct vmc_agent_transport *t, char *buf, size_t size)
{
	struct ssh_link *l = t->priv;
	char raw[128], line[VMC_Q_SIZE];

	join(l);
	/* The guest wrote it: quoted, so it cannot break the message it goes into. */
	last_line(l, raw, sizeof(raw));
	vmc_esc_buf(line, sizeof(line), raw, VMC_ESC_QUOTE);
	if (l->end == END_LOST)
		snprintf(buf, size, "the SSH connection was lost (%s)", l->lost);
	else if (l->exit_status == 127)
		snprintf(buf, size, "%s: not found on the guest (exit status 127%s%s)", l->path,
			 *line ? ": " : "", line);
	else if (l->exit_status >= 0)
		snprintf(buf, size, "the agent exited (status %d%s%s)", l->exit_status,
			 *line ? ": " : "", line);
	else if (*l->exit_signal)
		snprintf(buf, size, "the agent was killed by signal %s", l->exit_signal);
	else
		snprintf(buf, size, "the SSH channel closed without an exit status%s%s",
			 *line ? ": " : "", line);
}

static void ssh_close(struct vmc_agent_transport *t)
{
	struct ssh_link *l = t->priv;

	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	if (!l)
		return;
	join(l);
	link_free(l);
	t->priv = NULL;
}

const struct vmc_agent_transport_ops vmc_agent_ssh_ops = {
	.scheme = "ssh",
	.open = ssh_open,
	.describe_eof = ssh_describe_eof,
	.close = ssh_close,
};
