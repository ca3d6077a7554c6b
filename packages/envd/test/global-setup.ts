import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * envd's suites run a real envd on the host as root. Processes and files must belong to a real
 * unprivileged user, so one is made for the run and removed after it.
 */
export const TEST_USER = "wrenn-envd-test";

function userExists(name: string): boolean {
  try {
    execFileSync("id", ["-u", name], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export function setup(): () => void {
  if (process.getuid?.() !== 0) throw new Error("envd's tests run as root (they switch users)");
  const made = !userExists(TEST_USER);
  if (made) execFileSync("useradd", ["--create-home", "--shell", "/bin/sh", TEST_USER]);
  return () => {
    if (made && existsSync(`/home/${TEST_USER}`))
      execFileSync("userdel", ["--remove", TEST_USER], { stdio: "ignore" });
  };
}
