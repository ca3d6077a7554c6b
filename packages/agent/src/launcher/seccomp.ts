import { AgentError } from "../errors.js";

/**
 * A classic-BPF seccomp filter for sandboxes, assembled here because bwrap's `--seccomp FD`
 * takes a compiled program (an array of `struct sock_filter`), not rules.
 */

// struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
// Low 32 bits of args[0] on a little-endian machine (both arches below are little-endian).
const OFFSET_ARG0_LOW = 16;

const BPF_LD_W_ABS = 0x20;
const BPF_JMP_JEQ_K = 0x15;
const BPF_JMP_JGE_K = 0x35;
const BPF_JMP_JSET_K = 0x45;
const BPF_RET_K = 0x06;

const SECCOMP_RET_KILL_PROCESS = 0x80000000;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_ALLOW = 0x7fff0000;

const EPERM = 1;
const ENOSYS = 38;

// x32 syscalls are x86_64 numbers with this bit set; the 32-bit ABI is a different audit arch.
const X32_SYSCALL_BIT = 0x40000000;

// Namespace flags of clone(2)/unshare(2): a user namespace would give the sandbox a fresh full
// capability set to attack the kernel with; the others need CAP_SYS_ADMIN, denied all the same.
const CLONE_NEW_ANY =
  0x00000080 | // CLONE_NEWTIME
  0x00020000 | // CLONE_NEWNS
  0x02000000 | // CLONE_NEWCGROUP
  0x04000000 | // CLONE_NEWUTS
  0x08000000 | // CLONE_NEWIPC
  0x10000000 | // CLONE_NEWUSER
  0x20000000 | // CLONE_NEWPID
  0x40000000; // CLONE_NEWNET

export type SeccompArch = "x64" | "arm64";

interface ArchSpec {
  auditArch: number;
  denyX32: boolean;
  syscalls: Record<string, number>;
}

// Numbers from <asm/unistd_64.h> (x86_64) and <asm-generic/unistd.h> (aarch64); the unit test
// checks them against the headers when linux-libc-dev is installed.
const ARCHES: Record<SeccompArch, ArchSpec> = {
  x64: {
    auditArch: 0xc000003e, // AUDIT_ARCH_X86_64
    denyX32: true,
    syscalls: {
      clone: 56,
      ptrace: 101,
      syslog: 103,
      uselib: 134,
      pivot_root: 155,
      adjtimex: 159,
      chroot: 161,
      acct: 163,
      settimeofday: 164,
      mount: 165,
      umount2: 166,
      swapon: 167,
      swapoff: 168,
      reboot: 169,
      iopl: 172,
      ioperm: 173,
      init_module: 175,
      delete_module: 176,
      quotactl: 179,
      nfsservctl: 180,
      lookup_dcookie: 212,
      clock_settime: 227,
      kexec_load: 246,
      add_key: 248,
      request_key: 249,
      keyctl: 250,
      unshare: 272,
      perf_event_open: 298,
      name_to_handle_at: 303,
      open_by_handle_at: 304,
      clock_adjtime: 305,
      setns: 308,
      process_vm_readv: 310,
      process_vm_writev: 311,
      finit_module: 313,
      kexec_file_load: 320,
      bpf: 321,
      userfaultfd: 323,
      io_uring_setup: 425,
      io_uring_enter: 426,
      io_uring_register: 427,
      open_tree: 428,
      move_mount: 429,
      fsopen: 430,
      fsconfig: 431,
      fsmount: 432,
      fspick: 433,
      clone3: 435,
      mount_setattr: 442,
      quotactl_fd: 443,
    },
  },
  arm64: {
    auditArch: 0xc00000b7, // AUDIT_ARCH_AARCH64
    denyX32: false,
    syscalls: {
      lookup_dcookie: 18,
      umount2: 39,
      mount: 40,
      pivot_root: 41,
      nfsservctl: 42,
      chroot: 51,
      quotactl: 60,
      acct: 89,
      unshare: 97,
      kexec_load: 104,
      init_module: 105,
      delete_module: 106,
      clock_settime: 112,
      syslog: 116,
      ptrace: 117,
      reboot: 142,
      settimeofday: 170,
      adjtimex: 171,
      add_key: 217,
      request_key: 218,
      keyctl: 219,
      clone: 220,
      swapon: 224,
      swapoff: 225,
      perf_event_open: 241,
      name_to_handle_at: 264,
      open_by_handle_at: 265,
      clock_adjtime: 266,
      setns: 268,
      process_vm_readv: 270,
      process_vm_writev: 271,
      finit_module: 273,
      bpf: 280,
      userfaultfd: 282,
      kexec_file_load: 294,
      io_uring_setup: 425,
      io_uring_enter: 426,
      io_uring_register: 427,
      open_tree: 428,
      move_mount: 429,
      fsopen: 430,
      fsconfig: 431,
      fsmount: 432,
      fspick: 433,
      clone3: 435,
      mount_setattr: 442,
      quotactl_fd: 443,
    },
  },
};

/**
 * Syscalls that fail with EPERM: mounts and root switching, kernel modules and kexec, raw
 * kernel interfaces (bpf, perf, keyrings, userfaultfd, io ports, syslog), cross-process memory
 * access and tracing (ptrace is denied: it would let a sandbox root process take over envd),
 * file handles (the classic open_by_handle_at escape), joining namespaces, clock and swap and
 * reboot control. Most also need capabilities the sandbox lacks; the filter is the second wall.
 */
export const DENIED_SYSCALLS: readonly string[] = [
  "mount",
  "umount2",
  "pivot_root",
  "chroot",
  "open_tree",
  "move_mount",
  "fsopen",
  "fsconfig",
  "fsmount",
  "fspick",
  "mount_setattr",
  "kexec_load",
  "kexec_file_load",
  "init_module",
  "finit_module",
  "delete_module",
  "open_by_handle_at",
  "name_to_handle_at",
  "bpf",
  "perf_event_open",
  "userfaultfd",
  "keyctl",
  "add_key",
  "request_key",
  "ptrace",
  "process_vm_readv",
  "process_vm_writev",
  "swapon",
  "swapoff",
  "reboot",
  "syslog",
  "acct",
  "quotactl",
  "quotactl_fd",
  "setns",
  "iopl",
  "ioperm",
  "lookup_dcookie",
  "uselib",
  "nfsservctl",
  "settimeofday",
  "clock_settime",
  "clock_adjtime",
  "adjtimex",
];

/**
 * Syscalls that fail with ENOSYS so callers take their fallback: clone3 passes its flags in
 * memory a filter cannot read (glibc then uses clone, whose flags are checked), and io_uring
 * (a frequent source of kernel bugs) makes libuv fall back to its thread pool.
 */
export const ABSENT_SYSCALLS: readonly string[] = [
  "clone3",
  "io_uring_setup",
  "io_uring_enter",
  "io_uring_register",
];

/** clone and unshare are allowed except with namespace flags (EPERM). */
export const FLAG_CHECKED_SYSCALLS: readonly string[] = ["clone", "unshare"];

export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

type Target = string | number;
type Insn =
  | { kind: "stmt"; code: number; k: number }
  | { kind: "jump"; code: number; k: number; jt: Target; jf: Target }
  | { kind: "label"; name: string };

/** A minimal assembler: jumps name labels (or 0 = next instruction), resolved in `assemble`. */
class BpfAssembler {
  private readonly insns: Insn[] = [];

  load(offset: number): this {
    this.insns.push({ kind: "stmt", code: BPF_LD_W_ABS, k: offset });
    return this;
  }

  ret(k: number): this {
    this.insns.push({ kind: "stmt", code: BPF_RET_K, k });
    return this;
  }

  jump(code: number, k: number, jt: Target, jf: Target): this {
    this.insns.push({ kind: "jump", code, k, jt, jf });
    return this;
  }

  label(name: string): this {
    this.insns.push({ kind: "label", name });
    return this;
  }

  assemble(): SockFilter[] {
    const positions = new Map<string, number>();
    let pc = 0;
    for (const insn of this.insns) {
      if (insn.kind === "label") positions.set(insn.name, pc);
      else pc++;
    }
    const out: SockFilter[] = [];
    for (const insn of this.insns) {
      if (insn.kind === "label") continue;
      if (insn.kind === "stmt") {
        out.push({ code: insn.code, jt: 0, jf: 0, k: insn.k >>> 0 });
        continue;
      }
      const here = out.length;
      const offset = (t: Target): number => {
        if (typeof t === "number") return t;
        const at = positions.get(t);
        if (at === undefined) throw new AgentError("internal", `seccomp: unknown label ${t}`);
        const rel = at - here - 1;
        // Classic BPF jumps are forward only, with 8-bit offsets.
        if (rel < 0 || rel > 255) throw new AgentError("internal", `seccomp: jump to ${t} too far`);
        return rel;
      };
      out.push({ code: insn.code, jt: offset(insn.jt), jf: offset(insn.jf), k: insn.k >>> 0 });
    }
    if (out.length > 4096) throw new AgentError("internal", "seccomp: program too long");
    return out;
  }
}

/** The sandbox filter for one architecture, as instructions. */
export function seccompProgram(arch: SeccompArch): SockFilter[] {
  const spec = ARCHES[arch];
  const numbers = (names: readonly string[]): number[] =>
    names.flatMap((n) => (n in spec.syscalls ? [spec.syscalls[n]!] : []));

  const asm = new BpfAssembler();
  // Any other ABI (i386 via int 0x80 on x86_64, arm32 compat) would use other numbers: kill.
  asm.load(OFFSET_ARCH).jump(BPF_JMP_JEQ_K, spec.auditArch, 0, "kill");
  asm.load(OFFSET_NR);
  if (spec.denyX32) asm.jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, "kill", 0);
  for (const nr of numbers(DENIED_SYSCALLS)) asm.jump(BPF_JMP_JEQ_K, nr, "eperm", 0);
  for (const nr of numbers(ABSENT_SYSCALLS)) asm.jump(BPF_JMP_JEQ_K, nr, "enosys", 0);
  for (const nr of numbers(FLAG_CHECKED_SYSCALLS)) asm.jump(BPF_JMP_JEQ_K, nr, "flags", 0);
  asm.ret(SECCOMP_RET_ALLOW);
  asm.label("flags").load(OFFSET_ARG0_LOW).jump(BPF_JMP_JSET_K, CLONE_NEW_ANY, "eperm", 0);
  asm.ret(SECCOMP_RET_ALLOW);
  asm.label("eperm").ret(SECCOMP_RET_ERRNO | EPERM);
  asm.label("enosys").ret(SECCOMP_RET_ERRNO | ENOSYS);
  asm.label("kill").ret(SECCOMP_RET_KILL_PROCESS);
  return asm.assemble();
}

/** The filter as the bytes bwrap reads from `--seccomp FD` (struct sock_filter[], host order). */
export function seccompFilterBytes(arch: SeccompArch = hostArch()): Buffer {
  const program = seccompProgram(arch);
  const buf = Buffer.alloc(program.length * 8);
  program.forEach((insn, i) => {
    buf.writeUInt16LE(insn.code, i * 8);
    buf.writeUInt8(insn.jt, i * 8 + 2);
    buf.writeUInt8(insn.jf, i * 8 + 3);
    buf.writeUInt32LE(insn.k, i * 8 + 4);
  });
  return buf;
}

export function hostArch(): SeccompArch {
  if (process.arch === "x64" || process.arch === "arm64") return process.arch;
  throw new AgentError("failed_precondition", `no seccomp filter for architecture ${process.arch}`);
}

export function syscallNumber(arch: SeccompArch, name: string): number | undefined {
  return ARCHES[arch].syscalls[name];
}
