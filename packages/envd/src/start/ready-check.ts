import { existsSync } from "node:fs";
import { connect } from "node:net";
import type { ProcessManager } from "../process/manager.js";
import type { UserInfo } from "../user/index.js";
import type { ReadyCheck } from "./start-spec.js";

/** One attempt of a ready check; true when it passed. */
export type ReadyProbe = () => Promise<boolean>;

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Runs `cmd` through the shell as the start command's user; true when it exits 0. Its output is dropped. */
async function commandSucceeds(
  manager: ProcessManager,
  user: UserInfo,
  cmd: string,
  envs: Record<string, string>,
  cwd: string | undefined,
): Promise<boolean> {
  const { proc, sub } = await manager.start(
    {
      spec: { cmd: "/bin/sh", args: ["-c", cmd], envs, cwd },
      tag: undefined,
      pty: undefined,
      stdin: false,
    },
    user,
  );
  proc.unsubscribe(sub);
  return (await proc.done).exitCode === 0;
}

/** The probe for `check`, run as `user` with the start command's envs and cwd. */
export function readyProbe(
  check: ReadyCheck,
  manager: ProcessManager,
  user: UserInfo,
  envs: Record<string, string>,
  cwd: string | undefined,
): ReadyProbe {
  if ("port" in check) return () => portAnswers(check.port);
  if ("file" in check) return async () => existsSync(check.file);
  return () => commandSucceeds(manager, user, check.cmd, envs, cwd);
}
