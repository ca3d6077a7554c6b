/*
 * wrenn-spawn: envd's process spawner. envd (a ~60 MiB Node process) starts it once; each
 * process envd runs with pipes is then started from here, a process of a few hundred KiB, with
 * clone(CLONE_VM | CLONE_VFORK) instead of a fork of envd's whole address space.
 *
 * It runs with envd's own credentials and takes requests only on its stdin, a pipe only envd
 * holds; every descriptor it makes is close-on-exec, so nothing it starts inherits it. It can do
 * nothing envd could not do itself.
 *
 * Protocol (native byte order; envd runs on the same machine):
 *   envd -> helper, on stdin: frames of u32 length, then the payload:
 *     'S' spawn:   u8 'S', u8 flags (1: stdin is a pipe, else /dev/null), u16 0, u32 id,
 *                  u32 uid, u32 gid (0xffffffff: keep envd's), u32 ngroups, u32 argc, u32 envc,
 *                  u32 groups[ngroups], then NUL-terminated strings: file, cwd, argv[argc],
 *                  envp[envc].
 *     'R' release: u8 'R', u8 0, u16 0, u32 id: envd has opened the pipes of spawn `id` through
 *                  /proc/<helper>/fd; the helper closes its own ends.
 *   helper -> envd, on stdout: records of six i32: type, then
 *     'P' (spawned): id, pid, stdin fd (-1 without), stdout fd, stderr fd
 *     'E' (failed):  id, errno, 0, 0, 0
 *     'X' (exited):  pid, wait status, 0, 0, 0
 * The helper exits when its stdin closes (envd is gone).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEEP_ID 0xffffffffu
#define MAX_FRAME (64u * 1024 * 1024)
#define MAX_GROUPS 65536u
#define CHILD_STACK (64 * 1024)

struct spawn_req {
  uint8_t flags;
  uint32_t id, uid, gid, ngroups, argc, envc;
  gid_t *groups;
  const char *file, *cwd;
  char **argv, **envp;
  /* Child-side pipe ends, and where the child reports why it could not exec. */
  int in_fd, out_fd, err_fd;
  volatile int child_errno;
};

/* Pipes whose helper-side ends are held until envd has opened them ('R'). */
struct held {
  uint32_t id;
  int fds[3];
  struct held *next;
};
static struct held *held_list;

static int write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* 1 on a full read, 0 on end of file before any byte, -1 on error or a short frame. */
static int read_all(int fd, void *buf, size_t len) {
  char *p = buf;
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, p + got, len - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) return got == 0 ? 0 : -1;
    got += (size_t)n;
  }
  return 1;
}

static void reply(int32_t type, int32_t a, int32_t b, int32_t c, int32_t d, int32_t e) {
  int32_t rec[6] = {type, a, b, c, d, e};
  /* envd gone: nothing left to do. */
  if (write_all(STDOUT_FILENO, rec, sizeof rec) < 0) _exit(0);
}

/* The child, on its own stack, sharing the helper's memory until it execs or exits. */
static int child_main(void *arg) {
  struct spawn_req *r = arg;
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* The user's processes go first when the sandbox runs out of memory, as with Node's spawn. */
  int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (oom >= 0) {
    (void)!write(oom, "1000", 4);
    close(oom);
  }
  /* Its own process group, so envd can signal everything it started. */
  if (setsid() < 0) goto fail;
  if (dup2(r->in_fd, 0) < 0 || dup2(r->out_fd, 1) < 0 || dup2(r->err_fd, 2) < 0) goto fail;
  if (chdir(r->cwd) < 0) goto fail;
  if (r->uid != KEEP_ID) {
    if (setgroups(r->ngroups, r->groups) < 0) goto fail;
    if (setgid(r->gid) < 0) goto fail;
    if (setuid(r->uid) < 0) goto fail;
  }
  if (strchr(r->file, '/')) {
    execve(r->file, r->argv, r->envp);
    goto fail;
  }
  /* PATH from the process's own environment, like libuv; relative entries from its cwd. */
  const char *path = "/usr/local/bin:/usr/bin:/bin";
  for (uint32_t i = 0; i < r->envc; i++) {
    if (strncmp(r->envp[i], "PATH=", 5) == 0) path = r->envp[i] + 5;
  }
  char buf[4096];
  size_t flen = strlen(r->file);
  int seen_eacces = 0;
  for (const char *p = path;; p++) {
    const char *end = strchrnul(p, ':');
    size_t dlen = (size_t)(end - p);
    if (dlen + flen + 2 <= sizeof buf) {
      if (dlen == 0) {
        buf[0] = '.';
        dlen = 1;
      } else {
        memcpy(buf, p, dlen);
      }
      buf[dlen] = '/';
      memcpy(buf + dlen + 1, r->file, flen + 1);
      execve(buf, r->argv, r->envp);
      if (errno == EACCES) seen_eacces = 1;
      else if (errno != ENOENT && errno != ENOTDIR) goto fail;
    }
    p = end;
    if (*end == '\0') break;
  }
  errno = seen_eacces ? EACCES : ENOENT;
fail:
  r->child_errno = errno ? errno : EINVAL;
  _exit(127);
}

static char child_stack[CHILD_STACK] __attribute__((aligned(16)));

static void close_pair(int p[2]) {
  if (p[0] >= 0) close(p[0]);
  if (p[1] >= 0) close(p[1]);
}

static void do_spawn(uint32_t id, struct spawn_req *r) {
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  int e = 0;
  if (r->flags & 1) {
    if (pipe2(in, O_CLOEXEC) < 0) e = errno;
  } else {
    in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in[0] < 0) e = errno;
  }
  if (!e && (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)) e = errno;
  struct held *h = e ? NULL : malloc(sizeof *h);
  if (!e && !h) e = ENOMEM;
  if (e) {
    close_pair(in);
    close_pair(out);
    close_pair(err);
    reply('E', (int32_t)id, e, 0, 0, 0);
    return;
  }
  r->in_fd = in[0];
  r->out_fd = out[1];
  r->err_fd = err[1];
  r->child_errno = 0;
  /* Returns once the child has exec'd or exited: CLONE_VFORK suspends the helper until then. */
  pid_t pid = clone(child_main, child_stack + CHILD_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, r);
  /*
   * envd opens the helper's pipe ends through /proc/<helper>/fd, which the kernel allows
   * (without CAP_SYS_PTRACE, as in a sandbox) only while the helper is dumpable, and a child
   * that switched its uid while sharing the helper's memory made it undumpable. Dumpable only
   * opens it to processes with the helper's own uid and capabilities (envd's equals), never to
   * the sandbox's user.
   */
  prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (pid < 0 || r->child_errno) {
    int why = pid < 0 ? errno : r->child_errno;
    if (pid > 0) waitpid(pid, NULL, 0);
    if (in[1] >= 0) close(in[1]);
    close(out[0]);
    close(err[0]);
    free(h);
    reply('E', (int32_t)id, why, 0, 0, 0);
    return;
  }
  h->id = id;
  h->fds[0] = in[1];
  h->fds[1] = out[0];
  h->fds[2] = err[0];
  h->next = held_list;
  held_list = h;
  reply('P', (int32_t)id, pid, in[1], out[0], err[0]);
}

static void do_release(uint32_t id) {
  for (struct held **p = &held_list; *p; p = &(*p)->next) {
    if ((*p)->id != id) continue;
    struct held *h = *p;
    *p = h->next;
    for (int i = 0; i < 3; i++)
      if (h->fds[i] >= 0) close(h->fds[i]);
    free(h);
    return;
  }
}

/* Parses a spawn payload in place; 0 when it is well formed. */
static int parse_spawn(char *buf, uint32_t len, struct spawn_req *r, uint32_t *id) {
  uint32_t head[7];
  if (len < sizeof head) return -1;
  memcpy(head, buf, sizeof head);
  r->flags = (uint8_t)buf[1];
  *id = head[1];
  r->uid = head[2];
  r->gid = head[3];
  r->ngroups = head[4];
  r->argc = head[5];
  r->envc = head[6];
  if (r->ngroups > MAX_GROUPS || r->argc == 0 || r->argc > len || r->envc > len) return -1;
  size_t off = sizeof head;
  if ((size_t)r->ngroups * 4 > len - off) return -1;
  r->groups = malloc(sizeof(gid_t) * (r->ngroups + 1));
  r->argv = malloc(sizeof(char *) * (r->argc + 1));
  r->envp = malloc(sizeof(char *) * (r->envc + 1));
  if (!r->groups || !r->argv || !r->envp) return -1;
  for (uint32_t i = 0; i < r->ngroups; i++) {
    uint32_t g;
    memcpy(&g, buf + off, 4);
    r->groups[i] = g;
    off += 4;
  }
  uint32_t total = 2 + r->argc + r->envc;
  for (uint32_t i = 0; i < total; i++) {
    char *s = buf + off;
    char *nul = memchr(s, '\0', len - off);
    if (!nul) return -1;
    off = (size_t)(nul - buf) + 1;
    if (i == 0) r->file = s;
    else if (i == 1) r->cwd = s;
    else if (i < 2 + r->argc) r->argv[i - 2] = s;
    else r->envp[i - 2 - r->argc] = s;
  }
  r->argv[r->argc] = NULL;
  r->envp[r->envc] = NULL;
  return off == len ? 0 : -1;
}

/* One frame from envd; 0 at end of input. A malformed frame ends the helper: envd falls back. */
static int handle_frame(void) {
  uint32_t len;
  int got = read_all(STDIN_FILENO, &len, sizeof len);
  if (got <= 0) return 0;
  if (len < 8 || len > MAX_FRAME) return 0;
  char *buf = malloc(len);
  if (!buf || read_all(STDIN_FILENO, buf, len) != 1) return 0;
  uint32_t id;
  memcpy(&id, buf + 4, 4);
  if (buf[0] == 'R') {
    do_release(id);
  } else if (buf[0] == 'S') {
    struct spawn_req r = {0};
    if (parse_spawn(buf, len, &r, &id) != 0) return 0;
    do_spawn(id, &r);
    free(r.groups);
    free(r.argv);
    free(r.envp);
  } else {
    return 0;
  }
  free(buf);
  return 1;
}

static void reap(int sfd) {
  struct signalfd_siginfo info;
  while (read(sfd, &info, sizeof info) > 0) {
  }
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) reply('X', pid, status, 0, 0, 0);
}

/* Whatever envd's own parent left open (without close-on-exec) must not reach user processes. */
static void close_inherited(void) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 3u, ~0u, 0u) == 0) return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  for (int fd = 3; fd < max; fd++) close(fd);
}

int main(void) {
  close_inherited();
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) return 1;
  fcntl(STDIN_FILENO, F_SETFD, FD_CLOEXEC);
  fcntl(STDOUT_FILENO, F_SETFD, FD_CLOEXEC);
  struct pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {sfd, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    /* Exits first: a pid must be reported gone before a new spawn could reuse it. */
    if (fds[1].revents) reap(sfd);
    if (fds[0].revents) {
      if (!handle_frame()) return 0;
    }
  }
}
